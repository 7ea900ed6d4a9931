"""Serving an emulator on a real port: a threaded werkzeug WSGI server, in the foreground or a thread."""

from __future__ import annotations

import threading

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import create_app
from .config import Config


class _QuietHandler(WSGIRequestHandler):
    """A request handler that does not log every request (the journal records them)."""

    def log_request(self, *args, **kwargs) -> None:
        """Skip werkzeug's per-request log line."""


class EmulatorServer:
    """An emulator app bound to a real socket; ``url`` is where it answers."""

    def __init__(self, config: Config, app: Flask | None = None):
        self.config = config
        self.app = app or create_app(config)
        handler = WSGIRequestHandler if config.log_requests else _QuietHandler
        self.server: BaseWSGIServer = make_server(config.host, config.port, self.app, threaded=True,
                                                  request_handler=handler)
        self.port: int = self.server.port
        self._thread: threading.Thread | None = None

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
        """Serve in this thread until ``shutdown()`` (or Ctrl-C in the caller)."""
        self.server.serve_forever()

    def start(self) -> EmulatorServer:
        """Serve in a daemon thread and return at once (used by the pytest plugin and tests)."""
        # A short poll interval makes shutdown() take ~50 ms instead of 0.5 s (test sessions end faster).
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"dcp-emulator:{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving, then release the emulator's resources."""
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.server.server_close()
        self.emulator.close()

    def banner(self) -> str:
        """The start-up text: URLs, default token and where state lives."""
        info = self.emulator
        tokens = info.default_tokens()
        url = self.url
        lines = [
            f"dcp-emulator {info.version} listening on {url} (bound to {self.config.host}:{self.port})",
            f"  management API   {url}/experiment/v1/",
            f"  profile API      {url}/api/",
            f"  control plane    {url}/_emulator/  (info, health, ...)",
            f"  dashboard        {url}/_emulator/ui",
            f"  account id       {info.default_account_id}",
            f"  classic token    {tokens.get('classic')}    (send as header 'Token: ...')",
            f"  OAuth token      {tokens.get('oauth')}    (send as 'Authorization: Bearer ...')",
            f"  state            {self.config.db or 'in memory (use --db FILE to keep it)'}",
            "Press Ctrl-C to stop.",
        ]
        return "\n".join(lines)
