"""Bulk import wiring: the ingest worker, the upload endpoints, and the S3 endpoint started in the background.

The S3 endpoint (``s3.S3Gateway``: moto's S3 app behind our SigV4 checks) costs about 0.2 s of imports
(moto, botocore) and set-up, while an emulator's first requests -- the pytest fixture's reset, an
integration's first profile call -- need none of it. So ``install`` wires everything that must exist
before the first request (routes, hooks, the WSGI dispatch) at once, and builds the gateway in a
thread. Whatever needs the gateway waits for it: an S3 request, ``emulator.s3``, the ``s3`` part of
/_emulator/health (which therefore reports ready only once S3 really is), closing the emulator.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

IMPORT_BUCKET = "optimizely-import"
# Paths that always belong to the emulator's own APIs, never to S3 (an S3 client could never send them
# for our only bucket anyway).
OWN_PREFIXES = ("/experiment/", "/api/", "/_emulator/", "/oauth2/")
START_TIMEOUT = 120.0  # seconds anything waits for the S3 endpoint to finish starting


class BackgroundGateway:
    """Stands for the emulator's ``S3Gateway`` while a thread builds it; every use waits until it is built."""

    def __init__(self, build: Callable[[], Any]):
        self._build = build
        self._gateway: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dcp-emulator-s3-start", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._gateway = self._build()
        except BaseException as e:  # noqa: BLE001 - kept, and raised to whoever needs the gateway
            self._error = e
        finally:
            self._done.set()

    def get(self, timeout: float = START_TIMEOUT) -> Any:
        """The gateway, once built (raises if it could not be built, or is not built within ``timeout``)."""
        if not self._done.wait(timeout):
            raise RuntimeError(f"the S3 endpoint is still starting after {timeout:g} s")
        if self._error is not None:
            raise RuntimeError(f"the S3 endpoint failed to start: {type(self._error).__name__}: "
                               f"{self._error}") from self._error
        return self._gateway

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)

    def reset(self) -> None:
        """Empty the bucket; before the gateway exists there is nothing to empty (nobody could upload)."""
        if self._done.is_set() and self._gateway is not None:
            self._gateway.reset()

    def readiness(self) -> tuple[bool, str]:
        """The gateway's readiness, waiting for it to be built."""
        return self.get().readiness()

    def close(self) -> None:
        """Wait for the build (a late one would leave a moto account behind), then close the gateway."""
        self._done.wait(START_TIMEOUT)
        if self._gateway is not None:
            self._gateway.close()

    def middleware(self, app: Callable) -> Callable:
        """A WSGI callable sending S3 requests to the gateway and everything else to ``app``; requests
        for the emulator's own API paths never wait for the gateway."""

        routed: list[Callable] = []  # the gateway's own dispatch, once built

        def dispatch(environ: dict, start_response: Callable) -> Iterable[bytes]:
            if (environ.get("PATH_INFO") or "/").startswith(OWN_PREFIXES):
                return app(environ, start_response)
            if not routed:
                routed.append(self.get().middleware(app))
            return routed[0](environ, start_response)

        return dispatch


def install(app: Any, emulator: Any) -> BackgroundGateway:
    """Give an emulator its bulk import: ingest worker, S3 endpoint on the app's port, upload endpoints."""
    from .api.uploads import bp as uploads_bp
    from .ingest import Ingestor

    config = emulator.config
    ingestor = Ingestor(emulator.store, db_path=config.db, batch_rows=config.ingest_batch_rows,
                        error_limit=config.upload_error_limit)

    def build() -> Any:
        from .s3 import S3Gateway

        return S3Gateway(emulator.store, ingestor, config.max_object_bytes)

    gateway = BackgroundGateway(build)
    emulator.ingestor, emulator.s3 = ingestor, gateway
    emulator.add_close_hook(ingestor.close)  # close hooks run in reverse: S3 stops first, then the worker
    emulator.add_close_hook(gateway.close)
    emulator.add_reset_hook(gateway.reset)
    emulator.add_reset_hook(ingestor.reset)
    emulator.add_readiness_check("s3", gateway.readiness)
    emulator.add_readiness_check("ingest", ingestor.readiness)
    app.register_blueprint(uploads_bp, url_prefix="/_emulator")
    app.wsgi_app = gateway.middleware(app.wsgi_app)
    ingestor.start()
    return gateway
