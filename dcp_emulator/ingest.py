"""Bulk ingest of uploaded CSV/TSV files (SPEC §7): a streaming parser and one background worker per emulator.

An upload is a file spooled to disk when its S3 object completed (see ``s3.py``). The worker takes
uploads in completion order and applies them in transactions of ``config.ingest_batch_rows`` rows;
each transaction also records how far the file has been applied (its last physical line), so an
emulator killed mid-file resumes from there after a restart with ``--db`` and never reports a
half-applied upload as succeeded.

Memory stays flat whatever the file size: bytes are decoded by ``io.TextIOWrapper`` in chunks and
parsed by ``csv.reader`` record by record; only one batch of rows and a bounded error list are held.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterable

from . import datatypes
from .store import Store

log = logging.getLogger("dcp_emulator.ingest")

UNFINISHED = ("pending", "processing")
_SHOWN_VALUE_CHARS = 200  # a rejected cell is echoed back, cut to this length
_CHUNK = 1 << 20


class HeaderError(Exception):
    """The file cannot be applied at all (bad header, undecodable bytes): the whole upload fails."""

    def __init__(self, reason: str, column: str | None = None, value: str | None = None, line: int = 1):
        super().__init__(reason)
        self.reason, self.column, self.value, self.line = reason, column, value, line

    def entry(self) -> dict:
        """The error as an Upload History entry."""
        return {"line": self.line, "column": self.column, "value": self.value, "reason": self.reason}


@dataclass
class Progress:
    """How far an upload got; persisted with every batch so a restart resumes from ``lines_done``."""

    lines_done: int = 0
    rows_total: int = 0
    rows_stored: int = 0
    rows_rejected: int = 0
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The fields ``Store.apply_upload_batch`` records."""
        return {"lines_done": self.lines_done, "rows_total": self.rows_total, "rows_stored": self.rows_stored,
                "rows_rejected": self.rows_rejected, "errors": self.errors}


# ---------------------------------------------------------------------- parsing
def delimiter_for(file_name: str, header_line: str) -> str:
    """Comma for .csv, tab for .tsv; otherwise what the header line uses (comma when it cannot tell)."""
    lower = file_name.lower()
    if lower.endswith(".csv"):
        return ","
    if lower.endswith(".tsv"):
        return "\t"
    try:
        return csv.Sniffer().sniff(header_line, delimiters=",\t").delimiter
    except csv.Error:  # a single column: nothing to detect
        return ","


def check_utf8(raw: BinaryIO) -> None:
    """Raise HeaderError if the bytes are not UTF-8 (checked in chunks before anything is applied)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, newlines = 0, 0
    while True:
        chunk = raw.read(_CHUNK)
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as e:
            bad = offset + max(e.start, 0)
            line = newlines + chunk[: max(e.start, 0)].count(b"\n") + 1
            hint = ""
            if offset == 0 and chunk[:2] in (b"\xff\xfe", b"\xfe\xff"):
                hint = " It starts with a UTF-16 byte order mark: save it as UTF-8 instead."
            raise HeaderError(f"The file is not UTF-8 text: invalid byte 0x{chunk[e.start]:02x} at byte offset "
                              f"{bad} (line {line}).{hint} Files must be UTF-8, with or without BOM.",
                              line=line) from None
        if not chunk:
            return
        offset += len(chunk)
        newlines += chunk.count(b"\n")


@dataclass
class Column:
    """A data column of the header: its position, attribute name, stored key and validator."""

    index: int
    name: str
    key: str
    describe: str
    convert: Callable[[Any], Any]


def resolve_header(cells: list[str], attributes: list[dict], archived_names: Iterable[str],
                   datasource_id: int) -> tuple[int, list[Column]]:
    """Map header cells to (customerId position, attribute columns), or raise HeaderError saying why."""
    by_name = {a["name"]: a for a in attributes}
    archived = set(archived_names) - set(by_name)
    cid_index: int | None = None
    columns: list[Column] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(cells):
        position = f"column {i + 1}"
        if name in seen or (name.lower() == "customerid" and cid_index is not None):
            raise HeaderError(f"The header names {name!r} twice ({position} and column {seen.get(name, cid_index) + 1}"
                              "); each column may appear once.", column=name, value=name)
        seen[name] = i
        if name.lower() == "customerid":
            cid_index = i
            continue
        attr = by_name.get(name)
        if attr is None:
            if name == "":
                reason = f"The header's {position} has no name (a trailing delimiter?)."
            elif name in archived:
                reason = (f"Attribute {name!r} of table {datasource_id} is archived; archived attributes cannot "
                          "be uploaded. Remove the column or unarchive the attribute.")
            else:
                listing = ", ".join(repr(n) for n in by_name) or "none registered yet"
                close = [n for n in by_name if n.lower() == name.lower()]
                hint = f" Did you mean {close[0]!r}? Attribute names are case-sensitive." if close else ""
                reason = (f"{name!r} ({position}) is not a registered attribute of table {datasource_id} "
                          f"(registered: {listing}).{hint}")
            raise HeaderError(reason, column=name, value=name)
        describe = f"datatype {attr['datatype']}" + (f", format {attr['format']}" if attr["format"] else "")
        columns.append(Column(i, name, str(attr["id"]), describe,
                              datatypes.converter(attr["datatype"], attr["format"])))
    if cid_index is None:
        raise HeaderError("The header has no customerId column (the name is case-insensitive); the first line "
                          "must name the columns, e.g. customerId," + ",".join(a["name"] for a in attributes[:3]),
                          column=None, value=",".join(cells)[:_SHOWN_VALUE_CHARS])
    return cid_index, columns


def _shown(value: str) -> str:
    return value if len(value) <= _SHOWN_VALUE_CHARS else value[: _SHOWN_VALUE_CHARS - 3] + "..."


def apply_stream(raw: BinaryIO, file_name: str, datasource_id: int, attributes: list[dict],
                 archived_names: Iterable[str], commit: Callable[[list[tuple], Progress], bool], *,
                 progress: Progress | None = None, batch_rows: int = 5000, error_limit: int = 100) -> Progress | None:
    """Parse and apply one file: rows go to ``commit(rows, progress)`` in batches, in file order.

    ``raw`` is positioned at the file's start. With ``progress.lines_done`` > 0 the records up to that
    line were applied before (a resumed upload) and are skipped. Returns the final progress, or None
    when ``commit`` said to stop (the upload was cancelled). Raises HeaderError for a whole-file failure.
    """
    progress = progress or Progress()
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    header_line = text.readline()
    if not header_line.strip():
        raise HeaderError("The file is empty: its first line must be the header (customerId and attribute names).")
    delimiter = delimiter_for(file_name, header_line)
    reader = csv.reader(_chain_first(header_line, text), delimiter=delimiter, quotechar='"', doublequote=True,
                        skipinitialspace=True, strict=False)
    try:
        header = next(reader)
    except csv.Error as e:
        raise HeaderError(f"The header line cannot be parsed: {e}.") from None
    cid_index, columns = resolve_header(header, attributes, archived_names, datasource_id)
    converters = [(c.index, c.key, c.convert) for c in columns]
    ncols = len(header)
    skip_until = progress.lines_done
    errors = progress.errors
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    InvalidValue = datatypes.InvalidValue
    batch: list[tuple] = []
    append = batch.append
    stored = rejected = total = 0
    last_line = reader.line_num

    def reject(line: int, column: str | None, value: str | None, reason: str) -> None:
        nonlocal rejected
        rejected += 1
        if len(errors) < error_limit:
            errors.append({"line": line, "column": column, "value": None if value is None else _shown(value),
                           "reason": reason})

    def flush() -> bool:
        nonlocal stored, rejected, total
        progress.lines_done = last_line
        progress.rows_total += total
        progress.rows_stored += stored
        progress.rows_rejected += rejected
        stored = rejected = total = 0
        ok = commit(batch, progress)
        batch.clear()
        return ok

    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as e:  # e.g. a cell over the csv module's field size limit: reject this record only
            line = last_line + 1
            last_line = reader.line_num
            if last_line > skip_until:
                total += 1
                reject(line, None, None, f"the row cannot be parsed: {e}")
            continue
        line = last_line + 1
        last_line = reader.line_num
        if last_line <= skip_until or not cells:  # applied before a restart, or a blank line
            continue
        total += 1
        if len(cells) != ncols:
            reject(line, None, _shown(delimiter.join(cells)),
                   f"expected {ncols} cells (as many as header columns), got {len(cells)}")
            continue
        customer_id = cells[cid_index]
        if not customer_id or len(customer_id) > 1024:
            reject(line, header[cid_index], customer_id,
                   "missing customerId" if not customer_id else "customerId longer than 1024 characters")
            continue
        patch = {}
        try:
            for index, key, convert in converters:
                value = cells[index]
                if value:  # an empty cell leaves the stored value unchanged
                    patch[key] = convert(value)
        except InvalidValue as e:
            column = next(c for c in columns if c.index == index)
            reject(line, column.name, value, f"{e.reason} ({column.describe})")
            continue
        append((datasource_id, customer_id, encode(patch)))
        stored += 1
        if len(batch) >= batch_rows and not flush():
            return None
    if not flush():
        return None
    return progress


def _chain_first(first: str, rest: Iterable[str]):
    yield first
    yield from rest


# ---------------------------------------------------------------------- the worker
class Ingestor:
    """The emulator's upload queue: spools completed objects and applies them in a background thread."""

    def __init__(self, store: Store, *, db_path: str | None, batch_rows: int, error_limit: int):
        self.store = store
        self.batch_rows = batch_rows
        self.error_limit = error_limit
        # With --db, spooled files live next to the database so an interrupted upload survives a restart.
        self._own_dir = db_path is None
        self.spool_dir = tempfile.mkdtemp(prefix="dcp-emulator-uploads-") if db_path is None else db_path + ".uploads"
        os.makedirs(self.spool_dir, exist_ok=True)
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="dcp-emulator-ingest", daemon=True)

    # -- lifecycle
    def start(self) -> "Ingestor":
        """Start the worker (it first resumes uploads left unfinished by a previous run)."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the worker after its current batch; an in-memory emulator's spool directory is removed."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        if self._own_dir:
            shutil.rmtree(self.spool_dir, ignore_errors=True)

    def reset(self) -> None:
        """After a reset the uploads table is empty: drop every spooled file."""
        for name in os.listdir(self.spool_dir):
            if not name.startswith("incoming-"):
                try:
                    os.remove(os.path.join(self.spool_dir, name))
                except OSError:
                    pass
        with self._cond:
            self._cond.notify_all()

    def readiness(self) -> tuple[bool, str]:
        """Ready when the worker thread runs; the detail counts unfinished uploads."""
        alive = self._thread.is_alive()
        n = self.store.count_unfinished_uploads()
        return alive, (f"worker running, {n} upload(s) pending" if alive else "ingest worker is not running")

    # -- intake
    def spool(self, source: BinaryIO) -> tuple[str, int]:
        """Copy a completed object's bytes into the spool directory; returns (spool file name, size)."""
        name = f"{uuid.uuid4().hex}.upload"
        size = 0
        with open(os.path.join(self.spool_dir, name), "wb") as out:
            while True:
                chunk = source.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                size += len(chunk)
        return name, size

    def enqueue(self, account_id: int, service_id: int, datasource_id: int, key: str, spool: str,
                size: int) -> dict:
        """Record a pending upload of a spooled file and wake the worker; returns the upload."""
        upload = self.store.record_upload(account_id, service_id, datasource_id, key, size, spool)
        with self._cond:
            self._cond.notify_all()
        return upload

    def wait_idle(self, timeout: float) -> bool:
        """Block until no upload is pending or processing; False if ``timeout`` seconds passed first."""
        import time

        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while self._busy or self.store.count_unfinished_uploads():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
        return True

    # -- processing
    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                try:
                    row = self.store.next_upload_to_process()
                except Exception:  # the store is closing under us
                    if self._stopping:
                        return
                    raise
                if row is None:
                    self._cond.wait()
                    continue
                self._busy = True
            try:
                self.process(row)
            except Exception as e:  # never let one upload kill the worker: fail it with the reason
                if self._stopping:
                    return
                log.exception("ingest of upload %s failed", row["id"])
                self.store.finish_upload(row["id"], "failed", failure=f"Internal emulator error while ingesting "
                                         f"({type(e).__name__}: {e}); this is a bug in dcp-emulator.")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def process(self, row: dict) -> None:
        """Apply one upload (fresh or resumed) and give it its final status."""
        upload_id = row["id"]
        resumed = row["lines_done"] > 0
        partial = (f" {row['rows_stored']} row(s) of it had been applied before the emulator stopped; they stay."
                   if resumed and row["rows_stored"] else "")
        path = os.path.join(self.spool_dir, row["spool"]) if row["spool"] else None
        if not path or not os.path.exists(path):
            self.store.finish_upload(upload_id, "failed", failure="The uploaded file's spooled copy is gone (the "
                                     f"emulator was restarted without it, or its spool directory was cleaned).{partial}"
                                     " Upload the file again.")
            return
        target = self.store.import_target(row["dcp_service_id"], row["datasource_id"])
        if target is None or target["archived"] or target["service_archived"]:
            what = "no longer exists" if target is None else "is archived"
            self.store.finish_upload(upload_id, "failed", failure=f"Table {row['datasource_id']} {what}; the upload "
                                     f"was not applied.{partial}")
            self._discard(path)
            return
        if not self.store.start_upload(upload_id):
            return
        attributes = self.store.active_attributes(row["datasource_id"])
        archived = [r["name"] for r in self.store._all(
            "SELECT name FROM attributes WHERE dcp_datasource_id = ? AND archived = 1", (row["datasource_id"],))]
        progress = Progress(row["lines_done"], row["rows_total"], row["rows_stored"], row["rows_rejected"],
                            json.loads(row["errors"]))
        try:
            with open(path, "rb") as raw:
                if not resumed:
                    check_utf8(raw)
                    raw.seek(0)
                result = apply_stream(
                    raw, row["file_name"], row["datasource_id"], attributes, archived,
                    lambda rows, p: self.store.apply_upload_batch(upload_id, rows, p.as_dict()),
                    progress=progress, batch_rows=self.batch_rows, error_limit=self.error_limit)
        except HeaderError as e:
            self.store.finish_upload(upload_id, "failed", failure=e.reason + partial, errors=[e.entry()])
            self._discard(path)
            return
        if result is None:  # cancelled (reset); the row is gone
            return
        status = "completed_with_errors" if result.rows_rejected else "succeeded"
        self.store.finish_upload(upload_id, status)
        self._discard(path)

    @staticmethod
    def _discard(path: str) -> None:
        try:
            os.remove(path)
        except OSError:
            pass
