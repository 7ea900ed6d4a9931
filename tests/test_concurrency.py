"""Concurrent requests against the real served process (threaded WSGI server) lose no writes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from served import ServedEmulator

from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import Config
from dcp_emulator.server import EmulatorServer

H = {"Token": DEFAULT_TOKENS["classic"]}
M = "/experiment/v1"
THREADS = 8
ROUNDS = 25


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One served emulator on a --db file (the harder case: WAL, real disk) for the whole module."""
    db = tmp_path_factory.mktemp("concurrency") / "state.db"
    with ServedEmulator("--db", str(db), "--quiet") as emu:
        yield emu


@pytest.fixture(scope="module")
def table(served):
    base = served.url
    s = requests.post(base + f"{M}/dcp_services", json={"name": "S"}, headers=H, timeout=10).json()["id"]
    t = requests.post(base + f"{M}/dcp_services/{s}/dcp_datasources", json={"name": "T", "keyfield_locator_type": "uid"},
                      headers=H, timeout=10).json()["id"]
    for i in range(THREADS):
        r = requests.post(base + f"{M}/dcp_datasources/{t}/dcp_datasource_attributes",
                          json={"name": f"a{i}", "datatype": "long"}, headers=H, timeout=10)
        assert r.status_code == 201, r.text
    return s, t


def _barrier_run(fn, n: int = THREADS) -> list:
    """Run fn(i) in n threads released at the same moment; return the results in order."""
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def test_eight_threads_writing_different_attributes_of_one_profile_lose_nothing(served, table):
    s, t = table
    url = f"{served.url}/api/customer_profile/{s}/{t}/shared-customer"

    def writer(i: int) -> list[int]:
        statuses = []
        with requests.Session() as session:
            for n in range(ROUNDS):
                statuses.append(session.post(url, json={"data": {f"a{i}": n}}, headers=H, timeout=30).status_code)
        return statuses

    results = _barrier_run(writer)
    assert all(code == 201 for codes in results for code in codes)
    data = requests.get(url, headers=H, timeout=10).json()["data"]
    assert data == {f"a{i}": ROUNDS - 1 for i in range(THREADS)}


def test_concurrent_writes_to_many_profiles_all_land(served, table):
    s, t = table

    def writer(i: int) -> None:
        with requests.Session() as session:
            for n in range(10):
                r = session.post(f"{served.url}/api/customer_profile/{s}/{t}/c-{i}-{n}", json={"data": {"a0": n}},
                                 headers=H, timeout=30)
                assert r.status_code == 201, r.text

    _barrier_run(writer)
    for i in range(THREADS):
        for n in range(10):
            r = requests.get(f"{served.url}/api/customer_profile/{s}/{t}/c-{i}-{n}", headers=H, timeout=10)
            assert r.json()["data"] == {"a0": n}


def test_racing_creates_respect_uniqueness(served, table):
    """The check and the insert are one transaction: 8 racing creators of the same name give exactly one 201."""
    _, t = table
    codes = _barrier_run(lambda i: requests.post(f"{served.url}{M}/dcp_datasources/{t}/dcp_datasource_attributes",
                                                 json={"name": "raced", "datatype": "string"}, headers=H,
                                                 timeout=30).status_code)
    assert sorted(codes) == [201] + [400] * (THREADS - 1)


def test_racing_service_creation_respects_the_one_service_limit():
    """A fresh emulator (served in a thread: real sockets, threaded server): 8 racing POSTs, one service."""
    server = EmulatorServer(Config(port=0, log_requests=False)).start()
    try:
        codes = _barrier_run(lambda i: requests.post(f"{server.url}{M}/dcp_services", json={"name": f"s{i}"},
                                                     headers=H, timeout=30).status_code)
        assert sorted(codes) == [201] + [400] * (THREADS - 1)
        assert len(requests.get(f"{server.url}{M}/dcp_services", headers=H, timeout=10).json()) == 1
    finally:
        server.shutdown()
