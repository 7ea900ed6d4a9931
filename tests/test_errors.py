"""One JSON error envelope for every error, and no input — however malformed — gives a 500."""

from __future__ import annotations

import json

import pytest
from dcp_api import (
    MGMT,
    create_attribute,
    create_service,
    create_table,
    error,
    ok,
    optimizely_table,
    profile_url,
)

from dcp_emulator import create_app
from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import Config

H = {"Token": DEFAULT_TOKENS["classic"]}
JSON = {**H, "Content-Type": "application/json"}


@pytest.mark.parametrize("path", [
    "/", "/nope", "/experiment/v1/", "/experiment/v1/nope", "/experiment/v2/dcp_services", "/api/", "/api/nope",
    "/static/app.js", "/_emulator/nope", "/experiment/v1/dcp_services/abc", "/experiment/v1/dcp_services/-1",
    "/experiment/v1/dcp_services/1.5", "/api/customer_profile/1", "/api/customer_profile/x/y/z",
    "/api/consolidatedCustomerView/abc/u",
])
def test_unknown_routes_get_404_in_the_envelope(client, path):
    for method in ("GET", "POST"):
        err = error(client.open(path, method=method, headers=H), 404, "not_found")
        assert "/experiment/v1/" in err["message"]


def test_405_in_the_envelope_with_allow_header(client):
    resp = client.patch(f"{MGMT}/dcp_services", headers=H)
    error(resp, 405, "method_not_allowed")
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    error(client.post(f"{MGMT}/dcp_services/1", json={}, headers=H), 405)
    error(client.delete(f"{MGMT}/projects/1", headers=H), 405)
    error(client.put("/api/consolidatedCustomerView/1/u", headers=H), 405)


def test_the_envelope_carries_the_request_id(client):
    resp = client.get(f"{MGMT}/dcp_services/999", headers={**H, "X-Request-Id": "trace-123"})
    assert error(resp, 404)["request_id"] == "trace-123"
    assert resp.headers["X-Request-Id"] == "trace-123"
    assert resp.mimetype == "application/json"


@pytest.mark.parametrize(("data", "content_type", "status", "code"), [
    ("", "application/json", 400, "invalid_json"),
    ("   \n", "application/json", 400, "invalid_json"),
    ("{", "application/json", 400, "invalid_json"),
    ("{'name': 'x'}", "application/json", 400, "invalid_json"),
    ('{"name": "x",}', "application/json", 400, "invalid_json"),
    ('{"name": "x"} trailing', "application/json", 400, "invalid_json"),
    ("[]", "application/json", 400, "invalid_json"),
    ('["name"]', "application/json", 400, "invalid_json"),
    ('"name"', "application/json", 400, "invalid_json"),
    ("null", "application/json", 400, "invalid_json"),
    ("42", "application/json", 400, "invalid_json"),
    ('{"name": NaN}', "application/json", 400, "invalid_json"),
    ('{"name": Infinity}', "application/json", 400, "invalid_json"),
    ('{"name": "\\ud800"}', "application/json", 400, "invalid_json"),
    (b'{"name": "\xff\xfe"}', "application/json", 400, "invalid_json"),
    ("[" * 100000 + "]" * 100000, "application/json", 400, "invalid_json"),
    ('{"a":' * 50000 + "1" + "}" * 50000, "application/json", 400, "invalid_json"),
    ('{"name": "x"}', "text/plain", 415, "unsupported_media_type"),
    ("name=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ('{"name": "x"}', "application/xml", 415, "unsupported_media_type"),
])
def test_bad_bodies_get_a_clear_envelope(client, data, content_type, status, code):
    resp = client.post(f"{MGMT}/dcp_services", data=data, headers={**H, "Content-Type": content_type})
    err = error(resp, status, code)
    assert "Traceback" not in err["message"]
    assert ok(client.get(f"{MGMT}/dcp_services", headers=H), 200) == []


def test_json_with_charset_and_vendor_json_types_are_accepted(client):
    ok(client.post(f"{MGMT}/dcp_services", data='{"name": "a"}',
                   headers={**H, "Content-Type": "application/json; charset=utf-8"}), 201)


def test_a_body_without_content_type_is_read_as_json(client):
    """curl -d without -H sends form encoding; clients that send no type at all get the benefit of the doubt."""
    resp = client.post(f"{MGMT}/dcp_services", data='{"name": "a"}', headers=H, content_type="")
    ok(resp, 201)


def test_surrogate_pairs_are_fine_and_lone_surrogates_refused(client):
    s = ok(client.post(f"{MGMT}/dcp_services", data='{"name": "\\ud83d\\ude00"}', headers=JSON), 201)
    assert s["name"] == "\U0001F600"
    err = error(client.put(f"{MGMT}/dcp_services/{s['id']}", data='{"name": "\\udfff"}', headers=JSON), 400,
                "invalid_json")
    assert "surrogate" in err["message"]


def test_oversized_body_is_413_in_the_envelope():
    app = create_app(Config(max_body_bytes=2000))
    try:
        c = app.test_client()
        err = error(c.post(f"{MGMT}/dcp_services", data=json.dumps({"name": "x" * 5000}), headers=JSON), 413,
                    "payload_too_large")
        assert err["message"]
        ok(c.post(f"{MGMT}/dcp_services", data=json.dumps({"name": "x" * 100}), headers=JSON), 201)
    finally:
        app.extensions["dcp_emulator"].close()


def test_the_default_body_limit_is_one_mebibyte(client):
    big = json.dumps({"name": "x" * (1024 * 1024 + 10)})
    error(client.post(f"{MGMT}/dcp_services", data=big, headers=JSON), 413, "payload_too_large")


def test_an_unexpected_exception_is_a_500_in_the_envelope():
    app = create_app(Config())
    try:
        @app.get("/boom")
        def boom():
            raise RuntimeError("kaput")

        err = error(app.test_client().get("/boom"), 500, "internal_error")
        assert "RuntimeError" in err["message"] and "bug" in err["message"]
    finally:
        app.extensions["dcp_emulator"].close()


@pytest.mark.parametrize(("payload", "field"), [
    ({"name": 1}, "name"), ({"name": True}, "name"), ({"name": {}}, "name"), ({"name": []}, "name"),
])
def test_wrong_field_types_name_the_field(client, payload, field):
    err = error(client.post(f"{MGMT}/dcp_services", json=payload, headers=H), 400, "invalid_field", field=field)
    assert field in err["message"]


# ---------------------------------------------------------------- malformed input never gives a 500
WEIRD_IDS = ["0", "99999999999999999999999", "9223372036854775807", "9223372036854775808",
             "1" * 400, "%F0%9F%98%80", "%00", "%ff%fe", "-5", "1e3", "0x10", "%20", "..", "%2F"]

WEIRD_BODIES = [
    "", "{}", "[]", "null", "true", "1", '"s"', "{\"name\": null}", '{"data": null}', '{"data": []}',
    '{"data": "x"}', '{"data": {"": 1}}', '{"data": {"tier": {"a": [1, 2]}}}', '{"data": {"n": 1e308}}',
    '{"data": {"n": -0.0}}', '{"data": {"n": 99999999999999999999999}}', '{"data": {"99999999999999999999999": "x"}}',
    '{"data": {"tier": "\\u0000"}}', '{"data": {"tier": "\\ud83d\\ude00"}}', '{"data": {"tier": "\\udc00"}}',
    '{"name": "x", "datatype": {"a": 1}, "format": [1]}', '{"name": ["x"], "keyfield_locator_type": null}',
    '{"dcp_service_id": 99999999999999999999999}', '{"dcp_service_id": -1}', '{"dcp_service_id": 1e300}',
    '{"archived": null}', '{"archived": false, "name": 5}', '{"project_status": {}}',
    '{"keyfield_locator_name": "\\u0000"}', '{"data": {"' + "k" * 5000 + '": 1}}',
    '{"id": 99999999999999999999999, "name": "x"}', '{"name": "' + "x" * 100000 + '"}',
    '{"a":' * 2000 + "1" + "}" * 2000,
]


def _id_templates(client) -> list[str]:
    s = create_service(client, H)
    t = create_table(client, H, s["id"])
    opt = optimizely_table(client, H, s["id"])
    create_attribute(client, H, t["id"], "tier")
    create_attribute(client, H, t["id"], "n", "double")
    ok(client.post(profile_url(s["id"], t["id"], "c1"), json={"data": {"tier": "x"}}, headers=H), 201)
    return [
        f"{MGMT}/dcp_services/{{x}}", f"{MGMT}/dcp_services/{{x}}/dcp_datasources", f"{MGMT}/dcp_datasources/{{x}}",
        f"{MGMT}/dcp_datasources/{{x}}/dcp_datasource_attributes", f"{MGMT}/dcp_datasource_attributes/{{x}}",
        f"{MGMT}/projects/{{x}}", f"/api/customer_profile/{{x}}/{t['id']}/c1",
        f"/api/customer_profile/{s['id']}/{{x}}/c1", f"/api/customer_profile/{s['id']}/{t['id']}/{{x}}",
        f"/api/alias/{{x}}/{opt['id']}/u1", f"/api/alias/{s['id']}/{{x}}/u1", f"/api/alias/{s['id']}/{opt['id']}/{{x}}",
        "/api/consolidatedCustomerView/{x}/u1", f"/api/consolidatedCustomerView/{s['id']}/{{x}}",
        f"/api/consolidatedCustomerView/{s['id']}/{{x}}/u1", f"/api/consolidatedCustomerView/{s['id']}/{opt['id']}/{{x}}",
    ], s, t, opt


def test_weird_ids_in_urls_never_give_a_500():
    app = create_app(Config(max_services_per_account=1000))
    try:
        client = app.test_client()
        templates, *_ = _id_templates(client)
        failures = []
        for template in templates:
            for weird in WEIRD_IDS:
                path = template.format(x=weird)
                for method in ("GET", "POST", "PUT", "DELETE"):
                    resp = client.open(path, method=method, data='{"data": {"tier": "y"}, "name": "n"}', headers=JSON)
                    if resp.status_code >= 500 or not (resp.is_json or resp.status_code < 300):
                        failures.append((method, path, resp.status_code, resp.get_data(as_text=True)[:200]))
        assert not failures, failures
    finally:
        app.extensions["dcp_emulator"].close()


def test_weird_bodies_on_every_write_route_never_give_a_500():
    app = create_app(Config(max_services_per_account=1000))
    try:
        client = app.test_client()
        _, s, t, opt = _id_templates(client)
        attr = create_attribute(client, H, t["id"], "other")
        project = ok(client.post(f"{MGMT}/projects", json={"project_name": "P"}, headers=H), 201)
        writes = [
            ("POST", f"{MGMT}/dcp_services"), ("PUT", f"{MGMT}/dcp_services/{s['id']}"),
            ("POST", f"{MGMT}/dcp_services/{s['id']}/dcp_datasources"), ("PUT", f"{MGMT}/dcp_datasources/{t['id']}"),
            ("PUT", f"{MGMT}/dcp_datasources/{opt['id']}"),
            ("POST", f"{MGMT}/dcp_datasources/{t['id']}/dcp_datasource_attributes"),
            ("PUT", f"{MGMT}/dcp_datasource_attributes/{attr['id']}"),
            ("POST", f"{MGMT}/projects"), ("PUT", f"{MGMT}/projects/{project['id']}"),
            ("POST", profile_url(s["id"], t["id"], "c1")), ("POST", f"/api/alias/{s['id']}/{opt['id']}/u1"),
        ]
        failures = []
        for method, path in writes:
            for raw in WEIRD_BODIES:
                resp = client.open(path, method=method, data=raw, headers=JSON)
                if resp.status_code >= 500 or not resp.is_json:
                    failures.append((method, path, raw[:60], resp.status_code, resp.get_data(as_text=True)[:200]))
        assert not failures, failures
        # and the profile written before is intact apart from valid writes
        data = ok(client.get(profile_url(s["id"], t["id"], "c1"), headers=H), 200)["data"]
        assert set(data) <= {"tier", "n"}
    finally:
        app.extensions["dcp_emulator"].close()


def test_weird_headers_never_give_a_500(client):
    for headers in ({"Token": ""}, {"Token": " "}, {"Token": "x" * 10000}, {"Token": "\x7f"},
                    {"Authorization": "Bearer"}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"},
                    {"Authorization": "bearer " + DEFAULT_TOKENS["oauth"]}, {"Token": "é"}, {"Token": "\udcff"},
                    {**H, "Content-Type": "application/json; charset=latin-1"},
                    {**H, "Content-Length": "5"}, {**H, "Content-Type": ""}):
        resp = client.post(f"{MGMT}/dcp_services", data='{"name": "x"}', headers=headers)
        assert resp.status_code < 500 and resp.is_json, (headers, resp.get_data(as_text=True))


def test_oversized_bodies_over_a_real_socket_with_and_without_content_length():
    """Over HTTP the limit holds for a Content-Length body and for a chunked one (werkzeug truncates those)."""
    import requests

    from dcp_emulator.server import EmulatorServer

    server = EmulatorServer(Config(port=0, max_body_bytes=5000, log_requests=False)).start()
    try:
        url = f"{server.url}{MGMT}/dcp_services"

        def chunks(size: int):
            yield b'{"name": "'
            yield b"x" * size
            yield b'"}'

        for data in (json.dumps({"name": "x" * 10_000}), json.dumps({"name": "x" * 3_000_000}), chunks(1_000_000)):
            resp = requests.post(url, data=data, headers=JSON, timeout=10)
            assert resp.status_code == 413 and resp.json()["code"] == "payload_too_large", resp.text
        ok_resp = requests.post(url, data=chunks(100), headers=JSON, timeout=10)
        assert ok_resp.status_code == 201, ok_resp.text
        assert requests.get(url, headers=H, timeout=10).status_code == 200  # the server is still fine
    finally:
        server.shutdown()


def test_error_bodies_end_with_a_newline_like_success_bodies(client):
    success = client.get(f"{MGMT}/dcp_services", headers=H)
    failure = client.get(f"{MGMT}/dcp_services/999", headers=H)
    assert success.status_code == 200 and success.get_data(as_text=True).endswith("\n")
    assert failure.status_code == 404 and failure.get_data(as_text=True).endswith("}\n")


def test_a_204_carries_no_content_type(client):
    service = create_service(client, H)
    resp = client.delete(f"{MGMT}/dcp_services/{service['id']}", headers=H)
    assert resp.status_code == 204 and resp.get_data() == b""
    assert "Content-Type" not in resp.headers
    assert "Content-Type" not in client.delete("/_emulator/faults").headers


def test_the_413_message_names_the_limit_and_the_option_that_raises_it():
    app = create_app(Config(max_body_bytes=2000))
    try:
        err = error(app.test_client().post(f"{MGMT}/dcp_services", data=json.dumps({"name": "x" * 5000}),
                                           headers=JSON), 413, "payload_too_large")
        assert "2,000 bytes" in err["message"] and "--max-body-bytes" in err["message"]
        assert "DCP_EMULATOR_MAX_BODY_BYTES" in err["message"]
    finally:
        app.extensions["dcp_emulator"].close()
