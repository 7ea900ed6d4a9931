"""The /_emulator/ control plane: health, reset (and its speed), snapshots, seed and state endpoints."""

from __future__ import annotations

import pathlib
import statistics
import time

import pytest

from dcp_emulator import create_app
from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import Config

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "example.yaml"
T = {"Token": DEFAULT_TOKENS["classic"]}


@pytest.fixture
def seeded():
    """An emulator started with the example seed."""
    application = create_app(Config(seed=[str(EXAMPLE)]))
    yield application
    application.extensions["dcp_emulator"].close()


def table_names(c) -> list[str]:
    return [t["name"] for t in c.get("/experiment/v1/dcp_services/567/dcp_datasources", headers=T).get_json()]


def test_health_reports_every_part_and_503_when_one_is_not_ready(app, client):
    body = client.get("/_emulator/health").get_json()
    assert body["status"] == "ok"
    assert body["parts"]["store"]["ready"] and body["parts"]["seed"] == {
        "ready": True, "detail": "no start-up seed (default state)"}
    app.extensions["dcp_emulator"].add_readiness_check("flaky", lambda: (False, "warming up"))
    resp = client.get("/_emulator/health")
    assert resp.status_code == 503
    assert resp.get_json()["status"] == "unavailable"
    assert resp.get_json()["parts"]["flaky"] == {"ready": False, "detail": "warming up"}


def test_health_names_the_loaded_seed(seeded):
    detail = seeded.test_client().get("/_emulator/health").get_json()["parts"]["seed"]["detail"]
    assert detail.startswith(f"loaded {EXAMPLE} (") and "profiles=5" in detail


def test_reset_returns_to_the_start_up_seed(seeded):
    c = seeded.test_client()
    c.post("/experiment/v1/dcp_services/567/dcp_datasources", headers=T,
           json={"name": "Extra", "keyfield_locator_type": "uid"})
    c.post("/api/customer_profile/567/678/crm-1001", headers=T, json={"data": {"orders": 43}})
    c.delete("/experiment/v1/dcp_datasources/679", headers=T)
    before = table_names(c)
    assert "Extra" in before
    resp = c.post("/_emulator/reset")
    assert resp.status_code == 200 and resp.get_json()["status"] == "reset"
    assert table_names(c) == ["Optimizely", "CRM", "Email platform"]
    assert c.get("/api/customer_profile/567/678/crm-1001", headers=T).get_json()["data"]["orders"] == 42
    assert c.get("/experiment/v1/dcp_datasources/679", headers=T).get_json()["archived"] is False
    # Generated ids start over too: the sequence is part of the restored state.
    made = c.post("/experiment/v1/dcp_services/567/dcp_datasources", headers=T,
                  json={"name": "Again", "keyfield_locator_type": "uid"}).get_json()
    assert made["id"] == 1002


def test_reset_without_seed_is_the_default_state(app, client):
    client.post("/experiment/v1/dcp_services", headers=T, json={"name": "S"})
    client.post("/_emulator/seed", json={"accounts": [{"id": 7000, "tokens": [{"token": "t7"}]}]})
    assert client.post("/_emulator/reset/").status_code == 200  # trailing slash accepted
    assert client.get("/experiment/v1/dcp_services", headers=T).get_json() == []
    assert client.get("/experiment/v1/dcp_services", headers={"Token": "t7"}).status_code == 403
    assert client.get("/_emulator/info").get_json()["tokens"] == DEFAULT_TOKENS


def test_reset_clears_journal_and_faults_and_runs_reset_hooks(app, client):
    calls = []
    app.extensions["dcp_emulator"].add_reset_hook(lambda: calls.append("hook"))
    client.get("/experiment/v1/dcp_services", headers=T)
    client.post("/_emulator/faults", json={"path": "/nothing", "status": 503})
    client.post("/_emulator/reset")
    assert client.get("/_emulator/requests").get_json()["requests"] == []
    assert client.get("/_emulator/faults").get_json()["faults"] == []
    assert calls == ["hook"]


def test_reset_is_fast_with_the_example_and_with_10000_profiles(seeded):
    """Targets: < 10 ms (example) and < 100 ms (10,000 profiles); asserted loosely for slow CI machines."""
    c = seeded.test_client()

    def median_reset_ms(runs: int = 20) -> float:
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            assert c.post("/_emulator/reset").status_code == 200
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    assert median_reset_ms() < 50
    big = {"dcp_services": [{"id": 30, "name": "Big", "account_id": 9000, "datasources": [
        {"id": 31, "name": "T", "keyfield_locator_type": "uid",
         "attributes": [{"name": "n", "datatype": "long"}, {"name": "s", "datatype": "string"}],
         "profiles": {f"c-{i}": {"n": i, "s": "x" * 20} for i in range(10_000)}}]}],
        "accounts": [{"id": 9000}]}
    seeded_big = create_app(Config())
    try:
        big_client = seeded_big.test_client()
        assert big_client.post("/_emulator/seed", json=big).status_code == 201
        assert big_client.post("/_emulator/snapshots", json={"name": "big"}).status_code == 201
        samples = []
        for _ in range(10):
            started = time.perf_counter()
            assert big_client.post("/_emulator/reset", json={"snapshot": "big"}).status_code == 200
            samples.append((time.perf_counter() - started) * 1000)
        assert statistics.median(samples) < 300
        store = seeded_big.extensions["dcp_emulator"].store
        assert store.db.execute("SELECT count(*) FROM profiles").fetchone()[0] == 10_000
    finally:
        seeded_big.extensions["dcp_emulator"].close()


def test_named_snapshots(client):
    client.post("/experiment/v1/dcp_services", headers=T, json={"name": "Saved"})
    assert client.post("/_emulator/snapshots", json={"name": "one service"}).status_code == 201
    assert client.get("/_emulator/snapshots").get_json() == {"snapshots": ["one service"]}
    client.put("/experiment/v1/dcp_services/1002", headers=T, json={"name": "Renamed"})
    assert client.post("/_emulator/reset?snapshot=one%20service").status_code == 200
    assert client.get("/experiment/v1/dcp_services/1002", headers=T).get_json()["name"] == "Saved"
    # A plain reset still goes back to the start-up state; the snapshot survives it.
    client.post("/_emulator/reset")
    assert client.get("/experiment/v1/dcp_services", headers=T).get_json() == []
    assert client.post("/_emulator/reset", json={"snapshot": "one service"}).status_code == 200
    assert client.get("/experiment/v1/dcp_services/1002", headers=T).status_code == 200
    missing = client.post("/_emulator/reset", json={"snapshot": "nope"})
    assert missing.status_code == 404 and missing.get_json()["field"] == "snapshot"
    assert client.delete("/_emulator/snapshots/one service").status_code == 204
    assert client.delete("/_emulator/snapshots/one service").status_code == 404
    bad = client.post("/_emulator/snapshots", json={"name": ""})
    assert bad.status_code == 400 and bad.get_json()["field"] == "name"


def test_snapshots_are_bounded(app, client):
    from dcp_emulator.app import MAX_SNAPSHOTS

    for i in range(MAX_SNAPSHOTS + 3):
        client.post("/_emulator/snapshots", json={"name": f"s{i}"})
    names = client.get("/_emulator/snapshots").get_json()["snapshots"]
    assert len(names) == MAX_SNAPSHOTS and names[0] == "s3" and names[-1] == f"s{MAX_SNAPSHOTS + 2}"


def test_post_seed_yaml_json_and_reset_first(client):
    yaml_body = "dcp_services:\n- {id: 40, name: From YAML}\n"
    resp = client.post("/_emulator/seed", data=yaml_body, content_type="application/yaml")
    assert resp.status_code == 201
    assert resp.get_json() == {"status": "seeded", "reset": None, "created": {
        "accounts": 0, "tokens": 0, "dcp_services": 1, "datasources": 0, "attributes": 0, "profiles": 0,
        "aliases": 0, "projects": 0, "oauth_apps": 0}, "default_account_id": 1001, "tokens": DEFAULT_TOKENS}
    # ?reset=true replaces instead of adding (the one-service limit does not apply to seeds anyway).
    resp = client.post("/_emulator/seed?reset=true", json={"dcp_services": [{"id": 41, "name": "From JSON"}]})
    assert resp.status_code == 201
    assert [s["id"] for s in client.get("/experiment/v1/dcp_services", headers=T).get_json()] == [41]
    bad = client.post("/_emulator/seed", data="{not json", content_type="application/json")
    assert bad.status_code == 400 and bad.get_json()["code"] == "invalid_seed"
    assert "invalid JSON" in bad.get_json()["message"]


def test_post_seed_accepts_bodies_larger_than_api_requests():
    application = create_app(Config(max_body_bytes=10_000))
    try:
        client = application.test_client()
        profiles = "\n".join(f"      c-{i}: {{n: {i}}}" for i in range(2_000))
        body = ("dcp_services:\n- id: 50\n  name: Big\n  datasources:\n  - id: 51\n    name: T\n"
                "    keyfield_locator_type: uid\n    attributes: [{name: n, datatype: long}]\n    profiles:\n"
                + profiles)
        assert len(body) > 10_000
        assert client.post("/experiment/v1/dcp_services", headers=T, data=body).status_code == 413
        resp = client.post("/_emulator/seed", data=body, content_type="application/yaml")
        assert resp.status_code == 201 and resp.get_json()["created"]["profiles"] == 2_000
    finally:
        application.extensions["dcp_emulator"].close()


def test_state_export_formats(seeded):
    c = seeded.test_client()
    as_yaml = c.get("/_emulator/state")
    assert as_yaml.mimetype == "application/yaml"
    assert as_yaml.get_data(as_text=True).startswith("# dcp-emulator ")
    as_json = c.get("/_emulator/state", headers={"Accept": "application/json"})
    assert as_json.mimetype == "application/json"
    assert as_json.get_json() == c.get("/_emulator/state?format=json").get_json()
    assert as_json.get_json()["dcp_services"][0]["aliases"] == {"oeu-ada": {"678": "crm-1001", "679": "em-ada"},
                                                               "oeu-grace": {"678": "crm-1002", "679": "em-grace"}}
    assert c.get("/_emulator/state", headers={"Accept": "*/*"}).mimetype == "application/yaml"
    bad = c.get("/_emulator/state?format=xml")
    assert bad.status_code == 400 and bad.get_json()["field"] == "format"


def test_control_plane_needs_no_token_and_is_not_authenticated(client):
    for path in ("/_emulator/state", "/_emulator/requests", "/_emulator/faults", "/_emulator/snapshots"):
        assert client.get(path).status_code == 200, path


def test_reset_to_default_drops_the_start_up_seed(seeded):
    c = seeded.test_client()
    resp = c.post("/_emulator/reset", json={"to": "default"})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["to"] == "default" and body["tokens"] == DEFAULT_TOKENS and body["default_account_id"] == 1001
    assert c.get("/experiment/v1/dcp_services", headers=T).get_json() == []
    assert c.get("/_emulator/info").get_json()["tokens"] == DEFAULT_TOKENS
    made = c.post("/experiment/v1/dcp_services", headers=T, json={"name": "S"}).get_json()
    assert made["id"] == 1002  # the id sequence is the default state's too
    # The plain reset still returns to the start-up state, and ?to= works like the body.
    assert c.post("/_emulator/reset").get_json()["to"] == "startup"
    assert table_names(c) == ["Optimizely", "CRM", "Email platform"]
    assert c.post("/_emulator/reset?to=default").status_code == 200
    assert c.get("/experiment/v1/dcp_services", headers=T).get_json() == []
    assert c.post("/_emulator/reset", json={"to": "startup"}).status_code == 200
    assert table_names(c) == ["Optimizely", "CRM", "Email platform"]
    # A seed on top of the default state does not collide with the start-up seed's ids.
    resp = c.post("/_emulator/seed?reset=default", data=EXAMPLE.read_bytes(), content_type="application/yaml")
    assert resp.status_code == 201 and resp.get_json()["reset"] == "default"
    assert table_names(c) == ["Optimizely", "CRM", "Email platform"]
    for bad, field in (({"to": "nowhere"}, "to"), ({"to": "default", "snapshot": "x"}, "to"),
                       ({"snapshot": 3}, "snapshot")):
        resp = c.post("/_emulator/reset", json=bad)
        assert resp.status_code == 400 and resp.get_json()["field"] == field, bad
    resp = c.post("/_emulator/seed?reset=maybe", json={})
    assert resp.status_code == 400 and resp.get_json()["field"] == "reset"


@pytest.mark.parametrize("reset", ["true", "default"])
def test_a_refused_seed_with_reset_leaves_everything_as_it_was(seeded, reset):
    from dcp_emulator.seed import export_state

    c = seeded.test_client()
    emu = seeded.extensions["dcp_emulator"]
    c.post("/experiment/v1/dcp_services/567/dcp_datasources", headers=T,
           json={"name": "Extra", "keyfield_locator_type": "uid"})
    c.post("/_emulator/faults", json={"path": "/nothing", "status": 503})
    before = export_state(emu.store)
    bad = {"dcp_services": [{"id": 900, "name": "Good", "datasources": [
        {"name": "T", "keyfield_locator_type": "uid", "attributes": [{"name": "n", "datatype": "long"}],
         "profiles": {"a": {"n": 1}, "b": {"n": "many"}}}]}]}
    resp = c.post(f"/_emulator/seed?reset={reset}", json=bad)
    assert resp.status_code == 400 and resp.get_json()["field"] == "dcp_services[0].datasources[0].profiles.b.n"
    assert export_state(emu.store) == before
    assert "Extra" in table_names(c)
    assert len(c.get("/_emulator/faults").get_json()["faults"]) == 1
    assert len(c.get("/_emulator/requests").get_json()["requests"]) == 2  # the journal was not cleared either
    # A good one replaces the state (and clears journal and faults, as a reset does).
    good = {"dcp_services": [{"id": 900, "name": "Good"}]}
    assert c.post(f"/_emulator/seed?reset={reset}", json=good).status_code == 201
    ids = [s["id"] for s in c.get("/experiment/v1/dcp_services", headers=T).get_json()]
    assert ids == ([900] if reset == "default" else [567, 900])
    assert c.get("/_emulator/faults").get_json()["faults"] == []


def test_seed_and_reset_answers_carry_the_current_default_tokens(client):
    seed = {"accounts": [{"id": 1001, "tokens": [{"token": "emulator-classic-token", "revoked": True},
                                                 {"token": "fresh-classic", "kind": "classic"}]}]}
    resp = client.post("/_emulator/seed", json=seed)
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["tokens"]["classic"] == "fresh-classic"
    assert client.post("/_emulator/reset").get_json()["tokens"] == DEFAULT_TOKENS


def test_credentials_lookup_by_table_or_service_id(seeded):
    c = seeded.test_client()
    assert c.get("/_emulator/credentials/678").get_json() == {
        "id": 678, "kind": "datasource", "aws_access_key": "AKIAACMECRM000000678",
        "aws_secret_key": "acme-crm-secret-key-000000000000000000678", "prefix": "dcp/567/678/"}
    service = c.get("/_emulator/credentials/567").get_json()
    assert service["kind"] == "dcp_service" and service["prefix"] == "dcp/567/"
    mine = c.get("/experiment/v1/dcp_services/567", headers=T).get_json()
    assert service["aws_access_key"] == mine["aws_access_key"]
    # Any account: the control plane is not scoped by a token.
    c.post("/_emulator/seed", json={"accounts": [{"id": 9000}], "dcp_services": [{"id": 30, "name": "Other",
                                                                                  "account_id": 9000}]})
    assert c.get("/_emulator/credentials/30").get_json()["kind"] == "dcp_service"
    missing = c.get("/_emulator/credentials/424242")
    assert missing.status_code == 404 and missing.get_json()["field"] == "id"
