"""The contract: the OpenAPI document is valid OpenAPI 3.1 and covers every route, and with
``validate_responses`` on (the whole suite runs so: see conftest.py) a response that strays from the document
becomes a 500 naming the operation, the status and where the body is wrong, except fault-injected ones.

The schemathesis run over the served API is tools/fuzz_api.py (``make fuzz``), run by .ci/run."""

from __future__ import annotations

import os
import sys

import pytest
from dcp_api import MGMT, create_service, error, ok
from flask import Response, jsonify

from dcp_emulator import create_app, openapi
from dcp_emulator.config import Config
from dcp_emulator.contract import Contract
from dcp_emulator.resources import SERVICE

H = {"Token": "emulator-classic-token"}
PEOPLE_PAGES = openapi.UNDOCUMENTED_BLUEPRINTS  # the dashboard and the API-docs page: for people, not programs


@pytest.fixture
def emulator_config() -> Config:
    """The check on for this module's apps, also in a run that switched it off for the rest of the suite."""
    return Config(validate_responses=True)


@pytest.fixture
def service(client) -> dict:
    """One DCP service of the default account."""
    return create_service(client, H)


def violation(resp) -> str:
    """The message of a contract violation (a 500 in the envelope)."""
    err = error(resp, 500, "internal_error")
    assert err["message"].startswith("The response violates the OpenAPI document (/_emulator/openapi.json): ")
    return err["message"]


def replace_view(app, endpoint: str, view) -> None:
    """Make ``endpoint`` answer with ``view`` (a deliberately wrong implementation)."""
    assert endpoint in app.view_functions
    app.view_functions[endpoint] = view


# ---------------------------------------------------------------------- the document
def test_the_document_is_valid_openapi_3_1(client):
    from openapi_spec_validator import validate
    from openapi_spec_validator.versions.shortcuts import get_spec_version

    doc = client.get("/_emulator/openapi.json").get_json()
    assert get_spec_version(doc).minor == "1"
    validate(doc)  # raises with the JSON path of the first problem


def test_every_route_of_the_app_is_an_operation_of_the_document(app):
    doc = openapi.document(app)
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.split(".", 1)[0] in PEOPLE_PAGES:
            continue
        path = openapi.template(rule.rule)
        assert path in doc["paths"], f"{rule.rule} ({rule.endpoint}) is not in the document"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in doc["paths"][path], f"{method} {rule.rule} is not in the document"
            checked += 1
    assert checked == sum(len(item) for item in doc["paths"].values()) > 40  # and nothing else is


def test_every_operation_documents_its_success_and_the_error_envelope(app):
    doc = openapi.document(app)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            statuses = [int(s) for s in op["responses"]]
            assert any(200 <= s < 300 for s in statuses), f"{method} {path}: no success status"
            assert 404 in statuses and 429 in statuses and 503 in statuses, f"{method} {path}: {statuses}"


# ---------------------------------------------------------------------- the check, switched on
def test_the_suite_validates_every_response():
    # conftest.py sets the variable before any Config exists; Config() (which tests build directly) reads it.
    if os.environ["DCP_EMULATOR_VALIDATE_RESPONSES"] == "0":
        pytest.skip("DCP_EMULATOR_VALIDATE_RESPONSES=0: switched off for this run (to time the suite without it)")
    assert os.environ["DCP_EMULATOR_VALIDATE_RESPONSES"] == "1"
    assert Config().validate_responses and Config(port=0).validate_responses
    assert Config.from_env().validate_responses


def test_a_body_missing_a_required_field_is_a_500_naming_it(app, client, service):
    def incomplete(service_id: int):
        return jsonify({k: v for k, v in service.items() if k != "name"})

    replace_view(app, "management.get_service", incomplete)
    message = violation(client.get(f"{MGMT}/dcp_services/{service['id']}", headers=H))
    assert message.endswith(f"GET {MGMT}/dcp_services/{{service_id}} answered 200 with a body that violates the "
                            "document at $: 'name' is a required property.")


def test_a_wrongly_typed_nested_value_is_named_by_its_json_path(app, client, service):
    def listing():
        return jsonify([service, {**service, "archived": "no"}])

    replace_view(app, "management.list_services", listing)
    message = violation(client.get(f"{MGMT}/dcp_services", headers=H))
    assert f"GET {MGMT}/dcp_services answered 200" in message
    assert "at $[1].archived: 'no' is not of type 'boolean'" in message


def test_a_timestamp_that_is_not_rfc_3339_is_caught(app, client, service):
    replace_view(app, "management.get_service", lambda service_id: jsonify({**service, "created": "yesterday"}))
    assert "at $.created: 'yesterday' is not a 'date-time'" in violation(
        client.get(f"{MGMT}/dcp_services/{service['id']}", headers=H))


def test_an_unknown_field_is_caught(app, client, service):
    replace_view(app, "management.get_service", lambda service_id: jsonify({**service, "colour": "red"}))
    assert "'colour' was unexpected" in violation(client.get(f"{MGMT}/dcp_services/{service['id']}", headers=H))


def test_an_undocumented_status_is_a_500_naming_it(app, client, service):
    replace_view(app, "management.get_service", lambda service_id: (jsonify(service), 418))
    message = violation(client.get(f"{MGMT}/dcp_services/{service['id']}", headers=H))
    assert f"GET {MGMT}/dcp_services/{{service_id}} answered status 418, which the document does not list " \
           "for it (documented: 200, 400, 401, 403, 404, 429, 503)" in message


def test_an_undocumented_content_type_is_a_500_naming_it(app, client, service):
    replace_view(app, "management.get_service", lambda service_id: Response("name=x", mimetype="text/plain"))
    assert ("answered 200 with Content-Type 'text/plain'; the document says application/json"
            in violation(client.get(f"{MGMT}/dcp_services/{service['id']}", headers=H)))


def test_an_error_outside_the_envelope_is_caught(app, client):
    replace_view(app, "management.list_services", lambda: (jsonify({"error": "nope"}), 400))
    message = violation(client.get(f"{MGMT}/dcp_services", headers=H))
    assert f"GET {MGMT}/dcp_services answered 400 with a body that violates the document at $: " in message


def test_a_204_with_a_body_is_caught(app, client, service):
    replace_view(app, "management.delete_service", lambda service_id: ("gone", 204))
    assert "answered 204 with a body; the document says it has none" in violation(
        client.delete(f"{MGMT}/dcp_services/{service['id']}", headers=H))


def test_head_is_checked_as_get_without_a_body(app, client, service):
    assert client.head(f"{MGMT}/dcp_services/{service['id']}", headers=H).status_code == 200
    replace_view(app, "management.get_service", lambda service_id: (jsonify(service), 418))
    assert client.head(f"{MGMT}/dcp_services/{service['id']}", headers=H).status_code == 500


def test_the_violation_keeps_the_request_id_and_is_journaled(app, client, service):
    replace_view(app, "management.get_service", lambda service_id: (jsonify(service), 418))
    resp = client.get(f"{MGMT}/dcp_services/{service['id']}", headers={**H, "X-Request-Id": "contract-1"})
    assert resp.status_code == 500 and resp.headers["X-Request-Id"] == "contract-1"
    assert resp.get_json()["request_id"] == "contract-1"
    [entry] = client.get("/_emulator/requests?path=dcp_services/[0-9]").get_json()["requests"]
    assert entry["status"] == 500  # the journal shows what the client got


# ---------------------------------------------------------------------- what is exempt
def test_a_faulted_response_is_whatever_the_rule_says(client, service):
    ok(client.post("/_emulator/faults", json={"path": "^/experiment/v1/dcp_services/", "status": 418, "times": 1}),
       201)
    faulted = error(client.get(f"{MGMT}/dcp_services/{service['id']}", headers=H), 418, "injected_fault")
    assert "Injected fault (rule 1" in faulted["message"]
    assert ok(client.get(f"{MGMT}/dcp_services/{service['id']}", headers=H), 200) == service


def test_a_latency_only_rule_leaves_the_response_checked(app, client, service):
    ok(client.post("/_emulator/faults", json={"path": "^/experiment/", "latency_ms": 1}), 201)
    replace_view(app, "management.get_service", lambda service_id: (jsonify(service), 418))
    violation(client.get(f"{MGMT}/dcp_services/{service['id']}", headers=H))


def test_unknown_routes_and_methods_are_not_operations(client):
    error(client.get(f"{MGMT}/no_such_thing", headers=H), 404, "not_found")
    error(client.patch(f"{MGMT}/dcp_services", headers=H), 405, "method_not_allowed")


def test_the_dashboard_is_not_checked(client):
    assert client.get("/_emulator/ui/").status_code == 200


def test_a_500_is_left_as_it_is(app, client):
    def boom():
        raise RuntimeError("kaboom")

    replace_view(app, "management.list_services", boom)
    assert "RuntimeError: kaboom" in error(client.get(f"{MGMT}/dcp_services", headers=H), 500)["message"]


# ---------------------------------------------------------------------- switched off, and without jsonschema
def test_off_nothing_is_checked():
    app = create_app(Config(validate_responses=False))
    try:
        app.view_functions["management.list_services"] = lambda: (jsonify([{"id": "x"}]), 418)
        assert app.test_client().get(f"{MGMT}/dcp_services", headers=H).status_code == 418
    finally:
        app.extensions["dcp_emulator"].close()


def test_the_variable_is_a_boolean_like_every_other(monkeypatch):
    monkeypatch.setenv("DCP_EMULATOR_VALIDATE_RESPONSES", "0")
    assert not Config().validate_responses
    monkeypatch.setenv("DCP_EMULATOR_VALIDATE_RESPONSES", "maybe")
    with pytest.raises(ValueError, match="DCP_EMULATOR_VALIDATE_RESPONSES must be a boolean"):
        Config()


def test_serve_switches_it_on_by_option_or_variable(monkeypatch):
    from dcp_emulator import cli

    seen: list[Config] = []
    monkeypatch.setattr(cli, "serve", lambda config: seen.append(config) or 0)
    monkeypatch.delenv("DCP_EMULATOR_VALIDATE_RESPONSES")
    assert cli.main(["serve"]) == 0 and cli.main(["serve", "--validate-responses"]) == 0
    monkeypatch.setenv("DCP_EMULATOR_VALIDATE_RESPONSES", "yes")
    assert cli.main(["serve"]) == 0
    assert [c.validate_responses for c in seen] == [False, True, True]


def test_without_jsonschema_the_switch_says_what_to_install(monkeypatch, app):
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # import jsonschema now raises ImportError
    with pytest.raises(RuntimeError, match=r"needs the jsonschema package: pip install 'dcp-emulator\[test\]'"):
        Contract(openapi.document(app))


def test_the_schemas_are_the_resource_descriptions(app):
    doc = openapi.document(app)
    assert doc["components"]["schemas"]["DcpService"]["required"] == SERVICE.field_names
