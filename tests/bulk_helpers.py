"""Helpers of the bulk-import tests: SigV4-signed S3 requests through the Flask test client, tables, waits."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from dcp_api import create_attribute, create_service, create_table, ok

BUCKET = "optimizely-import"


def signed(client: Any, method: str, key: str, access: str, secret: str, body: bytes = b"",
           query: str = "", headers: dict | None = None) -> Any:
    """Send an S3 request for ``key`` signed with botocore's SigV4 signer (as boto3 would)."""
    path = f"/{BUCKET}/{quote(key, safe='/~')}" if key is not None else f"/{BUCKET}"
    url = f"http://localhost{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    if (headers or {}).get("x-amz-content-sha256") == "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
        # what botocore does for a trailing checksum: the signer then signs this literal instead of a hash
        request.context["checksum"] = {"request_algorithm": {"in": "trailer", "name": "x-amz-checksum-crc32"}}
    S3SigV4Auth(Credentials(access, secret), "s3", "us-east-1").add_auth(request)
    # Content-Length: 0 as every HTTP client sends it for an empty PUT body (the test client leaves it out)
    overrides = {} if body or method not in ("PUT", "POST") else {"CONTENT_LENGTH": "0"}
    return client.open(path + (f"?{query}" if query else ""), method=method, data=body,
                       headers=dict(request.headers), environ_overrides=overrides)


def put(client: Any, table: dict, name: str, text: str | bytes, *, keys: dict | None = None) -> Any:
    """PutObject ``name`` under the table's import path with the table's own key pair (or ``keys``)."""
    keys = keys or table
    data = text.encode("utf-8") if isinstance(text, str) else text
    return signed(client, "PUT", f"{table['s3_path']}/{name}", keys["aws_access_key"], keys["aws_secret_key"], data)


def upload(client: Any, table: dict, name: str, text: str | bytes) -> dict:
    """Upload a file through S3, wait until it is processed and return its Upload History entry."""
    resp = put(client, table, name, text)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    ok(client.post("/_emulator/uploads/wait", json={"timeout": 30}), 200)
    uploads = ok(client.get(f"/_emulator/uploads?datasource_id={table['id']}"), 200)
    return uploads[-1]


def make_table(client: Any, headers: dict, attributes: list[tuple[str, str, str | None]],
               service: dict | None = None) -> tuple[dict, dict]:
    """A service (or the given one) with a new table holding these (name, datatype, format) attributes."""
    service = service or create_service(client, headers)
    table = create_table(client, headers, service["id"])
    for name, datatype, fmt in attributes:
        create_attribute(client, headers, table["id"], name, datatype, fmt)
    return service, table


def profile(client: Any, headers: dict, table: dict, customer_id: str) -> Any:
    """The profile's data, or None when the customer has no profile."""
    resp = client.get(f"/api/customer_profile/{table['dcp_service_id']}/{table['id']}/{quote(customer_id)}",
                      headers=headers)
    if resp.status_code == 404:
        return None
    return ok(resp, 200)["data"]
