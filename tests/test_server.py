"""The HTTP server under the emulator (waitress), through raw sockets where the protocol matters: slow and
idle clients, unread bodies, malformed requests, and stopping while a request runs."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

import pytest
import requests
from served import ServedEmulator

from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import Config
from dcp_emulator.server import EmulatorServer

H = {"Token": DEFAULT_TOKENS["classic"]}


@pytest.fixture(scope="module")
def server():
    srv = EmulatorServer(Config(port=0, log_requests=False, idle_timeout=2)).start()
    yield srv
    srv.shutdown()


def _connect(url: str, timeout: float = 10) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def _exchange(url: str, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` and read until the server closes the connection (a socket timeout fails the test)."""
    with _connect(url, timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _envelope(raw: bytes) -> tuple[int, dict, bytes]:
    """(status, JSON body, raw head) of one response; asserts the body is the emulator's JSON envelope."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    doc = json.loads(body)
    assert doc["status"] == status and doc["code"] and doc["message"] and doc["request_id"], doc
    return status, doc, head


# ---------------------------------------------------------------------- slow, idle and half-open clients
def _stall(url: str, how: bytes, count: int) -> list[socket.socket]:
    stalled = []
    for _ in range(count):
        s = _connect(url)
        if how:
            s.sendall(how)
        stalled.append(s)
    return stalled


HALF_REQUESTS = [
    b"",  # connected, nothing sent
    b"POST /experiment/v1/dcp_services HTTP/1.1\r\nHost: x\r\nCont",  # half the headers
    b"POST /experiment/v1/dcp_services HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"na",  # half the body
]


def test_slow_and_idle_clients_do_not_delay_other_requests_served_cli():
    """300 connections that sent nothing, half the headers or half the body, and the served CLI still answers
    every request at once: waitress reads requests on its I/O loop, a stalled one holds no worker thread."""
    with ServedEmulator("--quiet", "--threads", "4") as emu:
        stalled = [s for how in HALF_REQUESTS for s in _stall(emu.url, how, 100)]
        try:
            with requests.Session() as api:
                for n in range(20):
                    resp = api.post(emu.url + "/experiment/v1/dcp_services", json={"name": f"s{n}"}, headers=H,
                                    timeout=5)
                    assert resp.status_code in (201, 400), resp.text  # 400: one service per account
                    assert api.get(emu.url + "/_emulator/health", timeout=5).status_code == 200
        finally:
            for s in stalled:
                s.close()


def test_300_idle_connections_under_a_low_file_descriptor_limit_do_not_lock_others_out():
    """Under 'ulimit -n 160' (connection limit 96) the longest-idle connections are closed to make room,
    rather than every new client waiting in the backlog until the idle timeout."""
    import os
    import subprocess
    import sys

    from served import BANNER_RE, ROOT
    command = f"ulimit -n 160 && exec '{sys.executable}' -m dcp_emulator serve --port 0 --quiet"
    proc = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    stalled: list[socket.socket] = []
    try:
        url = next(BANNER_RE.search(line).group(1) for line in proc.stdout if BANNER_RE.search(line))
        for how in HALF_REQUESTS:
            stalled += _stall(url, how, 100)
        for _ in range(5):
            assert requests.get(url + "/_emulator/health", timeout=10).status_code == 200
        closed = 0
        for s in stalled:  # the oldest were closed by the server to make room
            s.setblocking(False)
            try:
                closed += s.recv(1) == b""
            except BlockingIOError:
                pass
            except ConnectionError:
                closed += 1
        assert closed > 0
    finally:
        for s in stalled:
            s.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


@pytest.mark.parametrize("how", HALF_REQUESTS, ids=["silent", "half-headers", "half-body"])
def test_idle_and_stalled_connections_are_closed_after_the_idle_timeout(server, how):
    with _connect(server.url, timeout=15) as s:
        if how:
            s.sendall(how)
        assert s.recv(1024) == b""  # closed by the server (idle_timeout=2); a socket timeout would fail here


def test_idle_timeout_option_and_variable():
    assert Config.from_env({"DCP_EMULATOR_IDLE_TIMEOUT": "5", "DCP_EMULATOR_THREADS": "8"}).idle_timeout == 5
    with pytest.raises(ValueError, match="idle-timeout"):
        Config(idle_timeout=0).validate()
    with pytest.raises(ValueError, match="threads"):
        Config(threads=0).validate()


# ---------------------------------------------------------------------- bodies and framing
def test_an_unread_body_over_64_kib_with_connection_close_closes_the_socket(server):
    """The 401 is decided before the body is parsed; the client reading to EOF must still get EOF."""
    body = b"x" * (200 * 1024)
    raw = _exchange(server.url, b"POST /experiment/v1/dcp_services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    status, doc, head = _envelope(raw)
    assert status == 401 and doc["code"] == "unauthorized"
    assert b"connection: close" in head.lower()


def test_an_unread_body_over_64_kib_on_a_kept_alive_connection_does_not_corrupt_the_next_request(server):
    body = b"y" * (100 * 1024)
    request = (b"POST /experiment/v1/dcp_services HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    health = b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    raw = _exchange(server.url, request + health)
    assert raw.startswith(b"HTTP/1.1 401") and raw.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 200" in raw


def test_two_different_content_length_headers_are_refused_not_hung(server):
    raw = _exchange(server.url, b"POST /experiment/v1/dcp_services HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                    b"Content-Length: 6\r\n\r\nabcdef")
    status, doc, _ = _envelope(raw)
    assert status == 400 and doc["code"] == "bad_request" and "Content-Length is invalid" in doc["message"]


@pytest.mark.parametrize("body", [b"", b"{}"])
def test_expect_100_continue_is_answered_with_or_without_a_body(server, body):
    """boto3 sends an empty object as Content-Length: 0 with Expect: 100-continue; waitress alone sends the
    100 and then waits forever for the body it just saw was empty."""
    with _connect(server.url, timeout=5) as s:
        s.sendall(b"POST /experiment/v1/dcp_services HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        first = s.recv(65536)
        if body:  # a body: the client goes on once it is told to
            assert first == b"HTTP/1.1 100 Continue\r\n\r\n"
            s.sendall(body)
            first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 401 "), first  # answered (no token), not left hanging


# ---------------------------------------------------------------------- malformed requests get the envelope
@pytest.mark.parametrize(("request_bytes", "status", "code", "words"), [
    (b"GARBAGE\r\n\r\n", 400, "bad_request", "Start line is invalid"),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported", "HTTP/2.0 is not supported"),
    (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported", "HTTP/3.0 is not supported"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not_implemented",
     "Transfer-Encoding requested is not supported"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * (256 * 1024) + b"\r\n\r\n", 431, "headers_too_large",
     "Request Header Fields Too Large"),
    # Just over the 256 KiB header limit: a client that goes on sending far past it gets the answer and
    # then a reset (waitress stops reading at the limit), which a test cannot read reliably.
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 60) for i in range(3780)) + b"\r\n",
     431, "headers_too_large", "Request Header Fields Too Large"),
    # Within the server's limits these reach the app, which answers with its own envelope.
    (b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, "not_found", "No such route"),
    (b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(1000))
     + b"\r\n", 404, "not_found", "No such route"),
], ids=["bad-request-line", "http-2.0", "http-3.0", "unknown-transfer-encoding", "one-huge-header",
        "too-many-headers", "64-KiB-URI", "1000-small-headers"])
def test_malformed_requests_get_the_json_envelope(server, request_bytes, status, code, words):
    raw = _exchange(server.url, request_bytes)
    got_status, doc, _ = _envelope(raw)
    assert (got_status, doc["code"]) == (status, code), doc
    assert words in doc["message"]


# ---------------------------------------------------------------------- stopping
def test_sigterm_stops_the_served_cli_at_once_even_during_a_long_request():
    emu = ServedEmulator("--quiet").start()
    try:
        rule = {"path": "^/_emulator/info$", "latency_ms": 20_000}
        assert requests.post(emu.url + "/_emulator/faults", json=rule, timeout=5).status_code in (200, 201)
        slow = threading.Thread(target=lambda: _swallow(requests.get, emu.url + "/_emulator/info", timeout=30))
        slow.start()
        time.sleep(0.3)  # the request is now sleeping in a worker thread
        emu.proc.send_signal(signal.SIGTERM)
        rc = emu.proc.wait(timeout=5)  # waitress's own run() would wait 5 s for that worker
    finally:
        emu.stop()
    slow.join(timeout=30)
    assert rc == 0 and "dcp-emulator: stopping." in emu.output and "Traceback" not in emu.output, emu.output


def _swallow(fn, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except requests.RequestException:
        pass  # the server went away mid-request: that is the point


def test_shutdown_of_a_server_that_never_served_releases_its_port():
    srv = EmulatorServer(Config(port=0, log_requests=False))
    port = srv.port
    srv.shutdown()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # would raise EADDRINUSE if the listener were left open
