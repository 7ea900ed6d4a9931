"""The pytest plugin, exercised the way integrators use it: small test files run by ``pytester``."""

from __future__ import annotations

import pathlib

import boto3  # noqa: F401 - see below
import pytest
import requests  # noqa: F401 - see below
import yaml  # noqa: F401 - see below

import dcp_emulator.s3  # noqa: F401 - see below
from dcp_emulator.config import Config
from dcp_emulator.pytest_plugin import DcpEmulator
from dcp_emulator.server import EmulatorServer

pytest_plugins = ["pytester"]

# pytester's in-process runs drop the modules an inner session imported; the ones above are imported
# here once so inner sessions reuse them (re-importing requests breaks its cookie-jar type checks, and
# re-importing moto each time would cost a second per run; a re-imported PyYAML pairs its new node classes
# with the C parser's old ones, and every mapping then loses its tag: "could not determine a constructor").

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "example.yaml"


@pytest.fixture(autouse=True)
def _no_external(monkeypatch):
    """The inner sessions start their own emulator unless a test says otherwise."""
    monkeypatch.delenv("DCP_EMULATOR_URL", raising=False)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "--strict-markers", *args)


def test_fixture_exposes_urls_credentials_and_resets_between_tests(pytester):
    pytester.makepyfile(test_inner="""
        import requests

        def test_handle(dcp_emulator):
            assert dcp_emulator.url.startswith("http://127.0.0.1:")
            assert dcp_emulator.rest_api_url == dcp_emulator.url + "/experiment/v1"
            assert dcp_emulator.profile_api_url == dcp_emulator.url + "/api"
            assert dcp_emulator.s3_endpoint_url.startswith("http://127.0.0.1:")
            assert dcp_emulator.token == "emulator-classic-token" and dcp_emulator.account_id == 1001
            assert dcp_emulator.headers == {"Token": "emulator-classic-token"}

        def test_writes(dcp_emulator):
            r = requests.post(dcp_emulator.rest_api_url + "/dcp_services", json={"name": "S"},
                              headers=dcp_emulator.headers)
            assert r.status_code == 201

        def test_previous_writes_are_gone(dcp_emulator):
            r = requests.get(dcp_emulator.rest_api_url + "/dcp_services", headers=dcp_emulator.headers)
            assert r.json() == []

        def test_one_server_per_session(dcp_emulator, request):
            urls = request.config.cache_urls = getattr(request.config, "cache_urls", set())
            urls.add(dcp_emulator.url)
            assert len(urls) == 1
    """)
    run(pytester).assert_outcomes(passed=4)


def test_seed_by_marker_fixture_override_and_at_runtime(pytester):
    pytester.makefile(".yaml", tiny="dcp_services:\n- {id: 321, name: Tiny}\n")
    pytester.makepyfile(test_inner=f"""
        import pytest, requests

        pytestmark = pytest.mark.dcp_seed({str(EXAMPLE)!r})

        def names(emu):
            return [s["name"] for s in requests.get(emu.rest_api_url + "/dcp_services", headers=emu.headers).json()]

        @pytest.fixture
        def dcp_emulator_seed():
            return "tiny.yaml"  # loses against the module's marker

        def test_module_marker(dcp_emulator):
            assert names(dcp_emulator) == ["Acme Outfitters DCP"]
            requests.put(dcp_emulator.rest_api_url + "/dcp_services/567", json={{"name": "Changed"}},
                         headers=dcp_emulator.headers)

        def test_module_marker_again_after_changes(dcp_emulator):
            assert names(dcp_emulator) == ["Acme Outfitters DCP"]

        @pytest.mark.dcp_seed("tiny.yaml")
        def test_function_marker_relative_to_the_test_file(dcp_emulator):
            assert names(dcp_emulator) == ["Tiny"]

        @pytest.mark.dcp_seed({{"dcp_services": [{{"id": 9, "name": "From a mapping"}}]}})
        def test_mapping_marker(dcp_emulator):
            assert names(dcp_emulator) == ["From a mapping"]

        def test_runtime_seed_and_reset(dcp_emulator):
            created = dcp_emulator.seed({{"accounts": [{{"id": 4444, "tokens": [{{"token": "t4"}}]}}]}})
            assert created["accounts"] == 1 and created["tokens"] == 1
            assert requests.get(dcp_emulator.rest_api_url + "/dcp_services", headers={{"Token": "t4"}}).json() == []
            dcp_emulator.reset()
            assert names(dcp_emulator) == []  # a bare reset() is the session's start-up state
            assert dcp_emulator.state()["dcp_services"] == []
    """)
    pytester.makepyfile(test_override="""
        import pytest, requests

        @pytest.fixture
        def dcp_emulator_seed():
            return "tiny.yaml"

        def test_fixture_override(dcp_emulator):
            r = requests.get(dcp_emulator.rest_api_url + "/dcp_services", headers=dcp_emulator.headers)
            assert [s["id"] for s in r.json()] == [321]
    """)
    run(pytester).assert_outcomes(passed=6)


def test_journal_faults_and_uploads_through_the_handle(pytester):
    pytester.makepyfile(test_inner=f"""
        import pytest, requests

        @pytest.mark.dcp_seed({str(EXAMPLE)!r})
        def test_everything(dcp_emulator):
            rule = dcp_emulator.fault(method="GET", path="dcp_services$", status=429, retry_after=3, times=1)
            assert rule["remaining"] == 1
            url = dcp_emulator.rest_api_url + "/dcp_services"
            first = requests.get(url, headers={{**dcp_emulator.headers, "X-Test-Id": "abc"}})
            assert first.status_code == 429 and first.headers["Retry-After"] == "3"
            assert requests.get(url, headers={{**dcp_emulator.headers, "X-Test-Id": "abc"}}).status_code == 200
            seen = dcp_emulator.requests(header="X-Test-Id:abc")
            assert [r["status"] for r in seen] == [429, 200]
            assert dcp_emulator.requests(status=429)[0]["fault"] == rule["id"]
            assert dcp_emulator.faults()[0]["remaining"] == 0
            dcp_emulator.clear_faults()
            dcp_emulator.clear_requests()
            assert dcp_emulator.requests() == [] and dcp_emulator.faults() == []
            dcp_emulator.fault(latency_ms=1)
            s3 = dcp_emulator.s3_client(679)
            s3.put_object(Bucket=dcp_emulator.bucket, Key="dcp/567/679/a.csv", Body=b"customerId,segment\\nem-ada,gold\\n")
            [upload] = dcp_emulator.wait_for_uploads(timeout=10)
            assert upload["status"] == "succeeded"
            assert dcp_emulator.uploads(679) == [upload]

        def test_faults_and_journal_do_not_leak_into_the_next_test(dcp_emulator):
            assert dcp_emulator.faults() == [] and dcp_emulator.requests() == [] and dcp_emulator.uploads() == []
    """)
    run(pytester).assert_outcomes(passed=2)


@pytest.mark.parametrize("started_with", [[], [str(EXAMPLE)]], ids=["unseeded", "seeded"])
def test_points_at_an_already_running_emulator(pytester, monkeypatch, started_with):
    """DCP_EMULATOR_URL: the fixture uses that server (reset, seed and all over HTTP) instead of starting one,
    and starts every test from the default state even when that server was started with a seed (make serve,
    a CI service container)."""
    server = EmulatorServer(Config(port=0, log_requests=False, seed=started_with)).start()
    try:
        monkeypatch.setenv("DCP_EMULATOR_URL", server.url + "/")
        pytester.makepyfile(test_inner=f"""
            import os, pytest, requests

            def services(emu):
                return [s["id"] for s in requests.get(emu.rest_api_url + "/dcp_services", headers=emu.headers).json()]

            def test_uses_the_external_server_from_the_default_state(dcp_emulator):
                assert dcp_emulator.url == os.environ["DCP_EMULATOR_URL"].rstrip("/")
                assert services(dcp_emulator) == []
                requests.post(dcp_emulator.rest_api_url + "/dcp_services", json={{"name": "S"}},
                              headers={{**dcp_emulator.headers, "X-Test-Id": "external"}})

            @pytest.mark.dcp_seed({str(EXAMPLE)!r})
            def test_seeded_externally(dcp_emulator):
                assert services(dcp_emulator) == [567]

            @pytest.mark.dcp_seed({str(EXAMPLE)!r})
            def test_seeded_again_from_the_snapshot(dcp_emulator):
                assert services(dcp_emulator) == [567]

            def test_reset_in_a_test_is_the_default_state_too(dcp_emulator):
                dcp_emulator.seed({{"dcp_services": [{{"id": 40, "name": "Mine"}}]}})
                dcp_emulator.reset()
                assert services(dcp_emulator) == []
        """)
        run(pytester).assert_outcomes(passed=4)
        # The inner tests ran against this very server: its state and snapshots show it.
        assert any(n.startswith("pytest-seed:") for n in server.emulator.snapshot_names())
        assert server.emulator.store.management.list_services(1001) == []
        # The server's own start-up state is still there for whoever asks for it.
        DcpEmulator(server.url).reset(to="startup")
        assert [s["id"] for s in server.emulator.store.management.list_services(1001)] == ([567] if started_with else [])
    finally:
        server.shutdown()


def test_token_follows_seeds_that_revoke_the_default_one(pytester):
    revoking = {"accounts": [{"id": 1001, "tokens": [{"token": "emulator-classic-token", "revoked": True},
                                                     {"token": "rotated-classic", "kind": "classic"}]}]}
    pytester.makepyfile(test_inner=f"""
        import pytest, requests

        def status(emu):
            return requests.get(emu.rest_api_url + "/dcp_services", headers=emu.headers).status_code

        @pytest.mark.dcp_seed({revoking!r})
        def test_marker_seed(dcp_emulator):
            assert dcp_emulator.token == "rotated-classic" and status(dcp_emulator) == 200

        @pytest.mark.dcp_seed({revoking!r})
        def test_marker_seed_from_its_snapshot(dcp_emulator):
            assert dcp_emulator.token == "rotated-classic" and status(dcp_emulator) == 200

        def test_back_to_the_default_token(dcp_emulator):
            assert dcp_emulator.token == "emulator-classic-token" and status(dcp_emulator) == 200
            dcp_emulator.seed({revoking!r})
            assert dcp_emulator.token == "rotated-classic" and status(dcp_emulator) == 200
    """)
    run(pytester).assert_outcomes(passed=3)


def test_s3_client_looks_up_keys_without_exporting_the_state(monkeypatch):
    """credentials()/s3_client() ask for one key pair, not for the whole state (60 ms with 10,000 profiles)."""
    server = EmulatorServer(Config(port=0, log_requests=False)).start()
    try:
        emu = DcpEmulator(server.url)
        emu.use_seed({"accounts": [{"id": 9000, "tokens": [{"token": "t9"}]}], "dcp_services": [
            {"id": 30, "name": "Other account", "account_id": 9000, "datasources": [
                {"id": 31, "name": "T", "keyfield_locator_type": "uid"}]}]})

        def no_export():
            raise AssertionError("credentials() exported the whole state")

        monkeypatch.setattr(emu, "state", no_export)
        expected = server.emulator.store.credentials.aws_credentials(31)
        assert emu.credentials(31) == (expected["aws_access_key"], expected["aws_secret_key"])
        s3 = emu.s3_client(31)
        assert s3.put_object(Bucket=emu.bucket, Key="dcp/30/31/a.csv", Body=b"customerId\nc-1\n")
        assert emu.wait_for_uploads(timeout=10)[0]["status"] == "succeeded"
        with pytest.raises(LookupError):
            emu.credentials(424242)
    finally:
        server.shutdown()


def test_bad_seeds_fail_the_test_with_a_clear_message(pytester):
    pytester.makefile(".yaml", broken="dcp_services:\n- name: X\n  datasources:\n  - {name: T}\n")
    pytester.makepyfile(test_inner="""
        import pytest

        @pytest.mark.dcp_seed("missing.yaml")
        def test_missing(dcp_emulator):
            pass

        @pytest.mark.dcp_seed("broken.yaml")
        def test_broken(dcp_emulator):
            pass
    """)
    result = run(pytester)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([
        "*dcp_emulator: seed 'missing.yaml' is neither a file (tried *missing.yaml) nor a built-in seed (built in: example)*",
        ("*dcp_emulator: could not prepare the emulator: POST /_emulator/seed answered 400: Invalid seed: "
         "request body: dcp_services[[]0[]].datasources[[]0[]].keyfield_locator_type: *"),
    ])
    assert "Traceback" not in result.stdout.str()


def test_marker_is_registered(pytester):
    result = pytester.runpytest_inprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.dcp_seed(seed):*"])


def test_handle_works_outside_pytest():
    """Scripts (and bench/fixture.py) can drive any running emulator with the same class."""
    server = EmulatorServer(Config(port=0, log_requests=False)).start()
    try:
        emu = DcpEmulator(server.url)
        emu.use_seed(EXAMPLE)
        emu.use_seed(EXAMPLE)  # the second time restores the saved snapshot
        assert len([n for n in server.emulator.snapshot_names() if n.startswith("pytest-seed:")]) == 1
        assert emu.credentials(678) == ("AKIAACMECRM000000678", "acme-crm-secret-key-000000000000000000678")
        with pytest.raises(LookupError):
            emu.credentials(424242)
    finally:
        server.shutdown()


def test_unreachable_external_emulator_fails_clearly_after_waiting(pytester, monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DCP_EMULATOR_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("DCP_EMULATOR_WAIT", "0.5")
    pytester.makepyfile(test_inner="""
        def test_never_runs(dcp_emulator):
            pass
    """)
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*dcp_emulator: the emulator at http://127.0.0.1:{port} was not ready after 0.5 s*"])


def test_one_emulator_per_xdist_worker(pytester):
    """Under pytest-xdist each worker process serves its own emulator (no shared state between workers)."""
    pytest.importorskip("xdist")
    out = pytester.path / "urls.txt"
    pytester.makepyfile(test_inner=f"""
        import os, requests

        def _record(dcp_emulator):
            with open({str(out)!r}, "a") as f:
                f.write(os.environ["PYTEST_XDIST_WORKER"] + " " + dcp_emulator.url + "\\n")

        def test_a(dcp_emulator):
            _record(dcp_emulator)
            r = requests.post(dcp_emulator.rest_api_url + "/dcp_services", json={{"name": "mine"}},
                              headers=dcp_emulator.headers)
            assert r.status_code == 201  # the one-service limit would refuse a second one in a shared emulator

        def test_b(dcp_emulator):
            _record(dcp_emulator)
    """)
    # --dist each runs every test on every worker: both workers create "their" service at the same time
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "each")
    result.assert_outcomes(passed=4)
    seen: dict[str, set[str]] = {}
    for line in out.read_text().splitlines():
        worker, url = line.split()
        seen.setdefault(worker, set()).add(url)
    assert sorted(seen) == ["gw0", "gw1"]
    assert all(len(urls) == 1 for urls in seen.values())  # one emulator for the whole session of a worker
    assert seen["gw0"] != seen["gw1"]  # ... and a different one per worker


def test_xdist_workers_sharing_one_external_emulator_are_refused_at_session_start(pytester, monkeypatch):
    """Workers sharing one DCP_EMULATOR_URL would reset each other's state at random: a clear usage error
    before any test runs, naming the cause and the fixes."""
    pytest.importorskip("xdist")
    server = EmulatorServer(Config(port=0, log_requests=False)).start()
    try:
        monkeypatch.setenv("DCP_EMULATOR_URL", server.url)
        pytester.makepyfile(test_inner="""
            def test_a(dcp_emulator):
                pass
        """)
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*DCP_EMULATOR_URL names 1 emulator(s) but pytest-xdist runs 2 workers*"])
        assert "one emulator per worker" in result.stderr.str() and "without -n" in result.stderr.str()
    finally:
        server.shutdown()


def test_xdist_workers_each_use_their_own_url_from_a_list(pytester, monkeypatch):
    """DCP_EMULATOR_URL=url1,url2: worker gwN uses the N-th emulator, so -n 2 works against two containers."""
    pytest.importorskip("xdist")
    servers = [EmulatorServer(Config(port=0, log_requests=False)).start() for _ in range(2)]
    try:
        monkeypatch.setenv("DCP_EMULATOR_URL", ",".join(s.url for s in servers))
        pytester.makepyfile(test_inner="""
            import os, requests

            def test_a(dcp_emulator):
                index = int(os.environ["PYTEST_XDIST_WORKER"][2:])
                assert dcp_emulator.url == os.environ["DCP_EMULATOR_URL"].split(",")[index]
                r = requests.post(dcp_emulator.rest_api_url + "/dcp_services", json={"name": "mine"},
                                  headers=dcp_emulator.headers)
                assert r.status_code == 201  # nobody else created one in this emulator

            test_b = test_a
        """)
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "each")
        result.assert_outcomes(passed=4)
    finally:
        for server in servers:
            server.shutdown()
