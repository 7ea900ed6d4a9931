"""Customer profiles, aliases and the consolidated customer view (the Profile API)."""

from __future__ import annotations

from typing import Any

from .. import datatypes
from ..errors import Archived, InvalidField, NotFound
from ..resources import ALIAS, PROFILE
from .db import Backend, Database, operation, read_operation
from .management import Management
from .profile_tables import ProfileTables, from_column, profile_table, value_column

MAX_CUSTOMER_ID_LENGTH = 1024  # the same bound for the profile API, seeds and bulk uploads


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


class Profiles(Backend):
    """Profile reads and writes, aliases, the consolidated view and the dashboard's profile listing."""

    def __init__(self, database: Database, tables: ProfileTables, management: Management):
        super().__init__(database)
        self.tables = tables
        self.management = management

    def _profile_target(self, account_id: int, service_id: int, datasource_id: int, write: bool) -> dict:
        ds = self.management._service_datasource(account_id, service_id, datasource_id)
        if write:
            self.management._check_writable_datasource(ds)
        return ds

    @staticmethod
    def _profile_out(service_id: int, datasource_id: int, customer_id: str, data: dict) -> dict:
        return PROFILE.render({"dcp_service_id": service_id, "datasource_id": datasource_id,
                               "customer_id": customer_id, "data": data})

    @operation
    def write_profile(self, account_id: int, service_id: int, datasource_id: int, customer_id: str,
                      data: Any) -> dict:
        """POST customer_profile/...: validate every value, then merge them into the profile at once.

        Checks, validation and the write share one transaction: a reset, an archive or a new attribute
        landing in between must not leave the write half-checked (it used to 500, or leave a stray row).
        """
        self._profile_target(account_id, service_id, datasource_id, write=True)
        if not isinstance(data, dict):
            raise InvalidField("data must be an object mapping attribute names to values, e.g. "
                               '{"data": {"ltv": 12.5}}.', field="data")
        _check_customer_id(customer_id)
        attributes = self.tables._layout(datasource_id).attributes
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
                                 self.tables._merge_profile(datasource_id, customer_id, patch))

    def _unknown_attribute_message(self, datasource_id: int, key: str, names: list[str]) -> str:
        archived = self.database._one("SELECT id FROM attributes WHERE dcp_datasource_id = ? AND name = ? AND "
                                      "archived = 1", (datasource_id, key))
        if archived:
            return f"Attribute {key!r} of table {datasource_id} is archived; archived attributes cannot be written."
        close = [n for n in names if n.lower() == key.lower()]
        hint = f" Did you mean {close[0]!r}? Names are case-sensitive." if close else ""
        listing = ", ".join(repr(n) for n in names) or "none registered yet"
        return (f"{key!r} is not a registered attribute of table {datasource_id} (registered: {listing}).{hint} "
                "Register it with POST dcp_datasources/{id}/dcp_datasource_attributes first.")

    @read_operation
    def read_profile(self, account_id: int, service_id: int, datasource_id: int, customer_id: str) -> dict:
        """GET customer_profile/...: the stored values, typed, archived attributes left out."""
        self._profile_target(account_id, service_id, datasource_id, write=False)
        data = self.tables._stored_profile(datasource_id, customer_id)
        if data is None:
            raise NotFound(f"No profile for customer {customer_id!r} in table {datasource_id}.")
        return self._profile_out(service_id, datasource_id, customer_id, data)

    @operation
    def delete_profile(self, account_id: int, service_id: int, datasource_id: int, customer_id: str) -> None:
        """DELETE customer_profile/...: remove the profile. Aliases to it stay (the vendor's alias API has no
        delete) and resolve to no data: the consolidated view leaves the profile out."""
        self._profile_target(account_id, service_id, datasource_id, write=True)
        _check_customer_id(customer_id)
        deleted = 0
        if self.tables._layout(datasource_id).columns:  # no profile table yet: no profile either
            deleted = self.database.db.execute(f"DELETE FROM {profile_table(datasource_id)} WHERE customer_id = ?",
                                               (customer_id,)).rowcount
        if not deleted:
            raise NotFound(f"No profile for customer {customer_id!r} in table {datasource_id}.")

    # ------------------------------------------------------------------ aliases
    def _optimizely_table(self, account_id: int, service_id: int, datasource_id: int) -> dict:
        ds = self.management._service_datasource(account_id, service_id, datasource_id)
        if not ds["is_optimizely"]:
            opt = self.database._one("SELECT id FROM datasources WHERE dcp_service_id = ? AND is_optimizely = 1",
                                     (service_id,))
            raise InvalidField(f"Table {datasource_id} is not the Optimizely table of DCP service {service_id}; "
                               f"aliases are keyed by Optimizely user id, use table {opt['id'] if opt else '?'}.",
                               field="datasource_id")
        return ds

    @operation
    def write_alias(self, account_id: int, service_id: int, optimizely_table_id: int, user_id: str,
                    data: Any) -> dict:
        """POST alias/...: link customer ids of other tables to an Optimizely user id."""
        ds = self._optimizely_table(account_id, service_id, optimizely_table_id)
        self.management._check_writable_datasource(ds)
        _check_customer_id(user_id)
        if not isinstance(data, dict):
            raise InvalidField('data must be an object mapping table ids to customer ids, e.g. {"data": {"678": '
                               '"cust-1"}}.', field="data")
        tables = {str(r["id"]): r for r in self.database._all("SELECT id, is_optimizely, archived FROM datasources "
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
        db = self.database.db.conn
        for table_id, customer_id in changes:
            if customer_id is None:
                db.execute("DELETE FROM aliases WHERE dcp_service_id = ? AND optimizely_user_id = ? AND "
                           "datasource_id = ?", (service_id, user_id, table_id))
            else:
                db.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?)",
                           (service_id, user_id, table_id, customer_id))
        return self._alias_out(service_id, optimizely_table_id, user_id)

    @read_operation
    def read_alias(self, account_id: int, service_id: int, optimizely_table_id: int, user_id: str) -> dict:
        """GET alias/...: the user's aliases; an unknown user is 404."""
        self._optimizely_table(account_id, service_id, optimizely_table_id)
        out = self._alias_out(service_id, optimizely_table_id, user_id)
        if not out["data"]:
            raise NotFound(f"No aliases for Optimizely user {user_id!r} in DCP service {service_id}.")
        return out

    def _alias_out(self, service_id: int, optimizely_table_id: int, user_id: str) -> dict:
        rows = self.database._all("SELECT datasource_id, customer_id FROM aliases WHERE dcp_service_id = ? AND "
                                  "optimizely_user_id = ? ORDER BY datasource_id", (service_id, user_id))
        return ALIAS.render({"dcp_service_id": service_id, "datasource_id": optimizely_table_id,
                             "customer_id": user_id, "data": {str(r["datasource_id"]): r["customer_id"] for r in rows}})

    @read_operation
    def consolidated_view(self, account_id: int, service_id: int, user_id: str,
                          optimizely_table_id: int | None = None) -> list[dict]:
        """GET consolidatedCustomerView/...: the Optimizely profile plus every aliased profile with data.

        One query finds the service, its Optimizely table and the user's aliases; then one point read per
        table (layouts are cached), all under the lock so the view is one consistent state.
        """
        if optimizely_table_id is not None:
            self._optimizely_table(account_id, service_id, optimizely_table_id)
        rows = self.database._all(
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
            data = self.tables._stored_profile(table_id, customer_id)
            if data is None:
                continue
            profile = self._profile_out(service_id, table_id, customer_id, data)
            if is_own or profile["data"]:
                view.append(profile)
        return view

    # ------------------------------------------------------------------ dashboard reads (/_emulator/ui)
    @read_operation
    def list_profiles(self, account_id: int, service_id: int, datasource_id: int, prefix: str = "",
                      after: str | None = None, before: str | None = None, limit: int = 50) -> dict:
        """One page of a table's profiles in customer id order, customer ids starting with ``prefix``.

        Keyset pagination on the primary key (``after``/``before`` a customer id), so a page costs the
        same on a table of a million profiles as on ten. Returns {"profiles": [...], "more": bool}.
        """
        self._profile_target(account_id, service_id, datasource_id, write=False)
        attributes = self.tables.active_attributes(datasource_id)
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
        if not self.tables._table_columns(table):
            return {"profiles": [], "more": False}
        cur = self.database.db.execute(sql, (*params, limit + 1))
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
