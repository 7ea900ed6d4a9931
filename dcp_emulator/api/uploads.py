"""Upload History, wait-for-uploads and template CSVs under /_emulator/ (no authentication)."""

from __future__ import annotations

import csv
import io
import math

from flask import Blueprint, Response, jsonify, request

from ..errors import DcpError, InvalidField
from . import emulator, optional_json_object, route

bp = Blueprint("uploads", __name__)

DEFAULT_WAIT_SECONDS = 30.0


class UploadWaitTimeout(DcpError):
    """Uploads were still pending when the wait's timeout ran out."""

    status, code = 504, "upload_wait_timeout"


@route(bp, "/uploads", methods=["GET"])
def list_uploads():
    """Upload History, oldest first; ``?datasource_id=N`` keeps one table's uploads."""
    raw = request.args.get("datasource_id")
    datasource_id = None
    if raw is not None:
        if not raw.isdigit() or len(raw) > 18:
            raise InvalidField(f"datasource_id must be a table id (a whole number), got {raw!r}.",
                               field="datasource_id")
        datasource_id = int(raw)
    return jsonify(emulator().store.list_uploads(datasource_id))


@route(bp, "/uploads/<int:upload_id>", methods=["GET"])
def get_upload(upload_id: int):
    """One upload of the history."""
    return jsonify(emulator().store.get_upload(upload_id))


@route(bp, "/uploads/wait", methods=["POST"])
def wait_for_uploads():
    """Return once no upload is pending or processing (200), or 504 when ``timeout`` seconds pass first."""
    body = optional_json_object()
    unknown = [k for k in body if k != "timeout"]
    if unknown:
        raise InvalidField(f"Unknown field {unknown[0]!r}; the body is {{\"timeout\": seconds}}.", field=unknown[0])
    timeout = body.get("timeout", DEFAULT_WAIT_SECONDS)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
            or not 0 <= timeout <= 3600:
        raise InvalidField("timeout must be a number of seconds between 0 and 3600.", field="timeout")
    emu = emulator()
    if not emu.ingestor.wait_idle(float(timeout)):
        pending = [u["id"] for u in emu.store.list_uploads() if u["status"] in ("pending", "processing")]
        raise UploadWaitTimeout(f"Uploads still pending or processing after {timeout} s: ids {pending}. Wait "
                                "again, or check GET /_emulator/uploads.")
    return jsonify({"status": "idle", "uploads": emu.store.list_uploads()})


@route(bp, "/datasources/<int:datasource_id>/template.csv", methods=["GET"])
def template_csv(datasource_id: int):
    """The table's template CSV: one header row, customerId then every non-archived attribute."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(emulator().store.import_template(datasource_id))
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="dcp-table-{datasource_id}-template.csv"'})
