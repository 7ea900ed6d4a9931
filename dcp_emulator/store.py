"""The emulator's state: one SQLite database (sqlite-utils), with methods named after API operations.

The store never imports Flask. Every method takes the calling account's id, checks ownership
(another account's resource is ``NotFound``, never a leak), validates field values and raises the
domain errors of ``errors.py``. Every write runs in one transaction under the store's lock.

Profiles are stored in one "wide" table per table (datasource), ``profiles_{table id}``: one row per
customer, one column ``a{attribute id}`` per attribute (archived ones too, hidden when read), holding
the validator's typed value (bools as 1/0) or NULL when unset. An attribute-level merge is then one
upsert that sets only the given columns -- atomic under concurrent writers, and about as cheap as a
plain insert, which the bulk ingest needs (a JSON merge patch per row cost more than the whole csv +
executemany floor). ``profiles`` is a read-only view over all of them with the former shape
``(datasource_id, customer_id, data JSON)``, for inspecting a database file.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import itertools
import json
import os
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import sqlite_utils

from . import datatypes
from .clock import Clock
from .errors import Archived, InvalidField, LimitExceeded, NotFound
from .resources import ATTRIBUTE, DATASOURCE, EDITABLE, PROJECT, PROJECT_SCRIPT_FIELDS, SERVICE
from .tempfiles import owned_prefix

TOKEN_KINDS = ("classic", "personal", "oauth")
FIRST_ID = 100  # generated ids start here so they look like real ones and never collide across types

# Columns of the classic project resource that older database files lack (added at start-up).
_PROJECT_ADDED_COLUMNS = {
    "code_revision": "INTEGER NOT NULL DEFAULT 1", "include_jquery": "INTEGER NOT NULL DEFAULT 0",
    "project_javascript": "TEXT", "enable_force_variation": "INTEGER NOT NULL DEFAULT 0",
    "exclude_disabled_experiments": "INTEGER NOT NULL DEFAULT 0", "exclude_names": "INTEGER NOT NULL DEFAULT 0",
    "ip_anonymization": "INTEGER NOT NULL DEFAULT 0", "ip_filter": "TEXT NOT NULL DEFAULT ''",
}

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, kind TEXT NOT NULL, account_id INTEGER NOT NULL REFERENCES accounts(id),
    expires_at TEXT, revoked INTEGER NOT NULL DEFAULT 0, refresh_token TEXT, client_id TEXT);
CREATE TABLE IF NOT EXISTS dcp_services (
    id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL REFERENCES accounts(id), name TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0, aws_access_key TEXT NOT NULL UNIQUE, aws_secret_key TEXT NOT NULL,
    created TEXT NOT NULL, last_modified TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasources (
    id INTEGER PRIMARY KEY, dcp_service_id INTEGER NOT NULL REFERENCES dcp_services(id),
    name TEXT NOT NULL, description TEXT, is_optimizely INTEGER NOT NULL DEFAULT 0,
    keyfield_locator_type TEXT NOT NULL, keyfield_locator_name TEXT,
    archived INTEGER NOT NULL DEFAULT 0, aws_access_key TEXT NOT NULL UNIQUE, aws_secret_key TEXT NOT NULL,
    created TEXT NOT NULL, last_modified TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS datasources_service ON datasources(dcp_service_id);
CREATE TABLE IF NOT EXISTS attributes (
    id INTEGER PRIMARY KEY, dcp_datasource_id INTEGER NOT NULL REFERENCES datasources(id),
    name TEXT NOT NULL, datatype TEXT NOT NULL, format TEXT, description TEXT,
    is_value_public INTEGER NOT NULL DEFAULT 0, archived INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL, last_modified TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS attributes_datasource ON attributes(dcp_datasource_id);
CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL REFERENCES accounts(id), project_name TEXT NOT NULL,
    project_status TEXT NOT NULL, dcp_service_id INTEGER, created TEXT NOT NULL, last_modified TEXT NOT NULL,
    {", ".join(f"{name} {decl}" for name, decl in _PROJECT_ADDED_COLUMNS.items())});
CREATE TABLE IF NOT EXISTS aliases (
    dcp_service_id INTEGER NOT NULL, optimizely_user_id TEXT NOT NULL, datasource_id INTEGER NOT NULL,
    customer_id TEXT NOT NULL, PRIMARY KEY (dcp_service_id, optimizely_user_id, datasource_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sequence (name TEXT PRIMARY KEY, next_id INTEGER NOT NULL);
-- Bulk uploads through S3, in completion order (AUTOINCREMENT: ids are never reused, even
-- across resets, so a stale spool file can never be mistaken for a newer upload's).
CREATE TABLE IF NOT EXISTS uploads (
    id INTEGER PRIMARY KEY AUTOINCREMENT, account_id INTEGER NOT NULL, dcp_service_id INTEGER NOT NULL,
    datasource_id INTEGER NOT NULL, key TEXT NOT NULL, file_name TEXT NOT NULL, size_bytes INTEGER NOT NULL,
    status TEXT NOT NULL, rows_total INTEGER NOT NULL DEFAULT 0, rows_stored INTEGER NOT NULL DEFAULT 0,
    rows_rejected INTEGER NOT NULL DEFAULT 0, errors TEXT NOT NULL DEFAULT '[]',
    warnings TEXT NOT NULL DEFAULT '[]', failure TEXT, received_at TEXT NOT NULL, started_at TEXT,
    finished_at TEXT, spool TEXT, records_done INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS uploads_unfinished ON uploads(status, id);
-- OAuth 2.0 (dcp_emulator/oauth.py): registered applications, consent requests awaiting the user's
-- decision, authorization codes. Access tokens are rows of tokens (kind oauth, client_id, refresh_token).
CREATE TABLE IF NOT EXISTS oauth_apps (
    client_id TEXT PRIMARY KEY, client_secret TEXT, name TEXT NOT NULL, redirect_uris TEXT NOT NULL,
    client_type TEXT NOT NULL, account_id INTEGER NOT NULL REFERENCES accounts(id));
CREATE TABLE IF NOT EXISTS oauth_requests (
    id TEXT PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT NOT NULL, response_type TEXT NOT NULL,
    state TEXT, created TEXT NOT NULL, expires_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS oauth_codes (
    code TEXT PRIMARY KEY, client_id TEXT NOT NULL, account_id INTEGER NOT NULL, redirect_uri TEXT NOT NULL,
    expires_at TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0, refresh_token TEXT);
CREATE INDEX IF NOT EXISTS tokens_refresh ON tokens(refresh_token);
"""

# Profile storage: table and column names are built from integer ids only (no client text in SQL).
def profile_table(datasource_id: int) -> str:
    """The wide table holding one table's (datasource's) profiles."""
    return f"profiles_{int(datasource_id)}"


def value_column(attribute_id: int | str) -> str:
    """The column of ``profile_table`` holding one attribute's values."""
    return f"a{int(attribute_id)}"


def column_decl(datatype: str, fmt: str | None) -> str:
    """The SQLite column type of an attribute: INTEGER for long, epoch and bool (1/0); TEXT for strings and
    dates; no affinity for double, so an integral double stays an integer exactly as the validator typed it."""
    if datatype in ("long", "bool") or (datatype == "datetime" and fmt == "epoch"):
        return "INTEGER"
    return "BLOB" if datatype == "double" else "TEXT"


def to_column(datatype: str, value: Any) -> Any:
    """A typed value (what ``datatypes.convert`` returns, or None) as stored in its column."""
    if datatype == "bool" and value is not None:
        return int(value)
    return value


def from_column(datatype: str, value: Any) -> Any:
    """A stored column value back as the typed value the API returns."""
    if datatype == "bool" and value is not None:
        return bool(value)
    return value


_MAX_UNION = 400  # SQLite allows 500 terms in one compound SELECT
_STATEMENT_CACHE = 1024  # prepared statements kept per connection (sqlite3's default of 128 is ~6 per table)
MAX_CUSTOMER_ID_LENGTH = 1024  # the same bound for the profile API, seeds and bulk uploads
MAX_ATTRIBUTES_PER_TABLE = 1999  # a profile table has customer_id plus one column per attribute; SQLite allows 2000

# Tables emptied by a reset, children first.
STATE_TABLES = ("uploads", "aliases", "projects", "attributes", "datasources", "dcp_services", "oauth_codes",
                "oauth_requests", "oauth_apps", "tokens", "accounts", "sequence")


def now() -> str:
    """The real current UTC time in the API's timestamp format; a store's own ``Store.now()`` follows its clock."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def aws_key_pair(kind: str, entity_id: int, salt: str = "") -> tuple[str, str]:
    """A deterministic AWS-looking key pair for an entity, so seeded and exported state is stable."""
    digest = hashlib.sha256(f"dcp-emulator:{salt}:{kind}:{entity_id}".encode()).digest()
    access = "AKIA" + base64.b32encode(digest[:10]).decode()[:16]
    secret = base64.b64encode(hashlib.sha256(digest).digest()).decode()[:40].replace("/", "x").replace("+", "y")
    return access, secret


@dataclasses.dataclass(frozen=True)
class _Layout:
    """What the profile hot paths need to know about one table's storage, cached by the store until an
    attribute or the profile table changes (so a read or a write costs its own SQL only)."""

    columns: frozenset[str]  # the profile table's columns; empty when it does not exist (yet)
    attributes: list[dict]  # the active attribute rows, in id order
    kinds: dict[str, str]  # every attribute id (archived ones too) -> its datatype
    visible: list[tuple[str, str]]  # (name, datatype) of the active attributes that have a column, id order
    select: str  # "customer_id, a1, a2, ..." : those columns, as SELECTed or RETURNed

    def to_data(self, row: tuple) -> dict:
        """A profile row fetched with ``select`` as the API's data ({name: typed value}, unset left out)."""
        return {name: from_column(datatype, value)
                for (name, datatype), value in zip(self.visible, row[1:]) if value is not None}


class Snapshot:
    """A copy of a store's whole database, restorable with ``Store.restore``; ``close()`` frees it.

    On disk, the copy is a temporary file that is unlinked as soon as it is written (where the OS
    allows): the open connection keeps it readable, and nothing is left behind even after SIGKILL.
    """

    def __init__(self, store: Store, on_disk: bool = False):
        self.path: str | None = None
        self.on_disk = on_disk
        if on_disk:
            fd, self.path = tempfile.mkstemp(prefix=owned_prefix("snapshot"), suffix=".db")
            os.close(fd)
        self.conn = sqlite3.connect(self.path or ":memory:", check_same_thread=False)
        with store.lock:
            store.db.conn.backup(self.conn)
            self.size = store.size_bytes()
        if self.path:
            # A copy of a WAL database is in WAL mode, which needs -wal/-shm files beside it: an unlinked
            # file could not be read back. The copy is only ever read, so rollback mode loses nothing.
            self.conn.execute("PRAGMA journal_mode=DELETE")
            with contextlib.suppress(OSError):  # not on Windows (an open file): close() removes it then
                os.unlink(self.path)
                self.path = None

    def close(self) -> None:
        """Release the copy (and delete its temporary file)."""
        self.conn.close()
        if self.path:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.path = None


class Store:
    """All emulator state, behind API-shaped methods."""

    def __init__(self, path: str | None = None, max_services_per_account: int = 1,
                 upload_history_size: int | None = None, clock: Clock | None = None):
        self.path = path
        self.clock = clock or Clock()  # the emulator's one clock (tests move it); real time by default
        self.max_services_per_account = max_services_per_account
        self.upload_history_size = upload_history_size  # finished uploads kept (None: all)
        self.lock = threading.RLock()
        self._view_deferred = self._view_stale = False
        self._pending_tables: set[int] = set()
        self._layouts: dict[int, _Layout] = {}  # per table id; see _layout()
        if path:
            conn = sqlite3.connect(path, check_same_thread=False, timeout=30, cached_statements=_STATEMENT_CACHE)
        else:
            # A private in-memory database per store: several emulators can live in one process.
            conn = sqlite3.connect(f"file:dcp-{uuid.uuid4().hex}?mode=memory", uri=True, check_same_thread=False,
                                   cached_statements=_STATEMENT_CACHE)
        self.db = sqlite_utils.Database(conn, execute_plugins=False)  # no entry-point scan per store
        if path:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        with self.lock:
            self.db.executescript(SCHEMA)
            with self.db.atomic():
                self._migrate_projects()
                self._migrate_json_profiles()
                if not self._one("SELECT name FROM sqlite_master WHERE name = 'profiles'"):
                    self._rebuild_profiles_view()

    # ------------------------------------------------------------------ plumbing
    def now(self) -> str:
        """The emulator's current time (its clock, which tests can move) in the API's timestamp format."""
        return self.clock.timestamp()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """Hold the store lock and run the block as one transaction (rolled back on any error)."""
        with self.lock:
            try:
                with self.db.atomic():
                    yield self.db
            except BaseException:
                self._layouts.clear()  # layouts cached inside the rolled-back block may describe undone changes
                raise

    def _one(self, sql: str, params: tuple = ()) -> dict | None:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _all(self, sql: str, params: tuple = ()) -> list[dict]:
        # An id outside SQLite's 64-bit range (a client can put any digits in a URL or JSON body)
        # cannot match a row; answering "no rows" lets callers raise their usual NotFound/InvalidField.
        if any(_is_int(p) and not _SQLITE_MIN <= p <= _SQLITE_MAX for p in params):
            return []
        with self.lock:
            # Plain sqlite3: sqlite-utils' query() wraps every read in a SAVEPOINT, 2-3x the cost of the read.
            cur = self.db.conn.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur]

    def next_id(self, given: Any = None) -> int:
        """A new entity id (one sequence for all types), or the given one, reserving it."""
        row = self._one("SELECT next_id FROM sequence WHERE name = 'entity'")
        nxt = row["next_id"] if row else FIRST_ID
        new = nxt if given is None else int(given)
        self.db.execute(
            "INSERT INTO sequence (name, next_id) VALUES ('entity', ?) "
            "ON CONFLICT(name) DO UPDATE SET next_id = excluded.next_id",
            (max(nxt, new + 1),),
        )
        return new

    def ping(self) -> None:
        """Raise if the database cannot be read and written (a real readiness probe)."""
        with self.lock:
            self.db.execute("SELECT count(*) FROM accounts").fetchone()
            with self.db.atomic():
                self.db.execute("INSERT INTO sequence (name, next_id) VALUES ('_ping', 0) "
                                "ON CONFLICT(name) DO UPDATE SET next_id = next_id + 1")

    def clear(self) -> None:
        """Delete every row of API state and every profile table."""
        with self.transaction() as db:
            for table in self._profile_tables():
                db.execute(f"DROP TABLE {table}")
            for table in STATE_TABLES:
                db.execute(f"DELETE FROM {table}")
            self._layouts.clear()
            self._rebuild_profiles_view()

    # ------------------------------------------------------------------ profile storage
    def _profile_tables(self) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'profiles_[0-9]*' ORDER BY name")]

    def _table_columns(self, table: str) -> set[str]:
        return {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}

    def sync_profile_table(self, datasource_id: int) -> None:
        """Make the table's profile table exist with a column for every attribute (archived ones included)."""
        with self.transaction():
            self._sync_profile_table(datasource_id)

    def _sync_profile_table(self, datasource_id: int, now: bool = False) -> None:
        if self._view_deferred and not now:  # a seed: one CREATE TABLE with every column, at its end
            self._pending_tables.add(datasource_id)
            return
        table = profile_table(datasource_id)
        columns = self._table_columns(table)
        attrs = self.db.execute("SELECT id, datatype, format FROM attributes WHERE dcp_datasource_id = ? ORDER BY id",
                                (datasource_id,)).fetchall()
        wanted = [(value_column(aid), column_decl(datatype, fmt)) for aid, datatype, fmt in attrs]
        if columns and all(name in columns for name, _ in wanted):
            return
        self._layouts.pop(datasource_id, None)
        if not columns:
            decls = "".join(f", {name} {decl}" for name, decl in wanted)
            self.db.execute(f"CREATE TABLE {table} (customer_id TEXT PRIMARY KEY NOT NULL{decls}) WITHOUT ROWID")
        else:
            for name, decl in wanted:
                if name not in columns:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
        self._rebuild_profiles_view()

    def _rebuild_profiles_view(self) -> None:
        """The read-only ``profiles`` view (datasource_id, customer_id, data JSON keyed by attribute id).

        Each profile table has a column for every attribute of its table (``_sync_profile_table``), so
        the view is built from the attributes table. Inside ``profiles_view_deferred`` it is rebuilt once
        at the end instead.
        """
        if self._view_deferred:
            self._view_stale = True
            return
        columns: dict[int, list[str]] = {}  # per table: the json_object arguments of each attribute
        for aid, did, datatype in self.db.execute(
                "SELECT id, dcp_datasource_id, datatype FROM attributes ORDER BY dcp_datasource_id, id"):
            name = value_column(aid)
            value = f"json(CASE {name} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END)" if datatype == "bool" else name
            columns.setdefault(did, []).append(f"'{int(aid)}', {value}")
        selects = []
        for table in self._profile_tables():
            did = int(table.split("_", 1)[1])
            pairs = columns.get(did, [])
            # json_object takes at most 127 arguments: objects of 60 attributes each, merged by json_patch.
            # The first is patched into '{}' (which drops its unset, NULL values; a NULL in a later patch
            # deletes a key the others never have). Merged as a balanced tree: a chain of 34 nested
            # calls for 1,999 attributes overflows SQLite's parser stack.
            parts = [f"json_object({', '.join(pairs[i:i + 60])})" for i in range(0, len(pairs), 60)]
            parts[:1] = [f"json_patch('{{}}', {parts[0]})"] if parts else ["'{}'"]
            while len(parts) > 1:
                parts = [f"json_patch({a}, {b})" if b else a
                         for a, b in itertools.zip_longest(parts[::2], parts[1::2])]
            data = parts[0]
            selects.append(f"SELECT {did} AS datasource_id, customer_id, {data} AS data FROM {table}")
        if not selects:
            selects = ["SELECT NULL AS datasource_id, NULL AS customer_id, NULL AS data WHERE 0"]
        groups = [" UNION ALL ".join(selects[i:i + _MAX_UNION]) for i in range(0, len(selects), _MAX_UNION)]
        body = groups[0] if len(groups) == 1 else " UNION ALL ".join(f"SELECT * FROM ({g})" for g in groups)
        self.db.execute("DROP VIEW IF EXISTS profiles")
        self.db.execute(f"CREATE VIEW profiles AS {body}")

    @contextlib.contextmanager
    def profiles_view_deferred(self) -> Iterator[None]:
        """Within one transaction (a seed creating many tables and attributes), create or extend each
        profile table when profiles are first written to it or at the end, and rebuild the ``profiles``
        view once at the end, rather than after every new table or attribute (schema changes are slow)."""
        with self.transaction():
            outer = self._view_deferred
            self._view_deferred = True
            try:
                yield
            except BaseException:
                if not outer:  # rolled back: nothing left to create or rebuild
                    self._view_stale = False
                    self._pending_tables.clear()
                raise
            finally:
                self._view_deferred = outer
            if not outer:
                pending, self._pending_tables = self._pending_tables, set()
                for datasource_id in sorted(pending):
                    self._sync_profile_table(datasource_id)
                if self._view_stale:
                    self._view_stale = False
                    self._rebuild_profiles_view()

    def _migrate_projects(self) -> None:
        """A database file written by an older version has projects without the classic project's fields
        and with a lower-case status vocabulary (active, paused, archived): bring them to the vendor's."""
        columns = self._table_columns("projects")
        for name, decl in _PROJECT_ADDED_COLUMNS.items():
            if name not in columns:
                self.db.execute(f"ALTER TABLE projects ADD COLUMN {name} {decl}")
        self.db.execute("UPDATE projects SET project_status = CASE WHEN lower(project_status) = 'archived' "
                        "THEN 'Archived' ELSE 'Active' END WHERE project_status NOT IN ('Active', 'Archived')")

    def _migrate_json_profiles(self) -> None:
        """A database file written by an older version keeps its profiles as JSON in a ``profiles`` table:
        move them into the wide tables (once, at start-up)."""
        if not self._one("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'profiles'"):
            return
        self.db.execute("ALTER TABLE profiles RENAME TO profiles_json_old")
        kinds = {str(r[0]): (r[1], r[2]) for r in self.db.execute("SELECT id, dcp_datasource_id, datatype "
                                                                      "FROM attributes")}
        for (did,) in self.db.execute("SELECT id FROM datasources").fetchall():
            self._sync_profile_table(did)
        for did, customer_id, data in self.db.execute(
                "SELECT datasource_id, customer_id, data FROM profiles_json_old").fetchall():
            patch = {k: v for k, v in json.loads(data).items() if k in kinds and kinds[k][0] == did}
            self._upsert_profiles(did, [(customer_id, patch)], {k: kinds[k][1] for k in patch})
        self.db.execute("DROP TABLE profiles_json_old")
        self._rebuild_profiles_view()

    def _upsert_profiles(self, datasource_id: int, patches: list[tuple[str, dict]], kinds: dict[str, str]) -> None:
        """Merge stored patches ({attribute id: typed value}, None clears) into profiles; ``kinds`` maps each
        attribute id to its datatype. Given attributes overwrite, others stay. Patches with the same keys
        share one executemany."""
        table = profile_table(datasource_id)
        groups: dict[tuple[str, ...], list[tuple]] = {}
        for customer_id, patch in patches:
            keys = tuple(patch)
            groups.setdefault(keys, []).append(
                (customer_id, *(to_column(kinds[k], patch[k]) for k in keys)))
        for keys, rows in groups.items():
            cols = [value_column(k) for k in keys]
            marks = ", ".join("?" * (len(cols) + 1))
            action = ("DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in cols)) if cols else "DO NOTHING"
            self.db.conn.executemany(
                f"INSERT INTO {table} (customer_id{''.join(', ' + c for c in cols)}) VALUES ({marks}) "
                f"ON CONFLICT (customer_id) {action}", rows)

    def upsert_profiles(self, datasource_id: int, patches: list[tuple[str, dict]]) -> None:
        """Merge validated patches (see ``profile_patch``) into a table's profiles, in one transaction."""
        with self.transaction():
            layout = self._writable_layout(datasource_id, {k for _, patch in patches for k in patch})
            self._upsert_profiles(datasource_id, patches, layout.kinds)

    def _layout(self, datasource_id: int) -> _Layout:
        """The table's cached layout (call with the lock held). Every change of its attributes or of its
        profile table clears the cache in the transaction making it, and a rollback clears it again."""
        layout = self._layouts.get(datasource_id)
        if layout is None:
            columns = frozenset(self._table_columns(profile_table(datasource_id)))
            rows = self._all("SELECT * FROM attributes WHERE dcp_datasource_id = ? ORDER BY id", (datasource_id,))
            active = [r for r in rows if not r["archived"]]
            shown = [a for a in active if value_column(a["id"]) in columns]
            layout = _Layout(columns=columns, attributes=active, kinds={str(r["id"]): r["datatype"] for r in rows},
                             visible=[(a["name"], a["datatype"]) for a in shown],
                             select=", ".join(["customer_id"] + [value_column(a["id"]) for a in shown]))
            self._layouts[datasource_id] = layout
        return layout

    def _writable_layout(self, datasource_id: int, attribute_ids: Iterable[str]) -> _Layout:
        """The layout once the profile table has a column for each given attribute (a seed defers them)."""
        layout = self._layout(datasource_id)
        if not layout.columns or any(value_column(k) not in layout.columns for k in attribute_ids):
            self._sync_profile_table(datasource_id, now=True)
            layout = self._layout(datasource_id)
        return layout

    def _stored_profile(self, datasource_id: int, customer_id: str) -> dict | None:
        """The visible stored values ({name: typed value}) of one profile, or None when there is none."""
        with self.lock:
            layout = self._layout(datasource_id)
            if not layout.columns:
                return None
            row = self.db.conn.execute(f"SELECT {layout.select} FROM {profile_table(datasource_id)} "
                                       "WHERE customer_id = ?", (customer_id,)).fetchone()
        return None if row is None else layout.to_data(row)

    def _merge_profile(self, datasource_id: int, customer_id: str, patch: dict) -> dict:
        """Merge one validated patch into a profile and return its visible values as merged, in the same
        statement (``RETURNING``): nothing else can write between the two, so there is nothing to read back."""
        layout = self._writable_layout(datasource_id, patch)
        if not patch:
            self._upsert_profiles(datasource_id, [(customer_id, patch)], layout.kinds)
            return self._stored_profile(datasource_id, customer_id) or {}
        cols = [value_column(k) for k in patch]
        row = self.db.conn.execute(
            f"INSERT INTO {profile_table(datasource_id)} (customer_id, {', '.join(cols)}) "
            f"VALUES (?{', ?' * len(cols)}) ON CONFLICT (customer_id) DO UPDATE SET "
            f"{', '.join(f'{c} = excluded.{c}' for c in cols)} RETURNING {layout.select}",
            (customer_id, *(to_column(layout.kinds[k], v) for k, v in patch.items()))).fetchone()
        return layout.to_data(row)

    def stored_profiles(self, datasource_id: int, attributes: list[dict]) -> dict[str, dict]:
        """Every profile of a table, {customer id: {name: typed value}} in customer id order (seed export)."""
        table = profile_table(datasource_id)
        with self.lock:
            if not self._table_columns(table):
                return {}
            cur = self.db.execute(f"SELECT * FROM {table} ORDER BY customer_id")
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        index = {n: i for i, n in enumerate(names)}
        wanted = [(a["name"], a["datatype"], index.get(value_column(a["id"]))) for a in attributes]
        out = {}
        cid = index["customer_id"]
        for row in rows:
            out[row[cid]] = {name: from_column(datatype, row[i]) for name, datatype, i in wanted
                           if i is not None and row[i] is not None}
        return out

    def snapshot(self, on_disk: bool | None = None) -> Snapshot:
        """A copy of the whole database (SQLite's online backup: about 1 ms per 10k profiles).

        By default in memory for an in-memory store; in a temporary file for a --db store, whose state
        may be far larger than the memory we want to hold for it.
        """
        return Snapshot(self, on_disk=bool(self.path) if on_disk is None else on_disk)

    def size_bytes(self) -> int:
        """The database's size (pages in use times page size): what a snapshot of it costs."""
        with self.lock:
            pages = self.db.execute("PRAGMA page_count").fetchone()[0]
            return pages * self.db.execute("PRAGMA page_size").fetchone()[0]

    def restore(self, snapshot: Snapshot) -> None:
        """Make the database exactly the snapshot again (every table, schema included), in one step."""
        with self.lock:
            if self.db.conn.in_transaction:  # an implicit transaction left open would block the backup
                self.db.conn.commit()
            snapshot.conn.backup(self.db.conn)
            self._layouts.clear()

    def close(self) -> None:
        """Close the database connection."""
        with self.lock:
            self.db.close()

    # ------------------------------------------------------------------ accounts and tokens
    def create_account(self, account_id: int | None = None, name: str = "Emulated account") -> dict:
        """Create an account (used by seeds and the default state)."""
        with self.transaction() as db:
            aid = self.next_id(account_id)
            db["accounts"].insert({"id": aid, "name": name})
        return {"id": aid, "name": name}

    def create_token(self, token: str, kind: str, account_id: int, expires_at: str | None = None,
                     refresh_token: str | None = None, client_id: str | None = None) -> dict:
        """Register an API token of kind classic, personal or oauth for an account."""
        row = {"token": token, "kind": kind, "account_id": account_id, "expires_at": expires_at,
               "revoked": 0, "refresh_token": refresh_token, "client_id": client_id}
        with self.transaction() as db:
            db["tokens"].insert(row, replace=True)
        return row

    def find_account_ids(self) -> list[int]:
        """Every account id, in id order."""
        return [r["id"] for r in self._all("SELECT id FROM accounts ORDER BY id")]

    def first_tokens(self, account_id: int) -> dict[str, str | None]:
        """The first token of each kind of an account ({"classic": ..., "personal": ..., "oauth": ...})."""
        rows = self._all("SELECT kind, token FROM tokens WHERE account_id = ? AND revoked = 0 ORDER BY rowid",
                         (account_id,))
        out: dict[str, str | None] = {kind: None for kind in TOKEN_KINDS}
        for r in rows:
            if out.get(r["kind"]) is None:
                out[r["kind"]] = r["token"]
        return out

    def find_token(self, token: str) -> dict | None:
        """The token's row, or None when it is unknown."""
        return self._one("SELECT * FROM tokens WHERE token = ?", (token,))

    def revoke_token(self, token: str) -> None:
        """Mark a token revoked (it is then refused with 403)."""
        with self.transaction() as db:
            db.execute("UPDATE tokens SET revoked = 1 WHERE token = ?", (token,))

    # ------------------------------------------------------------------ DCP services
    def _service_row(self, account_id: int, service_id: int) -> dict:
        row = self._one("SELECT * FROM dcp_services WHERE id = ? AND account_id = ?", (service_id, account_id))
        if row is None:
            raise NotFound(f"No DCP service with id {service_id} in this account.")
        return row

    def list_services(self, account_id: int) -> list[dict]:
        """GET dcp_services: every service of the account."""
        rows = self._all("SELECT * FROM dcp_services WHERE account_id = ? ORDER BY id", (account_id,))
        return [SERVICE.render(r) for r in rows]

    def get_service(self, account_id: int, service_id: int) -> dict:
        """GET dcp_services/{id}."""
        return SERVICE.render(self._service_row(account_id, service_id))

    def create_service(self, account_id: int, fields: dict, *, enforce_limit: bool = True, **given: Any) -> dict:
        """POST dcp_services: create a service and its built-in Optimizely table.

        ``given`` may carry id, aws keys and timestamps (seeds keep them verbatim).
        """
        values = SERVICE.parse_create(fields)
        with self.transaction() as db:
            if enforce_limit:
                self._check_service_limit(db, account_id)
            sid = self.next_id(given.get("id"))
            access, secret = aws_key_pair("service", sid)
            ts = given.get("created") or self.now()
            db["dcp_services"].insert({
                "id": sid, "account_id": account_id, "name": values["name"],
                "archived": int(bool(given.get("archived"))),
                "aws_access_key": given.get("aws_access_key") or access,
                "aws_secret_key": given.get("aws_secret_key") or secret,
                "created": ts, "last_modified": given.get("last_modified") or ts,
            })
            if given.get("with_optimizely_table", True):
                self._insert_datasource(db, sid, OPTIMIZELY_TABLE, is_optimizely=True,
                                        given=given.get("optimizely_table") or {})
            return self.get_service(account_id, sid)

    def update_service(self, account_id: int, service_id: int, fields: dict) -> dict:
        """PUT dcp_services/{id}: rename; ``archived`` false unarchives (with the tables archived with it)."""
        with self.transaction() as db:  # read, checked and written in one state: a racing DELETE cannot be undone
            row = self._service_row(account_id, service_id)
            changes = SERVICE.parse_update(fields, SERVICE.render(row))
            archived = changes.get("archived", bool(row["archived"]))
            if row["archived"] and archived:
                raise Archived(f"DCP service {service_id} is archived; archived services can be read but not "
                               'changed (PUT {"archived": false} unarchives it).')
            name = changes.get("name", row["name"])
            if not row["archived"] and archived:  # a rename sent with the archive is applied, as for tables
                db.execute("UPDATE dcp_services SET name = ? WHERE id = ?", (name, service_id))
                self.delete_service(account_id, service_id)
                return self.get_service(account_id, service_id)
            ts = self.now()
            if row["archived"]:
                self._check_service_limit(db, account_id)
                # DELETE stamped the service and the tables it archived with one timestamp: restore those,
                # not tables that had been archived on their own before.
                db.execute("UPDATE datasources SET archived = 0, last_modified = ? WHERE dcp_service_id = ? AND "
                           "archived = 1 AND last_modified = ?", (ts, service_id, row["last_modified"]))
            db.execute("UPDATE dcp_services SET name = ?, archived = 0, last_modified = ? WHERE id = ?",
                       (name, ts, service_id))
            return self.get_service(account_id, service_id)

    def _check_service_limit(self, db: sqlite_utils.Database, account_id: int) -> None:
        active = db.execute("SELECT count(*) FROM dcp_services WHERE account_id = ? AND archived = 0",
                            (account_id,)).fetchone()[0]
        if active >= self.max_services_per_account:
            raise LimitExceeded(
                f"This account already has {active} active DCP service(s); an account may have at most "
                f"{self.max_services_per_account}. Add tables to the existing service instead "
                "(GET /experiment/v1/dcp_services lists it), or archive it first (DELETE dcp_services/{id}).")

    def delete_service(self, account_id: int, service_id: int) -> None:
        """DELETE dcp_services/{id}: archive the service and all its tables."""
        with self.transaction() as db:
            self._service_row(account_id, service_id)
            ts = self.now()
            db.execute("UPDATE dcp_services SET archived = 1, last_modified = ? WHERE id = ? AND archived = 0",
                       (ts, service_id))
            db.execute("UPDATE datasources SET archived = 1, last_modified = ? WHERE dcp_service_id = ? "
                       "AND archived = 0", (ts, service_id))

    # ------------------------------------------------------------------ tables (datasources)
    def _datasource_row(self, account_id: int, datasource_id: int, service_id: int | None = None) -> dict:
        row = self._one(
            "SELECT d.*, s.archived AS service_archived FROM datasources d JOIN dcp_services s "
            "ON s.id = d.dcp_service_id WHERE d.id = ? AND s.account_id = ?", (datasource_id, account_id))
        if row is None or (service_id is not None and row["dcp_service_id"] != service_id):
            where = f" in DCP service {service_id}" if service_id is not None else " in this account"
            raise NotFound(f"No table (datasource) with id {datasource_id}{where}.")
        return row

    def _datasource_out(self, row: dict) -> dict:
        attrs = self._all("SELECT * FROM attributes WHERE dcp_datasource_id = ? ORDER BY id", (row["id"],))
        return DATASOURCE.render(row, attributes=[ATTRIBUTE.render(a) for a in attrs])

    def _insert_datasource(self, db: sqlite_utils.Database, service_id: int, values: dict, *,
                           is_optimizely: bool = False, given: dict | None = None) -> int:
        given = given or {}
        did = self.next_id(given.get("id"))
        access, secret = aws_key_pair("datasource", did)
        ts = given.get("created") or self.now()
        db["datasources"].insert({
            **values, "id": did, "dcp_service_id": service_id, "is_optimizely": int(is_optimizely),
            "archived": int(bool(given.get("archived"))),
            "aws_access_key": given.get("aws_access_key") or access,
            "aws_secret_key": given.get("aws_secret_key") or secret,
            "created": ts, "last_modified": given.get("last_modified") or ts,
        })
        self._sync_profile_table(did)
        return did

    def list_datasources(self, account_id: int, service_id: int) -> list[dict]:
        """GET dcp_services/{id}/dcp_datasources."""
        with self.lock:
            self._service_row(account_id, service_id)
            rows = self._all("SELECT * FROM datasources WHERE dcp_service_id = ? ORDER BY id", (service_id,))
            return [self._datasource_out(r) for r in rows]

    def get_datasource(self, account_id: int, datasource_id: int) -> dict:
        """GET dcp_datasources/{id}."""
        with self.lock:
            return self._datasource_out(self._datasource_row(account_id, datasource_id))

    def create_datasource(self, account_id: int, service_id: int, fields: dict, **given: Any) -> dict:
        """POST dcp_services/{id}/dcp_datasources: create a table with its own AWS key pair."""
        with self.transaction() as db:
            service = self._service_row(account_id, service_id)
            values = DATASOURCE.parse_create(fields)
            if service["archived"]:
                raise Archived(f"DCP service {service_id} is archived; no tables can be added to it.")
            _check_locator(values)
            did = self._insert_datasource(db, service_id, values, given=given)
            return self.get_datasource(account_id, did)

    def update_datasource(self, account_id: int, datasource_id: int, fields: dict) -> dict:
        """PUT dcp_datasources/{id}: edit name, description and the customer id locator; ``archived`` false
        unarchives."""
        with self.transaction() as db:
            row = self._datasource_row(account_id, datasource_id)
            changes = DATASOURCE.parse_update(fields, self._datasource_out(row))
            archived = changes.pop("archived", bool(row["archived"]))
            if row.get("service_archived"):
                raise Archived(f"DCP service {row['dcp_service_id']} is archived; its tables can be read but not "
                               'written (PUT {"archived": false} on the service unarchives it).')
            if row["archived"] and archived:
                raise Archived(f"Table {datasource_id} is archived; archived tables can be read but not written "
                               '(PUT {"archived": false} unarchives it).')
            if row["is_optimizely"] and (changes or archived != bool(row["archived"])):
                raise InvalidField("The built-in Optimizely table cannot be edited.",
                                   field=next(iter(changes), "archived"))
            values = {**{k: row[k] for k in _DATASOURCE_EDITABLE}, **changes}
            _check_locator(values)
            db["datasources"].update(datasource_id, {**values, "archived": int(archived),
                                                     "last_modified": self.now()})
            return self.get_datasource(account_id, datasource_id)

    def delete_datasource(self, account_id: int, datasource_id: int) -> None:
        """DELETE dcp_datasources/{id}: archive the table."""
        with self.transaction() as db:
            row = self._datasource_row(account_id, datasource_id)
            if row["is_optimizely"]:
                raise InvalidField("The built-in Optimizely table cannot be deleted; delete the DCP service "
                                   "instead.", field="id")
            db.execute("UPDATE datasources SET archived = 1, last_modified = ? WHERE id = ? AND archived = 0",
                       (self.now(), datasource_id))

    def _check_writable_datasource(self, row: dict) -> None:
        if row.get("service_archived"):
            raise Archived(f"DCP service {row['dcp_service_id']} is archived; its tables can be read but not "
                           "written.")
        if row["archived"]:
            raise Archived(f"Table {row['id']} is archived; archived tables can be read but not written.")

    # ------------------------------------------------------------------ attributes
    def _attribute_row(self, account_id: int, attribute_id: int) -> dict:
        row = self._one(
            "SELECT a.* FROM attributes a JOIN datasources d ON d.id = a.dcp_datasource_id "
            "JOIN dcp_services s ON s.id = d.dcp_service_id WHERE a.id = ? AND s.account_id = ?",
            (attribute_id, account_id))
        if row is None:
            raise NotFound(f"No attribute with id {attribute_id} in this account.")
        return row

    def list_attributes(self, account_id: int, datasource_id: int) -> list[dict]:
        """GET dcp_datasources/{id}/dcp_datasource_attributes."""
        with self.lock:
            self._datasource_row(account_id, datasource_id)
            rows = self._all("SELECT * FROM attributes WHERE dcp_datasource_id = ? ORDER BY id", (datasource_id,))
            return [ATTRIBUTE.render(r) for r in rows]

    def get_attribute(self, account_id: int, attribute_id: int) -> dict:
        """GET dcp_datasource_attributes/{id}."""
        return ATTRIBUTE.render(self._attribute_row(account_id, attribute_id))

    def create_attribute(self, account_id: int, datasource_id: int, fields: dict, **given: Any) -> dict:
        """POST dcp_datasources/{id}/dcp_datasource_attributes: register an attribute."""
        with self.transaction() as db:
            ds = self._datasource_row(account_id, datasource_id)
            values = ATTRIBUTE.parse_create(fields)
            self._check_writable_datasource(ds)
            name, datatype, fmt = values["name"], values["datatype"], values["format"]
            if name.lower() == "customerid":
                raise InvalidField("'customerId' is reserved: it is the key column of bulk uploads. Choose another "
                                   "attribute name.", field="name")
            if any(c in name for c in ",\t\r\n\""):
                raise InvalidField("Attribute names cannot contain commas, tabs, quotes or line breaks: they are "
                                   "column headers of bulk uploads.", field="name")
            problem = datatypes.check_definition(datatype, fmt)
            if problem:
                raise InvalidField(f"{problem} (got datatype={datatype!r}, format={fmt!r}).", field="format")
            archived = bool(given.get("archived"))
            count = db.execute("SELECT count(*) FROM attributes WHERE dcp_datasource_id = ?", (datasource_id,)).fetchone()[0]
            if count >= MAX_ATTRIBUTES_PER_TABLE:
                raise LimitExceeded(f"Table {datasource_id} already has {count} attributes (archived ones included); "
                                    f"the emulator stores at most {MAX_ATTRIBUTES_PER_TABLE} per table.")
            if not archived:
                clash = db.execute("SELECT id FROM attributes WHERE dcp_datasource_id = ? AND name = ? AND archived = 0",
                                   (datasource_id, name)).fetchone()
                if clash:
                    raise InvalidField(f"Table {datasource_id} already has an attribute named {name!r} (id {clash[0]}); "
                                       "names are case-sensitive and unique within a table.", field="name")
            aid = self.next_id(given.get("id"))
            ts = given.get("created") or self.now()
            db["attributes"].insert({
                **values, "id": aid, "dcp_datasource_id": datasource_id, "is_value_public": int(values["is_value_public"]),
                "archived": int(archived), "created": ts, "last_modified": given.get("last_modified") or ts,
            })
            self._layouts.pop(datasource_id, None)
            self._sync_profile_table(datasource_id)
            return self.get_attribute(account_id, aid)

    def update_attribute(self, account_id: int, attribute_id: int, fields: dict) -> dict:
        """PUT dcp_datasource_attributes/{id}: edit description/is_value_public, or unarchive."""
        with self.transaction() as db:
            row = self._attribute_row(account_id, attribute_id)
            changes = ATTRIBUTE.parse_update(fields, ATTRIBUTE.render(row))
            self._check_writable_datasource(self._datasource_row(account_id, row["dcp_datasource_id"]))
            archived = changes.pop("archived", bool(row["archived"]))
            if row["archived"] and archived and changes:
                raise Archived(f"Attribute {attribute_id} is archived; archived attributes can be read but not "
                               'changed (PUT {"archived": false} unarchives it, and may carry the edit).')
            if row["archived"] and not archived:
                clash = self._one("SELECT id FROM attributes WHERE dcp_datasource_id = ? AND name = ? AND "
                                  "archived = 0 AND id != ?", (row["dcp_datasource_id"], row["name"], attribute_id))
                if clash:
                    raise InvalidField(f"Cannot unarchive: attribute {clash['id']} of this table is already named "
                                       f"{row['name']!r}.", field="archived")
            if "is_value_public" in changes:
                changes["is_value_public"] = int(changes["is_value_public"])
            db["attributes"].update(attribute_id, {**changes, "archived": int(archived), "last_modified": self.now()})
            self._layouts.pop(row["dcp_datasource_id"], None)
            return self.get_attribute(account_id, attribute_id)

    def delete_attribute(self, account_id: int, attribute_id: int) -> None:
        """DELETE dcp_datasource_attributes/{id}: archive the attribute (its table must be writable)."""
        with self.transaction() as db:
            row = self._attribute_row(account_id, attribute_id)
            self._check_writable_datasource(self._datasource_row(account_id, row["dcp_datasource_id"]))
            db.execute("UPDATE attributes SET archived = 1, last_modified = ? WHERE id = ? AND archived = 0",
                       (self.now(), attribute_id))
            self._layouts.pop(row["dcp_datasource_id"], None)

    def active_attributes(self, datasource_id: int) -> list[dict]:
        """The table's non-archived attribute rows, in id order (for writes, reads and templates)."""
        with self.lock:
            return [dict(a) for a in self._layout(datasource_id).attributes]

    # ------------------------------------------------------------------ projects
    def _project_row(self, account_id: int, project_id: int) -> dict:
        row = self._one("SELECT * FROM projects WHERE id = ? AND account_id = ?", (project_id, account_id))
        if row is None:
            raise NotFound(f"No project with id {project_id} in this account.")
        return row

    def list_projects(self, account_id: int) -> list[dict]:
        """GET projects."""
        return [PROJECT.render(r) for r in
                self._all("SELECT * FROM projects WHERE account_id = ? ORDER BY id", (account_id,))]

    def get_project(self, account_id: int, project_id: int) -> dict:
        """GET projects/{id}."""
        return PROJECT.render(self._project_row(account_id, project_id))

    def create_project(self, account_id: int, fields: dict, **given: Any) -> dict:
        """POST projects: every editable field of the classic project, defaults for those not given."""
        with self.transaction() as db:
            values = PROJECT.parse_create(fields)
            self._check_project_service(account_id, values["dcp_service_id"])
            pid = self.next_id(given.get("id"))
            ts = given.get("created") or self.now()
            db["projects"].insert({**_project_columns(values), "id": pid, "account_id": account_id,
                                   "code_revision": given.get("code_revision") or 1, "created": ts,
                                   "last_modified": given.get("last_modified") or ts})
            return self.get_project(account_id, pid)

    def update_project(self, account_id: int, project_id: int, fields: dict) -> dict:
        """PUT projects/{id}: change editable fields (a change to the project's script bumps code_revision),
        or link/unlink a DCP service."""
        with self.transaction() as db:
            row = self._project_row(account_id, project_id)
            changes = PROJECT.parse_update(fields, PROJECT.render(row))
            if "dcp_service_id" in changes:
                self._check_project_service(account_id, changes["dcp_service_id"])
            bump = any(k in PROJECT_SCRIPT_FIELDS for k in changes)
            db["projects"].update(project_id, {**_project_columns(changes), "last_modified": self.now(),
                                               "code_revision": row["code_revision"] + bump})
            return self.get_project(account_id, project_id)

    def _check_project_service(self, account_id: int, service_id: int | None) -> None:
        if service_id is None:
            return
        row = self._one("SELECT * FROM dcp_services WHERE id = ? AND account_id = ?", (service_id, account_id))
        if row is None:
            raise InvalidField(f"dcp_service_id {service_id} is not a DCP service of this account "
                               "(GET /experiment/v1/dcp_services lists yours).", field="dcp_service_id")
        if row["archived"]:
            raise Archived(f"DCP service {service_id} is archived and cannot be linked to a project.",
                           field="dcp_service_id")

    # ------------------------------------------------------------------ profiles
    def _profile_target(self, account_id: int, service_id: int, datasource_id: int, write: bool) -> dict:
        ds = self._service_datasource(account_id, service_id, datasource_id)
        if write:
            self._check_writable_datasource(ds)
        return ds

    def _service_datasource(self, account_id: int, service_id: int, datasource_id: int) -> dict:
        """The table's row (with ``service_archived``) in one query, or the NotFound of the service or the table."""
        in_range = _is_int(datasource_id) and _SQLITE_MIN <= datasource_id <= _SQLITE_MAX
        row = self._one("SELECT s.archived AS service_archived, d.* FROM dcp_services s LEFT JOIN datasources d "
                        "ON d.id = ? AND d.dcp_service_id = s.id WHERE s.id = ? AND s.account_id = ?",
                        (datasource_id if in_range else None, service_id, account_id))
        if row is None:
            raise NotFound(f"No DCP service with id {service_id} in this account.")
        if row["id"] is None:
            raise NotFound(f"No table (datasource) with id {datasource_id} in DCP service {service_id}.")
        return row

    @staticmethod
    def _profile_out(service_id: int, datasource_id: int, customer_id: str, data: dict) -> dict:
        return {"data": data, "dcpServiceId": str(service_id), "datasourceId": str(datasource_id),
                "customerId": customer_id}

    def write_profile(self, account_id: int, service_id: int, datasource_id: int, customer_id: str,
                      data: Any) -> dict:
        """POST customer_profile/...: validate every value, then merge them into the profile at once.

        Checks, validation and the write share one transaction: a reset, an archive or a new attribute
        landing in between must not leave the write half-checked (it used to 500, or leave a stray row).
        """
        with self.transaction():
            self._profile_target(account_id, service_id, datasource_id, write=True)
            if not isinstance(data, dict):
                raise InvalidField("data must be an object mapping attribute names to values, e.g. "
                                   '{"data": {"ltv": 12.5}}.', field="data")
            _check_customer_id(customer_id)
            attributes = self._layout(datasource_id).attributes
            try:
                patch = profile_patch(attributes, data)
            except PatchError as e:
                if e.attribute is None:
                    names = [a["name"] for a in attributes]
                    raise InvalidField(self._unknown_attribute_message(datasource_id, e.key, names),
                                       field=e.key) from None
                raise InvalidField(f"Invalid value for attribute {e.key!r} ({_describe(e.attribute)}): "
                                   f"{e.reason}.", field=e.key) from None
            return self._profile_out(service_id, datasource_id, customer_id,
                                     self._merge_profile(datasource_id, customer_id, patch))

    def _unknown_attribute_message(self, datasource_id: int, key: str, names: list[str]) -> str:
        archived = self._one("SELECT id FROM attributes WHERE dcp_datasource_id = ? AND name = ? AND archived = 1",
                             (datasource_id, key))
        if archived:
            return f"Attribute {key!r} of table {datasource_id} is archived; archived attributes cannot be written."
        close = [n for n in names if n.lower() == key.lower()]
        hint = f" Did you mean {close[0]!r}? Names are case-sensitive." if close else ""
        listing = ", ".join(repr(n) for n in names) or "none registered yet"
        return (f"{key!r} is not a registered attribute of table {datasource_id} (registered: {listing}).{hint} "
                "Register it with POST dcp_datasources/{id}/dcp_datasource_attributes first.")

    def read_profile(self, account_id: int, service_id: int, datasource_id: int, customer_id: str) -> dict:
        """GET customer_profile/...: the stored values, typed, archived attributes left out."""
        with self.lock:  # the table checked and its profile read in one consistent state
            self._profile_target(account_id, service_id, datasource_id, write=False)
            data = self._stored_profile(datasource_id, customer_id)
        if data is None:
            raise NotFound(f"No profile for customer {customer_id!r} in table {datasource_id}.")
        return self._profile_out(service_id, datasource_id, customer_id, data)

    # ------------------------------------------------------------------ aliases
    def _optimizely_table(self, account_id: int, service_id: int, datasource_id: int) -> dict:
        ds = self._service_datasource(account_id, service_id, datasource_id)
        if not ds["is_optimizely"]:
            opt = self._one("SELECT id FROM datasources WHERE dcp_service_id = ? AND is_optimizely = 1", (service_id,))
            raise InvalidField(f"Table {datasource_id} is not the Optimizely table of DCP service {service_id}; "
                               f"aliases are keyed by Optimizely user id, use table {opt['id'] if opt else '?'}.",
                               field="datasource_id")
        return ds

    def write_alias(self, account_id: int, service_id: int, optimizely_table_id: int, user_id: str,
                    data: Any) -> dict:
        """POST alias/...: link customer ids of other tables to an Optimizely user id."""
        with self.transaction():  # checked, written and answered in one consistent state
            return self._write_alias(account_id, service_id, optimizely_table_id, user_id, data)

    def _write_alias(self, account_id: int, service_id: int, optimizely_table_id: int, user_id: str,
                     data: Any) -> dict:
        ds = self._optimizely_table(account_id, service_id, optimizely_table_id)
        self._check_writable_datasource(ds)
        _check_customer_id(user_id)
        if not isinstance(data, dict):
            raise InvalidField('data must be an object mapping table ids to customer ids, e.g. {"data": {"678": '
                               '"cust-1"}}.', field="data")
        tables = {str(r["id"]): r for r in self._all("SELECT id, is_optimizely, archived FROM datasources "
                                                      "WHERE dcp_service_id = ?", (service_id,))}
        changes: list[tuple[int, str | None]] = []
        for key, customer_id in data.items():
            table = tables.get(str(key))
            if table is None:
                raise InvalidField(f"{key!r} is not a table id of DCP service {service_id}.", field=str(key))
            if table["is_optimizely"]:
                raise InvalidField("An alias links another table to the Optimizely table; the Optimizely table "
                                   "itself cannot be a key.", field=str(key))
            if table["archived"]:
                raise Archived(f"Table {key} is archived; aliases to it cannot be written.", field=str(key))
            if customer_id is not None:
                if isinstance(customer_id, (int, float)) and not isinstance(customer_id, bool):
                    customer_id = str(customer_id)
                if not isinstance(customer_id, str) or not customer_id:
                    raise InvalidField(f"The customer id for table {key} must be a non-empty string (or null to "
                                       "remove the alias).", field=str(key))
            changes.append((table["id"], customer_id))
        db = self.db.conn  # inside write_alias's transaction
        for table_id, customer_id in changes:
            if customer_id is None:
                db.execute("DELETE FROM aliases WHERE dcp_service_id = ? AND optimizely_user_id = ? AND "
                           "datasource_id = ?", (service_id, user_id, table_id))
            else:
                db.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?)",
                           (service_id, user_id, table_id, customer_id))
        return self._alias_out(service_id, optimizely_table_id, user_id)

    def read_alias(self, account_id: int, service_id: int, optimizely_table_id: int, user_id: str) -> dict:
        """GET alias/...: the user's aliases; an unknown user is 404."""
        with self.lock:
            self._optimizely_table(account_id, service_id, optimizely_table_id)
            out = self._alias_out(service_id, optimizely_table_id, user_id)
        if not out["data"]:
            raise NotFound(f"No aliases for Optimizely user {user_id!r} in DCP service {service_id}.")
        return out

    def _alias_out(self, service_id: int, optimizely_table_id: int, user_id: str) -> dict:
        rows = self._all("SELECT datasource_id, customer_id FROM aliases WHERE dcp_service_id = ? AND "
                         "optimizely_user_id = ? ORDER BY datasource_id", (service_id, user_id))
        return {"dcpServiceId": str(service_id), "datasourceId": str(optimizely_table_id), "customerId": user_id,
                "data": {str(r["datasource_id"]): r["customer_id"] for r in rows}}

    def consolidated_view(self, account_id: int, service_id: int, user_id: str,
                          optimizely_table_id: int | None = None) -> list[dict]:
        """GET consolidatedCustomerView/...: the Optimizely profile plus every aliased profile with data.

        One query finds the service, its Optimizely table and the user's aliases; then one point read per
        table (layouts are cached), all under the lock so the view is one consistent state.
        """
        with self.lock:
            return self._consolidated_view(account_id, service_id, user_id, optimizely_table_id)

    def _consolidated_view(self, account_id: int, service_id: int, user_id: str,
                           optimizely_table_id: int | None) -> list[dict]:
        if optimizely_table_id is not None:
            self._optimizely_table(account_id, service_id, optimizely_table_id)
        rows = self._all(
            "SELECT (SELECT id FROM datasources WHERE dcp_service_id = s.id AND is_optimizely = 1) AS opt, "
            "a.datasource_id, a.customer_id FROM dcp_services s LEFT JOIN aliases a ON a.dcp_service_id = s.id "
            "AND a.optimizely_user_id = ? WHERE s.id = ? AND s.account_id = ? ORDER BY a.datasource_id",
            (user_id, service_id, account_id))
        if not rows:
            raise NotFound(f"No DCP service with id {service_id} in this account.")
        if optimizely_table_id is None:
            optimizely_table_id = rows[0]["opt"]
            if optimizely_table_id is None:  # only a hand-made database lacks it; no Optimizely table means no view
                return []
        targets = [(optimizely_table_id, user_id, True)]
        targets += [(r["datasource_id"], r["customer_id"], False) for r in rows if r["datasource_id"] is not None]
        view = []
        for table_id, customer_id, is_own in targets:
            data = self._stored_profile(table_id, customer_id)
            if data is None:
                continue
            profile = self._profile_out(service_id, table_id, customer_id, data)
            if is_own or profile["data"]:
                view.append(profile)
        return view

    # ------------------------------------------------------------------ S3 credentials
    def aws_credentials(self, entity_id: int) -> dict | None:
        """The AWS key pair of a table or DCP service by id (any account; ids are unique across types)."""
        row = self._one("SELECT id, dcp_service_id, aws_access_key, aws_secret_key FROM datasources WHERE id = ?",
                        (entity_id,))
        if row:
            return {"id": row["id"], "kind": "datasource", "aws_access_key": row["aws_access_key"],
                    "aws_secret_key": row["aws_secret_key"], "prefix": f"dcp/{row['dcp_service_id']}/{row['id']}/"}
        row = self._one("SELECT id, aws_access_key, aws_secret_key FROM dcp_services WHERE id = ?", (entity_id,))
        if row:
            return {"id": row["id"], "kind": "dcp_service", "aws_access_key": row["aws_access_key"],
                    "aws_secret_key": row["aws_secret_key"], "prefix": f"dcp/{row['id']}/"}
        return None

    def resolve_aws_key(self, access_key: str) -> dict | None:
        """Who an AWS access key belongs to: its secret and the S3 prefix it may write under."""
        row = self._one("SELECT d.id AS datasource_id, d.dcp_service_id, d.aws_secret_key, d.archived "
                        "FROM datasources d WHERE d.aws_access_key = ?", (access_key,))
        if row:
            return {"secret": row["aws_secret_key"], "service_id": row["dcp_service_id"],
                    "datasource_id": row["datasource_id"], "archived": bool(row["archived"]),
                    "prefix": f"dcp/{row['dcp_service_id']}/{row['datasource_id']}/"}
        row = self._one("SELECT id, aws_secret_key, archived FROM dcp_services WHERE aws_access_key = ?", (access_key,))
        if row:
            return {"secret": row["aws_secret_key"], "service_id": row["id"], "datasource_id": None,
                    "archived": bool(row["archived"]), "prefix": f"dcp/{row['id']}/"}
        return None


    # ------------------------------------------------------------------ bulk uploads
    def import_target(self, service_id: int, datasource_id: int) -> dict | None:
        """The table an S3 path dcp/{service_id}/{datasource_id}/ names, with both archived flags, or None."""
        return self._one(
            "SELECT d.id, d.dcp_service_id, d.archived, d.is_optimizely, s.account_id, "
            "s.archived AS service_archived FROM datasources d JOIN dcp_services s ON s.id = d.dcp_service_id "
            "WHERE d.id = ? AND d.dcp_service_id = ?", (datasource_id, service_id))

    def import_template(self, datasource_id: int) -> list[str]:
        """The header row of a table's template CSV: customerId, then every non-archived attribute name."""
        if self._one("SELECT id FROM datasources WHERE id = ?", (datasource_id,)) is None:
            raise NotFound(f"No table (datasource) with id {datasource_id}.")
        return ["customerId"] + [a["name"] for a in self.active_attributes(datasource_id)]

    def record_upload(self, account_id: int, service_id: int, datasource_id: int, key: str, size_bytes: int,
                      spool: str) -> dict:
        """A completed S3 object under a table path becomes a pending upload (queued in completion order)."""
        file_name = key.rsplit("/", 1)[-1]
        with self.transaction() as db:
            earlier = db.execute(
                "SELECT id FROM uploads WHERE datasource_id = ? AND file_name = ? AND status IN ('pending', "
                "'processing') ORDER BY id", (datasource_id, file_name)).fetchall()
            warnings = [
                f"An earlier upload of {file_name!r} to this table (id {row[0]}) had not been processed yet when "
                "this one arrived. The vendor warns that re-using a file name before the earlier file is "
                "processed can reorder updates; the emulator processes uploads in completion order."
                for row in earlier]
            cur = db.execute(
                "INSERT INTO uploads (account_id, dcp_service_id, datasource_id, key, file_name, size_bytes, status, "
                "warnings, received_at, spool) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                (account_id, service_id, datasource_id, key, file_name, size_bytes, json.dumps(warnings), self.now(),
                 spool))
            upload_id = cur.lastrowid
            if self.upload_history_size is not None:
                # Only finished uploads are dropped: an unfinished one still has work (and a spool file).
                db.execute("DELETE FROM uploads WHERE id <= ? - ? AND status NOT IN ('pending', 'processing')",
                           (upload_id, self.upload_history_size))
        return self.get_upload(upload_id)

    @staticmethod
    def _upload_out(row: dict) -> dict:
        return {
            "id": row["id"], "dcp_service_id": row["dcp_service_id"], "datasource_id": row["datasource_id"],
            "key": row["key"], "file_name": row["file_name"], "size_bytes": row["size_bytes"],
            "status": row["status"], "rows_total": row["rows_total"], "rows_stored": row["rows_stored"],
            "rows_rejected": row["rows_rejected"], "errors": json.loads(row["errors"]),
            "errors_total": row["rows_rejected"] + (1 if row["failure"] else 0),
            "failure": row["failure"], "warnings": json.loads(row["warnings"]),
            "received_at": row["received_at"], "started_at": row["started_at"], "finished_at": row["finished_at"],
        }

    def list_uploads(self, datasource_id: int | None = None, *, after: int = 0, limit: int = -1) -> list[dict]:
        """Upload History: the uploads (or one table's) with an id above ``after``, oldest first, at most
        ``limit`` of them (-1: all)."""
        if datasource_id is None:
            rows = self._all("SELECT * FROM uploads WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
        else:
            rows = self._all("SELECT * FROM uploads WHERE datasource_id = ? AND id > ? ORDER BY id LIMIT ?",
                             (datasource_id, after, limit))
        return [self._upload_out(r) for r in rows]

    def get_upload(self, upload_id: int) -> dict:
        """One upload of the Upload History."""
        row = self._one("SELECT * FROM uploads WHERE id = ?", (upload_id,))
        if row is None:
            raise NotFound(f"No upload with id {upload_id}.")
        return self._upload_out(row)

    def next_upload_to_process(self) -> dict | None:
        """The oldest unfinished upload's internal row (a 'processing' one is resumed after a restart)."""
        return self._one("SELECT * FROM uploads WHERE status IN ('pending', 'processing') ORDER BY id LIMIT 1")

    def count_unfinished_uploads(self) -> int:
        """How many uploads are pending or processing."""
        return self._one("SELECT count(*) AS n FROM uploads WHERE status IN ('pending', 'processing')")["n"]

    def start_upload(self, upload_id: int) -> bool:
        """Mark an upload processing (keeping the first start time on resume); False if it is gone."""
        with self.transaction() as db:
            cur = db.execute("UPDATE uploads SET status = 'processing', started_at = coalesce(started_at, ?) "
                             "WHERE id = ? AND status IN ('pending', 'processing')", (self.now(), upload_id))
            return cur.rowcount == 1

    def apply_upload_batch(self, upload_id: int, sql: str, rows: list, progress: dict) -> bool:
        """Run a bulk upsert (``sql`` over ``rows``, built by ingest.py with the merge semantics of
        ``upsert_profiles``) and record the upload's progress in the same transaction, so a crash never
        separates the two. False (nothing written) when the upload is no longer processing (reset)."""
        with self.transaction() as db:
            row = db.execute("SELECT status FROM uploads WHERE id = ?", (upload_id,)).fetchone()
            if row is None or row[0] != "processing":
                return False
            if rows:
                db.conn.executemany(sql, rows)
            db.execute("UPDATE uploads SET records_done = ?, rows_total = ?, rows_stored = ?, rows_rejected = ?, "
                       "errors = ? WHERE id = ?",
                       (progress["records_done"], progress["rows_total"], progress["rows_stored"],
                        progress["rows_rejected"], json.dumps(progress["errors"]), upload_id))
        return True

    def finish_upload(self, upload_id: int, status: str, failure: str | None = None,
                      errors: list[dict] | None = None) -> None:
        """Give an unfinished upload its final status (and, for a failure, the reason)."""
        with self.transaction() as db:
            sets, params = ["status = ?", "finished_at = ?", "failure = ?", "spool = NULL"], [status, self.now(), failure]
            if errors is not None:
                sets.append("errors = ?")
                params.append(json.dumps(errors))
            db.execute(f"UPDATE uploads SET {', '.join(sets)} WHERE id = ? AND status IN ('pending', 'processing')",
                       (*params, upload_id))


    # ------------------------------------------------------------------ dashboard reads (/_emulator/ui)
    def list_accounts(self) -> list[dict]:
        """Every account with its tokens (kind, expiry, revoked, expired), in id order."""
        current = now()
        tokens: dict[int, list[dict]] = {}
        for t in self._all("SELECT token, kind, account_id, expires_at, revoked, client_id FROM tokens ORDER BY rowid"):
            t["revoked"] = bool(t["revoked"])
            t["expired"] = bool(t["expires_at"] and t["expires_at"] <= current)  # the rule auth.py applies
            tokens.setdefault(t["account_id"], []).append(t)
        return [{**a, "tokens": tokens.get(a["id"], [])} for a in self._all("SELECT id, name FROM accounts ORDER BY id")]

    def owner_account(self, entity_id: int) -> int | None:
        """The account owning a DCP service or table (datasource) by id, or None."""
        row = self._one("SELECT account_id FROM dcp_services WHERE id = ? UNION ALL SELECT s.account_id FROM "
                        "datasources d JOIN dcp_services s ON s.id = d.dcp_service_id WHERE d.id = ?",
                        (entity_id, entity_id))
        return row["account_id"] if row else None

    def list_profiles(self, account_id: int, service_id: int, datasource_id: int, prefix: str = "",
                      after: str | None = None, before: str | None = None, limit: int = 50) -> dict:
        """One page of a table's profiles in customer id order, customer ids starting with ``prefix``.

        Keyset pagination on the primary key (``after``/``before`` a customer id), so a page costs the
        same on a table of a million profiles as on ten. Returns {"profiles": [...], "more": bool}.
        """
        self._profile_target(account_id, service_id, datasource_id, write=False)
        attributes = self.active_attributes(datasource_id)
        table = profile_table(datasource_id)
        where, params = [], []
        if prefix:
            where.append("customer_id >= ?")
            params.append(prefix)
            upper = _prefix_upper_bound(prefix)
            if upper is not None:
                where.append("customer_id < ?")
                params.append(upper)
        if after is not None:
            where.append("customer_id > ?")
            params.append(after)
        if before is not None:
            where.append("customer_id < ?")
            params.append(before)
        order = "DESC" if before is not None and after is None else "ASC"
        sql = (f"SELECT * FROM {table}{' WHERE ' + ' AND '.join(where) if where else ''} "
               f"ORDER BY customer_id {order} LIMIT ?")
        with self.lock:
            if not self._table_columns(table):
                return {"profiles": [], "more": False}
            cur = self.db.execute(sql, (*params, limit + 1))
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        if order == "DESC":
            rows.reverse()
        index = {n: i for i, n in enumerate(names)}
        wanted = [(a["name"], a["datatype"], index.get(value_column(a["id"]))) for a in attributes]
        profiles = [self._profile_out(service_id, datasource_id, row[index["customer_id"]], {
            name: from_column(datatype, row[i]) for name, datatype, i in wanted if i is not None and row[i] is not None})
            for row in rows]
        return {"profiles": profiles, "more": more}


# ---------------------------------------------------------------------- field helpers
# A table's editable fields, and the ones the built-in Optimizely table always has.
_DATASOURCE_EDITABLE = tuple(f.name for f in DATASOURCE.fields if f.access == EDITABLE)
OPTIMIZELY_TABLE = {"name": "Optimizely", "description": None, "keyfield_locator_type": "uid",
                    "keyfield_locator_name": None}


def _check_locator(values: dict) -> None:
    """A table's locator name is required unless the customer id is the Optimizely user id (uid)."""
    kind = values["keyfield_locator_type"]
    if values["keyfield_locator_name"] is None and kind != "uid":
        raise InvalidField(f"keyfield_locator_name is required when keyfield_locator_type is {kind!r}: the name "
                           "of the cookie, query parameter or JS variable holding the customer id.",
                           field="keyfield_locator_name")


def _project_columns(values: dict) -> dict:
    """A project's field values as stored (booleans as 1/0)."""
    return {k: int(v) if isinstance(v, bool) else v for k, v in values.items()}


class PatchError(ValueError):
    """One key of a profile write is refused: ``attribute`` is None for an unknown name, else ``reason`` says why."""

    def __init__(self, key: str, attribute: dict | None, reason: str):
        super().__init__(reason)
        self.key, self.attribute, self.reason = key, attribute, reason


def profile_patch(attributes: list[dict], data: dict) -> dict[str, Any]:
    """The stored patch ({attribute id: typed value}, None clears) of one profile write, validated key by key.

    Shared by the profile API and seeds, so both store exactly what the datatype validator returns.
    """
    by_name = {a["name"]: a for a in attributes}
    patch: dict[str, Any] = {}
    for key, value in data.items():
        attr = by_name.get(key)
        if attr is None:
            raise PatchError(key, None, "not a registered, non-archived attribute")
        try:
            patch[str(attr["id"])] = datatypes.convert(attr["datatype"], attr["format"], value)
        except datatypes.InvalidValue as e:
            raise PatchError(key, attr, e.reason) from None
    return patch


_SQLITE_MIN, _SQLITE_MAX = -(2**63), 2**63 - 1  # SQLite INTEGER range


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_customer_id(customer_id: str) -> None:
    if not customer_id or len(customer_id) > MAX_CUSTOMER_ID_LENGTH:
        raise InvalidField(f"The customer id in the URL must be 1 to {MAX_CUSTOMER_ID_LENGTH} characters.",
                           field="customerId")


def _describe(attr: dict) -> str:
    return f"datatype {attr['datatype']}" + (f", format {attr['format']}" if attr["format"] else "")


def _prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: there is none).

    SQLite compares TEXT as UTF-8 bytes, whose order is code point order, so bumping the last character
    that can be bumped gives an exact bound for a primary-key range scan.
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1 if not 0xD800 <= last + 1 <= 0xDFFF else 0xE000  # surrogates are not text
            return "".join(chars) + chr(nxt)
    return None
