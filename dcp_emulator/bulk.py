"""Bulk import wiring: the ingest worker, the upload endpoints, and the S3 endpoint started on first need.

The S3 endpoint (``s3.S3Gateway``: moto's S3 app behind our SigV4 checks) costs about 0.25 s of CPU
for imports (moto, botocore) and set-up, while an emulator's first requests -- the pytest fixture's
reset, an integration's first profile call -- need none of it. So ``install`` wires at once everything
that must exist before the first request (routes, hooks, the WSGI dispatch), and the gateway is built
the first time something needs it: an S3 request, ``emulator.s3``, or the ``s3`` part of
/_emulator/health, which therefore reports ready only once S3 really is. (Building it in a thread at
start-up instead would compete for the GIL with those first requests and slow them by ~0.1 s.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from . import urls

IMPORT_BUCKET = "optimizely-import"


class LazyGateway:
    """Stands for the emulator's ``S3Gateway``, building it on first use (concurrent first users wait)."""

    def __init__(self, build: Callable[[], Any]):
        self._build = build
        self._gateway: Any = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        """Whether the gateway exists (or its one attempt failed)."""
        return self._gateway is not None or self._error is not None

    def get(self) -> Any:
        """The gateway, built now if it is not yet (raises if it cannot be built)."""
        if not self.built:
            with self._lock:
                if not self.built:
                    try:
                        self._gateway = self._build()
                    except Exception as e:  # noqa: BLE001 - kept, and raised to whoever needs the gateway
                        self._error = e
        if self._error is not None:
            raise RuntimeError(f"the S3 endpoint failed to start: {type(self._error).__name__}: "
                               f"{self._error}") from self._error
        return self._gateway

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)

    def reset(self) -> None:
        """Empty the bucket; before the gateway exists there is nothing to empty (nobody could upload)."""
        with self._lock:  # a build in progress finishes first: its bucket is new and empty anyway
            gateway = self._gateway
        if gateway is not None:
            gateway.reset()

    def readiness(self) -> tuple[bool, str]:
        """The gateway's readiness (building it first)."""
        return self.get().readiness()

    def close(self) -> None:
        """Close the gateway, if it was ever built."""
        with self._lock:
            gateway = self._gateway
        if gateway is not None:
            gateway.close()

    def middleware(self, app: Callable) -> Callable:
        """A WSGI callable sending S3 requests to the gateway and everything else to ``app``; requests
        for the emulator's own API paths never build or wait for the gateway."""
        routed: list[Callable] = []  # the gateway's own dispatch, once built

        def dispatch(environ: dict, start_response: Callable) -> Iterable[bytes]:
            if (environ.get("PATH_INFO") or "/").startswith(urls.OWN_PREFIXES):
                return app(environ, start_response)
            if not routed:
                routed.append(self.get().middleware(app))
            return routed[0](environ, start_response)

        return dispatch


def install(app: Any, emulator: Any) -> LazyGateway:
    """Give an emulator its bulk import: ingest worker, S3 endpoint on the app's port, upload endpoints."""
    from .api.uploads import bp as uploads_bp
    from .ingest import Ingestor

    config = emulator.config
    ingestor = Ingestor(emulator.store, db_path=config.db, batch_rows=config.ingest_batch_rows,
                        error_limit=config.upload_error_limit)
    # Object buffers a killed process left in the spool directory go now, as the gateway would at its
    # start (it may never be built in this run); a light import, unlike the gateway's.
    from .s3_body import BufferDir

    BufferDir(ingestor.spool_dir)

    def build() -> Any:
        from .s3 import S3Gateway

        return S3Gateway(emulator.store, ingestor, config.max_object_bytes)

    gateway = LazyGateway(build)
    emulator.ingestor, emulator.s3 = ingestor, gateway
    emulator.add_close_hook(ingestor.close)  # close hooks run in reverse: S3 stops first, then the worker
    emulator.add_close_hook(gateway.close)
    emulator.add_reset_hook(gateway.reset)
    emulator.add_reset_hook(ingestor.reset)
    emulator.add_readiness_check("s3", gateway.readiness)
    emulator.add_readiness_check("ingest", ingestor.readiness)
    app.register_blueprint(uploads_bp, url_prefix=urls.CONTROL)
    app.wsgi_app = gateway.middleware(app.wsgi_app)
    ingestor.start()
    return gateway
