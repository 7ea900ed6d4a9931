"""Bounded fuzz test of the HTTP APIs: management, profile and control plane (issue 14).

Hypothesis draws methods, paths (real ids, huge and negative numbers, text with any characters),
query parameters, headers and bodies (JSON shaped like each API's, arbitrary JSON, YAML, raw bytes
with any content type) for a few hundred requests per route family, derandomized (a fixed seed: the
same requests on every run). Every answer must be below 500, and every error must be the one JSON
envelope: {status (the response's), code, message, request_id}.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from served import ROOT

from dcp_emulator import create_app
from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import Config

EXAMPLE_SEED = ROOT / "fixtures" / "example.yaml"
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def client():
    """One emulator with the example seed for the whole module (examples run one after another)."""
    application = create_app(Config(seed=[str(EXAMPLE_SEED)], log_requests=False))
    yield application.test_client()
    application.extensions["dcp_emulator"].close()


def assert_envelope(resp, method: str, url: str) -> None:
    """No 5xx; an error is the JSON envelope whose status is the response's."""
    where = f"{method} {url} -> {resp.status_code}: {resp.get_data(as_text=True)[:300]}"
    assert resp.status_code < 500, where
    if resp.status_code >= 400:
        body = resp.get_json(silent=True)
        assert isinstance(body, dict), where
        assert body.get("status") == resp.status_code, where
        assert isinstance(body.get("code"), str) and isinstance(body.get("message"), str), where
        assert body.get("request_id"), where


# ---------------------------------------------------------------------- strategies
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                           max_size=4),
                    max_leaves=12)
SEGMENT = st.one_of(
    st.sampled_from(["567", "678", "679", "566", "1001", "1002", "crm-1001", "oeu-ada", "0", "-1", "²", "99999999999999999999"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(min_size=1, max_size=20),
).map(lambda s: quote(s, safe=""))
CONTENT_TYPES = st.sampled_from([None, "application/json", "application/yaml", "text/plain", "text/yaml",
                                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                 "application/xml", "application/merge-patch+json", "application/json; charset=latin-1"])
TOKENS = st.sampled_from([{"Token": DEFAULT_TOKENS["classic"]}, {"Authorization": f"Bearer {DEFAULT_TOKENS['oauth']}"},
                          {"Authorization": f"Bearer {DEFAULT_TOKENS['personal']}"}, {"Token": "nope"}, {}])


def fields(*names: str) -> st.SearchStrategy:
    """JSON objects using the API's own field names (so validation gets past the first check) and others."""
    return st.fixed_dictionaries({}, optional={name: JSON for name in names}) | st.dictionaries(
        st.sampled_from(names) | st.text(max_size=8), JSON, max_size=5)


@st.composite
def bodies(draw, shaped: st.SearchStrategy) -> tuple[bytes | None, str | None]:
    """(raw body, content type): a shaped JSON object, any JSON, raw bytes or nothing."""
    kind = draw(st.sampled_from(["shaped", "json", "bytes", "none"]))
    if kind == "none":
        return None, draw(CONTENT_TYPES)
    if kind == "bytes":
        return draw(st.binary(max_size=200)), draw(CONTENT_TYPES)
    value = draw(shaped if kind == "shaped" else JSON)
    return json.dumps(value).encode(), draw(st.sampled_from(["application/json", "application/json", None, "text/plain"]))


def send(client, method: str, url: str, body: tuple[bytes | None, str | None], headers: dict):
    raw, content_type = body
    headers = dict(headers)
    if content_type:
        headers["Content-Type"] = content_type
    resp = client.open(url, method=method, data=raw, headers=headers)
    assert_envelope(resp, method, url)
    return resp


METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"])

MANAGEMENT = [
    "/dcp_services", "/dcp_services/{a}", "/dcp_services/{a}/dcp_datasources", "/dcp_datasources/{a}",
    "/dcp_datasources/{a}/dcp_datasource_attributes", "/dcp_datasource_attributes/{a}", "/projects",
    "/projects/{a}", "/{a}", "/dcp_services/{a}/{b}",
]
MANAGEMENT_FIELDS = fields("name", "archived", "description", "keyfield_locator_type", "keyfield_locator_name",
                           "datatype", "format", "is_value_public", "project_name", "project_status", "dcp_service_id",
                           "id", "aws_access_key")
PROFILE = [
    "/customer_profile/{a}/{b}/{c}", "/alias/{a}/{b}/{c}", "/consolidatedCustomerView/{a}/{b}",
    "/consolidatedCustomerView/{a}/{b}/{c}", "/customer_profile/{a}/{b}", "/{a}",
]
PROFILE_FIELDS = fields("data", "customerId", "dcpServiceId", "datasourceId")
CONTROL = [
    "/health", "/info", "/reset", "/seed", "/state", "/snapshots", "/snapshots/{a}", "/requests", "/faults",
    "/faults/{a}", "/credentials/{a}", "/uploads", "/uploads/{a}", "/uploads/wait",
    "/datasources/{a}/template.csv", "/{a}",
]
CONTROL_FIELDS = fields("to", "snapshot", "name", "method", "path", "status", "retry_after", "latency_ms", "times",
                        "probability", "seed", "after", "accounts", "dcp_services", "projects")
CONTROL_QUERY = st.dictionaries(
    st.sampled_from(["limit", "status", "path", "method", "header", "datasource_id", "after", "format", "reset", "to",
                     "snapshot"]),
    st.sampled_from(["²", "-1", "0", "1", "99999999999999999999", "4xx", "^/(a+)+b$", "[", "json", "yaml", "true",
                     "default", "X-Test:1", ""]) | st.text(max_size=12),
    max_size=3)


@st.composite
def urls(draw, prefix: str, templates: list[str], query: st.SearchStrategy | None = None) -> str:
    path = draw(st.sampled_from(templates)).format(a=draw(SEGMENT), b=draw(SEGMENT), c=draw(SEGMENT))
    params = draw(query) if query is not None else {}
    qs = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in params.items())
    return prefix + path + (f"?{qs}" if qs else "")


# ---------------------------------------------------------------------- the three route families
@FUZZ
@given(method=METHODS, url=urls("/experiment/v1", MANAGEMENT), body=bodies(MANAGEMENT_FIELDS), headers=TOKENS)
def test_fuzz_management_api(client, method, url, body, headers):
    send(client, method, url, body, headers)


@FUZZ
@given(method=METHODS, url=urls("/api", PROFILE), body=bodies(PROFILE_FIELDS), headers=TOKENS)
def test_fuzz_profile_api(client, method, url, body, headers):
    send(client, method, url, body, headers)


@st.composite
def control_bodies(draw) -> tuple[bytes | None, str | None]:
    """Control-plane bodies: as for the APIs, plus YAML text (seeds) of any shape."""
    if draw(st.booleans()):
        return draw(bodies(CONTROL_FIELDS))
    text = draw(st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\" \n\t,0123456789?#%@")), max_size=120))
    return text.encode(), draw(st.sampled_from(["application/yaml", "text/yaml", "text/plain", None]))


NO_BODY = (None, None)


@FUZZ
@given(method=METHODS, url=urls("/_emulator", CONTROL, CONTROL_QUERY), body=control_bodies(),
       origin=st.sampled_from([None, None, "http://localhost", "https://evil.example", "null"]))
# The 500s reported in issue 14, always tried first (isdigit() accepts '²', int() does not).
@example(method="GET", url="/_emulator/requests?limit=%C2%B2", body=NO_BODY, origin=None)
@example(method="GET", url="/_emulator/requests?status=%C2%B2", body=NO_BODY, origin=None)
@example(method="GET", url="/_emulator/uploads?datasource_id=%C2%B2", body=NO_BODY, origin=None)
@example(method="POST", url="/_emulator/seed", body=(json.dumps({"accounts": [{"id": "²"}]}).encode(), "application/json"),
         origin=None)
@example(method="POST", url="/_emulator/seed", body=(b"accounts: [{id: " + b"9" * 5000 + b"}]", "application/yaml"),
         origin=None)
def test_fuzz_control_plane(client, method, url, body, origin):
    # (uploads/wait returns at once whatever its timeout: nothing is ever pending without S3 uploads)
    send(client, method, url, body, {"Origin": origin} if origin else {})
    # A fault rule added by one example must not fail (or slow) the examples of the other families.
    client.delete("/_emulator/faults")
