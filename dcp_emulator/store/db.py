"""The store's database: one SQLite connection (sqlite-utils) behind one lock, its schema, transactions,
the clock, ids, snapshots -- and ``operation``, the decorator that makes each backend method one transaction.

Every backend (management, profiles, uploads, credentials) works on one ``Database`` and changes it only
inside its decorated public methods: a method runs from its first read to its last write under the lock
in one transaction, so nothing another thread does can land between a check and the write it guards.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import os
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlite_utils

from ..clock import Clock
from ..resources import PROJECT, PROJECT_SCRIPT_FIELDS
from ..tempfiles import owned_prefix

FIRST_ID = 100  # generated ids start here so they look like real ones and never collide across types
_STATEMENT_CACHE = 1024  # prepared statements kept per connection (sqlite3's default of 128 is ~6 per table)
_SQLITE_MIN, _SQLITE_MAX = -(2**63), 2**63 - 1  # SQLite INTEGER range

def _project_column(name: str) -> str:
    """The column declaration of a classic project field, from its description (booleans as 1/0)."""
    f = PROJECT.field(name)
    if f.type == "boolean":
        return f"INTEGER NOT NULL DEFAULT {int(f.default)}"
    return "TEXT" if f.nullable else f"TEXT NOT NULL DEFAULT '{f.default}'"


# Columns of the classic project resource that older database files lack (added at start-up).
_PROJECT_ADDED_COLUMNS = {"code_revision": "INTEGER NOT NULL DEFAULT 1",
                          **{name: _project_column(name) for name in PROJECT_SCRIPT_FIELDS}}

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

# Tables emptied by a reset, children first.
STATE_TABLES = ("uploads", "aliases", "projects", "attributes", "datasources", "dcp_services", "oauth_codes",
                "oauth_requests", "oauth_apps", "tokens", "accounts", "sequence")


def now() -> str:
    """The real current UTC time in the API's timestamp format; a store's own ``Database.now()`` follows its clock."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _in_range(value: Any) -> bool:
    """Whether an integer id can be stored (a client can put any digits in a URL or JSON body)."""
    return _is_int(value) and _SQLITE_MIN <= value <= _SQLITE_MAX


class Database:
    """The connection, its lock and the clock; the plumbing every backend shares."""

    def __init__(self, path: str | None = None, clock: Clock | None = None):
        self.path = path
        self.clock = clock or Clock()  # the emulator's one clock (tests move it); real time by default
        self.lock = threading.RLock()
        self._caches: list[Callable[[], None]] = []  # see add_cache
        self._clear_hooks: list[Callable[[], None]] = []  # see on_clear
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

    def _migrate_projects(self) -> None:
        """A database file written by an older version has projects without the classic project's fields
        and with a lower-case status vocabulary (active, paused, archived): bring them to the vendor's."""
        columns = {c.name for c in self.db["projects"].columns}
        for name, decl in _PROJECT_ADDED_COLUMNS.items():
            if name not in columns:
                self.db.execute(f"ALTER TABLE projects ADD COLUMN {name} {decl}")
        self.db.execute("UPDATE projects SET project_status = CASE WHEN lower(project_status) = 'archived' "
                        "THEN 'Archived' ELSE 'Active' END WHERE project_status NOT IN ('Active', 'Archived')")

    def add_cache(self, forget: Callable[[], None]) -> None:
        """Register a cache of database state, dropped (``forget()``) whenever the state may no longer match it:
        a rolled-back transaction, a restore, a clear."""
        self._caches.append(forget)

    def on_clear(self, hook: Callable[[], None]) -> None:
        """Register a step of ``clear`` (run in its transaction): storage a backend owns beyond STATE_TABLES."""
        self._clear_hooks.append(hook)

    def _forget_caches(self) -> None:
        for forget in self._caches:
            forget()

    def now(self) -> str:
        """The emulator's current time (its clock, which tests can move) in the API's timestamp format."""
        return self.clock.timestamp()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """Hold the store lock and run the block as one transaction (rolled back on any error; nests)."""
        with self.lock:
            try:
                with self.db.atomic():
                    yield self.db
            except BaseException:
                self._forget_caches()  # caches filled inside the rolled-back block may describe undone changes
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
        """A new entity id (one sequence for all types), or the given one, reserving it (inside a transaction)."""
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
            for hook in self._clear_hooks:
                hook()
            for table in STATE_TABLES:
                db.execute(f"DELETE FROM {table}")
            self._forget_caches()

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
            self._forget_caches()

    def close(self) -> None:
        """Close the database connection."""
        with self.lock:
            self.db.close()


class Snapshot:
    """A copy of a store's whole database, restorable with ``Database.restore``; ``close()`` frees it.

    On disk, the copy is a temporary file that is unlinked as soon as it is written (where the OS
    allows): the open connection keeps it readable, and nothing is left behind even after SIGKILL.
    """

    def __init__(self, database: Database, on_disk: bool = False):
        self.path: str | None = None
        self.on_disk = on_disk
        if on_disk:
            fd, self.path = tempfile.mkstemp(prefix=owned_prefix("snapshot"), suffix=".db")
            os.close(fd)
        self.conn = sqlite3.connect(self.path or ":memory:", check_same_thread=False)
        with database.lock:
            database.db.conn.backup(self.conn)
            self.size = database.size_bytes()
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


class Backend:
    """One area's operations (management, profiles, uploads, credentials) over the shared database."""

    def __init__(self, database: Database):
        self.database = database


F = TypeVar("F", bound=Callable[..., Any])


def operation(method: F) -> F:
    """Run a backend method as ONE transaction under the store lock, from its first read to its last write
    (rolled back whole on any error). Operations call one another freely: a nested one is a savepoint."""
    @functools.wraps(method)
    def run(self: Backend, *args: Any, **kwargs: Any) -> Any:
        with self.database.transaction():
            return method(self, *args, **kwargs)
    run.operation = "write"  # type: ignore[attr-defined]  # tests/test_concurrency.py checks every method has one
    return run  # type: ignore[return-value]


def read_operation(method: F) -> F:
    """Run a read-only backend method under the store lock: every write holds it, so the method sees one
    consistent state, without the cost of a transaction (a SAVEPOINT costs 2-3x a point read)."""
    @functools.wraps(method)
    def run(self: Backend, *args: Any, **kwargs: Any) -> Any:
        with self.database.lock:
            return method(self, *args, **kwargs)
    run.operation = "read"  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]
