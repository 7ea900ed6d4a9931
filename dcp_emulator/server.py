"""Serving an emulator on a real port with waitress, in the foreground or in a thread.

Waitress reads every request (line, headers and body) on one asynchronous I/O thread and hands only
complete requests to its worker threads: a slow or half-open client holds a socket, never a worker,
and idle sockets are closed after ``idle_timeout``. Bodies over 512 KiB are spooled to a temporary
file, so ``wsgi.input`` is always a readable, EOF-terminated stream of the whole body.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable

import waitress
from flask import Flask
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask, WSGITask

from . import urls
from .app import create_app
from .bulk import IMPORT_BUCKET
from .config import Config
from .errors import HTTP_STATUS_CLASSES, DcpError

# Sockets kept free for the database, spooled bodies and the ingest worker when the connection limit
# is derived from the process's file-descriptor limit.
_RESERVED_FDS = 64
_MAX_CONNECTIONS = 10_000


# Codes of the refusals only the server itself gives (the others share the app's classes and codes).
_SERVER_ERROR_CODES = {431: "headers_too_large", 501: "not_implemented", 505: "http_version_not_supported"}


def _write_envelope(task, status: int, reason: str, message: str) -> None:
    """Answer ``task``'s request with the emulator's JSON error envelope, then close the connection."""
    err = HTTP_STATUS_CLASSES.get(status, DcpError)(message)
    err.status = status
    err.code = _SERVER_ERROR_CODES.get(status, err.code)
    body = json.dumps({**err.to_dict(), "request_id": uuid.uuid4().hex}).encode() + b"\n"
    task.status = f"{status} {reason}"
    task.complete = True  # the status and headers are final (what start_response marks in a WSGI task)
    task.response_headers.append(("Content-Type", "application/json"))
    task.set_close_on_finish()
    task.content_length = len(body)
    task.write(body)


class _EnvelopeErrorTask(ErrorTask):
    """Waitress's own refusals (bad request line, headers too large, body over the limit) as our JSON envelope,
    or as S3's XML EntityTooLarge for an S3 upload over the limit."""

    def execute(self) -> None:
        """Write the parser's error as the envelope (or S3's error)."""
        error = self.request.error
        if error.code == 413 and self._is_s3_request():
            return self._s3_too_large()
        _write_envelope(self, error.code, error.reason, f"{error.reason}: {error.body.rstrip('.')}.")

    def _is_s3_request(self) -> bool:
        from .s3 import S3Gateway  # botocore is imported on first need, not when serving starts

        request = self.request
        headers = request.headers
        return S3Gateway.is_s3_request({"PATH_INFO": request.path or "/", "QUERY_STRING": request.query or "",
                                        "HTTP_HOST": headers.get("HOST", ""),
                                        "HTTP_AUTHORIZATION": headers.get("AUTHORIZATION", "")})

    def _s3_too_large(self) -> None:
        from .s3 import S3Gateway
        from .s3_body import too_large

        limit = self.channel.server.dcp_max_object_bytes
        try:
            proposed = int(self.request.headers.get("CONTENT_LENGTH", ""))
        except ValueError:
            proposed = limit + 1  # chunked: at least one byte over

        def start_response(status: str, headers: list) -> None:
            self.status = status
            self.response_headers.extend(headers)

        body = b"".join(S3Gateway._error(start_response, too_large(proposed, limit), self.request.path or "/",
                                         uuid.uuid4().hex[:16].upper(), self.request.command))
        self.complete = True
        self.set_close_on_finish()
        self.write(body)


class _Task(WSGITask):
    """A WSGI task that refuses HTTP versions other than 1.x and shows a chunked request as chunked."""

    def execute(self) -> None:
        """Run the app, unless the request line names an HTTP version this server does not speak."""
        if self.request.version not in ("1.0", "1.1"):
            # Waitress would answer an "HTTP/2.0" request line as HTTP/1.0; say what is wrong instead.
            _write_envelope(self, 505, "HTTP Version Not Supported",
                            f"HTTP/{self.request.version} is not supported: the emulator speaks HTTP/1.1 "
                            "(and 1.0) in plain text.")
            return
        super().execute()

    def get_environment(self) -> dict:
        """Waitress's environ, with Transfer-Encoding restored for chunked bodies.

        Waitress de-chunks a body and invents its Content-Length. S3 refuses a chunked PutObject without
        a decoded length (MissingContentLength); the gateway can only say so if it sees what was sent.
        """
        environ = super().get_environment()
        environ[_CLOSE_CONNECTION] = self.set_close_on_finish
        if self.request.chunked and "HTTP_TRANSFER_ENCODING" not in environ:
            environ["HTTP_TRANSFER_ENCODING"] = "chunked"
            environ.pop("CONTENT_LENGTH", None)
        return environ


class _Parser(HTTPRequestParser):
    """Waitress's request parser, without a hang: given ``Expect: 100-continue`` and no body (boto3 sends
    ``Content-Length: 0`` so for an empty object), waitress answers 100 Continue and then marks the complete
    request incomplete, waiting for a body that never comes. A request without a body has nothing to go on
    with: it is served at once (RFC 9110 10.1.1 lets a server skip the 100 when it needs no body)."""

    def parse_header(self, header_plus: bytes) -> None:
        """Parse the header block; a request without a body expects no 100 Continue."""
        super().parse_header(header_plus)
        if self.expect_continue and self.body_rcv is None:
            self.expect_continue = False


class _Channel(HTTPChannel):
    """One client connection, answering errors with the JSON envelope."""

    parser_class = _Parser
    task_class = _Task
    error_task_class = _EnvelopeErrorTask


_CLOSE_CONNECTION = "dcp_emulator.close_connection"  # environ key: call it to close after the response


def _evict_idle_when_full(listener: BaseWSGIServer) -> None:
    """At the connection limit, close the longest-idle connections instead of refusing new ones.

    Waitress stops accepting at its limit, so 300 idle keep-alive or half-open sockets under a low
    file-descriptor limit would leave every new client waiting in the backlog until the idle timeout.
    """
    accept_if_room = listener.readable

    def readable() -> bool:
        if listener.accepting and len(listener._map) >= listener.adj.connection_limit:
            # Idle: no request being served or waiting (a half-received one does not count), nothing to send.
            idle = [c for c in listener.active_channels.values()
                    if not c.requests and not c.total_outbufs_len and not c.will_close]
            idle.sort(key=lambda c: c.last_activity)
            for channel in idle[:max(1, len(idle) // 10)]:
                channel.will_close = True  # closed by the loop on its next turn
        return accept_if_room()

    listener.readable = readable


def _connection_header(app: Callable) -> Callable:
    """Let ``app`` answer "Connection: close" (e.g. after an unread upload), which PEP 3333 forbids an
    application to send: the header is dropped and the server closes the connection itself."""

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        def start(status: str, headers: list, exc_info=None):
            kept = [(name, value) for name, value in headers if name.lower() != "connection"]
            if len(kept) != len(headers) and _CLOSE_CONNECTION in environ:
                environ[_CLOSE_CONNECTION]()
            return start_response(status, kept, exc_info)

        return app(environ, start)

    return wrapped


def _access_log(app: Callable) -> Callable:
    """Wrap ``app`` to print one line per request to stderr (waitress, unlike werkzeug, logs none)."""

    def logged(environ: dict, start_response: Callable) -> Iterable[bytes]:
        def start(status: str, headers: list, exc_info=None):
            query = environ.get("QUERY_STRING")
            target = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
            if len(target) > 200:  # a 64 KiB URI must not make a 64 KiB log line
                target = target[:200] + f"...({len(target)} characters)"
            stamp = time.strftime("%d/%b/%Y %H:%M:%S")
            print(f'{environ.get("REMOTE_ADDR", "-")} - - [{stamp}] "{environ.get("REQUEST_METHOD")} {target} '
                  f'{environ.get("SERVER_PROTOCOL")}" {status.split(" ", 1)[0]}', file=sys.stderr, flush=True)
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return logged


def connection_limit() -> int:
    """Open connections allowed: what the file-descriptor limit leaves after a reserve, at most 10,000."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_CONNECTIONS
    return max(16, min(_MAX_CONNECTIONS, soft - _RESERVED_FDS))


class EmulatorServer:
    """An emulator app bound to a real socket; ``url`` is where it answers."""

    def __init__(self, config: Config, app: Flask | None = None):
        self.config = config
        self.app = app or create_app(config)
        wsgi = _connection_header(self.app)
        if config.log_requests:
            wsgi = _access_log(wsgi)
        try:
            self.server = waitress.create_server(
                wsgi, host=config.host, port=config.port, ident="dcp-emulator",
                threads=config.threads,
                channel_timeout=config.idle_timeout,
                # How often idle connections are looked for: a timed-out one closes within 1.25x the timeout.
                cleanup_interval=max(1, config.idle_timeout // 4),
                connection_limit=connection_limit(),
                asyncore_use_poll=True,  # select() cannot watch descriptors above 1023
                # Waitress's own cap on a body; the S3 gateway and the JSON API apply the real limits
                # (with their own error formats) once the body is read.
                max_request_body_size=max(config.max_object_bytes, config.max_body_bytes) + (1 << 20),
                clear_untrusted_proxy_headers=False,  # X-Forwarded-* are signed S3 headers like any other
                # Read the socket 256 KiB at a time, not 8 KiB: a 1 GB upload body is then 4,000 trips
                # through waitress's I/O loop instead of 130,000 (memory per connection stays small).
                recv_bytes=256 * 1024,
            )
        except BaseException:
            self.emulator.close()
            raise
        # A single listener keeps its socket map in _map, several (host "localhost": IPv4 and IPv6) in map.
        self._map: dict = getattr(self.server, "map", None) or self.server._map
        self._listeners = [s for s in self._map.values() if isinstance(s, BaseWSGIServer)]
        for listener in self._listeners:
            listener.channel_class = _Channel
            listener.dcp_max_object_bytes = config.max_object_bytes  # what _EnvelopeErrorTask names
            _evict_idle_when_full(listener)
        self.port: int = int(self._listeners[0].effective_port)  # waitress keeps it as a string
        self._thread: threading.Thread | None = None
        self._stop_requested = False

    @property
    def url(self) -> str:
        """The base URL clients should use (loopback when bound to every interface)."""
        host = self.config.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def emulator(self):
        """The Emulator instance served."""
        return self.app.extensions["dcp_emulator"]

    def serve_forever(self) -> None:
        """Serve in this thread until ``stop()`` from another thread, or KeyboardInterrupt (re-raised).

        The CLI's SIGTERM handler raises KeyboardInterrupt: waitress's own ``run()`` would then wait up to
        5 s for running requests, and a container must stop within 1 s.
        """
        try:
            while self._map and not self._stop_requested:
                # One poll at a time (waitress's loop runs until its map is empty), so a stop request is
                # seen within the poll timeout even if the trigger that wakes the loop cannot be pulled.
                wasyncore.poll2(0.5, self._map)
        finally:
            self._close_all()

    def stop(self) -> None:
        """Ask the serving loop (in any thread) to close every socket and return; returns at once."""
        self._stop_requested = True
        try:
            self._listeners[0].trigger.pull_trigger()  # wake the loop now rather than at its next timeout
        except OSError:
            pass  # the loop has closed its sockets already

    def _close_all(self) -> None:
        for dispatcher in list(self._map.values()):
            dispatcher.close()
        self._map.clear()

    def start(self) -> EmulatorServer:
        """Serve in a daemon thread and return at once (used by the pytest plugin and tests)."""
        self._thread = threading.Thread(target=self.serve_forever, name=f"dcp-emulator:{self.port}", daemon=True)
        self._thread.start()
        return self

    def shutdown(self, grace: float = 0.5) -> None:
        """Stop serving, give running requests ``grace`` seconds, then release the emulator's resources."""
        if self._thread is not None:
            self.stop()
            self._thread.join(timeout=10)
            self._thread = None
        self._close_all()  # also when it never served
        # Requests already running finish if they can within the grace time; the store's transactions
        # make any that cannot all-or-nothing, and an interrupted bulk upload resumes at the next start.
        self._listeners[0].task_dispatcher.shutdown(cancel_pending=True, timeout=grace)
        self.emulator.close()

    def banner(self) -> str:
        """The start-up text: URLs, default token, seeds loaded and where state lives."""
        info = self.emulator
        tokens = info.default_tokens()
        url = self.url
        lines = [
            f"dcp-emulator {info.version} listening on {url} (bound to {self.config.host}:{self.port})",
            f"  management API   {url}{urls.MANAGEMENT}/",
            f"  profile API      {url}{urls.PROFILES}/",
            f"  S3 endpoint      {url}  (bucket {IMPORT_BUCKET}, path-style; same port)",
            f"  control plane    {url}{urls.CONTROL}/  (info, health, ...)",
            f"  dashboard        {url}{urls.DASHBOARD}",
            f"  API docs         {url}{urls.API_DOCS}",
            f"  account id       {info.default_account_id}",
            f"  classic token    {tokens.get('classic')}    (send as header 'Token: ...')",
            f"  OAuth token      {tokens.get('oauth')}    (send as 'Authorization: Bearer ...')",
            f"  seeds            {info.seed_status}",
            f"  state            {self.config.db or 'in memory (use --db FILE to keep it)'}",
            "Press Ctrl-C to stop.",
        ]
        return "\n".join(lines)
