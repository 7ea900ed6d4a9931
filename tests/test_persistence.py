"""``--db PATH``: state survives a restart of the served process; the file is in WAL mode."""

from __future__ import annotations

import json
import signal
import sqlite3

import requests
from served import ServedEmulator

from dcp_emulator import create_app
from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import Config

H = {"Token": DEFAULT_TOKENS["classic"]}
M = "/experiment/v1"


def _post(base: str, path: str, payload: dict, status: int = 201) -> dict:
    resp = requests.post(base + path, json=payload, headers=H, timeout=10)
    assert resp.status_code == status, resp.text
    return resp.json()


def _get(base: str, path: str) -> object:
    resp = requests.get(base + path, headers=H, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _everything(base: str, s: int, t: int, opt: int, p: int) -> dict:
    return {
        "services": _get(base, f"{M}/dcp_services"),
        "tables": _get(base, f"{M}/dcp_services/{s}/dcp_datasources"),
        "attributes": _get(base, f"{M}/dcp_datasources/{t}/dcp_datasource_attributes"),
        "project": _get(base, f"{M}/projects/{p}"),
        "profile": _get(base, f"/api/customer_profile/{s}/{t}/cust-1"),
        "alias": _get(base, f"/api/alias/{s}/{opt}/oeu-1"),
        "view": _get(base, f"/api/consolidatedCustomerView/{s}/oeu-1"),
    }


def test_state_survives_a_restart_on_the_same_db_file(tmp_path):
    db = tmp_path / "state.db"
    with ServedEmulator("--db", str(db), "--quiet") as first:
        base = first.url
        s = _post(base, f"{M}/dcp_services", {"name": "Persistent"})["id"]
        opt = next(x["id"] for x in _get(base, f"{M}/dcp_services/{s}/dcp_datasources") if x["is_optimizely"])
        t = _post(base, f"{M}/dcp_services/{s}/dcp_datasources",
                  {"name": "CRM", "keyfield_locator_type": "cookie", "keyfield_locator_name": "crm"})["id"]
        for name, datatype, fmt in (("tier", "string", None), ("score", "long", None), ("since", "datetime", "epoch")):
            _post(base, f"{M}/dcp_datasources/{t}/dcp_datasource_attributes",
                  {"name": name, "datatype": datatype, "format": fmt})
        _post(base, f"/api/customer_profile/{s}/{t}/cust-1", {"data": {"tier": "gold", "score": 7, "since": 1651676123}})
        _post(base, f"/api/alias/{s}/{opt}/oeu-1", {"data": {str(t): "cust-1"}})
        p = _post(base, f"{M}/projects", {"project_name": "Web", "dcp_service_id": s})["id"]
        before = _everything(base, s, t, opt, p)
    assert first.proc.returncode == 0, first.output

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    with ServedEmulator("--db", str(db), "--quiet") as second:
        after = _everything(second.url, s, t, opt, p)
        assert after == before
        assert after["profile"]["data"] == {"tier": "gold", "score": 7, "since": 1651676123}
        # the id sequence carries on: nothing new collides with what was there
        new_table = _post(second.url, f"{M}/dcp_services/{s}/dcp_datasources",
                          {"name": "New", "keyfield_locator_type": "uid"})
        assert new_table["id"] > max(s, t, opt, p)
        # the default account was not created twice, and the one-service limit still counts the old service
        _post(second.url, f"{M}/dcp_services", {"name": "Second"}, status=400)
        info = requests.get(second.url + "/_emulator/info", timeout=5).json()
        assert info["default_account_id"] == 1001 and info["tokens"]["classic"] == DEFAULT_TOKENS["classic"]
    assert second.stop(signal.SIGTERM) == 0


def test_without_db_state_is_in_memory_and_gone_after_restart():
    with ServedEmulator("--quiet") as first:
        _post(first.url, f"{M}/dcp_services", {"name": "Ephemeral"})
        info = requests.get(first.url + "/_emulator/info", timeout=5).json()
        assert info.get("db") is None
    with ServedEmulator("--quiet") as second:
        assert _get(second.url, f"{M}/dcp_services") == []


def test_db_file_is_wal_and_two_in_memory_emulators_do_not_share_state(tmp_path):
    app = create_app(Config(db=str(tmp_path / "x.db")))
    mem_a, mem_b = create_app(Config()), create_app(Config())
    try:
        assert app.extensions["dcp_emulator"].store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert mem_a.test_client().post(f"{M}/dcp_services", json={"name": "A"}, headers=H).status_code == 201
        assert mem_b.test_client().get(f"{M}/dcp_services", headers=H).get_json() == []
    finally:
        for a in (app, mem_a, mem_b):
            a.extensions["dcp_emulator"].close()


def test_a_write_refused_half_way_leaves_the_db_file_unchanged(tmp_path):
    """Every API write is one transaction: a refused profile write changes nothing on disk."""
    path = tmp_path / "x.db"
    app = create_app(Config(db=str(path)))
    try:
        c = app.test_client()
        s = c.post(f"{M}/dcp_services", json={"name": "S"}, headers=H).get_json()["id"]
        t = c.post(f"{M}/dcp_services/{s}/dcp_datasources", json={"name": "T", "keyfield_locator_type": "uid"},
                   headers=H).get_json()["id"]
        c.post(f"{M}/dcp_datasources/{t}/dcp_datasource_attributes", json={"name": "n", "datatype": "long"}, headers=H)
        assert c.post(f"/api/customer_profile/{s}/{t}/c", json={"data": {"n": 1}}, headers=H).status_code == 201
        with sqlite3.connect(path) as conn:
            before = conn.execute("SELECT * FROM profiles").fetchall()
        assert c.post(f"/api/customer_profile/{s}/{t}/c", json={"data": {"n": 2, "x": 1}}, headers=H).status_code == 400
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT * FROM profiles").fetchall() == before
    finally:
        app.extensions["dcp_emulator"].close()


def test_health_is_503_when_the_store_is_unusable(tmp_path):
    """Readiness is a real probe (a read and a write), not a constant."""
    app = create_app(Config(db=str(tmp_path / "x.db")))
    try:
        client = app.test_client()
        assert client.get("/_emulator/health").status_code == 200
        app.extensions["dcp_emulator"].store.db.conn.close()  # the database goes away under the emulator
        resp = client.get("/_emulator/health")
        assert resp.status_code == 503
        store = resp.get_json()["parts"]["store"]
        assert store["ready"] is False and "closed" in store["detail"]
    finally:
        app.extensions["dcp_emulator"].close()


def test_a_database_with_json_profiles_is_migrated_to_profile_tables(tmp_path):
    """A --db file of an earlier version (profiles as JSON in one table) opens with every value typed as before."""
    from dcp_emulator.store import Store

    path = str(tmp_path / "old.db")
    store = Store(path)
    account = store.credentials.create_account()["id"]
    service = store.management.create_service(account, {"name": "S"})["id"]
    table = store.management.create_datasource(account, service, {"name": "T", "keyfield_locator_type": "uid"})["id"]
    attrs = {name: store.management.create_attribute(account, table, {"name": name, "datatype": dt, "format": fmt})["id"]
             for name, dt, fmt in [("s", "string", None), ("b", "bool", None), ("l", "long", None),
                                   ("d", "double", None), ("e", "datetime", "epoch"), ("gone", "string", None)]}
    store.management.delete_attribute(account, attrs["gone"])
    store.close()
    conn = sqlite3.connect(path)  # the former layout, as an earlier version wrote it
    conn.executescript(f"DROP VIEW profiles; DROP TABLE profiles_{table};"
                       "CREATE TABLE profiles (datasource_id INTEGER NOT NULL, customer_id TEXT NOT NULL, "
                       "data TEXT NOT NULL, PRIMARY KEY (datasource_id, customer_id)) WITHOUT ROWID")
    old = {"c1": {"s": "x", "b": True, "l": 7, "d": 2.5, "e": 0, "gone": "hidden"}, "c2": {"b": False, "d": 3},
           "c3": {}}
    conn.executemany("INSERT INTO profiles VALUES (?, ?, ?)",
                     [(table, cid, json.dumps({str(attrs[k]): v for k, v in data.items()})) for cid, data in old.items()])
    conn.commit()
    conn.close()
    store = Store(path)
    try:
        for cid, data in old.items():
            got = store.profiles.read_profile(account, service, table, cid)["data"]
            want = {k: v for k, v in data.items() if k != "gone"}
            assert got == want and [type(v) for v in got.values()] == [type(want[k]) for k in got], (cid, got)
        store.management.update_attribute(account, attrs["gone"], {"archived": False})  # archived values were kept
        assert store.profiles.read_profile(account, service, table, "c1")["data"]["gone"] == "hidden"
        assert store.db.execute("SELECT count(*) FROM profiles").fetchone()[0] == 3
    finally:
        store.close()
