"""The web dashboard under /_emulator/ui: server-rendered pages over the same store, journal and fault
methods as the JSON APIs (no second query layer), and forms for the control plane's state changes.

Reading works without JavaScript; ``static/ui/ui.js`` only adds copy buttons and live refresh of
uploads in progress. State-changing forms are POSTs refused cross-origin (403 ``cross_origin_refused``).
A CSV uploaded from the browser is signed with the table's own AWS keys and sent through the emulator's
own S3 gateway (its WSGI stack), so it takes exactly the path and ingest of any other upload.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from xml.etree import ElementTree as ET

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from werkzeug.test import EnvironBuilder, run_wsgi_app

from ..bulk import IMPORT_BUCKET
from ..errors import DcpError, InvalidField, NotFound
from ..resources import DATASOURCE, SERVICE, UPLOAD
from . import emulator, same_origin_only

bp = Blueprint("ui", __name__, template_folder="../templates", static_folder="../static/ui",
               static_url_path="/static")

PAGE_SIZE = 50  # profiles per page
JOURNAL_DEFAULT_LIMIT = 100  # most recent journal entries shown when no limit is given
RUNNING = ("pending", "processing")
_SAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_DONE_MESSAGES = {
    "reset": "The emulator was reset.",
    "snapshot-saved": "Snapshot saved.",
    "snapshot-deleted": "Snapshot deleted.",
    "fault-added": "Fault rule added.",
    "fault-deleted": "Fault rule deleted.",
}


# ---------------------------------------------------------------------- request plumbing
# The pages' forms post to their own origin; the same rule as the rest of the control plane refuses a form
# posted by a page of another site (403 cross_origin_refused).
same_origin_only(bp, html_forms=True)


@bp.errorhandler(DcpError)
def _error_page(e: DcpError) -> tuple[str, int]:
    """Errors of dashboard pages as an HTML page with the same status, code and message as the API's."""
    return render_template("ui/error.html", error=e), e.status


@bp.app_context_processor
def _globals() -> dict:
    return {"version": emulator().version}


@bp.app_template_filter("ts")
def _timestamp(value: str | None) -> str:
    """An API timestamp (2024-03-01T09:00:00.000000Z) as '2024-03-01 09:00:00' (UTC)."""
    return (value or "")[:19].replace("T", " ")


@bp.app_template_filter("took")
def _took(upload: dict) -> str:
    """How long an upload's processing took, 'running' while it runs."""
    if not upload.get("started_at"):
        return ""
    if not upload.get("finished_at"):
        return "running"
    parse = lambda v: datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{(parse(upload['finished_at']) - parse(upload['started_at'])).total_seconds():.2f} s"


def _page(template: str, **context: Any) -> str:
    return render_template(f"ui/{template}.html", done=_DONE_MESSAGES.get(request.args.get("done", "")), **context)


def _owner(entity_id: int, what: str) -> int:
    """The account owning a service or table: the dashboard is unauthenticated and shows every account."""
    account_id = emulator().store.credentials.owner_account(entity_id)
    if account_id is None:
        raise NotFound(f"No {what} with id {entity_id}.")
    return account_id


def _table(datasource_id: int) -> tuple[int, dict]:
    account_id = _owner(datasource_id, "table (datasource)")
    return account_id, DATASOURCE.render(emulator().store.management.get_datasource(account_id, datasource_id))


def _done(endpoint: str, done: str, **values: Any) -> Response:
    """Redirect after a successful POST (303: the browser then GETs the page)."""
    return redirect(url_for(endpoint, done=done, **values), code=303)


# ---------------------------------------------------------------------- accounts, services, tables
@bp.route("/", methods=["GET"], strict_slashes=False)
def overview():
    """Accounts with their tokens, DCP services with their tables, and the latest uploads."""
    store = emulator().store
    accounts = store.credentials.list_accounts()
    for account in accounts:
        account["services"] = [SERVICE.render(s) for s in store.management.list_services(account["id"])]
        for service in account["services"]:
            service["tables"] = [DATASOURCE.render(t) for t in
                                 store.management.list_datasources(account["id"], service["id"])]
    uploads = [UPLOAD.render(u) for u in store.uploads.list_uploads()[-5:][::-1]]
    return _page("overview", accounts=accounts, uploads=uploads, seed_status=emulator().seed_status)


@bp.route("/services/<int:service_id>", methods=["GET"])
def service(service_id: int):
    """A DCP service: its keys, its tables and the Optimizely user lookup."""
    account_id = _owner(service_id, "DCP service")
    store = emulator().store
    svc = SERVICE.render(store.management.get_service(account_id, service_id))
    tables = [DATASOURCE.render(t) for t in store.management.list_datasources(account_id, service_id)]
    return _page("service", service=svc, tables=tables, bucket=IMPORT_BUCKET)


@bp.route("/tables/<int:datasource_id>", methods=["GET"])
def table(datasource_id: int):
    """A table: attributes, S3 path and keys, template CSV, upload form, its uploads, profile search."""
    _account_id, ds = _table(datasource_id)
    uploads = [UPLOAD.render(u) for u in emulator().store.uploads.list_uploads(datasource_id)[-10:][::-1]]
    return _page("table", table=ds, uploads=uploads, bucket=IMPORT_BUCKET, host=request.host_url.rstrip("/"))


# ---------------------------------------------------------------------- profiles
@bp.route("/tables/<int:datasource_id>/profiles", methods=["GET"])
def profiles(datasource_id: int):
    """One page of a table's profiles, customer ids starting with ?prefix=, paged with ?after= / ?before=."""
    account_id, ds = _table(datasource_id)
    prefix = request.args.get("prefix", "")
    after, before = request.args.get("after"), request.args.get("before")
    page = emulator().store.profiles.list_profiles(account_id, ds["dcp_service_id"], datasource_id, prefix=prefix,
                                                   after=after, before=before, limit=PAGE_SIZE)
    rows = page["profiles"]
    # "more" tells whether rows exist beyond the page in the direction we read; the other direction has
    # rows exactly when we came from there.
    has_next = page["more"] if before is None or after is not None else True
    has_prev = (after is not None) if before is None or after is not None else page["more"]
    attributes = [a for a in ds["attributes"] if not a["archived"]]
    return _page("profiles", table=ds, attributes=attributes, profiles=rows, prefix=prefix,
                 next_after=rows[-1]["customerId"] if rows and has_next else None,
                 prev_before=rows[0]["customerId"] if rows and has_prev else None)


@bp.route("/tables/<int:datasource_id>/profiles/<path:customer_id>", methods=["GET"])
def profile(datasource_id: int, customer_id: str):
    """One profile: each attribute's typed value (or unset)."""
    account_id, ds = _table(datasource_id)
    found = emulator().store.profiles.read_profile(account_id, ds["dcp_service_id"], datasource_id, customer_id)
    attributes = [a for a in ds["attributes"] if not a["archived"]]
    return _page("profile", table=ds, attributes=attributes, profile=found)


@bp.route("/services/<int:service_id>/users", methods=["GET"])
def find_user(service_id: int):
    """The Optimizely user lookup form's target: on to that user's page."""
    user_id = request.args.get("user", "").strip()
    if not user_id:
        raise InvalidField("Enter an Optimizely user id.", field="user")
    return redirect(url_for("ui.user", service_id=service_id, user_id=user_id), code=303)


@bp.route("/services/<int:service_id>/users/<path:user_id>", methods=["GET"])
def user(service_id: int, user_id: str):
    """An Optimizely user: the consolidated customer view and the aliases behind it."""
    account_id = _owner(service_id, "DCP service")
    store = emulator().store
    svc = SERVICE.render(store.management.get_service(account_id, service_id))
    tables = {t["id"]: DATASOURCE.render(t) for t in store.management.list_datasources(account_id, service_id)}
    optimizely = next((t for t in tables.values() if t["is_optimizely"]), None)
    aliases: dict[str, str] = {}
    if optimizely is not None:
        try:
            aliases = store.profiles.read_alias(account_id, service_id, optimizely["id"], user_id)["data"]
        except NotFound:
            aliases = {}
    view = store.profiles.consolidated_view(account_id, service_id, user_id)
    return _page("user", service=svc, user_id=user_id, tables=tables, aliases=aliases, view=view)


# ---------------------------------------------------------------------- uploads
@bp.route("/uploads", methods=["GET"])
def uploads():
    """Upload History, newest first."""
    history = [UPLOAD.render(u) for u in emulator().store.uploads.list_uploads()[::-1]]
    return _page("uploads", uploads=history, running=any(u["status"] in RUNNING for u in history))


@bp.route("/uploads/<int:upload_id>", methods=["GET"])
def upload(upload_id: int):
    """One upload: status, counts, timing, row errors, failure; refreshed live while it runs."""
    found = UPLOAD.render(emulator().store.uploads.get_upload(upload_id))
    return _page("upload", upload=found, running=found["status"] in RUNNING)


@bp.route("/tables/<int:datasource_id>/upload", methods=["POST"])
def upload_file(datasource_id: int):
    """Upload a CSV/TSV chosen in the browser to the table's S3 path, as any S3 client would."""
    _account_id, ds = _table(datasource_id)
    request.max_content_length = emulator().config.max_object_bytes  # an S3 object, not a JSON body
    file = request.files.get("file")
    if file is None or not file.filename:
        raise InvalidField("Choose a CSV or TSV file to upload.", field="file")
    name = _SAFE_FILE_CHARS.sub("_", file.filename.replace("\\", "/").rsplit("/", 1)[-1]).strip("._") or "upload.csv"
    key = f"{ds['s3_path']}/{name}"
    before = {u["id"] for u in emulator().store.uploads.list_uploads(datasource_id)}
    status, body = _put_object(ds, key, file.stream, file.mimetype or "text/csv")
    if status != 200:
        raise _S3Refused(status, body)
    new = [u["id"] for u in emulator().store.uploads.list_uploads(datasource_id) if u["id"] not in before and u["key"] == key]
    if not new:  # moto stored it but it was not queued: cannot happen for a table path; say so rather than guess
        raise NotFound(f"The object {key} was stored but no upload was recorded for it.")
    return redirect(url_for("ui.upload", upload_id=new[0]), code=303)


def _put_object(ds: dict, key: str, stream: Any, content_type: str) -> tuple[int, bytes]:
    """PutObject signed with the table's keys (botocore's SigV4), through this app's WSGI stack."""
    from botocore.auth import S3SigV4Auth  # botocore (~0.1 s) only when a CSV is uploaded: faster start-up
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    host = request.host
    aws = AWSRequest(method="PUT", url=f"http://{host}/{IMPORT_BUCKET}/{key}", data=stream,
                     headers={"Content-Type": content_type})
    S3SigV4Auth(Credentials(ds["aws_access_key"], ds["aws_secret_key"]), "s3", "us-east-1").add_auth(aws)
    stream.seek(0)
    headers = {k: v for k, v in aws.headers.items() if k.lower() not in ("content-type", "content-length")}
    environ = EnvironBuilder(path=f"/{IMPORT_BUCKET}/{key}", base_url=f"http://{host}", method="PUT",
                             headers=headers, input_stream=stream, content_length=size,
                             content_type=content_type).get_environ()
    app_iter, status, _headers = run_wsgi_app(current_app.wsgi_app, environ, buffered=True)
    try:
        return int(status.split()[0]), b"".join(app_iter)
    finally:
        if hasattr(app_iter, "close"):
            app_iter.close()


class _S3Refused(DcpError):
    """The emulator's S3 endpoint refused a browser upload (its own status and S3 error code)."""

    def __init__(self, status: int, body: bytes):
        try:
            root = ET.fromstring(body)
            code, message = root.findtext("Code") or "S3Error", root.findtext("Message") or ""
        except ET.ParseError:
            code, message = "S3Error", body.decode("utf-8", "replace")[:500]
        super().__init__(f"The S3 endpoint refused the upload ({code}): {message}")
        self.status, self.code = status, code


# ---------------------------------------------------------------------- request journal
@bp.route("/requests", methods=["GET"])
def requests_page():
    """The request journal, newest first, with the API's filters: method, path, status, header, limit."""
    journal = emulator().journal
    args = request.args
    limit_raw = args.get("limit") or str(JOURNAL_DEFAULT_LIMIT)
    headers = [h for h in args.getlist("header") if h.strip()]
    entries, error = [], None
    try:
        if not limit_raw.isdigit():
            raise InvalidField(f"limit must be a non-negative integer, got {limit_raw!r}.", field="limit")
        entries = journal.entries(method=args.get("method") or None, path=args.get("path") or None,
                                  status=args.get("status") or None, headers=headers, limit=int(limit_raw))
    except InvalidField as e:
        error = e
    return _page("requests", entries=entries[::-1], error=error, limit=limit_raw, headers=headers,
                 kept=len(journal), capacity=journal.maxlen, dropped=journal.dropped), 400 if error else 200


@bp.route("/requests/<int:entry_id>", methods=["GET"])
def request_entry(entry_id: int):
    """One journal entry with its request and response bodies."""
    entry = next((e for e in emulator().journal.entries() if e["id"] == entry_id), None)
    if entry is None:
        raise NotFound(f"No journal entry {entry_id} (the journal keeps the latest {emulator().journal.maxlen}).")
    return _page("request", entry=entry)


# ---------------------------------------------------------------------- fault rules
_FAULT_INTS = ("status", "retry_after", "latency_ms", "times", "seed")


def _fault_spec(form: Any) -> dict:
    """A fault rule from the form's text fields, typed as the JSON API expects (empty fields left out)."""
    spec: dict[str, Any] = {}
    for name in ("method", "path"):
        if form.get(name, "").strip():
            spec[name] = form[name].strip()
    for name in _FAULT_INTS:
        raw = form.get(name, "").strip()
        if raw:
            try:
                spec[name] = int(raw)
            except ValueError:
                raise InvalidField(f"{name} must be a whole number, got {raw!r}.", field=name) from None
    raw = form.get("probability", "").strip()
    if raw:
        try:
            spec["probability"] = float(raw)
        except ValueError:
            raise InvalidField(f"probability must be a number from 0 to 1, got {raw!r}.", field="probability") \
                from None
    return spec


@bp.route("/faults", methods=["GET"])
def faults():
    """Fault rules with their budget and how often each fired, and the form to add one."""
    return _page("faults", faults=emulator().faults.list(), error=None, form={})


@bp.route("/faults", methods=["POST"])
def add_fault():
    """Add a fault rule from the form (same validation as POST /_emulator/faults)."""
    try:
        emulator().faults.add(_fault_spec(request.form))
    except InvalidField as e:
        return _page("faults", faults=emulator().faults.list(), error=e, form=request.form), 400
    return _done("ui.faults", "fault-added")


@bp.route("/faults/<int:rule_id>/delete", methods=["POST"])
def delete_fault(rule_id: int):
    """Delete one fault rule."""
    if not emulator().faults.remove(rule_id):
        raise NotFound(f"No fault rule {rule_id}.")
    return _done("ui.faults", "fault-deleted")


# ---------------------------------------------------------------------- reset, snapshots, export
@bp.route("/state", methods=["GET"])
def state():
    """Reset, snapshots and the YAML export."""
    emu = emulator()
    return _page("state", snapshots=emu.snapshot_names(), seed_status=emu.seed_status, db=emu.config.db)


@bp.route("/reset", methods=["POST"])
def reset():
    """Reset to the start-up state, the default state (to=default) or a snapshot (snapshot=name)."""
    to, name = request.form.get("to", "startup"), request.form.get("snapshot") or None
    if to not in ("startup", "default", "snapshot"):
        raise InvalidField(f"to must be startup, default or snapshot, got {to!r}.", field="to")
    if to == "snapshot" and name is None:
        raise InvalidField("Choose the snapshot to reset to.", field="snapshot")
    emulator().reset(name if to == "snapshot" else None, default=to == "default")
    return _done("ui.state", "reset")


@bp.route("/snapshots", methods=["POST"])
def save_snapshot():
    """Save the current state under a name (as POST /_emulator/snapshots)."""
    name = request.form.get("name", "").strip()
    if not name or len(name) > 200:
        raise InvalidField("name is required: a string of 1 to 200 characters.", field="name")
    emulator().save_snapshot(name)
    return _done("ui.state", "snapshot-saved")


@bp.route("/snapshots/delete", methods=["POST"])
def delete_snapshot():
    """Forget a saved snapshot."""
    name = request.form.get("name", "")
    if not emulator().delete_snapshot(name):
        raise NotFound(f"No snapshot named {name!r}.", field="name")
    return _done("ui.state", "snapshot-deleted")
