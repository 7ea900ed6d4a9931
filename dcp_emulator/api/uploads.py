"""Upload History, wait-for-uploads and template CSVs under /_emulator/ (no authentication)."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, request

from ..errors import DcpError, InvalidField
from ..resources import UPLOAD, UPLOAD_WAIT
from . import emulator, optional_json_object, route, same_origin_only

bp = Blueprint("uploads", __name__)
same_origin_only(bp)



class UploadWaitTimeout(DcpError):
    """Uploads were still pending when the wait's timeout ran out."""

    status, code = 504, "upload_wait_timeout"


DEFAULT_PAGE = 100
MAX_PAGE = 1000


def _id_param(name: str, raw: str | None, default: int) -> int:
    """A whole-number query parameter (ASCII digits only: '²'.isdigit() is true but int() refuses it)."""
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise InvalidField(f"{name} must be a whole number, got {raw[:40]!r}.", field=name)
    return int(raw)


@route(bp, "/uploads", methods=["GET"])
def list_uploads():
    """Upload History, oldest first, one page at a time: ``?after=ID`` (uploads with a higher id),
    ``?limit=N`` (default 100, at most 1000), ``?datasource_id=N`` (one table's uploads). A full page
    links the next one (``Link: <...>; rel="next"``)."""
    datasource_id = request.args.get("datasource_id")
    if datasource_id is not None:
        datasource_id = _id_param("datasource_id", datasource_id, 0)
    after = _id_param("after", request.args.get("after"), 0)
    limit = _id_param("limit", request.args.get("limit"), DEFAULT_PAGE)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidField(f"limit must be between 1 and {MAX_PAGE}, got {limit}.", field="limit")
    page = emulator().store.uploads.list_uploads(datasource_id, after=after, limit=limit + 1)
    resp = jsonify([UPLOAD.render(u) for u in page[:limit]])
    if len(page) > limit:
        query = {"after": page[limit - 1]["id"], "limit": limit}
        if datasource_id is not None:
            query["datasource_id"] = datasource_id
        resp.headers["Link"] = f'<{request.path}?{urlencode(query)}>; rel="next"'
    return resp


@route(bp, "/uploads/<int:upload_id>", methods=["GET"])
def get_upload(upload_id: int):
    """One upload of the history."""
    return jsonify(UPLOAD.render(emulator().store.uploads.get_upload(upload_id)))


@route(bp, "/uploads/wait", methods=["POST"])
def wait_for_uploads():
    """Return once no upload is pending or processing (200), or 504 when ``timeout`` seconds pass first.

    The answer lists the uploads finished since the previous wait (or with an id above ``after``),
    not the whole history: what this wait waited for, and what finished before it was called.
    """
    body = UPLOAD_WAIT.parse_create(optional_json_object())
    timeout, after = body["timeout"], body["after"]
    emu = emulator()
    if not emu.ingestor.wait_idle(float(timeout)):
        pending = [u["id"] for u in emu.store.uploads.list_uploads(limit=20) if u["status"] in ("pending", "processing")]
        raise UploadWaitTimeout(f"Uploads still pending or processing after {timeout} s: ids {pending}. Wait "
                                "again, or check GET /_emulator/uploads.")
    cursor = emu.ingestor.wait_cursor if after is None else after
    uploads = []
    for upload in emu.store.uploads.list_uploads(after=cursor):  # bounded by the history size
        if upload["status"] in ("pending", "processing"):
            break  # arrived after the queue went idle: the next wait reports it
        uploads.append(UPLOAD.render(upload))
    if uploads and after is None:
        emu.ingestor.wait_cursor = max(emu.ingestor.wait_cursor, uploads[-1]["id"])
    return jsonify({"status": "idle", "uploads": uploads})


@route(bp, "/datasources/<int:datasource_id>/template.csv", methods=["GET"])
def template_csv(datasource_id: int):
    """The table's template CSV: one header row, customerId then every non-archived attribute."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(emulator().store.uploads.import_template(datasource_id))
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="dcp-table-{datasource_id}-template.csv"'})
