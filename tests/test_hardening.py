"""Hostile and careless input (issue 14): refusals instead of freezes, 500s, silent data loss and leaks.

Each test reproduces one reported defect through the real interface (HTTP control plane, S3 upload,
served process) and asserts the documented refusal: status, code and a message saying where and why.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import requests
from bulk_helpers import make_table, profile, put, upload
from dcp_api import error, ok
from served import ROOT, ServedEmulator

from dcp_emulator import create_app, pytest_plugin, tempfiles
from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import Config
from dcp_emulator.server import EmulatorServer
from dcp_emulator.store import Store

H = {"Token": DEFAULT_TOKENS["classic"]}
YAML = {"Content-Type": "application/yaml"}


def _seed_with_attributes(n: int, profiles: dict | None = None) -> dict:
    table = {"id": 678, "name": "Wide", "keyfield_locator_type": "uid",
             "attributes": [{"name": f"a{i}", "datatype": "long" if i % 2 else "bool"} for i in range(n)]}
    if profiles:
        table["profiles"] = profiles
    return {"dcp_services": [{"id": 567, "name": "Wide service", "datasources": [table]}]}


# ---------------------------------------------------------------------- 5: YAML alias expansion
def _billion_laughs(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghijk"[: levels - 1]:
        text += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


def test_seed_whose_aliases_expand_without_bound_is_refused_before_expansion(client):
    text = _billion_laughs()
    assert len(text) < 500
    resp = client.post("/_emulator/seed", data=text, headers=YAML)
    err = error(resp, 400, "invalid_seed")
    assert err["field"] == "line 6, column 8"  # the first alias that takes the total over the bound
    assert "aliases" in err["message"] and "100,000 nodes" in err["message"]
    assert ok(client.get("/_emulator/health"), 200)["status"] == "ok"


def test_seed_with_a_few_aliases_still_loads(client):
    text = ("dcp_services:\n- id: 567\n  name: S\n  datasources:\n  - id: 678\n    name: T\n"
            "    keyfield_locator_type: uid\n    attributes:\n    - {name: first, datatype: &kind string}\n"
            "    - {name: second, datatype: *kind}\n")
    assert ok(client.post("/_emulator/seed", data=text, headers=YAML), 201)["created"]["attributes"] == 2


# ---------------------------------------------------------------------- 6: user regular expressions
def _answered_quickly(fn, limit: float = 5.0):
    """fn()'s result, asserting it came within ``limit`` seconds: a freeze is the defect under test (with
    Python's re these patterns take ~30 s and double with each extra character; RE2 takes microseconds)."""
    started = time.monotonic()
    result = fn()
    assert time.monotonic() - started < limit, "the request froze the process (catastrophic backtracking)"
    return result


def test_fault_rule_path_pattern_cannot_freeze_the_server(client):
    ok(client.post("/_emulator/faults", json={"path": "^/(a+)+b$", "status": 503}), 201)
    resp = _answered_quickly(lambda: client.get("/" + "a" * 30))
    error(resp, 404, "not_found")  # the rule does not match; the request is answered at once
    resp = _answered_quickly(lambda: client.get("/" + "a" * 30 + "b"))
    error(resp, 503, "service_unavailable")


def test_journal_path_filter_cannot_freeze_the_server(client):
    client.get("/api/" + "a" * 30, headers=H)
    resp = _answered_quickly(lambda: client.get("/_emulator/requests", query_string={"path": "^/api/(a+)+b$"}))
    assert ok(resp, 200)["requests"] == []
    resp = client.get("/_emulator/requests", query_string={"path": "^/api/(a+)+$"})
    assert len(ok(resp, 200)["requests"]) == 1


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=api)", "[", "x" * 1001])
def test_patterns_re2_cannot_run_are_refused_with_the_reason(client, pattern):
    err = error(client.post("/_emulator/faults", json={"path": pattern}), 400, "invalid_field", "path")
    assert "regular expression" in err["message"]
    err = error(client.get("/_emulator/requests", query_string={"path": pattern}), 400, "invalid_field", "path")
    assert "regular expression" in err["message"]


# ---------------------------------------------------------------------- 11: many attributes
def test_table_holds_1999_attributes_and_the_2000th_is_limit_exceeded(client):
    ok(client.post("/_emulator/seed", json=_seed_with_attributes(1997, {"c1": {"a0": True, "a1995": 7}})), 201)
    for name in ("a1997", "a1998"):  # the 1,998th and 1,999th, through the API
        ok(client.post("/experiment/v1/dcp_datasources/678/dcp_datasource_attributes",
                       json={"name": name, "datatype": "string"}, headers=H), 201)
    err = error(client.post("/experiment/v1/dcp_datasources/678/dcp_datasource_attributes",
                            json={"name": "too_many", "datatype": "string"}, headers=H), 400, "limit_exceeded")
    assert "1999" in err["message"]
    table = {"id": 678, "dcp_service_id": 567}
    ok(client.post("/api/customer_profile/567/678/c1", json={"data": {"a1998": "last"}}, headers=H), 201)
    assert profile(client, H, table, "c1") == {"a0": True, "a1995": 7, "a1998": "last"}
    store = client.application.extensions["dcp_emulator"].store
    data = json.loads(store._all("SELECT data FROM profiles WHERE customer_id = 'c1'")[0]["data"])
    assert sorted(data.values(), key=str) == [7, True, "last"]  # the view over 1,999 columns answers


def test_seed_with_1700_attributes_loads_and_2000_are_refused(client):
    created = ok(client.post("/_emulator/seed", json=_seed_with_attributes(1700, {"c1": {"a1699": 1}})), 201)
    assert created["created"]["attributes"] == 1700
    err = error(client.post("/_emulator/seed?reset=true", json=_seed_with_attributes(2000)), 400, "invalid_seed")
    assert err["field"] == "dcp_services[0].datasources[0].attributes[1999]" and "at most 1999" in err["message"]


def test_upload_with_a_header_of_1999_attributes(client):
    ok(client.post("/_emulator/seed", json=_seed_with_attributes(1999)), 201)
    table = ok(client.get("/experiment/v1/dcp_datasources/678", headers=H), 200)
    header = "customerId," + ",".join(f"a{i}" for i in range(1999))
    row = "c9," + ",".join("true" if i % 2 == 0 else str(i) for i in range(1999))
    up = upload(client, table, "wide.csv", f"{header}\n{row}\n")
    assert up["status"] == "succeeded", up
    assert profile(client, H, table, "c9")["a1997"] == 1997


# ---------------------------------------------------------------------- 13: 500s from the control plane
@pytest.mark.parametrize(("path", "field"), [
    ("/_emulator/requests?limit=%C2%B2", "limit"),
    ("/_emulator/requests?status=%C2%B2", "status"),
    ("/_emulator/uploads?datasource_id=%C2%B2", "datasource_id"),
])
def test_superscript_digits_in_query_parameters_are_a_400(client, path, field):
    err = error(client.get(path), 400, "invalid_field", field)
    assert "²" in err["message"]


def test_seed_id_written_with_a_superscript_digit_is_invalid_seed(client):
    err = error(client.post("/_emulator/seed", json={"accounts": [{"id": "²"}]}), 400, "invalid_seed")
    assert err["field"] == "accounts[0].id" and "positive integer" in err["message"]


def test_seed_integer_over_python_digit_limit_is_invalid_seed(client):
    text = "accounts:\n- id: " + "9" * 5000 + "\n"
    err = error(client.post("/_emulator/seed", data=text, headers=YAML), 400, "invalid_seed")
    assert err["field"] == "line 2, column 7" and "5000 digits" in err["message"]


def test_serve_with_a_seed_holding_a_huge_integer_exits_2_with_one_line(tmp_path):
    seed = tmp_path / "huge.yaml"
    seed.write_text("accounts:\n- id: " + "9" * 5000 + "\n")
    result = subprocess.run([sys.executable, "-m", "dcp_emulator", "serve", "--port", "0", "--seed", str(seed)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("dcp-emulator: invalid seed:") and "line 2, column 7" in lines[0]


# ---------------------------------------------------------------------- 16: header errors are cut
@pytest.mark.parametrize("header", ["customerId,{name}", "customerId,{name},{name}", "{name}"])
def test_header_errors_echo_at_most_200_characters_of_a_column_name(client, header):
    _, table = make_table(client, H, [("age", "long", None)])
    name = "x" * 1_000_000
    up = upload(client, table, "big-header.csv", header.format(name=name) + "\nc1,1\n")
    assert up["status"] == "failed"
    entry = up["errors"][0]
    assert len(entry["reason"]) < 1000 and len(up["failure"]) < 1000
    assert entry["value"] is None or len(entry["value"]) <= 200
    assert entry["column"] is None or len(entry["column"]) <= 200
    assert len(json.dumps(up)) < 5000


# ---------------------------------------------------------------------- 4: control-plane CSRF
EVIL = "https://evil.example"
SEED_WITH_TOKEN = "accounts:\n- id: 1001\n  tokens:\n  - {token: planted-by-a-web-page, kind: classic}\n"


def _token_planted(client) -> bool:
    return "planted-by-a-web-page" in client.get("/_emulator/state").get_data(as_text=True)


@pytest.mark.parametrize("origin", [EVIL, "null", "http://localhost:3000", "http://localhost.evil.example"])
def test_state_changing_control_requests_from_another_origin_are_refused(client, origin):
    resp = client.post("/_emulator/seed", data=SEED_WITH_TOKEN, headers={"Origin": origin, **YAML})
    err = error(resp, 403, "cross_origin_refused", "Origin")
    assert origin in err["message"] and "curl" in err["message"]
    assert not _token_planted(client)
    ok(client.post("/_emulator/faults", json={"status": 503}), 201)
    for method, path in (("POST", "/_emulator/reset"), ("DELETE", "/_emulator/faults"),
                         ("POST", "/_emulator/snapshots"), ("DELETE", "/_emulator/requests"),
                         ("POST", "/_emulator/uploads/wait")):
        error(client.open(path, method=method, headers={"Origin": origin}), 403, "cross_origin_refused")
    assert len(ok(client.get("/_emulator/faults"), 200)["faults"]) == 1  # nothing was reset or deleted
    ok(client.get("/_emulator/info", headers={"Origin": origin}), 200)  # reads change nothing


def test_sec_fetch_site_cross_site_is_refused_without_origin(client):
    resp = client.post("/_emulator/reset", headers={"Sec-Fetch-Site": "cross-site"})
    err = error(resp, 403, "cross_origin_refused", "Sec-Fetch-Site")
    assert "another site" in err["message"]


def test_requests_from_the_emulators_own_origin_are_accepted(client):
    headers = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin", **YAML}
    assert ok(client.post("/_emulator/seed", data=SEED_WITH_TOKEN, headers=headers), 201)["created"]["tokens"] == 1
    ok(client.post("/_emulator/reset", headers={"Origin": "http://localhost:80"}), 200)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_control_bodies_need_a_type_a_page_cannot_send_cross_origin(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    resp = client.post("/_emulator/seed", data=SEED_WITH_TOKEN, headers=headers)
    err = error(resp, 415, "unsupported_media_type", "Content-Type")
    assert "application/yaml" in err["message"] and "application/json" in err["message"]
    assert not _token_planted(client)
    resp = client.post("/_emulator/faults", data='{"status": 503}', headers=headers)
    error(resp, 415, "unsupported_media_type")
    assert ok(client.get("/_emulator/faults"), 200)["faults"] == []


@pytest.mark.parametrize("content_type", ["application/yaml", "application/x-yaml", "text/yaml",
                                          "text/x-yaml; charset=utf-8"])
def test_yaml_seed_types_are_accepted(client, content_type):
    resp = client.post("/_emulator/seed", data=SEED_WITH_TOKEN, headers={"Content-Type": content_type})
    assert ok(resp, 201)["created"]["tokens"] == 1 and _token_planted(client)


def test_seed_with_another_explicit_type_is_415_naming_the_accepted_ones(client):
    err = error(client.post("/_emulator/seed", data="<seed/>", content_type="application/xml"), 415,
                "unsupported_media_type", "Content-Type")
    assert "application/yaml" in err["message"] and "'application/xml'" in err["message"]


# ---------------------------------------------------------------------- 10: unterminated quotes
@pytest.fixture
def people(client):
    _, table = make_table(client, H, [("name", "string", None), ("age", "long", None)])
    return table


def test_unterminated_quote_rejects_the_row_saying_where_it_opened(client, people):
    rows = "".join(f"sq-{i},n{i},{i}\n" for i in range(1, 1000))
    up = upload(client, people, "quote.csv", 'customerId,name,age\nsq-0,"oops\n' + rows)
    assert up["status"] == "completed_with_errors", up
    assert up["rows_rejected"] == 1 and up["rows_stored"] == 0
    [entry] = up["errors"]
    assert entry["line"] == 2 and entry["column"] == "name" and entry["value"].startswith("oops\nsq-1,n1,1")
    assert len(entry["value"]) <= 200
    assert "opened on line 2, column 2 ('name'), is never closed" in entry["reason"]
    assert "lines 2 to 1001 were read as one value" in entry["reason"]
    assert profile(client, H, people, "sq-0") is None and profile(client, H, people, "sq-5") is None


def test_unterminated_quote_after_good_rows_and_multiline_cells(client, people):
    text = 'customerId,name,age\nc1,"two\nlines",1\nc2,Bo,2\nc3,Cy,"3\n'
    up = upload(client, people, "late.csv", text)
    assert up["status"] == "completed_with_errors" and up["rows_stored"] == 2 and up["rows_rejected"] == 1
    assert up["errors"][0]["line"] == 5 and "opened on line 5, column 3 ('age')" in up["errors"][0]["reason"]
    assert profile(client, H, people, "c1") == {"name": "two\nlines", "age": 1}


@pytest.mark.parametrize("text", ['customerId,name,age\nc1,"Ann",1\n', 'customerId,name,age\nc1,"Ann",1',
                                  'customerId,name,age\nc1,5" screen,1\n', 'customerId,name,age\nc1,"a\n""b""",1\n'])
def test_closed_quotes_and_stray_inner_quotes_still_succeed(client, people, text):
    up = upload(client, people, "fine.csv", text)
    assert up["status"] == "succeeded" and up["rows_total"] == 1 and up["errors"] == [], up


# ---------------------------------------------------------------------- 7: bounded Upload History and snapshots
def _app(config: Config):
    application = create_app(config)
    return application, application.test_client()


def test_upload_history_keeps_the_last_n_uploads():
    application, c = _app(Config(upload_history_size=3))
    try:
        _, table = make_table(c, H, [("age", "long", None)])
        ids = [upload(c, table, f"f{i}.csv", f"customerId,age\nc{i},{i}\n")["id"] for i in range(5)]
        assert [u["id"] for u in ok(c.get("/_emulator/uploads"), 200)] == ids[2:]
        error(c.get(f"/_emulator/uploads/{ids[0]}"), 404, "not_found")
        assert profile(c, H, table, "c0") == {"age": 0}  # only the record is dropped, never the data
    finally:
        application.extensions["dcp_emulator"].close()


def test_upload_history_is_paged(client):
    _, table = make_table(client, H, [("age", "long", None)])
    ids = [upload(client, table, f"f{i}.csv", f"customerId,age\nc{i},{i}\n")["id"] for i in range(5)]
    resp = client.get("/_emulator/uploads?limit=2")
    assert [u["id"] for u in ok(resp, 200)] == ids[:2]
    seen = []
    url = "/_emulator/uploads?limit=2"
    while url:
        resp = client.get(url)
        seen += [u["id"] for u in ok(resp, 200)]
        url = resp.headers.get("Link", "").partition(">")[0].lstrip("<") or None
    assert seen == ids
    assert [u["id"] for u in ok(client.get(f"/_emulator/uploads?after={ids[3]}"), 200)] == ids[4:]
    for bad, field in (("limit=0", "limit"), ("limit=1001", "limit"), ("after=-1", "after"), ("after=%C2%B2", "after")):
        error(client.get(f"/_emulator/uploads?{bad}"), 400, "invalid_field", field)


def test_wait_returns_only_the_uploads_finished_since_the_previous_wait(client):
    _, table = make_table(client, H, [("age", "long", None)])
    put(client, table, "a.csv", "customerId,age\na,1\n")
    [first] = ok(client.post("/_emulator/uploads/wait", json={"timeout": 30}), 200)["uploads"]
    put(client, table, "b.csv", "customerId,age\nb,2\n")
    put(client, table, "c.csv", "customerId,age\nc,3\n")
    waited = ok(client.post("/_emulator/uploads/wait", json={"timeout": 30}), 200)["uploads"]
    assert [u["file_name"] for u in waited] == ["b.csv", "c.csv"]
    assert ok(client.post("/_emulator/uploads/wait"), 200)["uploads"] == []
    everything = ok(client.post("/_emulator/uploads/wait", json={"after": 0}), 200)["uploads"]
    assert [u["id"] for u in everything] == [first["id"]] + [u["id"] for u in waited]
    error(client.post("/_emulator/uploads/wait", json={"after": "1"}), 400, "invalid_field", "after")
    ok(client.post("/_emulator/reset"), 200)
    assert ok(client.post("/_emulator/uploads/wait"), 200)["uploads"] == []


def test_snapshots_over_the_memory_budget_go_to_unlinked_temporary_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    application, c = _app(Config(snapshot_memory_bytes=0))
    emu = application.extensions["dcp_emulator"]
    try:
        ok(c.post("/_emulator/seed", json=_seed_with_attributes(3, {"c1": {"a1": 1}})), 201)
        ok(c.post("/_emulator/snapshots", json={"name": "seeded"}), 201)
        assert emu._snapshots["seeded"].on_disk
        assert not [n for n in os.listdir(tmp_path) if "snapshot" in n]  # written, then unlinked
        ok(c.post("/_emulator/reset", json={"to": "default"}), 200)
        ok(c.post("/_emulator/reset", json={"snapshot": "seeded"}), 200)
        assert profile(c, H, {"id": 678, "dcp_service_id": 567}, "c1") == {"a1": 1}
    finally:
        emu.close()
    application, c = _app(Config())  # the default budget (256 MiB) holds a small snapshot in memory
    try:
        ok(c.post("/_emulator/snapshots", json={"name": "small"}), 201)
        assert not application.extensions["dcp_emulator"]._snapshots["small"].on_disk
    finally:
        application.extensions["dcp_emulator"].close()


# ---------------------------------------------------------------------- 9: leftovers after kill -9
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_start_up_removes_temporary_files_of_killed_emulators_only(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = _dead_pid()
    mine = tempfiles.owned_prefix("snapshot")
    ns = tempfiles._NAMESPACE
    orphans = [f"dcp-emulator-snapshot-{ns}-{dead}-0badf00d-x1.db",
               f"dcp-emulator-snapshot-{ns}-{dead}-0badf00d-x1.db-journal",
               f"dcp-emulator-snapshot-{ns}-{os.getpid()}-0badf00d-x2.db"]  # our pid, another process's token
    kept = [mine + "live.db", "dcp-emulator-snapshot-k2d8s7.db", "notes.txt", f"other-{ns}-{dead}-0badf00d-x.db",
            # a process in another PID namespace (unshare --pid, a container sharing /tmp): its pid says
            # nothing here, so its files are never judged orphans
            f"dcp-emulator-snapshot-{ns + 1}-{dead}-0badf00d-x3.db"]
    for name in orphans + kept:
        (tmp_path / name).write_bytes(b"x" * 1000)
    (tmp_path / f"dcp-emulator-uploads-{ns}-{dead}-0badf00d-abc").mkdir()
    (tmp_path / f"dcp-emulator-uploads-{ns}-{dead}-0badf00d-abc" / ("0" * 32)).write_bytes(b"half")
    application, _ = _app(Config())
    try:
        left = set(os.listdir(tmp_path))
        assert set(kept) <= left and not set(orphans) & left
        assert not any(n.startswith(f"dcp-emulator-uploads-{ns}-{dead}-") for n in left)
    finally:
        application.extensions["dcp_emulator"].close()
    assert not any(n.startswith(tempfiles.owned_prefix("uploads")) for n in os.listdir(tmp_path))  # exit


def test_killed_db_emulator_leaves_no_snapshot_file(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    served = ServedEmulator("--db", str(tmp_path / "state.db"), "--quiet", env={"TMPDIR": str(temp)}).start()
    try:
        ok(requests.post(served.url + "/_emulator/snapshots", json={"name": "s"}, timeout=30), 201)
        assert ok(requests.get(served.url + "/_emulator/snapshots", timeout=30), 200)["snapshots"] == ["s"]
        served.proc.send_signal(signal.SIGKILL)
        served.proc.wait(30)
    finally:
        served.stop()
    assert os.listdir(temp) == []  # the start-up and snapshot copies were unlinked once written


def test_start_up_removes_half_written_spool_files_no_upload_refers_to(tmp_path):
    db = str(tmp_path / "state.db")
    application, c = _app(Config(db=db))
    try:
        _, table = make_table(c, H, [("age", "long", None)])
    finally:
        application.extensions["dcp_emulator"].close()
    store = Store(db)
    spool = "a" * 32 + ".upload"
    (tmp_path / "state.db.uploads" / spool).write_text("customerId,age\npending,7\n")
    store.uploads.record_upload(1001, table["dcp_service_id"], table["id"], f"{table['s3_path']}/p.csv", 25, spool)
    store.close()
    orphan = tmp_path / "state.db.uploads" / ("b" * 32 + ".upload")
    orphan.write_text("customerId,age\nhalf-writ")
    foreign = tmp_path / "state.db.uploads" / "README"
    foreign.write_text("not ours")
    application, c = _app(Config(db=db))
    try:
        assert not orphan.exists() and foreign.exists()
        [up] = ok(c.post("/_emulator/uploads/wait", json={"timeout": 30}), 200)["uploads"]
        assert up["status"] == "succeeded" and profile(c, H, table, "pending") == {"age": 7}
        orphan.write_text("spooled while the emulator was stopping")
    finally:
        application.extensions["dcp_emulator"].close()
    assert not orphan.exists() and foreign.exists()  # and at exit


def test_documented_curl_examples_work_and_a_foreign_origin_is_refused():
    text = (ROOT / "docs" / "hardening.md").read_text()
    section = text[text.index("## The control plane and web browsers"):text.index("## Seeds")]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    served = ServedEmulator("--quiet").start()
    try:
        result = subprocess.run(["bash", "-e", "-c", block], cwd=ROOT, env={**os.environ, "E": served.url},
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().endswith("403")
        assert ok(requests.get(served.url + "/_emulator/snapshots", timeout=10), 200)["snapshots"] == ["before-import"]
    finally:
        served.stop()


def test_plugin_follows_upload_pages_and_waits_for_new_uploads_only(monkeypatch):
    monkeypatch.setattr(pytest_plugin, "UPLOADS_PAGE", 2)
    server = EmulatorServer(Config(port=0, log_requests=False)).start()
    try:
        emu = pytest_plugin.DcpEmulator(server.url)
        client = server.app.test_client()
        _, table = make_table(client, H, [("age", "long", None)])
        ids = [upload(client, table, f"f{i}.csv", f"customerId,age\nc{i},{i}\n")["id"] for i in range(5)]
        assert [u["id"] for u in emu.uploads()] == ids
        assert [u["id"] for u in emu.uploads(datasource_id=table["id"])] == ids
        assert emu.wait_for_uploads() == []  # each upload() above waited already
        assert [u["id"] for u in emu.wait_for_uploads(after=ids[2])] == ids[3:]
    finally:
        server.shutdown()
