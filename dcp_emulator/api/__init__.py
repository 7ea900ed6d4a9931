"""Shared request helpers of the blueprints: the emulator, the caller, the JSON body."""

from __future__ import annotations

import json
from typing import Any, Callable

from flask import Blueprint, current_app, g, request

from ..auth import Principal, authenticate
from ..errors import InvalidJson, UnsupportedMediaType


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
        body_keys: frozenset[str] = frozenset()
        if request.mimetype == "application/x-www-form-urlencoded":
            body_keys = frozenset(request.form.keys())
        g.principal = authenticate(emulator().store, request.headers, request.args, body_keys)
        g.token_kind, g.account_id = g.principal.token_kind, g.principal.account_id


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_object() -> dict:
    """The request body as a JSON object, or a 400/415 that says what is wrong with it."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise InvalidJson("The request body is empty; send a JSON object with Content-Type: application/json.")
    mimetype = request.mimetype or ""
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type {mimetype!r} is not supported; send the body as JSON with "
                                   "Content-Type: application/json.")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise InvalidJson("The request body is not UTF-8 text.") from None
    except json.JSONDecodeError as e:
        raise InvalidJson(f"The request body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}.") from None
    except (ValueError, RecursionError) as e:
        raise InvalidJson(f"The request body is not valid JSON: {e}.") from None
    if not isinstance(body, dict):
        raise InvalidJson(f"The request body must be a JSON object, got a JSON {type(body).__name__}.")
    return body


def route(bp: Blueprint, rule: str, **options: Any) -> Callable:
    """Register a rule that answers with and without a trailing slash, never redirecting."""

    def decorator(fn: Callable) -> Callable:
        bp.add_url_rule(rule, view_func=fn, strict_slashes=False, **options)
        bp.add_url_rule(rule.rstrip("/") + "/", endpoint=fn.__name__ + "_slash", view_func=fn,
                        strict_slashes=False, **options)
        return fn

    return decorator
