"""Fault injection: 429 with Retry-After, 503, any status, latency, budgets, seeded probability,
matching, listing, clearing, validation — and faulted requests in the journal."""

from __future__ import annotations

import time

import pytest

from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.faults import Faults

T = {"Token": DEFAULT_TOKENS["classic"]}
SERVICES = "/experiment/v1/dcp_services"


def add(client, **rule) -> dict:
    resp = client.post("/_emulator/faults", json=rule)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def test_429_with_retry_after_for_the_next_n_requests(client):
    rule = add(client, path="dcp_services", status=429, retry_after=7, times=2)
    assert rule["remaining"] == 2 and rule["id"] == 1
    for _ in range(2):
        resp = client.get(SERVICES, headers=T)
        assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
        body = resp.get_json()
        assert body["code"] == "rate_limited" and body["status"] == 429 and "rule 1" in body["message"]
        assert body["request_id"] == resp.headers["X-Request-Id"]
    assert client.get(SERVICES, headers=T).status_code == 200
    [listed] = client.get("/_emulator/faults").get_json()["faults"]
    assert listed["remaining"] == 0 and listed["fired"] == 2


def test_429_gets_a_default_retry_after(client):
    add(client, status=429, times=1)
    assert client.get(SERVICES, headers=T).headers["Retry-After"] == "1"


def test_503_default_and_any_status(client):
    add(client, method="POST", times=1)  # nothing but a match: the service is down
    resp = client.post(SERVICES, headers=T, json={"name": "S"})
    assert resp.status_code == 503 and resp.get_json()["code"] == "service_unavailable"
    assert "Retry-After" not in resp.headers
    add(client, path=r"^/api/", status=418)
    resp = client.get("/api/customer_profile/1/2/3", headers=T)
    assert resp.status_code == 418 and resp.get_json()["code"] == "injected_fault"
    # The POST that failed wrote nothing; the rule was spent, so this one works.
    assert client.post(SERVICES, headers=T, json={"name": "S"}).status_code == 201


def test_faults_fire_before_authentication(client):
    add(client, status=503, times=1)
    assert client.get(SERVICES).status_code == 503  # no token at all: the outage wins, like a real gateway


def test_latency_only_rule_slows_then_answers_normally(client):
    add(client, latency_ms=150, times=1)
    started = time.perf_counter()
    resp = client.get(SERVICES, headers=T)
    assert resp.status_code == 200 and time.perf_counter() - started >= 0.14
    started = time.perf_counter()
    client.get(SERVICES, headers=T)
    assert time.perf_counter() - started < 0.14


def test_latency_and_status_together(client):
    add(client, latency_ms=50, status=503, times=1)
    started = time.perf_counter()
    assert client.get(SERVICES, headers=T).status_code == 503
    assert time.perf_counter() - started >= 0.045


def test_seeded_probability_is_deterministic(client):
    def pattern() -> list[int]:
        client.delete("/_emulator/faults")
        add(client, status=503, probability=0.5, seed=42)
        return [client.get(SERVICES, headers=T).status_code for _ in range(40)]

    first = pattern()
    assert first == pattern()
    assert 5 < first.count(503) < 35 and 200 in first


def test_matching_by_method_and_path_and_first_rule_wins(client):
    add(client, method="DELETE", status=500)
    add(client, path=r"/dcp_services/\d+$", status=409)
    add(client, path="dcp_services", status=502)
    assert client.get(f"{SERVICES}/5", headers=T).status_code == 409
    assert client.get(SERVICES, headers=T).status_code == 502
    assert client.delete(f"{SERVICES}/5", headers=T).status_code == 500


def test_control_plane_is_never_faulted(client):
    add(client, status=503)
    assert client.get("/_emulator/health").status_code == 200
    assert client.get("/_emulator/faults").status_code == 200


def test_faulted_requests_are_journaled(client):
    rule = add(client, status=429, times=1)
    client.get(SERVICES, headers={**T, "X-Test-Id": "retry"})
    client.get(SERVICES, headers={**T, "X-Test-Id": "retry"})
    entries = client.get("/_emulator/requests?header=X-Test-Id:retry").get_json()["requests"]
    assert [(e["status"], e["fault"], e["token_kind"]) for e in entries] == [
        (429, rule["id"], "classic"), (200, None, "classic")]


def test_list_delete_one_and_clear(client):
    one = add(client, path="a", status=503)
    two = add(client, path="b", latency_ms=5, times=3)
    listed = client.get("/_emulator/faults").get_json()["faults"]
    assert [(r["id"], r["remaining"], r["status"], r["latency_ms"]) for r in listed] == [
        (one["id"], None, 503, None), (two["id"], 3, None, 5)]
    assert client.delete(f"/_emulator/faults/{one['id']}").status_code == 204
    assert client.delete(f"/_emulator/faults/{one['id']}").status_code == 404
    assert [r["id"] for r in client.get("/_emulator/faults").get_json()["faults"]] == [two["id"]]
    assert client.delete("/_emulator/faults").status_code == 204
    assert client.get("/_emulator/faults").get_json()["faults"] == []


@pytest.mark.parametrize("rule, field", [
    ({"status": 200}, "status"), ({"status": "503"}, "status"), ({"path": "("}, "path"),
    ({"times": 0}, "times"), ({"probability": 1.5}, "probability"), ({"latency_ms": 10**7}, "latency_ms"),
    ({"method": "GET /"}, "method"), ({"colour": "red"}, "colour"), ({"retry_after": -1}, "retry_after"),
])
def test_invalid_rules_are_400_naming_the_field(client, rule, field):
    resp = client.post("/_emulator/faults", json=rule)
    assert resp.status_code == 400 and resp.get_json()["field"] == field
    assert client.get("/_emulator/faults").get_json()["faults"] == []


def test_budget_is_exact_under_concurrency():
    import threading

    faults = Faults()
    faults.add({"status": 503, "times": 100})
    fired = []

    def hit() -> None:
        for _ in range(100):
            if faults.match("GET", "/x"):
                fired.append(1)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fired) == 100 and faults.list()[0]["remaining"] == 0
