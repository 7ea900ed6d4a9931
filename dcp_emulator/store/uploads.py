"""Bulk uploads through S3: the table an object path names, and the Upload History with its progress."""

from __future__ import annotations

import json

from ..errors import NotFound
from .db import Backend, Database, operation, read_operation
from .profile_tables import ProfileTables


class Uploads(Backend):
    """The upload queue and history (ingest.py processes them; the Upload History API reads them)."""

    def __init__(self, database: Database, tables: ProfileTables, history_size: int | None = None):
        super().__init__(database)
        self.tables = tables
        self.history_size = history_size  # finished uploads kept (None: all)

    @read_operation
    def import_target(self, service_id: int, datasource_id: int) -> dict | None:
        """The table an S3 path dcp/{service_id}/{datasource_id}/ names, with both archived flags, or None."""
        return self.database._one(
            "SELECT d.id, d.dcp_service_id, d.archived, d.is_optimizely, s.account_id, "
            "s.archived AS service_archived FROM datasources d JOIN dcp_services s ON s.id = d.dcp_service_id "
            "WHERE d.id = ? AND d.dcp_service_id = ?", (datasource_id, service_id))

    @read_operation
    def import_template(self, datasource_id: int) -> list[str]:
        """The header row of a table's template CSV: customerId, then every non-archived attribute name."""
        if self.database._one("SELECT id FROM datasources WHERE id = ?", (datasource_id,)) is None:
            raise NotFound(f"No table (datasource) with id {datasource_id}.")
        return ["customerId"] + [a["name"] for a in self.tables.active_attributes(datasource_id)]

    @operation
    def record_upload(self, account_id: int, service_id: int, datasource_id: int, key: str, size_bytes: int,
                      spool: str) -> dict:
        """A completed S3 object under a table path becomes a pending upload (queued in completion order)."""
        file_name = key.rsplit("/", 1)[-1]
        db = self.database.db
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
            (account_id, service_id, datasource_id, key, file_name, size_bytes, json.dumps(warnings),
             self.database.now(), spool))
        upload_id = cur.lastrowid
        if self.history_size is not None:
            # Only finished uploads are dropped: an unfinished one still has work (and a spool file).
            db.execute("DELETE FROM uploads WHERE id <= ? - ? AND status NOT IN ('pending', 'processing')",
                       (upload_id, self.history_size))
        return self.get_upload(upload_id)

    @read_operation
    def list_uploads(self, datasource_id: int | None = None, *, after: int = 0, limit: int = -1) -> list[dict]:
        """Upload History: the uploads (or one table's) with an id above ``after``, oldest first, at most
        ``limit`` of them (-1: all)."""
        if datasource_id is None:
            rows = self.database._all("SELECT * FROM uploads WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
        else:
            rows = self.database._all("SELECT * FROM uploads WHERE datasource_id = ? AND id > ? ORDER BY id LIMIT ?",
                                      (datasource_id, after, limit))
        return rows  # stored rows: resources.UPLOAD renders them

    @read_operation
    def get_upload(self, upload_id: int) -> dict:
        """One upload of the Upload History."""
        row = self.database._one("SELECT * FROM uploads WHERE id = ?", (upload_id,))
        if row is None:
            raise NotFound(f"No upload with id {upload_id}.")
        return row

    @read_operation
    def next_upload_to_process(self) -> dict | None:
        """The oldest unfinished upload's internal row (a 'processing' one is resumed after a restart)."""
        return self.database._one("SELECT * FROM uploads WHERE status IN ('pending', 'processing') ORDER BY id "
                                  "LIMIT 1")

    @read_operation
    def count_unfinished_uploads(self) -> int:
        """How many uploads are pending or processing."""
        return self.database._one("SELECT count(*) AS n FROM uploads WHERE status IN ('pending', 'processing')")["n"]

    @operation
    def start_upload(self, upload_id: int) -> bool:
        """Mark an upload processing (keeping the first start time on resume); False if it is gone."""
        cur = self.database.db.execute("UPDATE uploads SET status = 'processing', started_at = coalesce(started_at, ?) "
                                       "WHERE id = ? AND status IN ('pending', 'processing')",
                                       (self.database.now(), upload_id))
        return cur.rowcount == 1

    @operation
    def apply_upload_batch(self, upload_id: int, sql: str, rows: list, progress: dict) -> bool:
        """Run a bulk upsert (``sql`` over ``rows``, built by ingest.py with the merge semantics of
        ``ProfileTables.upsert_profiles``) and record the upload's progress in the same transaction, so a
        crash never separates the two. False (nothing written) when the upload is no longer processing (reset)."""
        db = self.database.db
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

    @operation
    def finish_upload(self, upload_id: int, status: str, failure: str | None = None,
                      errors: list[dict] | None = None) -> None:
        """Give an unfinished upload its final status (and, for a failure, the reason)."""
        sets, params = ["status = ?", "finished_at = ?", "failure = ?", "spool = NULL"], [status, self.database.now(), failure]
        if errors is not None:
            sets.append("errors = ?")
            params.append(json.dumps(errors))
        self.database.db.execute(f"UPDATE uploads SET {', '.join(sets)} WHERE id = ? AND status IN ('pending', "
                                 "'processing')", (*params, upload_id))
