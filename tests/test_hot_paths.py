"""The profile hot paths cost their SQL (no savepoints, cached layouts that never go stale), the cheap
journal records show exactly what they did, and the S3 side starts on first need without making
anything see it half-built."""

from __future__ import annotations

import threading

import pytest

from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.bulk import LazyGateway
from dcp_emulator.journal import _KEEP_BYTES, BODY_LIMIT
from dcp_emulator.urls import OWN_PREFIXES

T = {"Token": DEFAULT_TOKENS["classic"]}


def _ok(resp, status=None):
    assert resp.status_code == (status or resp.status_code) and resp.status_code < 300, resp.get_data(as_text=True)
    return resp.get_json()


@pytest.fixture
def setup(client):
    """A service, its Optimizely table, and ``tables()`` making tables with a ``name`` attribute."""
    sid = _ok(client.post("/experiment/v1/dcp_services", json={"name": "S"}, headers=T))["id"]
    opt = _ok(client.get(f"/experiment/v1/dcp_services/{sid}/dcp_datasources", headers=T))[0]["id"]

    def tables(n: int) -> list[int]:
        out = []
        for i in range(n):
            tid = _ok(client.post(f"/experiment/v1/dcp_services/{sid}/dcp_datasources",
                                  json={"name": f"T{i}", "keyfield_locator_type": "uid"}, headers=T))["id"]
            _ok(client.post(f"/experiment/v1/dcp_datasources/{tid}/dcp_datasource_attributes",
                            json={"name": "name", "datatype": "string"}, headers=T))
            out.append(tid)
        return out

    return sid, opt, tables


@pytest.fixture
def trace(app):
    """The SQL statements run while the returned list is being filled (``trace.on()`` / ``trace.off()``)."""
    conn = app.extensions["dcp_emulator"].store.db.conn
    seen: list[str] = []

    class Trace(list):
        def run(self, fn):
            fn()  # warm: the measured request runs with the caches a running emulator has
            seen.clear()
            conn.set_trace_callback(seen.append)
            try:
                resp = fn()
            finally:
                conn.set_trace_callback(None)
            assert resp.status_code < 300, resp.get_data(as_text=True)
            return list(seen)

    return Trace()


def _control(statements: list[str]) -> list[str]:
    return [s for s in statements if s.split()[0].upper() in ("SAVEPOINT", "RELEASE", "ROLLBACK", "PRAGMA")]


# ---------------------------------------------------------------------- statements
def test_profile_read_and_write_run_their_own_sql_only(client, setup, trace):
    sid, _, tables = setup
    [tid] = tables(1)
    url = f"/api/customer_profile/{sid}/{tid}/c-1"
    write = trace.run(lambda: client.post(url, json={"data": {"name": "Ada"}}, headers=T))
    read = trace.run(lambda: client.get(url, headers=T))
    assert _control(write) == [] and _control(read) == [], (write, read)
    assert [s.split()[0] for s in write].count("INSERT") == 1 and not any(s.startswith("SELECT customer_id")
                                                                          for s in write)  # no read-back
    assert len(read) == 3  # the token, the service and table in one query, the profile


def test_alias_write_has_no_savepoints(client, setup, trace):
    sid, opt, tables = setup
    [tid] = tables(1)
    statements = trace.run(lambda: client.post(f"/api/alias/{sid}/{opt}/u-1", json={"data": {str(tid): "c-1"}},
                                               headers=T))
    assert _control(statements) == [], statements


def test_consolidated_view_costs_one_point_read_per_aliased_table(client, setup, trace):
    sid, opt, tables = setup
    ids = tables(6)
    for tid in ids:
        _ok(client.post(f"/api/customer_profile/{sid}/{tid}/c-1", json={"data": {"name": f"n{tid}"}}, headers=T))
    counts = []
    for n in (1, 6):
        _ok(client.post(f"/api/alias/{sid}/{opt}/user-{n}", json={"data": {str(t): "c-1" for t in ids[:n]}},
                        headers=T))
        statements = trace.run(lambda n=n: client.get(f"/api/consolidatedCustomerView/{sid}/user-{n}", headers=T))
        assert _control(statements) == [], statements
        counts.append(len(statements))
    assert counts[1] - counts[0] == 5
    view = _ok(client.get(f"/api/consolidatedCustomerView/{sid}/user-6", headers=T))
    assert [p["data"] for p in view] == [{"name": f"n{t}"} for t in ids]  # no Optimizely profile: left out


# ---------------------------------------------------------------------- cached layouts
def test_attribute_changes_show_at_once(client, setup):
    sid, _, tables = setup
    [tid] = tables(1)
    url = f"/api/customer_profile/{sid}/{tid}/c-1"
    assert _ok(client.post(url, json={"data": {"name": "Ada"}}, headers=T))["data"] == {"name": "Ada"}
    attr = _ok(client.post(f"/experiment/v1/dcp_datasources/{tid}/dcp_datasource_attributes",
                           json={"name": "ltv", "datatype": "double"}, headers=T))
    assert _ok(client.post(url, json={"data": {"ltv": 2.5}}, headers=T))["data"] == {"name": "Ada", "ltv": 2.5}
    assert client.delete(f"/experiment/v1/dcp_datasource_attributes/{attr['id']}", headers=T).status_code == 204
    assert _ok(client.get(url, headers=T))["data"] == {"name": "Ada"}
    refused = client.post(url, json={"data": {"ltv": 3.5}}, headers=T)
    assert refused.status_code == 400 and "archived" in refused.get_json()["message"]
    _ok(client.put(f"/experiment/v1/dcp_datasource_attributes/{attr['id']}", json={"archived": False}, headers=T))
    assert _ok(client.get(url, headers=T))["data"] == {"name": "Ada", "ltv": 2.5}


def test_a_rolled_back_attribute_never_lingers_in_the_cache(app, client, setup):
    """Within one transaction an attribute is created and written (its table's layout is cached with
    it); the transaction then fails. The layout must not survive the rollback."""
    sid, _, tables = setup
    [tid] = tables(1)
    store = app.extensions["dcp_emulator"].store
    url = f"/api/customer_profile/{sid}/{tid}/c-1"
    with pytest.raises(RuntimeError), store.transaction():
        store.management.create_attribute(1001, tid, {"name": "ghost", "datatype": "long"})
        store.profiles.write_profile(1001, sid, tid, "c-1", {"ghost": 1})
        assert store.profiles.read_profile(1001, sid, tid, "c-1")["data"] == {"ghost": 1}
        raise RuntimeError("the seed failed further on")
    refused = client.post(url, json={"data": {"ghost": 2}}, headers=T)
    assert refused.status_code == 400, refused.get_data(as_text=True)
    assert "'ghost' is not a registered attribute" in refused.get_json()["message"]
    assert client.get(url, headers=T).status_code == 404


def test_a_refused_seed_leaves_no_layout_behind(client, setup):
    """A seed creates a table (its id is then free again) with an attribute, writes profiles, then is
    refused: a table created afterwards gets the same id, and must not inherit the attribute."""
    sid, _, _ = setup
    seed = {"dcp_services": [{"id": sid, "datasources": [
        {"name": "New", "keyfield_locator_type": "uid", "attributes": [{"name": "ghost", "datatype": "long"}],
         "profiles": {"c-1": {"ghost": 1}}},
        {"name": "Broken", "keyfield_locator_type": "uid", "attributes": [{"name": "x", "datatype": "nope"}]}]}]}
    refused = client.post("/_emulator/seed", json=seed)
    assert refused.status_code == 400, refused.get_data(as_text=True)
    tid = _ok(client.post(f"/experiment/v1/dcp_services/{sid}/dcp_datasources",
                          json={"name": "After", "keyfield_locator_type": "uid"}, headers=T))["id"]
    resp = client.post(f"/api/customer_profile/{sid}/{tid}/c-1", json={"data": {"ghost": 2}}, headers=T)
    assert resp.status_code == 400 and "'ghost' is not a registered attribute" in resp.get_json()["message"]


def test_reset_and_snapshots_drop_cached_layouts(client, setup):
    sid, _, tables = setup
    [tid] = tables(1)
    url = f"/api/customer_profile/{sid}/{tid}/c-1"
    _ok(client.post(url, json={"data": {"name": "Ada"}}, headers=T))
    assert client.post("/_emulator/snapshots", json={"name": "one-attribute"}).status_code in (200, 201)
    _ok(client.post(f"/experiment/v1/dcp_datasources/{tid}/dcp_datasource_attributes",
                    json={"name": "ltv", "datatype": "double"}, headers=T))
    _ok(client.post(url, json={"data": {"ltv": 1.5}}, headers=T))
    _ok(client.post("/_emulator/reset", json={"snapshot": "one-attribute"}))
    assert _ok(client.get(url, headers=T))["data"] == {"name": "Ada"}
    resp = client.post(url, json={"data": {"ltv": 2.5}}, headers=T)
    assert resp.status_code == 400 and "'ltv' is not a registered attribute" in resp.get_json()["message"]


# ---------------------------------------------------------------------- the journal's lazy records
def test_journal_shows_a_long_multibyte_body_as_the_whole_body_would(client):
    text = "é" * (_KEEP_BYTES // 2 + 1000)  # two bytes each: more bytes than a record keeps
    client.post("/experiment/v1/dcp_services", headers=T, data=text.encode(), content_type="text/plain")
    client.get("/experiment/v1/dcp_services", headers=T)
    posted, listed = client.get("/_emulator/requests").get_json()["requests"]
    assert posted["request_body"] == text[:BODY_LIMIT] and posted["request_truncated"]
    assert posted["request_json"] is None and posted["response_json"]["code"] == "unsupported_media_type"
    assert listed["request_body"] is None and not listed["request_truncated"] and listed["response_json"] == []
    assert posted["headers"]["content-type"].startswith("text/plain") and listed["headers"]["token"] == T["Token"]


# ---------------------------------------------------------------------- S3 started on first need
def test_api_requests_never_wait_for_the_s3_side():
    release = threading.Event()
    gateway = LazyGateway(lambda: release.wait(10) and _FakeGateway())
    app = gateway.middleware(lambda environ, start_response: [b"app"])
    for prefix in OWN_PREFIXES:
        assert app({"PATH_INFO": prefix + "x"}, None) == [b"app"]
    gateway.reset()  # nothing to empty yet
    gateway.close()  # nothing to close either
    assert not gateway.built
    answers = []
    s3 = threading.Thread(target=lambda: answers.append(app({"PATH_INFO": "/optimizely-import/k"}, None)))
    s3.start()
    s3.join(0.2)
    assert s3.is_alive() and not answers  # the first S3 request builds the gateway...
    assert app({"PATH_INFO": "/api/x"}, None) == [b"app"]  # ...while API requests go on
    release.set()
    s3.join(10)
    assert answers == [[b"s3"]] and gateway.readiness() == (True, "fake") and gateway.built
    gateway.close()
    assert gateway.get().closed


def test_an_s3_side_that_cannot_start_is_reported_not_ready():
    def broken():
        raise ImportError("no module named moto")

    gateway = LazyGateway(broken)
    with pytest.raises(RuntimeError, match="the S3 endpoint failed to start: ImportError: no module named moto"):
        gateway.readiness()
    gateway.close()  # nothing was built: nothing to close, no error


def test_health_reports_s3_ready_only_once_it_is(client):
    health = client.get("/_emulator/health").get_json()
    assert health["parts"]["s3"]["ready"] and "optimizely-import" in health["parts"]["s3"]["detail"]


class _FakeGateway:
    closed = False

    @staticmethod
    def is_s3_request(environ: dict) -> bool:
        return True

    def middleware(self, app):
        return lambda environ, start_response: [b"s3"] if self.is_s3_request(environ) else app(environ,
                                                                                               start_response)

    def readiness(self):
        return True, "fake"

    def close(self):
        self.closed = True


# ---------------------------------------------------------------------- URL rules
def test_url_building_still_works_with_builders_compiled_on_first_use(app):
    from flask import url_for

    with app.test_request_context():
        assert url_for("profiles.read_profile", service_id=1, datasource_id=2, customer_id="a/b c") == \
            "/api/customer_profile/1/2/a/b%20c"
        assert url_for("profiles.read_profile", service_id=1, datasource_id=2, customer_id="x", q=1) == \
            "/api/customer_profile/1/2/x?q=1"
