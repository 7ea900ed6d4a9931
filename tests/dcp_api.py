"""Helpers of the API tests: build services, tables and attributes through the HTTP API itself.

Used with the Flask test client (``client`` fixture) and, for served-process tests, with
``requests`` sessions: both take ``(path, json=..., headers=...)`` and give ``status_code``.
"""

from __future__ import annotations

import re
from typing import Any

from dcp_emulator.resources import ATTRIBUTE, DATASOURCE, PROJECT, SERVICE

MGMT = "/experiment/v1"
TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\Z")

# Each resource's fields are described once, in dcp_emulator/resources.py.
SERVICE_FIELDS = set(SERVICE.field_names)
DATASOURCE_FIELDS = set(DATASOURCE.field_names)
ATTRIBUTE_FIELDS = set(ATTRIBUTE.field_names)
PROJECT_FIELDS = set(PROJECT.field_names)


def body(resp: Any) -> Any:
    """The JSON body of a Flask test response or a requests response."""
    return resp.get_json() if hasattr(resp, "get_json") else resp.json()


def ok(resp: Any, status: int) -> Any:
    """Assert the status (showing the body when it differs) and return the JSON body."""
    text = resp.get_data(as_text=True) if hasattr(resp, "get_data") else resp.text
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {text}"
    return body(resp) if text else None


def error(resp: Any, status: int, code: str | None = None, field: str | None = None) -> dict:
    """Assert the response is the JSON error envelope with this status (and code/field)."""
    err = ok(resp, status)
    assert set(err) <= {"status", "code", "message", "field", "request_id"}, err
    assert err["status"] == status and err["message"] and err["request_id"] and err["code"], err
    if code is not None:
        assert err["code"] == code, err
    if field is not None:
        assert err.get("field") == field, err
    return err


def create_service(client: Any, headers: dict, name: str = "Service") -> dict:
    """POST dcp_services and return the service."""
    return ok(client.post(f"{MGMT}/dcp_services", json={"name": name}, headers=headers), 201)


def optimizely_table(client: Any, headers: dict, service_id: int) -> dict:
    """The built-in Optimizely table of a service."""
    tables = ok(client.get(f"{MGMT}/dcp_services/{service_id}/dcp_datasources", headers=headers), 200)
    return next(t for t in tables if t["is_optimizely"])


def create_table(client: Any, headers: dict, service_id: int, name: str = "CRM", **fields: Any) -> dict:
    """POST dcp_services/{id}/dcp_datasources (a cookie-keyed table unless told otherwise)."""
    payload = {"name": name, "keyfield_locator_type": "cookie", "keyfield_locator_name": "crm_id", **fields}
    return ok(client.post(f"{MGMT}/dcp_services/{service_id}/dcp_datasources", json=payload, headers=headers), 201)


def create_attribute(client: Any, headers: dict, table_id: int, name: str, datatype: str = "string",
                     fmt: str | None = None, **fields: Any) -> dict:
    """POST dcp_datasources/{id}/dcp_datasource_attributes."""
    payload = {"name": name, "datatype": datatype, **fields}
    if fmt is not None:
        payload["format"] = fmt
    return ok(client.post(f"{MGMT}/dcp_datasources/{table_id}/dcp_datasource_attributes", json=payload,
                          headers=headers), 201)


def profile_url(service_id: int, table_id: int, customer_id: str) -> str:
    """The profile API path of one customer profile."""
    return f"/api/customer_profile/{service_id}/{table_id}/{customer_id}"
