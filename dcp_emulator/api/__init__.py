"""Shared request helpers of the blueprints: the emulator, the caller, the JSON body."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, request

from ..auth import Principal, authenticate
from ..errors import CrossOriginRefused, InvalidJson, PayloadTooLarge, UnsupportedMediaType


def emulator():
    """The Emulator behind the current app."""
    return current_app.extensions["dcp_emulator"]


def principal() -> Principal:
    """The authenticated caller of this request (set by ``require_auth``)."""
    return g.principal


def require_auth(bp: Blueprint) -> None:
    """Authenticate every request of a blueprint before its route runs."""

    @bp.before_request
    def _authenticate() -> None:
        req, ctx = request._get_current_object(), g._get_current_object()  # one proxy lookup each, per request
        body_keys: frozenset[str] = frozenset()
        if req.mimetype == "application/x-www-form-urlencoded":
            body_keys = frozenset(req.form.keys())
        ctx.principal = authenticate(emulator().store, req.headers, req.args, body_keys)
        ctx.token_kind, ctx.account_id = ctx.principal.token_kind, ctx.principal.account_id


# The content types a web page may send to any site without a CORS preflight ("simple" requests).
_SIMPLE_CONTENT_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_key(scheme: str, netloc: str) -> tuple[str, str, int | None]:
    parts = urlsplit(f"{scheme}://{netloc}")
    try:
        port = parts.port
    except ValueError:  # a malformed port never equals ours
        port = -1
    return scheme, (parts.hostname or ""), port if port is not None else _DEFAULT_PORTS.get(scheme)


def cross_site_refusal(*, use_referer: bool = False) -> CrossOriginRefused | None:
    """Why this request must be refused as sent by a web page of another site, or None.

    Browsers say where a request comes from (``Origin``, ``Sec-Fetch-Site``); curl, the pytest plugin and
    SDKs send neither, and have nothing to forge. ``use_referer``: for HTML form posts, a ``Referer``
    stands in for a missing ``Origin``.
    """
    origin = request.headers.get("Origin")
    if origin is None and use_referer and request.headers.get("Referer"):
        referer = urlsplit(request.headers["Referer"])
        origin = f"{referer.scheme}://{referer.netloc}"
    if origin is not None:
        own = _origin_key(request.scheme, request.host)
        sent = urlsplit(origin)
        if origin == "null" or _origin_key(sent.scheme, sent.netloc) != own or sent.path not in ("", "/"):
            return CrossOriginRefused(
                f"Cross-origin request refused: {request.method} {request.path} came from a web page of origin "
                f"{origin[:200]!r}, not from this emulator ({own[0]}://{request.host[:200]}). The control plane "
                "changes state without authentication, so it only accepts such requests from clients that are "
                "not browsers (curl, the pytest plugin: they send no Origin header) or from its own origin.",
                field="Origin")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return CrossOriginRefused(
            f"Cross-site request refused: the browser says {request.method} {request.path} was sent by another "
            "site (Sec-Fetch-Site). The control plane only accepts state-changing requests from clients that "
            "are not browsers, or from its own origin.", field="Sec-Fetch-Site")
    return None


def same_origin_only(bp: Blueprint, *, html_forms: bool = False) -> None:
    """Refuse state-changing requests of a blueprint that a web page of another site could forge (CSRF).

    The control plane has no authentication (it is a local test double), so any page a developer visits
    could otherwise POST a seed or a reset to http://127.0.0.1:8080. Browsers mark such requests with an
    ``Origin`` (and ``Sec-Fetch-Site``) header; curl, the pytest plugin and SDKs send neither. A body must
    also say what it is with a type a page cannot send without a CORS preflight (which this emulator never
    grants): not text/plain, a form or no type at all. ``html_forms``: the blueprint's own pages post HTML
    forms (the dashboard), so form bodies are accepted, and a ``Referer`` stands in for a missing ``Origin``
    (see ``cross_site_refusal``).
    """

    @bp.before_request
    def _refuse_cross_site() -> None:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return  # reads change nothing, and a page cannot read our answers (no CORS headers)
        refusal = cross_site_refusal(use_referer=html_forms)
        if refusal is not None:
            raise refusal
        if html_forms:
            return
        has_body = bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        mimetype = request.mimetype or ""
        if has_body and (not mimetype or mimetype in _SIMPLE_CONTENT_TYPES):
            got = f"Content-Type {mimetype!r}" if mimetype else "no Content-Type"
            raise UnsupportedMediaType(
                f"{request.method} {request.path} got a body with {got}. The control plane needs an explicit type "
                "that a web page cannot send to another site without asking first: application/json for JSON "
                "(curl -H 'Content-Type: application/json'), or application/yaml for a YAML seed "
                "(curl -H 'Content-Type: application/yaml' --data-binary @seed.yaml).", field="Content-Type")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    # 1e400 would silently become inf, which JSON cannot express and no DCP value accepts.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is out of range (larger than about 1.8e308)")
    return value


def _parse_int(text: str) -> int:
    # No DCP field holds more than 19 digits; refuse absurd ones before Python's own digit limit
    # produces a message about sys.set_int_max_str_digits().
    if len(text) > 400:
        raise ValueError(f"the number {text[:20]}... has {len(text.lstrip('-'))} digits, too large for any field")
    return int(text)


def json_object() -> dict:
    """The request body as a JSON object, or a 400/415 that says what is wrong with it."""
    # The type first: a form body has already been consumed by the auth check, and would look empty.
    mimetype = request.mimetype or ""
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type {mimetype!r} is not supported; send the body as JSON with "
                                   "Content-Type: application/json.")
    raw = request.get_data(cache=True)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length is None and limit and len(raw) >= limit:
        # A chunked body (no Content-Length) is cut at the limit without an error by werkzeug; parsing
        # the truncated JSON would blame the client's JSON instead of its size.
        raise PayloadTooLarge(f"The request body is larger than the emulator accepts for JSON requests "
                              f"({limit} bytes; --max-body-bytes).")
    if not raw.strip():
        raise InvalidJson("The request body is empty; send a JSON object with Content-Type: application/json.")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_parse_float,
                          parse_int=_parse_int)
    except UnicodeDecodeError:
        raise InvalidJson("The request body is not UTF-8 text.") from None
    except json.JSONDecodeError as e:
        raise InvalidJson(f"The request body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}.") from None
    except (ValueError, RecursionError) as e:
        raise InvalidJson(f"The request body is not valid JSON: {e}.") from None
    if not isinstance(body, dict):
        kind = {"list": "array", "str": "string", "int": "number", "float": "number", "bool": "boolean",
                "NoneType": "null"}.get(type(body).__name__, type(body).__name__)
        raise InvalidJson(f"The request body must be a JSON object, got a JSON {kind}.")
    try:
        # "\ud800" escapes decode to lone surrogates: not Unicode text, and unstorable in SQLite.
        # Only a \uD8xx-\uDFxx escape can produce one, so most bodies skip the check.
        if b"\\ud" in raw.lower():
            json.dumps(body, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise InvalidJson("The request body is nested too deeply.") from None
    except UnicodeEncodeError:
        raise InvalidJson("The request body contains a \\uXXXX escape of a lone UTF-16 surrogate; JSON strings "
                          "must be valid Unicode (escape characters above U+FFFF as a surrogate pair).") from None
    return body


def optional_json_object() -> dict:
    """The JSON object body if one was sent, else {} (for endpoints that work with no body at all)."""
    return json_object() if request.get_data(cache=True).strip() else {}


def route(bp: Blueprint, rule: str, **options: Any) -> Callable:
    """Register one URL rule; ``urls.without_trailing_slash`` lets it answer with a trailing slash too.

    Every route must have an entry in ``openapi.OPERATIONS`` (the document refuses to build otherwise).
    """

    def decorator(fn: Callable) -> Callable:
        bp.add_url_rule(rule, view_func=fn, **options)
        return fn

    return decorator
