"""Seed files: YAML whose field names are the API's own, applied atomically and exported back.

A seed describes state the way the API shows it::

    accounts:      [{id, name, tokens: [{token, kind, expires_at?, revoked?}]}]
    dcp_services:  [{id?, account_id?, name, aws_access_key?, ..., datasources: [...], aliases: {...}}]
    projects:      [{id?, account_id?, project_name, project_status?, dcp_service_id?}]
    oauth_apps:    [{client_id?, client_secret?, name, redirect_uris: [...], client_type?, account_id?}]

Ids, AWS keys and timestamps that are given are kept verbatim; missing ids come from the store's
sequence, missing keys from ``store.aws_key_pair`` (deterministic by id) and missing timestamps are
``SEED_TIMESTAMP`` — never the clock — so a seeded emulator exports the same state every time.
Entities are created through the store's ``create_*`` methods so a seed is validated exactly like
the API (profile values go through ``store.profile_patch``, i.e. the one datatype validator). Every problem is a
``SeedError`` naming the source, the path inside the seed and what is wrong; a seed applies
entirely or not at all (one transaction).
"""

from __future__ import annotations

import json
import pathlib
import re
import sqlite3
from collections.abc import Callable
from typing import Any

import yaml

from .errors import DcpError, SeedError
from .oauth import list_apps, register_app
from .resources import ACCOUNT, ATTRIBUTE, DATASOURCE, PROJECT, SERVICE, TIMESTAMP_RE, TOKEN, Resource
from .seeds import resolve_seed
from .store import MAX_CUSTOMER_ID_LENGTH, OPTIMIZELY_TABLE, PatchError, Store, profile_patch

SEED_TIMESTAMP = "2024-01-01T00:00:00.000000Z"  # the timestamp of seeded entities that give none
SEEDED_ACCOUNT_NAME = "Seeded account"
MAX_DEPTH = 64  # YAML nesting accepted (a seed needs about 8)
MAX_ALIAS_NODES = 100_000  # nodes that the aliases of one seed may stand for (anchors reused by hand need far fewer)
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_TOP_KEYS = ("accounts", "dcp_services", "projects", "oauth_apps")
_ACCOUNT_KEYS = ACCOUNT.seed_keys
_TOKEN_KEYS = TOKEN.seed_keys
# A seed entry of a resource has the resource's own fields (resources.py), plus what it contains.
_SERVICE_KEYS = SERVICE.seed_keys + ("datasources", "aliases")
_DATASOURCE_KEYS = DATASOURCE.seed_keys + ("profiles",)
_ATTRIBUTE_KEYS = ATTRIBUTE.seed_keys + ("values",)  # values: of an archived attribute (see archived_values)
_PROJECT_KEYS = PROJECT.seed_keys
_LEGACY_PROJECT_STATUSES = {"active": "Active", "paused": "Active", "archived": "Archived"}
# The built-in Optimizely table is provisioned with its service; a seed may only fix these of it.
_OPTIMIZELY_FIXED = OPTIMIZELY_TABLE


class InvalidSeed(DcpError):
    """POST /_emulator/seed got an invalid seed; ``field`` is the path inside it."""

    status, code = 400, "invalid_seed"


# ---------------------------------------------------------------------- parsing
# libyaml's parser when available: seeds of 10,000s of profiles parse about ten times faster.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe YAML without timestamp resolution (timestamps and dates stay the strings written) and
    with duplicate keys refused (YAML would silently keep the last one)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    out: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in out
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value",
                                                    key_node.start_mark) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _check_events(text: str, source: str) -> None:
    """Refuse, before anything is composed or expanded, what would crash or exhaust the process:
    absurd nesting (libyaml's composer recurses in C and would segfault on 100,000 '['), aliases
    that expand to more than MAX_ALIAS_NODES nodes ("billion laughs": a 470-byte seed of nested
    anchors grows without bound when walked) and integers too long for Python to convert."""
    try:
        _walk_events(yaml.parse(text, Loader=_Loader), source)  # events only: no recursion, no expansion
    except yaml.YAMLError:
        # libyaml's scanner reads ahead, and newer versions refuse deep nesting there with their own
        # wording before any event reaches us. Walk again with the pure-Python parser (only on this
        # error path: it is slower) so that too much nesting is always refused with our own rule;
        # any other error is libyaml's to report.
        _walk_events(yaml.parse(text, Loader=yaml.SafeLoader), source)
        raise


def _walk_events(events, source: str) -> None:
    # The expanded size (in nodes) of each anchored node, counted as if every alias inside it were
    # written out, so an alias's cost is known when it is met, without expanding anything.
    sizes: dict[str, int] = {}
    open_nodes: list[list] = []  # [anchor, expanded size so far] of each open mapping/sequence
    expanded = 0  # nodes the aliases of the document stand for

    def where(event) -> str:
        mark = event.start_mark
        return f"line {mark.line + 1}, column {mark.column + 1}"

    def close(anchor: str | None, size: int) -> None:
        if anchor is not None:
            sizes[anchor] = size
        if open_nodes:
            open_nodes[-1][1] += size

    for event in events:
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(open_nodes) >= MAX_DEPTH:
                raise SeedError(source, where(event), f"nested deeper than {MAX_DEPTH} levels; a seed needs "
                                                      "fewer than 10")
            open_nodes.append([event.anchor, 1])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            close(*open_nodes.pop())
        elif isinstance(event, yaml.ScalarEvent):
            value = event.value
            if event.implicit[0] and len(value) > MAX_CUSTOMER_ID_LENGTH \
                    and value.lstrip("+-").replace("_", "").isdigit():
                raise SeedError(source, where(event), f"a number of {len(value)} digits is longer than any field "
                                                      f"accepts (quote it if it is meant as a string)")
            close(event.anchor, 1)
        elif isinstance(event, yaml.AliasEvent):
            size = sizes.get(event.anchor, 1)
            expanded += size
            if expanded > MAX_ALIAS_NODES:
                raise SeedError(source, where(event), f"the aliases of this seed (*{event.anchor} here) stand for "
                                                      f"more than {MAX_ALIAS_NODES:,} nodes; expand the anchors "
                                                      "by hand or use fewer nested aliases")
            close(None, size)


def parse_seed(text: str | bytes, source: str = "<seed>") -> dict:
    """Parse YAML (or JSON, a subset of YAML) seed text into a mapping; syntax errors are SeedErrors."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise SeedError(source, "", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        _check_events(text, source)
        data = yaml.load(text, Loader=_Loader)  # safe: _Loader derives from (C)SafeLoader
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SeedError(source, where, f"invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise SeedError(source, "", f"invalid YAML: {e}") from None
    except RecursionError:
        raise SeedError(source, "", "the YAML is nested too deeply") from None
    except ValueError as e:  # a value YAML resolves but Python cannot build (e.g. a huge sexagesimal number)
        raise SeedError(source, "", f"invalid YAML value: {str(e)[:200]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SeedError(source, "", f"a seed must be a mapping with keys {', '.join(_TOP_KEYS)}, "
                                    f"got {_kind(data)}")
    return data


def load_seed_file(path: str | pathlib.Path) -> dict:
    """Read and parse one seed file, or a built-in seed by name (``example``); a missing or unreadable
    file is a SeedError too."""
    try:
        raw = resolve_seed(path).read_bytes()
    except FileNotFoundError as e:
        raise SeedError(str(path), "", str(e)) from None
    except OSError as e:
        raise SeedError(str(path), "", f"cannot read the seed file: {e.strerror or e}") from None
    return parse_seed(raw, str(path))


# ---------------------------------------------------------------------- validation helpers
def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _key_path(path: str, key: Any) -> str:
    key = str(key)
    joined = f".{key}" if _IDENT_RE.match(key) else f"[{json.dumps(key)}]"
    return f"{path}{joined}" if path else key


class _Applier:
    """Walks one seed, creating its entities through the store, keeping the path for error messages."""

    def __init__(self, store: Store, source: str, default_account_id: int | None):
        self.store = store
        self.source = source
        self.default_account_id = default_account_id
        self.first_account_id: int | None = None  # services/projects without account_id belong to it
        self.counts = {k: 0 for k in ("accounts", "tokens", "dcp_services", "datasources", "attributes",
                                      "profiles", "aliases", "projects", "oauth_apps")}
        self.to_archive: list[tuple[str, int]] = []

    def fail(self, path: str, problem: str) -> SeedError:
        return SeedError(self.source, path, problem)

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail(_key_path(path, key), f"unknown field; accepted fields are {', '.join(allowed)}")
        return value

    def items(self, value: Any, path: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {_kind(value)}")
        return value

    def int_id(self, d: dict, key: str, path: str, required: bool = False) -> int | None:
        value = d.get(key)
        if value is None:
            if required:
                raise self.fail(_key_path(path, key), "is required")
            return None
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
            raise self.fail(_key_path(path, key), f"must be a positive integer id, got {value!r}")
        return value

    def timestamp(self, d: dict, key: str, path: str) -> str | None:
        value = d.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not TIMESTAMP_RE.fullmatch(value):
            raise self.fail(_key_path(path, key), "must be a UTC timestamp like 2015-08-18T21:38:55.927670Z, "
                                                  f"got {value!r}")
        return value

    def flag(self, d: dict, key: str, path: str) -> bool:
        value = d.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(_key_path(path, key), f"must be true or false, got {value!r}")
        return value

    def string(self, d: dict, key: str, path: str) -> str | None:
        value = d.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise self.fail(_key_path(path, key), f"must be a non-empty string, got {_kind(value)}")
        return value

    def given(self, d: dict, path: str) -> dict:
        """The verbatim id, keys and timestamps of an entity (missing timestamps: SEED_TIMESTAMP)."""
        given: dict[str, Any] = {"created": self.timestamp(d, "created", path) or SEED_TIMESTAMP}
        given["last_modified"] = self.timestamp(d, "last_modified", path) or given["created"]
        if d.get("id") is not None:
            given["id"] = self.int_id(d, "id", path)
        for key in ("aws_access_key", "aws_secret_key"):
            if d.get(key) is not None:
                given[key] = self.string(d, key, path)
        if ("aws_access_key" in given) != ("aws_secret_key" in given):
            raise self.fail(path, "give both aws_access_key and aws_secret_key, or neither (they are generated)")
        return given

    def free_id(self, table: str, entity_id: int | None, path: str, what: str) -> None:
        if entity_id is not None and self.store.db.execute(f"SELECT 1 FROM {table} WHERE id = ?",
                                                           (entity_id,)).fetchone():
            raise self.fail(_key_path(path, "id"), f"{what} {entity_id} already exists")

    def call(self, path: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run a store method, turning its API error into a SeedError at ``path`` (+ the field at fault)."""
        try:
            return fn(*args, **kwargs)
        except DcpError as e:
            raise self.fail(_key_path(path, e.field) if e.field else path, e.message) from None
        except sqlite3.IntegrityError as e:
            raise self.fail(path, f"conflicts with the existing state ({e})") from None

    # ------------------------------------------------------------------ entities
    def apply(self, seed: dict) -> None:
        self.mapping(seed, "", _TOP_KEYS)
        for i, account in enumerate(self.items(seed.get("accounts"), "accounts")):
            self.account(account, f"accounts[{i}]")
        for i, service in enumerate(self.items(seed.get("dcp_services"), "dcp_services")):
            self.service(service, f"dcp_services[{i}]")
        for i, project in enumerate(self.items(seed.get("projects"), "projects")):
            self.project(project, f"projects[{i}]")
        for i, app in enumerate(self.items(seed.get("oauth_apps"), "oauth_apps")):
            self.oauth_app(app, f"oauth_apps[{i}]")
        # Archived things cannot be written, so they are archived last, after their contents exist
        # (timestamps untouched: they are the seed's). Archiving a service archives its tables, as DELETE does.
        for table, entity_id in self.to_archive:
            if table == "dcp_services":
                self.store.db.execute("UPDATE dcp_services SET archived = 1 WHERE id = ?", (entity_id,))
                self.store.db.execute("UPDATE datasources SET archived = 1 WHERE dcp_service_id = ?", (entity_id,))
            else:
                self.store.db.execute("UPDATE datasources SET archived = 1 WHERE id = ?", (entity_id,))

    def account(self, d: Any, path: str) -> None:
        d = self.mapping(d, path, _ACCOUNT_KEYS)
        account_id = self.int_id(d, "id", path)
        name = self.string(d, "name", path)
        exists = account_id is not None and account_id in self.store.credentials.find_account_ids()
        if exists:
            # Accounts merge: a seed may add tokens to the default account (or rename it).
            if name is not None:
                self.store.db.execute("UPDATE accounts SET name = ? WHERE id = ?", (name, account_id))
        else:
            account_id = self.store.credentials.create_account(account_id, name=name or SEEDED_ACCOUNT_NAME)["id"]
        self.counts["accounts"] += 1
        if self.first_account_id is None:
            self.first_account_id = account_id
        for i, token in enumerate(self.items(d.get("tokens"), _key_path(path, "tokens"))):
            self.token(token, f"{_key_path(path, 'tokens')}[{i}]", account_id)

    def token(self, d: Any, path: str, account_id: int) -> None:
        d = self.mapping(d, path, _TOKEN_KEYS)
        values = self.call(path, TOKEN.parse_create, {k: d[k] for k in ("token", "kind") if k in d})
        token, kind = values["token"], values["kind"]
        if d.get("account_id") is not None and self.int_id(d, "account_id", path) != account_id:
            raise self.fail(_key_path(path, "account_id"), f"differs from the enclosing account {account_id}")
        owner = self.store.credentials.find_token(token)
        if owner is not None and owner["account_id"] != account_id:
            raise self.fail(_key_path(path, "token"), f"already belongs to account {owner['account_id']}")
        expires_at = self.timestamp(d, "expires_at", path)
        revoked = self.flag(d, "revoked", path)
        self.store.credentials.create_token(token, kind, account_id, expires_at=expires_at,
                                            refresh_token=self.string(d, "refresh_token", path),
                                            client_id=self.string(d, "client_id", path))
        if revoked:
            self.store.credentials.revoke_token(token)
        self.counts["tokens"] += 1

    def owner(self, d: dict, path: str) -> int:
        account_id = self.int_id(d, "account_id", path)
        if account_id is None:
            account_id = self.first_account_id or self.default_account_id
            if account_id is None:
                raise self.fail(_key_path(path, "account_id"), "is required (no account is declared in this seed)")
            return account_id
        if account_id not in self.store.credentials.find_account_ids():
            raise self.fail(_key_path(path, "account_id"), f"account {account_id} does not exist; declare it "
                                                           "under accounts (the default account is 1001)")
        return account_id

    def service(self, d: Any, path: str) -> None:
        d = self.mapping(d, path, _SERVICE_KEYS)
        account_id = self.owner(d, path)
        given = self.given(d, path)
        self.free_id("dcp_services", given.get("id"), path, "DCP service")
        archived = self.flag(d, "archived", path)
        datasources = self.items(d.get("datasources"), _key_path(path, "datasources"))
        optimizely = [(i, ds) for i, ds in enumerate(datasources) if isinstance(ds, dict) and ds.get("is_optimizely")]
        if len(optimizely) > 1:
            raise self.fail(f"{_key_path(path, 'datasources')}[{optimizely[1][0]}].is_optimizely",
                            "a DCP service has exactly one Optimizely table")
        if optimizely:
            i, ds = optimizely[0]
            ds_path = f"{_key_path(path, 'datasources')}[{i}]"
            self.mapping(ds, ds_path, _DATASOURCE_KEYS)
            for key, fixed in _OPTIMIZELY_FIXED.items():
                if key in ds and ds[key] != fixed:
                    raise self.fail(_key_path(ds_path, key), f"the built-in Optimizely table always has {key} "
                                                             f"{fixed!r}; it cannot be changed")
            opt_given = self.given(ds, ds_path)
            self.free_id("datasources", opt_given.get("id"), ds_path, "Table")
        else:
            # Provisioned with its service: it shares the service's timestamps (never the clock).
            opt_given = {"created": given["created"], "last_modified": given["created"]}
        name = {"name": d["name"]} if "name" in d else {}
        service = self.call(path, self.store.management.create_service, account_id, name, enforce_limit=False,
                            optimizely_table=opt_given, **given)
        sid = service["id"]
        self.computed_as_given(SERVICE, d, service, path)
        self.counts["dcp_services"] += 1
        opt_id = self.store.db.execute("SELECT id FROM datasources WHERE dcp_service_id = ? AND is_optimizely = 1",
                                       (sid,)).fetchone()[0]
        for i, ds in enumerate(datasources):
            ds_path = f"{_key_path(path, 'datasources')}[{i}]"
            is_opt = isinstance(ds, dict) and ds.get("is_optimizely")
            self.datasource(ds, ds_path, account_id, sid, opt_id if is_opt else None)
        self.aliases(d.get("aliases"), _key_path(path, "aliases"), account_id, sid, opt_id)
        if archived:
            self.to_archive.append(("dcp_services", sid))

    def datasource(self, d: Any, path: str, account_id: int, service_id: int, optimizely_id: int | None) -> None:
        d = self.mapping(d, path, _DATASOURCE_KEYS)
        if d.get("dcp_service_id") is not None and d["dcp_service_id"] != service_id:
            raise self.fail(_key_path(path, "dcp_service_id"), f"differs from the enclosing service {service_id}")
        archived = self.flag(d, "archived", path)
        if optimizely_id is not None:
            did = optimizely_id
        else:
            given = self.given(d, path)
            self.free_id("datasources", given.get("id"), path, "Table")
            fields = _api_fields(DATASOURCE, d)
            did = self.call(path, self.store.management.create_datasource, account_id, service_id, fields, **given)["id"]
            self.counts["datasources"] += 1
        self.computed_as_given(DATASOURCE, d, {"id": did, "dcp_service_id": service_id}, path)
        for i, attr in enumerate(self.items(d.get("attributes"), _key_path(path, "attributes"))):
            self.attribute(attr, f"{_key_path(path, 'attributes')}[{i}]", account_id, did)
        self.profiles(d.get("profiles"), _key_path(path, "profiles"), did)
        if archived:
            self.to_archive.append(("datasources", did))

    def attribute(self, d: Any, path: str, account_id: int, datasource_id: int) -> None:
        d = self.mapping(d, path, _ATTRIBUTE_KEYS)
        if d.get("dcp_datasource_id") is not None and d["dcp_datasource_id"] != datasource_id:
            raise self.fail(_key_path(path, "dcp_datasource_id"), f"differs from the enclosing table {datasource_id}")
        given = self.given(d, path)
        self.free_id("attributes", given.get("id"), path, "Attribute")
        given["archived"] = self.flag(d, "archived", path)
        fields = _api_fields(ATTRIBUTE, d)
        attr = self.call(path, self.store.management.create_attribute, account_id, datasource_id, fields, **given)
        self.counts["attributes"] += 1
        if d.get("values") is not None:
            if not given["archived"]:
                raise self.fail(_key_path(path, "values"), "only an archived attribute lists its values here; give "
                                                           "values of active attributes under the table's profiles")
            self.archived_values(d["values"], _key_path(path, "values"), datasource_id, attr)

    def archived_values(self, value: Any, path: str, datasource_id: int, attr: dict) -> None:
        """{customer id: value} of an archived attribute: kept (invisible) so that unarchiving shows them again.

        They are listed under the attribute rather than in profiles because profiles are keyed by name,
        and an archived attribute may share its name with an active one.
        """
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping {{customer id: value}}, got {_kind(value)}")
        rows = []
        for customer_id, v in value.items():
            where = _key_path(path, customer_id)
            customer_id = self.customer_id(customer_id, where)
            if v is None:
                raise self.fail(where, "must be a value, not null")
            try:
                patch = profile_patch([attr], {attr["name"]: v})
            except PatchError as e:
                raise self.fail(where, f"invalid {attr['datatype']} value: {e.reason}") from None
            rows.append((customer_id, patch))
        self.store.profile_tables.upsert_profiles(datasource_id, rows)

    def customer_id(self, customer_id: Any, where: str) -> str:
        """A customer id as stored (a YAML number becomes its string), or a SeedError."""
        if isinstance(customer_id, int) and not isinstance(customer_id, bool):
            customer_id = str(customer_id)
        if not isinstance(customer_id, str) or not 0 < len(customer_id) <= MAX_CUSTOMER_ID_LENGTH:
            raise self.fail(where, f"customer id must be a string of 1 to {MAX_CUSTOMER_ID_LENGTH} characters, "
                                   f"got {customer_id!r}")
        return customer_id

    def keyed_entries(self, value: Any, path: str, mapping_shape: str,
                      id_hint: str) -> list[tuple[Any, Any, str, str]]:
        """Profiles and aliases are a mapping {id: data} or a list of {customerId, data}: as
        (id, data, where the entry is, where its data is) in both forms."""
        if isinstance(value, dict):
            return [(k, v, path, _key_path(path, k)) for k, v in value.items()]
        if not isinstance(value, list):
            raise self.fail(path, f"expected a mapping {mapping_shape} or a list of {{customerId, data}}, "
                                  f"got {_kind(value)}")
        entries = []
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            item = self.mapping(item, item_path, ("customerId", "data", "dcpServiceId", "datasourceId"))
            if "customerId" not in item:
                raise self.fail(_key_path(item_path, "customerId"), f"is required{id_hint}")
            entries.append((item["customerId"], item.get("data"), item_path, _key_path(item_path, "data")))
        return entries

    def profiles(self, value: Any, path: str, datasource_id: int) -> None:
        """Validate every value with the shared datatype validator, then write them in one statement."""
        if value is None:
            return
        pairs = self.keyed_entries(value, path, "{customer id: {attribute: value}}", "")
        attrs = self.store.profile_tables.active_attributes(datasource_id)
        rows = []
        seen: set[str] = set()
        for customer_id, data, where, data_path in pairs:
            customer_id = self.customer_id(customer_id, where)
            if customer_id in seen:
                raise self.fail(data_path, "this customer id appears twice")
            seen.add(customer_id)
            if data is None:
                data = {}
            if not isinstance(data, dict):
                raise self.fail(data_path, f"expected a mapping of attribute names to values, got {_kind(data)}")
            try:
                patch = profile_patch(attrs, data)
            except PatchError as e:
                if e.attribute is None:
                    listing = ", ".join(repr(a["name"]) for a in attrs) or "none"
                    raise self.fail(_key_path(data_path, e.key), f"not an attribute of table {datasource_id} "
                                                                 f"(attributes: {listing})") from None
                raise self.fail(_key_path(data_path, e.key),
                                f"invalid {e.attribute['datatype']} value: {e.reason}") from None
            rows.append((customer_id, patch))
        self.store.profile_tables.upsert_profiles(datasource_id, rows)
        self.counts["profiles"] += len(rows)

    def aliases(self, value: Any, path: str, account_id: int, service_id: int, optimizely_id: int) -> None:
        if value is None:
            return
        pairs = self.keyed_entries(value, path, "{optimizely user id: {table id: customer id}}",
                                   " (the Optimizely user id)")
        for user_id, data, _, where in pairs:
            if isinstance(user_id, int) and not isinstance(user_id, bool):
                user_id = str(user_id)
            if not isinstance(user_id, str):
                raise self.fail(where, f"the Optimizely user id must be a string, got {_kind(user_id)}")
            if not isinstance(data, dict):
                raise self.fail(where, f"expected a mapping of table ids to customer ids, got {_kind(data)}")
            self.call(where, self.store.profiles.write_alias, account_id, service_id, optimizely_id, user_id,
                      {str(k): v for k, v in data.items()})
            self.counts["aliases"] += len(data)

    def project(self, d: Any, path: str) -> None:
        d = self.mapping(d, path, _PROJECT_KEYS)
        account_id = self.owner(d, path)
        given = self.given(d, path)
        self.free_id("projects", given.get("id"), path, "Project")
        if d.get("code_revision") is not None:
            given["code_revision"] = self.int_id(d, "code_revision", path)
        fields = _api_fields(PROJECT, d)
        if fields.get("project_status") in _LEGACY_PROJECT_STATUSES:
            # Seeds and exports of versions before the vendor's vocabulary: read as a --db file is migrated.
            fields["project_status"] = _LEGACY_PROJECT_STATUSES[fields["project_status"]]
        project = self.call(path, self.store.management.create_project, account_id, fields, **given)
        self.computed_as_given(PROJECT, d, project, path)
        self.counts["projects"] += 1

    def computed_as_given(self, resource: Resource, d: dict, row: dict, path: str) -> None:
        """A seed may repeat a computed field (an export has s3_path ...), but only with the value it has."""
        for f in resource.fields:
            if f.computed is not None and d.get(f.name) is not None and d[f.name] != f.computed(row):
                raise self.fail(_key_path(path, f.name), f"is always {f.computed(row)!r} here (the emulator "
                                                         f"computes it); got {d[f.name]!r}")

    def oauth_app(self, d: Any, path: str) -> None:
        if not isinstance(d, dict):
            raise self.fail(path, f"expected a mapping, got {_kind(d)}")
        fields = {**d, "account_id": self.owner(d, path)}  # defaults like the other entities' account_id
        self.call(path, register_app, self.store, fields, fields["account_id"])
        self.counts["oauth_apps"] += 1


def _api_fields(resource: Resource, d: dict) -> dict:
    """The fields of a seed entry that a POST of the resource would take (the rest are given verbatim)."""
    return {k: v for k, v in d.items() if k in resource.by_name and resource.field(k).writable_on_create}


def apply_seed(store: Store, seed: Any, source: str = "<seed>", default_account_id: int | None = None) -> dict:
    """Apply one parsed seed atomically; returns counts of what was created. Raises SeedError."""
    if seed is None:
        seed = {}
    if not isinstance(seed, dict):
        raise SeedError(source, "", f"a seed must be a mapping with keys {', '.join(_TOP_KEYS)}, got {_kind(seed)}")
    _check_unicode(seed, source)
    applier = _Applier(store, source, default_account_id)
    with store.transaction(), store.profile_tables.profiles_view_deferred():
        applier.apply(seed)
    return applier.counts


def _check_unicode(seed: dict, source: str) -> None:
    """Refuse lone UTF-16 surrogates ("\\ud800" escapes in JSON or YAML): not text, and SQLite cannot store them."""
    try:
        json.dumps(seed, ensure_ascii=False).encode("utf-8")  # the fast check, in C
        return
    except UnicodeEncodeError:
        pass
    except (TypeError, ValueError, RecursionError):  # YAML dates and the like: the applier judges those
        return

    def walk(node: Any, path: str) -> str | None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            where = _key_path(path, key) if isinstance(node, dict) else f"{path}[{key}]"
            for text in (key, value):
                if isinstance(text, str):
                    try:
                        text.encode("utf-8")
                    except UnicodeEncodeError:
                        return where
            found = walk(value, where)
            if found:
                return found
        return None

    raise SeedError(source, walk(seed, "") or "", "contains a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape "
                    "without its pair); strings must be valid Unicode")


# ---------------------------------------------------------------------- export
def export_state(store: Store) -> dict:
    """The whole API state as a seed (ids, keys and timestamps included); seeding it reproduces the state."""
    with store.lock:
        q = store._all
        accounts = []
        for a in q("SELECT * FROM accounts ORDER BY id"):
            tokens = [TOKEN.export(TOKEN.render(t), omit=("account_id",))
                      for t in q("SELECT * FROM tokens WHERE account_id = ? ORDER BY rowid", (a["id"],))]
            accounts.append({**ACCOUNT.export(ACCOUNT.render(a, tokens=tokens)), "tokens": tokens})
        services = [_export_service(store, s) for s in q("SELECT * FROM dcp_services ORDER BY id")]
        projects = [PROJECT.export(PROJECT.render(p)) for p in q("SELECT * FROM projects ORDER BY id")]
    return {"accounts": accounts, "dcp_services": services, "projects": projects, "oauth_apps": list_apps(store)}


def _export_service(store: Store, s: dict) -> dict:
    out = SERVICE.export(SERVICE.render(s))
    out["datasources"] = [_export_datasource(store, d) for d in
                          store._all("SELECT * FROM datasources WHERE dcp_service_id = ? ORDER BY id", (s["id"],))]
    aliases: dict[str, dict[int, str]] = {}
    for r in store._all("SELECT optimizely_user_id, datasource_id, customer_id FROM aliases WHERE dcp_service_id = ? "
                        "ORDER BY optimizely_user_id, datasource_id", (s["id"],)):
        aliases.setdefault(r["optimizely_user_id"], {})[r["datasource_id"]] = r["customer_id"]
    if aliases:
        out["aliases"] = aliases
    return out


def _export_datasource(store: Store, d: dict) -> dict:
    # The built-in Optimizely table's editable fields are fixed (and its service provisions it).
    fixed = tuple(_OPTIMIZELY_FIXED) if d["is_optimizely"] else ()
    out = DATASOURCE.export(DATASOURCE.render(d, attributes=[]), omit=("dcp_service_id", *fixed))
    attrs = store._all("SELECT * FROM attributes WHERE dcp_datasource_id = ? ORDER BY id", (d["id"],))
    active = [a for a in attrs if not a["archived"]]
    profiles = store.profile_tables.stored_profiles(d["id"], active)
    # Values of archived attributes are invisible to the API but come back when the attribute is
    # unarchived, so they are exported too: under their attribute, since names are unique only among
    # active attributes.
    if attrs:
        out["attributes"] = [_export_attribute(a, _archived_values(store, d["id"], a) if a["archived"] else None)
                             for a in attrs]
    if profiles:
        out["profiles"] = profiles
    return out


def _archived_values(store: Store, datasource_id: int, attribute: dict) -> dict[str, Any]:
    """{customer id: value} stored for one archived attribute."""
    stored = store.profile_tables.stored_profiles(datasource_id, [attribute])
    return {cid: values[attribute["name"]] for cid, values in stored.items() if values}


def _export_attribute(a: dict, values: dict[str, Any] | None = None) -> dict:
    out = ATTRIBUTE.export(ATTRIBUTE.render(a), omit=("dcp_datasource_id",))
    if values:
        out["values"] = values
    return out


def dump_yaml(state: dict) -> str:
    """A seed mapping as YAML text (keys in API order, not sorted)."""
    return yaml.safe_dump(state, sort_keys=False, allow_unicode=True, default_flow_style=False, width=120)
