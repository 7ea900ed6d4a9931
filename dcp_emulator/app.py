"""The app factory: one independent emulator (store, blueprints, error envelope) per call."""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from . import __version__, urls
from .clock import Clock
from .config import Config
from .errors import HTTP_STATUS_CLASSES, DcpError, InternalError, NotFound
from .faults import Faults
from .journal import Journal
from .rules import LazyBuilderRule
from .store import Snapshot, Store
from .tempfiles import remove_leftovers

log = logging.getLogger("dcp_emulator")

DEFAULT_ACCOUNT_ID = 1001
DEFAULT_TOKENS = {
    "classic": "emulator-classic-token",
    "personal": "2:emulator-personal-token",
    "oauth": "emulator-oauth-token",
}
MAX_SNAPSHOTS = 32  # named snapshots kept per emulator (the pytest plugin saves one per distinct seed)


class Emulator:
    """One emulator instance: its configuration and state. Reachable as ``app.extensions['dcp_emulator']``."""

    def __init__(self, config: Config):
        self.config = config
        self.version = __version__
        self.clock = Clock()  # this emulator's time (tests move it); every part reads it through the store
        remove_leftovers()  # snapshot files and spool directories of emulator processes killed with SIGKILL
        self.store = Store(config.db, max_services_per_account=config.max_services_per_account,
                           upload_history_size=config.upload_history_size, clock=self.clock)
        # Parts (S3, ingest worker, journal, ...) plug in here instead of being known to this class.
        self._reset_hooks: list[Callable[[], None]] = []
        self._close_hooks: list[Callable[[], None]] = []
        self._readiness_checks: dict[str, Callable[[], tuple[bool, str]]] = {}
        self.add_reset_hook(self.clock.reset)  # a reset returns to real time
        self.journal = Journal(config.journal_size)
        self.faults = Faults()
        self.seed_status = "no start-up seed (default state)"
        self._startup_snapshot: Snapshot | None = None
        self._default_snapshot: Snapshot | None = None  # built on first use (see _default_target)
        self._snapshots: dict[str, Snapshot] = {}
        try:
            if not self.store.credentials.find_account_ids():
                self.load_default_state()
                self._apply_startup_seeds(config.seed)
            elif config.seed:
                # With --db, state survives restarts: seeds were applied when the database was new.
                self.seed_status = (f"{config.db} already holds state; start-up seeds not applied again "
                                    "(reset returns to the state it held at this start)")
        except BaseException:
            self.store.close()
            raise
        self.add_readiness_check("seed", lambda: (True, self.seed_status))

    def _apply_startup_seeds(self, paths: list[str]) -> None:
        if not paths:
            return
        from .seed import load_seed_file  # seeds need PyYAML: imported when there is one (faster start-up)

        applied = []
        for path in paths:
            counts = self.apply_seed(load_seed_file(path), source=path)
            applied.append(f"{path} ({', '.join(f'{k}={n}' for k, n in counts.items() if n)})")
        if applied:
            self.seed_status = "loaded " + "; ".join(applied)

    def apply_seed(self, seed: Any, source: str = "<seed>") -> dict[str, int]:
        """Add a parsed seed's state atomically (SeedError names the problem); returns what it created."""
        from .seed import apply_seed

        return apply_seed(self.store, seed, source=source, default_account_id=DEFAULT_ACCOUNT_ID)

    def mark_started(self) -> None:
        """Remember the current state as the start-up state that ``reset()`` returns to."""
        self._startup_snapshot = self.store.snapshot()

    def save_snapshot(self, name: str) -> None:
        """Remember the current state under ``name`` (``reset(name)`` returns to it); oldest of 32 dropped.

        Snapshots are kept in memory while together they fit in ``config.snapshot_memory_bytes``; the
        others go to (unlinked) temporary files, so 32 snapshots of a large database cannot hold
        gigabytes of RAM that the allocator might never return.
        """
        with self.store.lock:  # requests are served by several threads
            old = self._snapshots.pop(name, None)
            if old is not None:
                old.close()
            while len(self._snapshots) >= MAX_SNAPSHOTS:
                self._snapshots.pop(next(iter(self._snapshots))).close()
            held = sum(s.size for s in self._snapshots.values() if not s.on_disk)
            on_disk = bool(self.store.path) or held + self.store.size_bytes() > self.config.snapshot_memory_bytes
            self._snapshots[name] = self.store.snapshot(on_disk=on_disk)

    def snapshot_names(self) -> list[str]:
        """Names of the saved snapshots, oldest first."""
        return list(self._snapshots)

    def delete_snapshot(self, name: str) -> bool:
        """Forget a named snapshot; False when there is none of that name."""
        with self.store.lock:
            snap = self._snapshots.pop(name, None)
            if snap is not None:
                snap.close()
        return snap is not None

    def add_reset_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` on every reset (after the store is back to its start-up state)."""
        self._reset_hooks.append(hook)

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` when the emulator closes (stop background threads before the store closes)."""
        self._close_hooks.append(hook)

    def add_readiness_check(self, name: str, check: Callable[[], tuple[bool, str]]) -> None:
        """Report part ``name`` in /_emulator/health; ``check`` returns (ready, detail)."""
        self._readiness_checks[name] = check

    def load_default_state(self) -> None:
        """The state of a fresh emulator: one account with one token of each kind, nothing else."""
        load_default_state(self.store)

    @property
    def default_account_id(self) -> int:
        """The account the default (or first seeded) tokens belong to."""
        ids = self.store.credentials.find_account_ids()
        return DEFAULT_ACCOUNT_ID if DEFAULT_ACCOUNT_ID in ids or not ids else ids[0]

    def default_tokens(self) -> dict[str, str | None]:
        """One token of each kind of the default account (what /_emulator/info advertises)."""
        return self.store.credentials.first_tokens(self.default_account_id)

    def readiness(self) -> dict[str, dict[str, Any]]:
        """Each part's readiness: {"store": {"ready": bool, "detail": str}, ...}."""
        parts: dict[str, dict[str, Any]] = {}
        try:
            self.store.ping()
            parts["store"] = {"ready": True, "detail": self.config.db or "in memory"}
        except Exception as e:  # noqa: BLE001 - the probe reports any failure instead of raising it
            parts["store"] = {"ready": False, "detail": f"{type(e).__name__}: {e}"}
        for name, check in self._readiness_checks.items():
            try:
                ready, detail = check()
            except Exception as e:  # noqa: BLE001 - a failing check means "not ready", with the reason
                ready, detail = False, f"{type(e).__name__}: {e}"
            parts[name] = {"ready": bool(ready), "detail": detail}
        return parts

    def _default_target(self) -> Snapshot:
        """The pure default state (no start-up seed), built once in a scratch store.

        A scratch store rather than a copy of this one taken before the start-up seeds: with --db an
        existing database never was in the default state during this run, and it works the same for both.
        """
        if self._default_snapshot is None:
            scratch = Store(None)
            try:
                load_default_state(scratch)
                self._default_snapshot = scratch.snapshot()
            finally:
                scratch.close()
        return self._default_snapshot

    def _reset_target(self, snapshot: str | None, default: bool) -> Snapshot | None:
        """What a reset restores; None: no start-up copy (an Emulator used without create_app())."""
        if snapshot is not None:
            target = self._snapshots.get(snapshot)
            if target is None:
                raise NotFound(f"No snapshot named {snapshot!r}; save one with POST /_emulator/snapshots.",
                               field="snapshot")
            return target
        return self._default_target() if default else self._startup_snapshot

    def _restore(self, target: Snapshot | None) -> None:
        if target is None:
            self.store.clear()
            self.load_default_state()
        else:
            # Restoring a snapshot of the whole database is one step whatever its size, instead of
            # re-running seeds (1 ms for 10,000 profiles).
            self.store.restore(target)

    def _after_reset(self) -> None:
        self.journal.clear()
        self.faults.clear()
        for hook in self._reset_hooks:
            hook()

    def reset(self, snapshot: str | None = None, *, default: bool = False) -> None:
        """Back to the start-up state, the pure default state (``default=True``) or a named snapshot:
        database, journal, faults, then every reset hook."""
        with self.store.lock:  # a snapshot deleted meanwhile must not be restored half-closed
            self._restore(self._reset_target(snapshot, default))
        self._after_reset()

    def reset_and_seed(self, seed: Any, source: str = "<seed>", *, default: bool = False) -> dict[str, int]:
        """``reset()`` then ``apply_seed()`` as one step: if the seed is refused (SeedError), the state is
        exactly what it was before the call (database, journal, faults, S3 objects, uploads)."""
        with self.store.lock:  # nobody may see (or write to) the reset state of a seed that is then refused
            target = self._reset_target(None, default)
            before = self.store.snapshot()
            try:
                self._restore(target)
                counts = self.apply_seed(seed, source=source)
            except BaseException:
                self.store.restore(before)
                raise
            finally:
                before.close()
        self._after_reset()  # only now: journal, faults and S3 cannot be restored like the database
        return counts

    def close(self) -> None:
        """Stop the parts (reverse order of registration), then release the database."""
        for hook in reversed(self._close_hooks):
            hook()
        for snap in [self._startup_snapshot, self._default_snapshot, *self._snapshots.values()]:
            if snap is not None:
                snap.close()
        self.store.close()


def load_default_state(store: Store) -> None:
    """Write the state of a fresh emulator into ``store``: one account with one token of each kind, nothing else."""
    store.credentials.create_account(DEFAULT_ACCOUNT_ID, name="Default account")
    for kind, token in DEFAULT_TOKENS.items():
        store.credentials.create_token(token, kind, DEFAULT_ACCOUNT_ID)


def create_app(config: Config | None = None) -> Flask:
    """Build one independent emulator as a Flask app; no state is shared with other apps."""
    config = config or Config()
    config.validate()
    app = Flask("dcp_emulator", static_folder=None)  # no /static route: every path is API or 404
    app.url_rule_class = LazyBuilderRule  # 40 ms less per app: URL builders compiled only if ever used
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False
    app.url_map.strict_slashes = False
    app.wsgi_app = urls.without_trailing_slash(app.wsgi_app)  # one URL rule per route: see urls.py
    app.url_map.merge_slashes = False  # werkzeug would answer "a//b" with a 308: never redirect
    emulator = Emulator(config)
    app.extensions["dcp_emulator"] = emulator

    from .api.control import bp as control_bp
    from .api.management import bp as management_bp
    from .api.profiles import bp as profiles_bp

    app.register_blueprint(management_bp, url_prefix=urls.MANAGEMENT)
    app.register_blueprint(profiles_bp, url_prefix=urls.PROFILES)
    app.register_blueprint(control_bp, url_prefix=urls.CONTROL)
    from .api.ui import bp as ui_bp

    app.register_blueprint(ui_bp, url_prefix=urls.DASHBOARD)  # the web dashboard
    from .api.apidocs import bp as apidocs_bp

    app.register_blueprint(apidocs_bp, url_prefix=urls.API_DOCS)  # Swagger UI over the OpenAPI document

    from .bulk import install as install_bulk_import

    install_bulk_import(app, emulator)  # S3 endpoint on this app's port, ingest worker, /_emulator/uploads

    from .api.oauth import install as install_oauth

    install_oauth(app, emulator)  # /oauth2/authorize, /oauth2/token, /_emulator/oauth/..., /_emulator/clock

    new_request_id = request_id_source()

    @app.before_request
    def _request_id() -> None:
        g.request_id = request.headers.get("X-Request-Id") or new_request_id()

    from . import faults, journal

    journal.install(app, emulator)  # first: the journal times and records faulted requests too
    faults.install(app, emulator)
    if config.validate_responses:
        from . import contract

        contract.install(app, error_response)  # before _stamp, so it runs after it: sees the final response

    @app.after_request
    def _stamp(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "")
        if response.status_code == 204:
            # No body, so no content type (Flask would label the empty string text/html).
            response.headers.pop("Content-Type", None)
        return response

    @app.errorhandler(DcpError)
    def _dcp_error(e: DcpError) -> Response:
        return error_response(e)

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException) -> Response:
        cls = HTTP_STATUS_CLASSES.get(e.code or 500, InternalError)
        message = _HTTP_MESSAGES.get(e.code or 0) or (e.description or e.name)
        if e.code == 413:
            limit = request.max_content_length or config.max_body_bytes  # seeds have a larger limit of their own
            how = ("; raise it with --max-body-bytes (DCP_EMULATOR_MAX_BODY_BYTES)" if limit == config.max_body_bytes
                   else "")
            message = f"The request body is larger than the {limit:,} bytes this endpoint accepts{how}."
        err = cls(message)
        err.status = e.code or 500
        resp = error_response(err)
        if e.code == 405 and hasattr(e, "valid_methods") and e.valid_methods:
            resp.headers["Allow"] = ", ".join(sorted(e.valid_methods))
        return resp

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(InternalError(f"Internal emulator error ({type(e).__name__}: {e}). This is a bug in "
                                            "dcp-emulator; please report it with this request id."))

    # Last: every part has created its tables by now, so the snapshot that reset() restores holds them.
    emulator.mark_started()
    return app


def request_id_source() -> Callable[[], str]:
    """New request ids shaped like ``uuid4().hex`` (32 hex digits), unique per app: a random prefix and a
    counter. ``uuid4()`` cost ~10 us per request (os.urandom and a UUID object); ids must be unique, not secret."""
    prefix = secrets.token_hex(10)
    counter = itertools.count()
    return lambda: f"{prefix}{next(counter):012x}"


_HTTP_MESSAGES = {
    404: "No such route. The management API is under /experiment/v1/, the profile API under /api/, the emulator's "
         "own endpoints under /_emulator/.",
    405: "This route does not accept this HTTP method.",
}


def error_response(err: DcpError) -> Response:
    """Render any DcpError as the one JSON error envelope: status, code, message, field (when one field is at
    fault) and request_id."""
    body = err.to_dict()
    body["request_id"] = g.get("request_id") or uuid.uuid4().hex
    # A trailing newline, as Flask's jsonify gives success bodies (a shell prompt after curl stays on its line).
    resp = Response(json.dumps(body) + "\n", status=err.status, mimetype="application/json")
    for k, v in err.headers.items():
        resp.headers[k] = v
    return resp
