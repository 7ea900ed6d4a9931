"""Profile storage: one "wide" table per table (datasource), ``profiles_{table id}``.

One row per customer, one column ``a{attribute id}`` per attribute (archived ones too, hidden when read),
holding the validator's typed value (bools as 1/0) or NULL when unset. An attribute-level merge is then one
upsert that sets only the given columns -- atomic under concurrent writers, and about as cheap as a plain
insert, which the bulk ingest needs (a JSON merge patch per row cost more than the whole csv + executemany
floor). ``profiles`` is a read-only view over all of them with the former shape
``(datasource_id, customer_id, data JSON)``, for inspecting a database file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
from collections.abc import Iterable, Iterator
from typing import Any

from .db import Backend, Database, operation, read_operation

_MAX_UNION = 400  # SQLite allows 500 terms in one compound SELECT


# Table and column names are built from integer ids only (no client text in SQL).
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


@dataclasses.dataclass(frozen=True)
class _Layout:
    """What the profile hot paths need to know about one table's storage, cached until an attribute or the
    profile table changes (so a read or a write costs its own SQL only)."""

    columns: frozenset[str]  # the profile table's columns; empty when it does not exist (yet)
    attributes: list[dict]  # the active attribute rows, in id order
    kinds: dict[str, str]  # every attribute id (archived ones too) -> its datatype
    visible: list[tuple[str, str]]  # (name, datatype) of the active attributes that have a column, id order
    select: str  # "customer_id, a1, a2, ..." : those columns, as SELECTed or RETURNed

    def to_data(self, row: tuple) -> dict:
        """A profile row fetched with ``select`` as the API's data ({name: typed value}, unset left out)."""
        return {name: from_column(datatype, value)
                for (name, datatype), value in zip(self.visible, row[1:]) if value is not None}


class ProfileTables(Backend):
    """The wide profile tables, their cached layouts and the ``profiles`` view."""

    def __init__(self, database: Database):
        super().__init__(database)
        self._view_deferred = self._view_stale = False
        self._pending_tables: set[int] = set()
        self._layouts: dict[int, _Layout] = {}  # per table id; see _layout()
        database.add_cache(self._layouts.clear)
        database.on_clear(self._drop_all)
        with database.transaction():
            self._migrate_json_profiles()
            if not database._one("SELECT name FROM sqlite_master WHERE name = 'profiles'"):
                self._rebuild_profiles_view()

    def _profile_tables(self) -> list[str]:
        return [r[0] for r in self.database.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'profiles_[0-9]*' ORDER BY name")]

    def _table_columns(self, table: str) -> set[str]:
        return {r[1] for r in self.database.db.execute(f"PRAGMA table_info({table})")}

    def _drop_all(self) -> None:
        for table in self._profile_tables():
            self.database.db.execute(f"DROP TABLE {table}")
        self._layouts.clear()
        self._rebuild_profiles_view()

    def _forget(self, datasource_id: int) -> None:
        """Drop one table's cached layout (its attributes change in the calling transaction)."""
        self._layouts.pop(datasource_id, None)

    @operation
    def sync_profile_table(self, datasource_id: int) -> None:
        """Make the table's profile table exist with a column for every attribute (archived ones included)."""
        self._sync_profile_table(datasource_id)

    def _sync_profile_table(self, datasource_id: int, now: bool = False) -> None:
        if self._view_deferred and not now:  # a seed: one CREATE TABLE with every column, at its end
            self._pending_tables.add(datasource_id)
            return
        db = self.database.db
        table = profile_table(datasource_id)
        columns = self._table_columns(table)
        attrs = db.execute("SELECT id, datatype, format FROM attributes WHERE dcp_datasource_id = ? ORDER BY id",
                           (datasource_id,)).fetchall()
        wanted = [(value_column(aid), column_decl(datatype, fmt)) for aid, datatype, fmt in attrs]
        if columns and all(name in columns for name, _ in wanted):
            return
        self._layouts.pop(datasource_id, None)
        if not columns:
            decls = "".join(f", {name} {decl}" for name, decl in wanted)
            db.execute(f"CREATE TABLE {table} (customer_id TEXT PRIMARY KEY NOT NULL{decls}) WITHOUT ROWID")
        else:
            for name, decl in wanted:
                if name not in columns:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
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
        db = self.database.db
        columns: dict[int, list[str]] = {}  # per table: the json_object arguments of each attribute
        for aid, did, datatype in db.execute(
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
        db.execute("DROP VIEW IF EXISTS profiles")
        db.execute(f"CREATE VIEW profiles AS {body}")

    @contextlib.contextmanager
    def profiles_view_deferred(self) -> Iterator[None]:
        """Within one transaction (a seed creating many tables and attributes), create or extend each
        profile table when profiles are first written to it or at the end, and rebuild the ``profiles``
        view once at the end, rather than after every new table or attribute (schema changes are slow)."""
        with self.database.transaction():
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

    def _migrate_json_profiles(self) -> None:
        """A database file written by an older version keeps its profiles as JSON in a ``profiles`` table:
        move them into the wide tables (once, at start-up)."""
        db = self.database.db
        if not self.database._one("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'profiles'"):
            return
        db.execute("ALTER TABLE profiles RENAME TO profiles_json_old")
        kinds = {str(r[0]): (r[1], r[2]) for r in db.execute("SELECT id, dcp_datasource_id, datatype "
                                                             "FROM attributes")}
        for (did,) in db.execute("SELECT id FROM datasources").fetchall():
            self._sync_profile_table(did)
        for did, customer_id, data in db.execute(
                "SELECT datasource_id, customer_id, data FROM profiles_json_old").fetchall():
            patch = {k: v for k, v in json.loads(data).items() if k in kinds and kinds[k][0] == did}
            self._upsert_profiles(did, [(customer_id, patch)], {k: kinds[k][1] for k in patch})
        db.execute("DROP TABLE profiles_json_old")
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
            self.database.db.conn.executemany(
                f"INSERT INTO {table} (customer_id{''.join(', ' + c for c in cols)}) VALUES ({marks}) "
                f"ON CONFLICT (customer_id) {action}", rows)

    @operation
    def upsert_profiles(self, datasource_id: int, patches: list[tuple[str, dict]]) -> None:
        """Merge validated patches (see ``profiles.profile_patch``) into a table's profiles, in one transaction."""
        layout = self._writable_layout(datasource_id, {k for _, patch in patches for k in patch})
        self._upsert_profiles(datasource_id, patches, layout.kinds)

    def _layout(self, datasource_id: int) -> _Layout:
        """The table's cached layout (call with the lock held). Every change of its attributes or of its
        profile table clears the cache in the transaction making it, and a rollback clears it again."""
        layout = self._layouts.get(datasource_id)
        if layout is None:
            columns = frozenset(self._table_columns(profile_table(datasource_id)))
            rows = self.database._all("SELECT * FROM attributes WHERE dcp_datasource_id = ? ORDER BY id",
                                      (datasource_id,))
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

    @read_operation
    def active_attributes(self, datasource_id: int) -> list[dict]:
        """The table's non-archived attribute rows, in id order (for writes, reads and templates)."""
        return [dict(a) for a in self._layout(datasource_id).attributes]

    def _stored_profile(self, datasource_id: int, customer_id: str) -> dict | None:
        """The visible stored values ({name: typed value}) of one profile, or None when there is none
        (call with the lock held)."""
        layout = self._layout(datasource_id)
        if not layout.columns:
            return None
        row = self.database.db.conn.execute(f"SELECT {layout.select} FROM {profile_table(datasource_id)} "
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
        row = self.database.db.conn.execute(
            f"INSERT INTO {profile_table(datasource_id)} (customer_id, {', '.join(cols)}) "
            f"VALUES (?{', ?' * len(cols)}) ON CONFLICT (customer_id) DO UPDATE SET "
            f"{', '.join(f'{c} = excluded.{c}' for c in cols)} RETURNING {layout.select}",
            (customer_id, *(to_column(layout.kinds[k], v) for k, v in patch.items()))).fetchone()
        return layout.to_data(row)

    @read_operation
    def stored_profiles(self, datasource_id: int, attributes: list[dict]) -> dict[str, dict]:
        """Every profile of a table, {customer id: {name: typed value}} in customer id order (seed export)."""
        table = profile_table(datasource_id)
        if not self._table_columns(table):
            return {}
        cur = self.database.db.execute(f"SELECT * FROM {table} ORDER BY customer_id")
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
