"""Response validation against the OpenAPI document (``Config.validate_responses``, for tests and fuzzing).

When on, every response of a documented operation is checked before it leaves the app: its status must be
one the document lists for the operation, its content type the documented one, and a JSON body must
validate against the documented schema (jsonschema's Draft 2020-12, the dialect of OpenAPI 3.1, with the
whole document registered so ``$ref``s resolve). A violation becomes a 500 in the usual error envelope whose
message names the operation, the status and the JSON path of the failure: the test that saw it fails there.

Exempt: requests that match no documented route (unknown paths, undocumented methods, the dashboard),
responses made by fault injection (they are whatever the user's rule says) and 500s themselves.

``jsonschema`` is a test dependency: it is imported only when the flag is on.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, g, request

from . import openapi
from .errors import InternalError

log = logging.getLogger("dcp_emulator")
_BASE_URI = "urn:dcp-emulator:openapi"


class Contract:
    """The document's responses, with one validator per (path, method, status) compiled on first use."""

    def __init__(self, doc: dict):
        try:
            import jsonschema
            from referencing import Registry
            from referencing.jsonschema import DRAFT202012
        except ImportError as e:  # the runtime does not need it; only this switch does
            raise RuntimeError("validate_responses (DCP_EMULATOR_VALIDATE_RESPONSES) needs the jsonschema package: "
                               "pip install 'dcp-emulator[test]' or pip install jsonschema") from e
        self._jsonschema = jsonschema
        self._registry = Registry().with_resource(_BASE_URI, DRAFT202012.create_resource(doc))
        self._format_checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
        self._paths = doc["paths"]
        self._templates: dict[str, str] = {}  # URL rule -> the document's path template
        self._validators: dict[tuple[str, str, str, str], Any] = {}
        self._lock = threading.Lock()

    def operation(self, rule: str, method: str) -> tuple[str, str] | None:
        """(path template, method) of the document's operation served by URL rule ``rule``, or None."""
        path = self._templates.get(rule)
        if path is None:
            path = self._templates[rule] = openapi.template(rule)
        method = "get" if method == "HEAD" else method.lower()  # HEAD: GET's answer without the body
        return (path, method) if method in self._paths.get(path, ()) else None

    def validator(self, path: str, method: str, status: str, content_type: str) -> Any:
        """The compiled validator of one documented response body."""
        key = (path, method, status, content_type)
        found = self._validators.get(key)
        if found is None:
            pointer = "/".join(p.replace("~", "~0").replace("/", "~1")
                               for p in ("paths", path, method, "responses", status, "content", content_type,
                                         "schema"))
            found = self._jsonschema.Draft202012Validator({"$ref": f"{_BASE_URI}#/{quote(pointer)}"},
                                                          registry=self._registry,
                                                          format_checker=self._format_checker)
            with self._lock:
                self._validators[key] = found
        return found

    def violation(self, path: str, method: str, response: Response) -> str | None:
        """What ``response`` to ``method path`` (a documented operation) violates, or None."""
        operation = f"{method.upper()} {path}"
        status = response.status_code
        responses = self._paths[path][method]["responses"]
        documented = responses.get(str(status))
        if documented is None:
            return (f"{operation} answered status {status}, which the document does not list for it "
                    f"(documented: {', '.join(sorted(responses))})")
        content = documented.get("content")
        if not content:
            if status == 204 and response.get_data():
                return f"{operation} answered 204 with a body; the document says it has none"
            return None  # e.g. a redirect: its body is not part of the contract
        mimetype = response.mimetype or ""
        if mimetype not in content:
            return (f"{operation} answered {status} with Content-Type {mimetype or '(none)'!r}; the document "
                    f"says {', '.join(sorted(content))}")
        if request.method == "HEAD" or response.is_streamed or response.direct_passthrough:
            return None  # no body to check (or one that must not be consumed here)
        if mimetype != openapi.JSON and not mimetype.endswith("+json"):
            return None  # text bodies (CSV, YAML, HTML) are only checked for their type
        try:
            body = json.loads(response.get_data())
        except ValueError as e:
            return f"{operation} answered {status} with a body that is not JSON ({e})"
        error = self._jsonschema.exceptions.best_match(
            self.validator(path, method, str(status), mimetype).iter_errors(body))
        if error is None:
            return None
        return (f"{operation} answered {status} with a body that violates the document at {error.json_path}: "
                f"{_shorten(error.message)}")


def _shorten(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# One Contract per document: every app built by create_app has the same URL map, so the document (cached
# per URL map by openapi.document, and never freed) and its compiled validators are shared by all of them.
_contracts: dict[int, Contract] = {}
_contracts_lock = threading.Lock()


def contract_for(app: Flask) -> Contract:
    """The Contract of ``app``'s document (built once)."""
    doc = openapi.document(app, shared=True)
    found = _contracts.get(id(doc))
    if found is None:
        with _contracts_lock:
            found = _contracts.get(id(doc))
            if found is None:
                found = _contracts[id(doc)] = Contract(doc)
    return found


def install(app: Flask, render_error: Any) -> None:
    """Check every response of ``app`` against its document; ``render_error`` renders a DcpError (the envelope).

    Install it before the hook that stamps X-Request-Id and drops a 204's Content-Type (after_request hooks
    run in reverse order): it then sees the response exactly as the client will.
    """
    contract = contract_for(app)  # fails now, not on the first request, when jsonschema is missing

    @app.after_request
    def _validate_response(response: Response) -> Response:
        rule = request.url_rule
        if rule is None or response.status_code == 500 or g.get("injected_fault"):
            return response
        operation = contract.operation(rule.rule, request.method)
        if operation is None:
            return response  # not an operation of the document (the dashboard, OPTIONS)
        problem = contract.violation(*operation, response)
        if problem is None:
            return response
        message = f"The response violates the OpenAPI document (/_emulator/openapi.json): {problem}."
        log.error("%s", message)  # also on a served emulator's console, where a client may not show the body
        error = render_error(InternalError(message))
        error.headers["X-Request-Id"] = response.headers.get("X-Request-Id", "")
        return error
