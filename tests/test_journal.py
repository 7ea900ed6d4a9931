"""The request journal: what is recorded, filters, clearing, the bound, truncation and thread safety."""

from __future__ import annotations

import threading

from dcp_emulator import create_app
from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import Config
from dcp_emulator.journal import BODY_LIMIT, Journal

T = {"Token": DEFAULT_TOKENS["classic"]}


def journal(client, **params) -> list[dict]:
    resp = client.get("/_emulator/requests", query_string=params)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["requests"]


def test_records_api_requests_with_caller_bodies_and_timing(client):
    resp = client.post("/experiment/v1/dcp_services?x=1", headers={**T, "X-Test-Id": "t-1"}, json={"name": "S"})
    assert resp.status_code == 201
    client.get("/_emulator/info")  # the control plane itself is not journaled
    [entry] = journal(client)
    assert entry["method"] == "POST" and entry["path"] == "/experiment/v1/dcp_services"
    assert entry["query"] == "x=1" and entry["status"] == 201
    assert entry["token_kind"] == "classic" and entry["account_id"] == 1001
    assert entry["headers"]["x-test-id"] == "t-1"
    assert entry["request_json"] == {"name": "S"} and entry["request_body"] == '{"name": "S"}'
    assert entry["response_json"]["id"] == 1002 and not entry["response_truncated"]
    assert entry["request_id"] == resp.headers["X-Request-Id"]
    assert entry["duration_ms"] >= 0 and entry["timestamp"].endswith("Z") and entry["id"] >= 1
    assert entry["fault"] is None


def test_records_refused_requests_with_the_token_kind_sent(client):
    client.get("/experiment/v1/dcp_services", headers={"Authorization": f"Bearer {DEFAULT_TOKENS['personal']}"})
    client.get("/experiment/v1/dcp_services", headers={"Token": "who-knows"})
    client.get("/experiment/v1/dcp_services")
    client.get("/no/such/route")
    entries = journal(client)
    assert [(e["status"], e["token_kind"], e["account_id"]) for e in entries] == [
        (403, "personal", 1001), (403, "unknown", None), (401, None, None), (404, None, None)]
    assert entries[0]["response_json"]["code"] == "personal_token_not_accepted"


def test_filters(client):
    client.post("/experiment/v1/dcp_services", headers={**T, "X-Test-Id": "a"}, json={"name": "S"})
    client.get("/experiment/v1/dcp_services/1002", headers={**T, "X-Test-Id": "b"})
    client.get("/experiment/v1/dcp_services/999", headers={**T, "X-Test-Id": "b"})
    client.post("/api/customer_profile/1002/1003/u", headers=T, json={"data": {}})
    assert [e["status"] for e in journal(client, method="get")] == [200, 404]
    assert [e["path"] for e in journal(client, path=r"^/api/")] == ["/api/customer_profile/1002/1003/u"]
    assert [e["path"] for e in journal(client, path=r"dcp_services/\d+$")] == [
        "/experiment/v1/dcp_services/1002", "/experiment/v1/dcp_services/999"]
    assert [e["status"] for e in journal(client, status="404")] == [404]
    assert [e["status"] for e in journal(client, status="2xx")] == [201, 200, 201]
    assert len(journal(client, header="X-Test-Id:b")) == 2
    assert len(journal(client, header="x-test-id")) == 3
    assert journal(client, header=["X-Test-Id:b", "X-Test-Id:a"]) == []
    assert [e["status"] for e in journal(client, header="X-Test-Id:b", method="GET", status="404")] == [404]
    assert [e["status"] for e in journal(client, limit="2")] == [404, 201]
    for params, field in (({"path": "("}, "path"), ({"status": "abc"}, "status"), ({"limit": "-1"}, "limit"),
                          ({"header": ":x"}, "header")):
        resp = client.get("/_emulator/requests", query_string=params)
        assert resp.status_code == 400 and resp.get_json()["field"] == field


def test_delete_clears(client):
    client.get("/experiment/v1/dcp_services", headers=T)
    assert client.delete("/_emulator/requests").status_code == 204
    assert journal(client) == []


def test_bounded_oldest_dropped():
    application = create_app(Config(journal_size=3))
    try:
        client = application.test_client()
        for i in range(5):
            client.get(f"/experiment/v1/dcp_services/{i + 1}", headers=T)
        body = client.get("/_emulator/requests").get_json()
        assert [e["path"][-1] for e in body["requests"]] == ["3", "4", "5"]
        assert (body["kept"], body["capacity"], body["dropped"]) == (3, 3, 2)
    finally:
        application.extensions["dcp_emulator"].close()


def test_long_bodies_are_truncated(client):
    long_name = "n" * (BODY_LIMIT + 100)
    client.post("/experiment/v1/dcp_services", headers=T, json={"name": long_name})
    [entry] = journal(client)
    assert entry["request_truncated"] and len(entry["request_body"]) == BODY_LIMIT
    assert entry["request_json"] is None  # a truncated body is not parsed (it would be half an object)


def test_thread_safe_and_bounded_under_concurrency():
    j = Journal(maxlen=500)

    def writer(n: int) -> None:
        for i in range(1000):
            j.record({"method": "GET", "path": f"/{n}/{i}", "status": 200, "headers": {}})
            if i % 100 == 0:
                j.entries(path=r"/\d+/")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = j.entries()
    assert len(entries) == 500 and j.dropped == 8000 - 500
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids) and len(set(ids)) == 500 and ids[-1] == 8000


def test_the_journal_and_fault_rules_see_the_path_as_the_client_sent_it(client):
    # Routing ignores one trailing slash; the journal and fault patterns must not lose it.
    client.post("/_emulator/faults", json={"path": "dcp_services/$", "status": 503, "times": 1})
    assert client.get("/experiment/v1/dcp_services", headers=T).status_code == 200
    assert client.get("/experiment/v1/dcp_services/", headers=T).status_code == 503
    assert client.get("/experiment/v1/dcp_services/", headers=T).status_code == 200
    paths = [e["path"] for e in client.get("/_emulator/requests").get_json()["requests"]]
    assert paths == ["/experiment/v1/dcp_services", "/experiment/v1/dcp_services/", "/experiment/v1/dcp_services/"]
