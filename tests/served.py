"""Run ``python -m dcp_emulator serve`` as a real subprocess for tests that need the served process.

The port is chosen by the emulator (``--port 0``) and parsed from its start-up banner, so tests
never race for ports.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

import requests

ROOT = Path(__file__).resolve().parent.parent
BANNER_RE = re.compile(r"listening on (http://\S+?) ")


class ServedEmulator:
    """One ``python -m dcp_emulator serve`` subprocess; ``url`` is its base URL once started."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, port_arg: bool = True,
                 cwd: Path | None = None):
        self.args = list(args)
        self.cwd = cwd or ROOT
        if port_arg and "--port" not in self.args:
            self.args += ["--port", "0"]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._banner = threading.Event()

    def _drain(self, stream, sink: list[str]) -> None:
        # Read continuously so a chatty request log can never fill the pipe and block the server.
        for line in stream:
            sink.append(line)
            if sink is self.stdout and BANNER_RE.search(line):
                self.url = BANNER_RE.search(line).group(1)
                self._banner.set()
        stream.close()

    def start(self, timeout: float = 20) -> ServedEmulator:
        """Start the process and wait until its banner is printed and /_emulator/health answers."""
        self.proc = subprocess.Popen([sys.executable, "-m", "dcp_emulator", "serve", *self.args], cwd=self.cwd,
                                     env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._drain, args=(stream, sink), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._banner.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"emulator did not start: {''.join(self.stdout)}{''.join(self.stderr)}")
        while requests.get(self.url + "/_emulator/health", timeout=5).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("emulator never became healthy")
            time.sleep(0.05)
        return self

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> int:
        """Send ``sig`` and wait for the exit; returns the exit code (kills it if it hangs)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        time.sleep(0.05)  # let the drain threads read the last lines
        return self.proc.returncode

    @property
    def output(self) -> str:
        """Everything the process printed so far (stdout then stderr)."""
        return "".join(self.stdout) + "".join(self.stderr)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
