"""The OpenAPI 3.1 document of every API the emulator serves, derived from what actually serves them.

Paths come from the app's URL map (so a route cannot exist undocumented: ``document`` refuses to build
then), fields and schemas from the resource descriptions of ``resources.py``, and what each operation
takes and answers from ``OPERATIONS`` below, keyed by the Flask endpoint that serves it. The contract tests
validate every response of the test suite against this document, and schemathesis fuzzes it in CI.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import threading
from typing import Any

from . import __version__, urls
from .errors import HTTP_STATUS_CLASSES
from .resources import (
    ALIAS,
    ATTRIBUTE,
    CLOCK_MOVE,
    DATASOURCE,
    DECISION,
    FAULT_RULE,
    OAUTH_APP,
    PROFILE,
    PROJECT,
    RESET,
    RESOURCES,
    REVOCATION,
    SERVICE,
    SNAPSHOT,
    UPLOAD,
    UPLOAD_WAIT,
    Resource,
    schema_name,
    schema_ref,
)

JSON = "application/json"


def one(resource: Resource) -> dict:
    """The schema of one resource."""
    return {"$ref": schema_ref(resource.name)}


def many(schema: Resource | dict) -> dict:
    """The schema of a JSON array of resources (or of values of ``schema``)."""
    return {"type": "array", "items": one(schema) if isinstance(schema, Resource) else schema}


def obj(description: str, required: tuple[str, ...] = (), **properties: Any) -> dict:
    """A JSON object schema (other properties allowed)."""
    return {"type": "object", "description": description,
            "properties": {k: ({"type": v} if isinstance(v, str) else v) for k, v in properties.items()},
            "required": list(required)}


@dataclasses.dataclass(frozen=True)
class Op:
    """What one operation takes and answers."""

    summary: str
    status: int = 200  # the success status
    response: dict | None = None  # JSON schema of the success body (None: no body)
    content_type: str = JSON  # of the success body
    request: dict | None = None  # JSON schema of the body
    body_required: bool = True
    request_types: tuple[str, ...] = (JSON,)
    errors: tuple[int, ...] = ()  # error statuses besides the family's
    query: tuple[tuple[str, dict, str], ...] = ()  # (name, schema, description)
    headers: dict | None = None  # success response headers
    # Bodies besides the defaults: (status, content type, schema) replaces the schema of that status and type
    # (the Error envelope, for an error status) or adds it (a second content type, a status of its own).
    responses: tuple[tuple[int, str, dict], ...] = ()


_CREDENTIALS = obj("The default account and its tokens, after the state changed.", ("default_account_id", "tokens"),
                   default_account_id="integer", tokens="object")
_UPLOAD_PAGE = (("after", {"type": "integer", "minimum": 0}, "Uploads with a higher id."),
                ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size (default 100)."),
                ("datasource_id", {"type": "integer", "minimum": 0}, "One table's uploads."))
_CLOCK = obj("The emulator's clock.", ("now", "offset_seconds", "real_time"), now="string",
             offset_seconds="number", real_time="boolean")
_ANY = {"type": "object"}
_READINESS = obj("Readiness.", ("status", "parts"), status="string", parts="object")
_ERROR = {"$ref": "#/components/schemas/Error"}
# The token endpoint's refusals are RFC 6749 5.2 bodies; routing and body-size errors there are the envelope.
_OAUTH_ERROR = {"anyOf": [{"$ref": "#/components/schemas/OAuthError"}, _ERROR]}
_HTML = {"type": "string", "description": "An HTML page."}
_STR = {"type": "string"}
_AUTHORIZE_QUERY = (("client_id", _STR, "The registered application."),
                    ("redirect_uri", _STR, "One of the application's registered redirect URIs."),
                    ("response_type", {"type": "string", "enum": ["code", "token"]},
                     "code (authorization code grant) or token (implicit grant)."),
                    ("state", _STR, "Sent back unchanged with the outcome."),
                    ("scope", {"type": "string", "enum": ["all"]}, "The only scope (the default)."))
_TOKEN_REQUEST = obj("RFC 6749 4.1.3 / 6 token request (the parameters may also be sent in the query string; a "
                     "confidential client may authenticate with HTTP Basic instead of client_id/client_secret).",
                     ("grant_type",), grant_type={"type": "string", "enum": ["authorization_code", "refresh_token"]},
                     code="string", redirect_uri="string", client_id="string", client_secret="string",
                     refresh_token="string")

# What each endpoint (Flask endpoint name) takes and answers. Statuses of the vendor APIs follow the vendor:
# GET 200, POST 201 (the created entity), PUT 202 (the updated entity), DELETE 204 (no body).
OPERATIONS: dict[str, Op] = {
    # ---------------------------------------------------------------- DCP services
    "management.list_services": Op("List the account's DCP services", response=many(SERVICE)),
    "management.create_service": Op("Create a DCP service (and its Optimizely table)", 201, one(SERVICE),
                                    request=SERVICE.request_schema(update=False)),
    "management.get_service": Op("Get a DCP service", response=one(SERVICE)),
    "management.update_service": Op("Rename a DCP service, or unarchive it", 202, one(SERVICE),
                                    request=SERVICE.request_schema(update=True)),
    "management.delete_service": Op("Archive a DCP service and its tables", 204),
    # ---------------------------------------------------------------- tables
    "management.list_datasources": Op("List a DCP service's tables", response=many(DATASOURCE)),
    "management.create_datasource": Op("Create a table", 201, one(DATASOURCE),
                                       request=DATASOURCE.request_schema(update=False)),
    "management.get_datasource": Op("Get a table", response=one(DATASOURCE)),
    "management.update_datasource": Op("Edit a table, or unarchive it", 202, one(DATASOURCE),
                                       request=DATASOURCE.request_schema(update=True)),
    "management.delete_datasource": Op("Archive a table", 204),
    # ---------------------------------------------------------------- attributes
    "management.list_attributes": Op("List a table's attributes", response=many(ATTRIBUTE)),
    "management.create_attribute": Op("Register an attribute", 201, one(ATTRIBUTE),
                                      request=ATTRIBUTE.request_schema(update=False)),
    "management.get_attribute": Op("Get an attribute", response=one(ATTRIBUTE)),
    "management.update_attribute": Op("Edit an attribute's description or visibility, or unarchive it", 202,
                                      one(ATTRIBUTE), request=ATTRIBUTE.request_schema(update=True)),
    "management.delete_attribute": Op("Archive an attribute", 204),
    # ---------------------------------------------------------------- projects
    "management.list_projects": Op("List the account's projects", response=many(PROJECT)),
    "management.create_project": Op("Create a project", 201, one(PROJECT), request=PROJECT.request_schema(False)),
    "management.get_project": Op("Get a project", response=one(PROJECT)),
    "management.update_project": Op("Edit a project, or link it to a DCP service", 202, one(PROJECT),
                                    request=PROJECT.request_schema(update=True)),
    # ---------------------------------------------------------------- profiles
    "profiles.write_profile": Op("Create or update a customer profile (attribute-level merge)", 201, one(PROFILE),
                                 request=PROFILE.request_schema(update=False)),
    "profiles.update_profile": Op("Update a customer profile's attributes (the same merge as POST)", 202,
                                  one(PROFILE), request=PROFILE.request_schema(update=False)),
    "profiles.read_profile": Op("Read a customer profile", response=one(PROFILE)),
    "profiles.delete_profile": Op("Delete a customer profile", 204),
    "profiles.write_alias": Op("Link customer ids of other tables to an Optimizely user id", 201, one(ALIAS),
                               request=ALIAS.request_schema(update=False)),
    "profiles.read_alias": Op("Read an Optimizely user's aliases", response=one(ALIAS)),
    "profiles.consolidated_view": Op("Every profile of an Optimizely user", response=many(PROFILE)),
    "profiles.consolidated_view_in_table": Op("Every profile of an Optimizely user (form naming the Optimizely "
                                              "table)", response=many(PROFILE)),
    # ---------------------------------------------------------------- OAuth 2.0
    "oauth.authorize": Op("The consent page (GET), or the user's decision posted from it", response=None,
                          content_type="text/html", request_types=("application/x-www-form-urlencoded",),
                          request=_ANY, body_required=False, errors=(302, 303), query=_AUTHORIZE_QUERY,
                          # an untrustworthy client or redirect URI, a form posted from another site: shown to
                          # the user as a page, never redirected
                          responses=((400, "text/html", _HTML), (403, "text/html", _HTML))),
    "oauth.token": Op("Exchange an authorization code or a refresh token for an access token",
                      response=obj("RFC 6749 5.1 token response.", ("access_token", "token_type", "expires_in"),
                                   access_token="string", token_type="string", expires_in="integer",
                                   refresh_token="string", scope="string"),
                      request_types=("application/x-www-form-urlencoded",), request=_TOKEN_REQUEST,
                      body_required=False, errors=(400, 401),
                      responses=((400, JSON, _OAUTH_ERROR), (401, JSON, _OAUTH_ERROR), (403, JSON, _OAUTH_ERROR))),
    # ---------------------------------------------------------------- the control plane
    "control.health": Op("Readiness of every part (503 until ready)", response=_READINESS,
                         responses=((503, JSON, {"anyOf": [_READINESS, _ERROR]}),)),
    "control.info": Op("URLs, default account and tokens, version", response=obj(
        "How to talk to this emulator.", ("version", "base_url", "rest_api_url", "profile_api_url",
                                          "s3_endpoint_url", "import_bucket", "tokens"),
        version="string", base_url="string", rest_api_url="string", profile_api_url="string",
        s3_endpoint_url="string", import_bucket="string", default_account_id="integer", tokens="object"))
    ,
    "control.openapi_document": Op("This document", response=_ANY),
    "control.reset": Op("Back to the start-up state, the default state or a snapshot", response=_CREDENTIALS,
                        request=RESET.request_schema(update=False), body_required=False,
                        query=tuple((f.name, f.schema(), f.doc) for f in RESET.fields)),
    "control.seed": Op("Add a seed's state (YAML or JSON), optionally resetting first", 201, _CREDENTIALS,
                       request=_ANY, request_types=(JSON, "application/yaml"), body_required=False,
                       query=(("reset", {"type": "string"}, "true, default or false."),)),
    "control.credentials": Op("The AWS key pair of a table or DCP service", response=obj(
        "An AWS key pair and the prefix it may write under.", ("id", "kind", "aws_access_key", "aws_secret_key",
                                                                "prefix"),
        id="integer", kind="string", aws_access_key="string", aws_secret_key="string", prefix="string")),
    "control.state": Op("The whole state as a seed (YAML, or JSON with ?format=json)", response=_ANY,
                        content_type="application/yaml",
                        query=(("format", {"type": "string", "enum": ["yaml", "json"]}, "yaml (default) or json."),),
                        responses=((200, JSON, _ANY),)),
    "control.list_snapshots": Op("Names of the saved snapshots", response=obj(
        "Snapshot names.", ("snapshots",), snapshots={"type": "array", "items": {"type": "string"}})),
    "control.save_snapshot": Op("Save the current state under a name", 201, SNAPSHOT.schema(),
                                request=SNAPSHOT.request_schema(update=False)),
    "control.delete_snapshot": Op("Forget a saved snapshot", 204),
    "control.list_requests": Op("The request journal, oldest first", response=obj(
        "Journaled requests.", ("requests", "count"), requests={"type": "array", "items": _ANY}, count="integer"),
        query=(("method", {"type": "string"}, "HTTP method."), ("path", {"type": "string"}, "A path regex."),
               ("status", {"type": "string"}, "A status like 429 or 4xx."),
               ("header", {"type": "string"}, "Name: value."), ("limit", {"type": "integer", "minimum": 0}, ""))),
    "control.clear_requests": Op("Empty the journal", 204),
    "control.list_faults": Op("Fault rules", response=obj("Fault rules.", ("faults",), faults=many(FAULT_RULE))),
    "control.add_fault": Op("Add a fault-injection rule", 201, one(FAULT_RULE),
                            request=FAULT_RULE.request_schema(update=False)),
    "control.clear_faults": Op("Delete every fault rule", 204),
    "control.delete_fault": Op("Delete one fault rule", 204),
    "uploads.list_uploads": Op("Upload History, a page at a time", response=many(UPLOAD), query=_UPLOAD_PAGE),
    "uploads.get_upload": Op("One upload", response=one(UPLOAD)),
    "uploads.wait_for_uploads": Op("Wait until no upload is pending or processing", response=obj(
        "The uploads finished since the previous wait.", ("status", "uploads"), status="string",
        uploads=many(UPLOAD)), request=UPLOAD_WAIT.request_schema(update=False),
        body_required=False, errors=(504,)),
    "uploads.template_csv": Op("A table's template CSV (its header row)", response={"type": "string"},
                               content_type="text/csv"),
    "oauth_control.apps": Op("Registered OAuth applications", response=obj(
        "Applications.", ("oauth_apps",), oauth_apps=many(OAUTH_APP))),
    "oauth_control.add_app": Op("Register an OAuth application", 201, one(OAUTH_APP),
                                request=OAUTH_APP.request_schema(update=False)),
    "oauth_control.one_app": Op("One OAuth application", response=one(OAUTH_APP)),
    "oauth_control.revoke_app": Op("Revoke an application's access to an account", response=_ANY,
                                   request=REVOCATION.request_schema(update=False), body_required=False),
    "oauth_control.authorizations": Op("Authorization requests waiting for a decision", response=obj(
        "Pending requests.", ("authorizations",), authorizations={"type": "array", "items": _ANY})),
    "oauth_control.decide": Op("Accept or deny a pending authorization", response=_ANY,
                               request=DECISION.request_schema(update=False),
                               body_required=False),
    "oauth_control.clock": Op("The emulator's clock", response=_CLOCK),
    "oauth_control.move_clock": Op("Move the clock", response=_CLOCK,
                                   request=CLOCK_MOVE.request_schema(update=False)),
    "oauth_control.real_clock": Op("Back to real time", response=_CLOCK),
}

# Blueprints whose pages are for people, not programs: not part of the document.
UNDOCUMENTED_BLUEPRINTS = ("ui", "apidocs")

# Every family's error statuses: authentication (vendor APIs), bad input, fault injection.
_VENDOR_ERRORS = (400, 401, 403, 404, 429, 503)
_CONTROL_ERRORS = (400, 403, 404, 429, 503)  # 403: a cross-site request; 429/503: fault rules on /_emulator
_BODY_ERRORS = (413, 415)
_TAGS = {"management": f"Management API ({urls.MANAGEMENT})", "profiles": f"Profile API ({urls.PROFILES})",
         "oauth": f"OAuth 2.0 ({urls.OAUTH})"}
_CONTROL_TAG = f"Control plane ({urls.CONTROL})"
_TAG_DOCS = {  # in the order a reader wants them: the vendor's APIs first
    _TAGS["management"]: "The vendor's management REST API: DCP services, tables, attributes, projects.",
    _TAGS["profiles"]: "The vendor's profile API: customer profiles, aliases, the consolidated customer view.",
    _TAGS["oauth"]: "The vendor's OAuth 2.0 authorization server, run offline.",
    _CONTROL_TAG: "The emulator's own endpoints (no token): health, reset, seeds, state, snapshots, Upload History, "
                  "request journal, fault injection, OAuth apps, the clock.",
}


class UndocumentedRoute(RuntimeError):
    """A route of the app has no entry in OPERATIONS (every API route must be documented)."""


_cache: dict[tuple, dict] = {}
_lock = threading.Lock()


def document(app: Any, *, shared: bool = False) -> dict:
    """The OpenAPI 3.1 document of ``app``'s APIs (built once per app; callers get a copy to change freely,
    or with ``shared=True`` the cached one, never to be changed)."""
    # Keyed by what the document is built from, not by the app: every app create_app builds has the same
    # routes, so they share one document (an id() key would build one per app, kept forever, and could
    # hand a new app the document of a dead one whose id it reuses).
    key = tuple(sorted((r.rule, r.endpoint, tuple(sorted(r.methods or ()))) for r in app.url_map.iter_rules()))
    with _lock:
        doc = _cache.get(key)
        if doc is None:
            doc = _cache[key] = build(app.url_map.iter_rules())
    return doc if shared else copy.deepcopy(doc)


def template(rule: str) -> str:
    """The document's path template of a werkzeug URL rule (``<int:id>`` -> ``{id}``)."""
    return _path_and_params(rule)[0]


def _path_and_params(rule: str) -> tuple[str, list[dict]]:
    params = []

    def convert(m: re.Match) -> str:
        converter, name = m.group(1) or "string", m.group(2)
        schema = {"type": "integer", "minimum": 0} if converter == "int" else {"type": "string", "minLength": 1}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return re.sub(r"<(?:(\w+):)?(\w+)>", convert, rule), params


def _error_response(status: int) -> dict:
    cls = HTTP_STATUS_CLASSES.get(status)
    what = cls.__doc__.strip().splitlines()[0] if cls else {302: "Redirect to the client.", 303:
                                                            "Redirect to the client.",
                                                            504: "Timed out."}.get(status, "Error.")
    if status in (302, 303):
        return {"description": what, "headers": {"Location": {"schema": {"type": "string"}}}}
    return {"description": what, "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}


def build(rules: Any) -> dict:
    """The document for a set of werkzeug URL rules."""
    paths: dict[str, dict] = {}
    for rule in sorted(rules, key=lambda r: r.rule):
        blueprint = rule.endpoint.split(".", 1)[0]
        if rule.endpoint == "static" or blueprint in UNDOCUMENTED_BLUEPRINTS:
            continue
        op = OPERATIONS.get(rule.endpoint)
        if op is None:
            raise UndocumentedRoute(f"{rule.rule} ({rule.endpoint}) has no entry in openapi.OPERATIONS")
        path, params = _path_and_params(rule.rule)
        vendor = not urls.is_control_path(rule.rule)
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        for method in methods:
            operation_id = rule.endpoint.split(".", 1)[1] if blueprint in _TAGS else rule.endpoint.replace(".", "_")
            if len(methods) > 1:  # one view serving several methods: one operation each
                operation_id += "_" + method.lower()
            entry: dict[str, Any] = {"operationId": operation_id, "summary": op.summary,
                                     "tags": [_TAGS.get(blueprint, _CONTROL_TAG)]}
            query = [{"name": n, "in": "query", "required": False, "schema": s, "description": d}
                     for n, s, d in op.query]
            if params or query:
                entry["parameters"] = params + query
            has_body = op.request is not None and method != "GET"
            if has_body:
                entry["requestBody"] = {"required": op.body_required, "content": {
                    t: {"schema": op.request} for t in op.request_types}}
            ok: dict[str, Any] = {"description": op.summary}
            if op.status != 204 and (op.response is not None or op.content_type != JSON):
                ok["content"] = {op.content_type: {"schema": op.response or {"type": "string"}}}
            errors = set(_VENDOR_ERRORS if blueprint in ("management", "profiles") else _CONTROL_ERRORS)
            errors |= set(op.errors) | (set(_BODY_ERRORS) if has_body else set())
            if not vendor and method != "GET":
                errors.add(415)  # the control plane refuses any write whose body a web page could forge
            entry["responses"] = {str(op.status): ok, **{str(s): _error_response(s) for s in sorted(errors)}}
            for status, content_type, schema in op.responses:
                response = entry["responses"].setdefault(str(status), {"description": op.summary})
                response.setdefault("content", {})[content_type] = {"schema": schema}
            if blueprint in ("management", "profiles"):
                entry["security"] = [{"classicToken": []}, {"oauthBearer": []}]
            elif vendor:
                entry["security"] = []
            paths.setdefault(path, {})[method.lower()] = entry
    schemas = {schema_name(r.name): r.schema() for r in RESOURCES}
    schemas["Error"] = {
        "type": "object", "description": "The one error envelope of every API of the emulator.",
        "required": ["status", "code", "message", "request_id"],
        "properties": {"status": {"type": "integer"}, "code": {"type": "string"},
                       "message": {"type": "string", "description": "What is wrong and how to fix it."},
                       "field": {"type": "string", "description": "The field at fault, when there is one."},
                       "request_id": {"type": "string"}}}
    schemas["OAuthError"] = {
        "type": "object", "description": "An RFC 6749 (section 5.2) error of the token endpoint.",
        "required": ["error", "error_description"],
        "properties": {"error": {"type": "string", "enum": ["invalid_request", "invalid_client", "invalid_grant",
                                                            "unauthorized_client", "unsupported_grant_type",
                                                            "invalid_scope"]},
                       "error_description": {"type": "string"}, "request_id": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "dcp-emulator", "version": __version__,
                 "description": "A local emulator of Optimizely's Dynamic Customer Profiles APIs: the management "
                                f"API under {urls.MANAGEMENT}, the profile API under {urls.PROFILES}, OAuth 2.0 "
                                f"under {urls.OAUTH}, and the emulator's own control plane under {urls.CONTROL}. "
                                "Bulk import is S3 (bucket optimizely-import) on the same port."},
        "servers": [{"url": "/"}],
        "tags": [{"name": name, "description": doc} for name, doc in _TAG_DOCS.items()],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "classicToken": {"type": "apiKey", "in": "header", "name": "Token",
                                 "description": "A classic API token."},
                "oauthBearer": {"type": "http", "scheme": "bearer",
                                "description": "An OAuth 2.0 access token (personal tokens are refused)."}}},
    }
