"""The request journal: recent API requests, kept so a test can assert what its integration sent.

Bounded (``config.journal_size`` entries, oldest dropped) so a long soak never grows memory without
limit, and thread-safe (the server is threaded). The control plane (/_emulator/) is not recorded.

Recording is on every API request's path, so it keeps only raw parts (a ``Recorded``: header pairs,
body bytes cut to what an entry can show); headers are lower-cased and bodies decoded and parsed
when someone reads the journal, once per entry.
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import threading
import time
from collections.abc import Iterable
from typing import Any

import re2
from flask import Flask, Response, g, request
from werkzeug.datastructures import EnvironHeaders

from . import urls
from .auth import presented_token
from .clock import format_timestamp
from .errors import InvalidField

BODY_LIMIT = 4096  # characters of each request/response body kept in an entry
_CAPTURE_LIMIT = 64 * 1024  # larger request bodies (S3 uploads) are not read back for the journal
# Bytes of a body kept: a UTF-8 character is at most 4 bytes, so this prefix decodes to more than
# BODY_LIMIT characters exactly as the whole body would, and a longer body is truncated for sure.
_KEEP_BYTES = 4 * BODY_LIMIT + 4
_HEADER_KEYS = ("CONTENT_TYPE", "CONTENT_LENGTH")  # the environ keys besides HTTP_* that are headers


def _body(raw: bytes, content_length: int | None = None) -> tuple[str | None, Any, bool]:
    """(text truncated to BODY_LIMIT, parsed JSON or None, truncated?) of a body."""
    if content_length is not None and content_length > len(raw):
        return f"<{content_length} bytes, not captured>", None, True
    if not raw:
        return None, None, False
    text = raw.decode("utf-8", errors="replace")
    parsed = None
    if text[:1] in "{[":
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
    if len(text) > BODY_LIMIT:
        return text[:BODY_LIMIT], parsed, True
    return text, parsed, False


class Recorded:
    """One request as the hot path records it (raw parts); ``entry()`` builds the journal's dict once."""

    __slots__ = ("_entry", "environ_headers", "fields", "id", "request_raw", "response_raw")

    def __init__(self, fields: dict, environ_headers: dict, request_raw: bytes | str, response_raw: bytes | str):
        self.id: int | None = None
        self.fields = fields  # timestamp (a datetime) ... account_id, and fault: the entry's plain fields
        self.environ_headers = environ_headers
        self.request_raw, self.response_raw = request_raw, response_raw  # bytes, or a "not captured" text
        self._entry: dict | None = None

    def entry(self) -> dict:
        """The entry as GET /_emulator/requests lists it."""
        if self._entry is None:
            req_text, req_json, req_cut = _kept_body(self.request_raw)
            resp_text, resp_json, resp_cut = _kept_body(self.response_raw)
            fields = dict(self.fields)
            fields["timestamp"] = format_timestamp(fields["timestamp"])
            fault = fields.pop("fault")
            self._entry = {
                **fields,
                "headers": {k.lower(): v for k, v in EnvironHeaders(self.environ_headers).items()},
                "request_body": req_text, "request_json": None if req_cut else req_json, "request_truncated": req_cut,
                "response_body": resp_text, "response_json": None if resp_cut else resp_json,
                "response_truncated": resp_cut, "fault": fault, "id": self.id,
            }
        return self._entry


def _kept(raw: bytes) -> bytes:
    """What a Recorded keeps of a body: all of it, or a prefix that still shows as the whole would."""
    return raw if len(raw) <= _KEEP_BYTES else raw[:_KEEP_BYTES + 1]


def _kept_body(kept: bytes | str) -> tuple[str | None, Any, bool]:
    if isinstance(kept, str):  # a body that was not captured
        return kept, None, True
    if len(kept) > _KEEP_BYTES:
        return kept[:_KEEP_BYTES].decode("utf-8", errors="replace")[:BODY_LIMIT], None, True
    return _body(kept)


def _entry(item: dict | Recorded) -> dict:
    return item if isinstance(item, dict) else item.entry()


class Journal:
    """A bounded, thread-safe list of request entries (dicts), oldest first."""

    def __init__(self, maxlen: int = 1000):
        self.maxlen = max(1, int(maxlen))
        self._entries: collections.deque[dict | Recorded] = collections.deque(maxlen=self.maxlen)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.dropped = 0

    def record(self, entry: dict | Recorded) -> dict | Recorded:
        """Append an entry (gives it an increasing ``id``); the oldest is dropped when full."""
        with self._lock:
            if isinstance(entry, Recorded):
                entry.id = next(self._ids)
            else:
                entry["id"] = next(self._ids)
            if len(self._entries) == self.maxlen:
                self.dropped += 1
            self._entries.append(entry)
        return entry

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
            self.dropped = 0

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self, method: str | None = None, path: str | None = None, status: str | None = None,
                headers: Iterable[str] = (), limit: int | None = None) -> list[dict]:
        """Entries matching every given filter, oldest first (``limit``: only the most recent N).

        ``path`` is a regular expression searched in the path; ``status`` an exact code or a class
        such as ``4xx``; each header filter is ``Name:value`` (exact value) or ``Name`` (present).
        """
        path_re = compile_path_pattern(path) if path else None
        status_test = _status_test(status) if status else None
        header_tests = [_header_test(h) for h in headers]
        with self._lock:
            snapshot = list(self._entries)
        snapshot = [_entry(e) for e in snapshot]
        out = [e for e in snapshot
               if (method is None or e["method"] == method.upper())
               and (path_re is None or path_re.search(e["path"]))
               and (status_test is None or status_test(e["status"]))
               and all(test(e["headers"]) for test in header_tests)]
        if limit is not None:
            out = out[-limit:] if limit > 0 else []
        return out


MAX_PATTERN_CHARS = 1000  # a path pattern longer than any path is a mistake (or an attack)
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a client's bad pattern is its 400, not a line on our stderr


def compile_path_pattern(pattern: str, field: str = "path") -> re2._Regexp:
    """A client's path regular expression, compiled by RE2: matching takes time linear in the path, so no
    pattern (``^/(a+)+b$``...) can freeze the server with backtracking. RE2 has no look-around or
    back-references; anything it refuses is a 400 naming ``field``."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InvalidField(f"{field} is a regular expression of {len(pattern)} characters; at most "
                           f"{MAX_PATTERN_CHARS} are accepted.", field=field)
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as e:
        reason = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise InvalidField(f"{field} is not a valid regular expression ({reason}); patterns use RE2 syntax, "
                           "which has no look-around or back-references.", field=field) from None


def _status_test(status: str):
    status = str(status).strip().lower()
    if re.fullmatch(r"[1-5]xx", status):
        low = int(status[0]) * 100
        return lambda s: low <= s < low + 100
    if status.isascii() and status.isdigit() and len(status) <= 3:
        code = int(status)
        return lambda s: s == code
    raise InvalidField(f"status must be a code such as 429 or a class such as 4xx, got {status!r}.", field="status")


def _header_test(spec: str):
    name, sep, value = spec.partition(":")
    name, value = name.strip().lower(), value.strip()
    if not name:
        raise InvalidField(f"header must be Name:value or Name, got {spec!r}.", field="header")
    if not sep:
        return lambda h: name in h
    return lambda h: h.get(name) == value


def _caller(emulator) -> tuple[str | None, int | None]:
    """The token kind and account of the request, also when authentication failed or never ran."""
    principal = g.get("principal")
    if principal is not None:
        return principal.token_kind, principal.account_id
    token = presented_token(request.headers)
    if not token:
        return None, None
    try:
        row = emulator.store.credentials.find_token(token)
    except Exception:  # noqa: BLE001 - the journal must never turn a response into an error
        return None, None
    return (row["kind"], row["account_id"]) if row else ("unknown", None)


def is_recorded(path: str) -> bool:
    """Whether a request path is journaled (and subject to faults): everything but the control plane."""
    return not urls.is_control_path(path)


def install(app: Flask, emulator) -> None:
    """Record every request outside /_emulator/ in ``emulator.journal`` (call before the fault hook)."""

    @app.before_request
    def _journal_start() -> None:
        g.journal_started = time.perf_counter()

    @app.after_request
    def _journal_record(response: Response) -> Response:
        req, ctx = request._get_current_object(), g._get_current_object()  # one proxy lookup each, not twenty
        if not is_recorded(req.path):
            return response
        try:
            environ = req.environ
            length = req.content_length
            raw_request: bytes | str
            if length and length > _CAPTURE_LIMIT:
                raw_request = _body(b"", length)[0]
            elif not length and "HTTP_TRANSFER_ENCODING" not in environ:
                raw_request = b""  # no Content-Length and no Transfer-Encoding: HTTP says there is no body
            else:
                try:
                    raw_request = _kept(req.get_data(cache=True))
                except Exception:  # noqa: BLE001 - e.g. a body over the size limit: still worth an entry
                    raw_request = b"<body not captured>"
            if response.is_streamed or response.direct_passthrough:
                raw_response: bytes | str = "<streamed body, not captured>"
            else:
                raw_response = _kept(response.get_data())
            kind, account = _caller(emulator)
            started = ctx.get("journal_started", time.perf_counter())
            emulator.journal.record(Recorded({
                "timestamp": emulator.store.clock.now(),  # the emulator's clock (formatted when read)
                "method": req.method,
                "path": urls.client_path(req.path, req.environ),
                "query": req.query_string.decode("latin-1"),
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "request_id": ctx.get("request_id"),
                "token_kind": kind,
                "account_id": account,
                "fault": ctx.get("fault_rule_id"),
            }, {k: v for k, v in environ.items() if k[:5] == "HTTP_" or k in _HEADER_KEYS}, raw_request,
                raw_response))
        except Exception:  # recording is best effort; it never changes the answer
            app.logger.exception("could not journal %s %s", request.method, request.path)
        return response
