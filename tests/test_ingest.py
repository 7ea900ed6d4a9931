"""The bulk upload's file rules, row rejection, Upload History, wait and template CSV — through the real S3 protocol.

Every upload here is a SigV4-signed PutObject sent through the emulator's S3 endpoint (in-process,
with the Flask test client), then processed by the emulator's own ingest worker.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time

import pytest
from bulk_helpers import make_table, profile, put, upload
from dcp_api import create_attribute, ok

from dcp_emulator import datatypes, ingest
from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import Config
from dcp_emulator.store import column_decl, from_column

H = {"Token": DEFAULT_TOKENS["classic"]}

UPLOAD_FIELDS = {"id", "dcp_service_id", "datasource_id", "key", "file_name", "size_bytes", "status", "rows_total",
                 "rows_stored", "rows_rejected", "errors", "errors_total", "failure", "warnings", "received_at",
                 "started_at", "finished_at"}


@pytest.fixture
def emulator_config():
    """Emulators of this module keep few errors and use small batches (so batch boundaries are exercised)."""
    return Config(upload_error_limit=3, ingest_batch_rows=7)


@pytest.fixture
def c(client):
    return client


@pytest.fixture
def table(c):
    _, t = make_table(c, H, [("name", "string", None), ("age", "long", None), ("vip", "bool", None)])
    return t


# ---------------------------------------------------------------------- delimiters, encodings, quoting
@pytest.mark.parametrize(("name", "text"), [
    ("people.csv", "customerId,name,age\nc1,Ann,30\n"),
    ("people.CSV", "customerId,name,age\r\nc1,Ann,30\r\n"),
    ("people.tsv", "customerId\tname\tage\nc1\tAnn\t30\n"),
    ("people.txt", "customerId\tname\tage\nc1\tAnn\t30\n"),  # sniffed: tab
    ("people", "customerId,name,age\nc1,Ann,30\n"),  # sniffed: comma
    ("people.dat", "customerId\tname\tage\nc1\tAnn\t30"),  # no final newline
])
def test_delimiters_by_extension_or_sniffed_from_header(c, table, name, text):
    up = upload(c, table, name, text)
    assert up["status"] == "succeeded", up
    assert profile(c, H, table, "c1") == {"name": "Ann", "age": 30}


def test_tsv_keeps_commas_inside_cells(c, table):
    up = upload(c, table, "x.tsv", "customerId\tname\nc1\tDoe, John\n")
    assert up["status"] == "succeeded"
    assert profile(c, H, table, "c1") == {"name": "Doe, John"}


def test_utf8_with_and_without_bom(c, table):
    assert upload(c, table, "bom.csv", "\ufeffcustomerId,name\nc1,Zoë\n".encode("utf-8"))["status"] == "succeeded"
    assert upload(c, table, "nobom.csv", "customerId,name\nc2,Łukasz\n".encode())["status"] == "succeeded"
    assert profile(c, H, table, "c1") == {"name": "Zoë"}
    assert profile(c, H, table, "c2") == {"name": "Łukasz"}


def test_seed_example_doubled_quotes_and_space_after_delimiter(c, table):
    text = 'customerId,name\n"CustomerId1", "Height: 6\'1"""\n"c2","say ""hi"", then go"\n'
    up = upload(c, table, "quotes.csv", text)
    assert up["status"] == "succeeded", up
    assert profile(c, H, table, "CustomerId1") == {"name": "Height: 6'1\""}
    assert profile(c, H, table, "c2") == {"name": 'say "hi", then go'}


def test_the_seed_example_line_verbatim(c):
    _, t = make_table(c, H, [("Name", "string", None), ("Height", "string", None)])
    up = upload(c, t, "seed.csv", 'customerId,Name,Height\n"CustomerId1", "John Doe", "Height: 6\'1"""\n')
    assert up["status"] == "succeeded", up
    assert profile(c, H, t, "CustomerId1") == {"Name": "John Doe", "Height": "Height: 6'1\""}


def test_quoted_cell_spanning_lines_and_line_numbers_after_it(c, table):
    text = 'customerId,name,age\nc1,"two\nlines",1\nc2,x,notanumber\n'
    up = upload(c, table, "multi.csv", text)
    assert profile(c, H, table, "c1") == {"name": "two\nlines", "age": 1}
    assert up["errors"] == [{"line": 4, "column": "age", "value": "notanumber", "reason": up["errors"][0]["reason"]}]


# ---------------------------------------------------------------------- header rules
def test_customer_id_column_is_case_insensitive_and_anywhere(c, table):
    up = upload(c, table, "h.csv", "age,CUSTOMERID,name\n5,c1,Ann\n")
    assert up["status"] == "succeeded"
    assert profile(c, H, table, "c1") == {"name": "Ann", "age": 5}


def test_a_subset_of_attributes_is_fine(c, table):
    assert upload(c, table, "only-id.csv", "customerId\nc1\n")["status"] == "succeeded"
    assert profile(c, H, table, "c1") == {}
    assert upload(c, table, "vip.csv", "customerId,vip\nc1,TRUE\n")["status"] == "succeeded"
    assert profile(c, H, table, "c1") == {"vip": True}


@pytest.mark.parametrize(("text", "column", "words"), [
    ("name,age\nAnn,3\n", None, ["no customerId column"]),
    ("id,name\nc1,x\n", None, ["no customerId column", "customerId,name"]),  # not "'id' is not registered"
    ("customerId,nickname\nc1,x\n", "nickname", ["'nickname'", "not a registered attribute", "'name'"]),
    ("customerId,Name\nc1,x\n", "Name", ["Did you mean 'name'", "case-sensitive"]),
    ("customerId,name,name\nc1,x,y\n", "name", ["twice"]),
    ("customerId,name,customerid\nc1,x,c2\n", "customerid", ["twice"]),
    ("customerId,name,\nc1,x,\n", "", ["no name"]),
])
def test_bad_header_fails_the_whole_upload_and_stores_nothing(c, table, text, column, words):
    up = upload(c, table, "bad.csv", text)
    assert up["status"] == "failed" and up["rows_stored"] == 0, up
    for w in words:
        assert w in up["failure"], up["failure"]
    assert up["errors"][0]["line"] == 1 and up["errors"][0]["column"] == column
    assert up["errors_total"] == 1
    assert profile(c, H, table, "c1") is None


def test_archived_attribute_in_header_fails_the_upload(c, table):
    attr = create_attribute(c, H, table["id"], "old", "string")
    ok(c.delete(f"/experiment/v1/dcp_datasource_attributes/{attr['id']}", headers=H), 204)
    up = upload(c, table, "old.csv", "customerId,name,old\nc1,x,y\n")
    assert up["status"] == "failed" and "archived" in up["failure"]
    assert profile(c, H, table, "c1") is None


@pytest.mark.parametrize(("data", "words"), [
    ("customerId,name\nc1,caf\xe9\n".encode("latin-1"), ["not UTF-8", "line 2"]),
    ("customerId,name\nc1,x\n".encode("utf-16"), ["not UTF-8", "UTF-16"]),
    (b"customerId,name\n" + b"c1,x\n" * 50 + b"c2,\xff\n", ["not UTF-8", "line 52"]),
    (b"", ["empty"]),
    (b"\n\n", ["first line is blank"]),
    (b"\ncustomerId,name\nc1,x\n", ["first line is blank", "header", "must be the first line"]),
    (b"  \r\ncustomerId,name\r\nc1,x\r\n", ["first line is blank"]),
])
def test_undecodable_or_empty_file_fails_and_stores_nothing(c, table, data, words):
    up = upload(c, table, "enc.csv", data)
    assert up["status"] == "failed" and up["rows_stored"] == 0, up
    for w in words:
        assert w in up["failure"], up["failure"]
    assert profile(c, H, table, "c1") is None


def test_cells_longer_than_the_csv_modules_default_limit_are_stored(c, table):
    # csv's default field limit is 131,072 characters; a string attribute has no such limit
    long_text = "é" + "x" * 199_998 + "\u2603"
    up = upload(c, table, "long.csv", f'customerId,name\nc1,"{long_text}"\nc2,{long_text[::-1]}\n')
    assert (up["status"], up["rows_stored"]) == ("succeeded", 2), up
    assert profile(c, H, table, "c1") == {"name": long_text}
    assert profile(c, H, table, "c2") == {"name": long_text[::-1]}


def test_header_only_file_succeeds_with_no_rows(c, table):
    up = upload(c, table, "empty-rows.csv", "customerId,name\n")
    assert (up["status"], up["rows_total"], up["rows_stored"]) == ("succeeded", 0, 0)


# ---------------------------------------------------------------------- rows
def test_bad_rows_are_rejected_with_line_column_value_reason_and_others_stored(c, table):
    text = ("customerId,name,age,vip\n"
            "c1,Ann,30,true\n"
            "c2,Bob,thirty,false\n"      # line 3: invalid long
            ",Nobody,1,true\n"           # line 4: missing customerId
            "c4,Dan,4\n"                 # line 5: too few cells
            "\n"                         # line 6: blank, not a row
            "c5,Eve,5,true,extra\n"      # line 7: too many cells
            "c6,Fay,6,yes\n")            # line 8: invalid bool
    up = upload(c, table, "rows.csv", text)
    assert up["status"] == "completed_with_errors"
    assert (up["rows_total"], up["rows_stored"], up["rows_rejected"], up["errors_total"]) == (6, 1, 5, 5)
    # the error list is bounded by upload_error_limit (3 here); the totals still count every row
    assert [(e["line"], e["column"], e["value"]) for e in up["errors"]] == [
        (3, "age", "thirty"), (4, "customerId", ""), (5, None, "c4,Dan,4")]
    assert "expected a long" in up["errors"][0]["reason"] and "datatype long" in up["errors"][0]["reason"]
    assert up["errors"][1]["reason"] == "missing customerId"
    assert "expected 4 cells" in up["errors"][2]["reason"] and "got 3" in up["errors"][2]["reason"]
    assert profile(c, H, table, "c1") == {"name": "Ann", "age": 30, "vip": True}
    for cid in ("c2", "c4", "c5", "c6"):
        assert profile(c, H, table, cid) is None


def test_line_numbers_across_batches(app, c, table):
    # batches of 7 rows: the bad rows sit on both sides of batch boundaries
    lines = ["customerId,age"] + [f"c{i},{i}" for i in range(2, 40)]
    bad = {8, 9, 16, 30}
    for n in bad:
        lines[n - 1] = f"c{n},x{n}"
    app.extensions["dcp_emulator"].ingestor.error_limit = 100
    up = upload(c, table, "many.csv", "\n".join(lines) + "\n")
    assert [e["line"] for e in up["errors"]] == sorted(bad)
    assert [e["value"] for e in up["errors"]] == [f"x{n}" for n in sorted(bad)]
    assert up["rows_stored"] == 38 - len(bad)


def test_empty_cell_leaves_the_stored_value_unchanged(c, table):
    url = f"/api/customer_profile/{table['dcp_service_id']}/{table['id']}/c1"
    ok(c.post(url, json={"data": {"name": "Ann", "age": 30, "vip": True}}, headers=H), 201)
    up = upload(c, table, "partial.csv", 'customerId,name,age,vip\nc1,,31,""\n')
    assert up["status"] == "succeeded"
    assert profile(c, H, table, "c1") == {"name": "Ann", "age": 31, "vip": True}


def test_rows_apply_in_file_order_with_merge(c, table):
    up = upload(c, table, "order.csv", "customerId,name,age\nc1,First,1\nc1,,2\nc1,Last,\n")
    assert up["status"] == "succeeded"
    assert profile(c, H, table, "c1") == {"name": "Last", "age": 2}


def test_uploads_are_processed_in_completion_order(c, table):
    for i in range(5):
        assert put(c, table, f"f{i}.csv", f"customerId,age\nc1,{i}\n").status_code == 200
    ok(c.post("/_emulator/uploads/wait", json={"timeout": 30}), 200)
    uploads = ok(c.get("/_emulator/uploads"), 200)
    assert [u["file_name"] for u in uploads] == [f"f{i}.csv" for i in range(5)]
    starts = [u["started_at"] for u in uploads]
    assert starts == sorted(starts)
    assert profile(c, H, table, "c1") == {"age": 4}


def test_long_customer_id_is_rejected(c, table):
    up = upload(c, table, "long.csv", f"customerId,age\n{'x' * 1025},1\nok,2\n")
    assert up["rows_rejected"] == 1 and "1024" in up["errors"][0]["reason"]
    assert profile(c, H, table, "ok") == {"age": 2}


# ---------------------------------------------------------------------- the datatype conformance table as CSV cells
ATTRS = {"b": ("bool", None), "l": ("long", None), "d": ("double", None), "day": ("datetime", "yyyy-mm-dd"),
         "ts": ("datetime", "yyyy-mm-ddThh:mm:ssZ"), "ep": ("datetime", "epoch"), "s": ("string", None)}
VALID = [("b", "false", False), ("b", "True", True), ("b", "TRUE", True),
         ("l", "1", 1), ("l", "-2", -2), ("l", "9223372036854775807", 9223372036854775807),
         ("l", "-9223372036854775807", -9223372036854775807),
         ("d", "1", 1), ("d", "-2.3", -2.3),
         ("day", "2022-05-02", "2022-05-02"), ("day", "1999-01-02", "1999-01-02"),
         ("ts", "2022-05-02T10:10:59Z", "2022-05-02T10:10:59Z"), ("ts", "1999-01-01T00:00:00", "1999-01-01T00:00:00"),
         ("ep", "0", 0), ("ep", "1651676123", 1651676123),
         ("s", "anything, at all", "anything, at all"), ("s", 'with "quotes"', 'with "quotes"')]
INVALID = [("b", "0"), ("b", "1"), ("b", "y"), ("b", "n"), ("l", "foo"), ("l", "9223372036854775810"),
           ("d", "foo"), ("d", "2,3"), ("day", "2022-13-01"), ("day", "2022/05/02"),
           ("ts", "2022-05-02"), ("ts", "2022/05/02T10:10:59Z"), ("ts", "2022-05-02 10:10:59"),
           ("ts", "2022-05-02t10:10:59z"), ("ts", "2022-05-02T55:10:59Z"),
           ("ep", "2022-05-02"), ("ep", "2022-05-02T10:10:59Z"), ("ep", "-1651676123")]


@pytest.fixture
def conf_table(c):
    _, t = make_table(c, H, [(n, dt, f) for n, (dt, f) in ATTRS.items()])
    return t


def _cell(value: str, quoted: bool) -> str:
    return '"' + value.replace('"', '""') + '"' if quoted else value


def test_every_spec6_row_as_a_csv_cell_quoted_and_unquoted(c, conf_table):
    """All rows in one file (one upload): valid cells are stored typed, invalid rows rejected by name."""
    lines = ["customerId," + ",".join(ATTRS)]
    expected_ok, expected_bad = {}, {}
    for quoted in (False, True):
        for i, (attr, written, read_back) in enumerate(VALID):
            if not quoted and ("," in written or '"' in written):
                continue  # such strings can only be written quoted
            cid = f"ok-{quoted}-{i}"
            cells = [_cell(written, quoted) if a == attr else "" for a in ATTRS]
            lines.append(",".join([cid] + cells))
            expected_ok[cid] = {attr: read_back}
        for i, (attr, written) in enumerate(INVALID):
            if not quoted and "," in written:
                continue
            cid = f"bad-{quoted}-{i}"
            cells = [_cell(written, quoted) if a == attr else "" for a in ATTRS]
            lines.append(",".join([cid] + cells))
            expected_bad[len(lines)] = (cid, attr, written)
    c.application.extensions["dcp_emulator"].ingestor.error_limit = 1000
    up = upload(c, conf_table, "conformance.csv", "\n".join(lines) + "\n")
    assert up["rows_stored"] == len(expected_ok) and up["rows_rejected"] == len(expected_bad), up
    for cid, data in expected_ok.items():
        got = profile(c, H, conf_table, cid)
        assert got == data and type(next(iter(got.values()))) is type(next(iter(data.values()))), (cid, got)
    errors = {e["line"]: e for e in up["errors"]}
    assert set(errors) == set(expected_bad)
    for line, (cid, attr, written) in expected_bad.items():
        assert (errors[line]["column"], errors[line]["value"]) == (attr, written)
        reason = datatypes.converter(*ATTRS[attr])
        with pytest.raises(datatypes.InvalidValue) as exc:
            reason(written)
        assert errors[line]["reason"].startswith(exc.value.reason)  # the JSON API's reason, plus the datatype
        assert profile(c, H, conf_table, cid) is None


def test_csv_stores_exactly_what_the_json_api_stores(app, c, conf_table):
    """The same strings through both doors give byte-identical stored profiles."""
    values = {"b": ["TRUE", "false"], "l": ["0", "-0", "007", "42", "-9223372036854775807"],
              "d": ["1", "-0", "2.50", "1e3", "+5", ".5", "5.", "0.30000000000000004", "1E-7", "12345678901234567890"],
              "day": ["2024-02-29"], "ts": ["2022-05-02T10:10:59Z"], "ep": ["0", "00012"], "s": ["é \\ \t tab"]}
    url = f"/api/customer_profile/{conf_table['dcp_service_id']}/{conf_table['id']}"
    lines = ["customerId," + ",".join(ATTRS)]
    n = 0
    for attr, vals in values.items():
        for v in vals:
            n += 1
            ok(c.post(f"{url}/json-{n}", json={"data": {attr: v}}, headers=H), 201)
            lines.append(",".join([f"csv-{n}"] + [_cell(v, True) if a == attr else "" for a in ATTRS]))
    assert upload(c, conf_table, "same.csv", "\n".join(lines) + "\n")["status"] == "succeeded"
    db = app.extensions["dcp_emulator"].store.db
    for i in range(1, n + 1):
        rows = {r[0]: json.loads(r[1]) for r in db.execute(
            "SELECT customer_id, data FROM profiles WHERE customer_id IN (?, ?)", (f"json-{i}", f"csv-{i}"))}
        a, b = rows[f"json-{i}"], rows[f"csv-{i}"]
        assert a == b and [type(v) for v in a.values()] == [type(v) for v in b.values()], (i, a, b)


# The ingest judges whole columns with fast screens; they must never disagree with the converter.
TRICKY = ["0", "-0", "00", "007", "-007", "1", "-1", "+1", "1.", ".5", "-.5", "1e5", "1E+5", "1e-5", "1e", "e1", ".",
          "-", "--1", "1-", "1-2", " 1", "1 ", "1_000", "١٢", "½", "nan", "NaN", "inf", "-inf", "Infinity", "1e999",
          "-1e999", "0x10", "9223372036854775807", "-9223372036854775807", "9223372036854775808",
          "922337203685477580", "123456789012345678", "1234567890123456789", "12345678901234567890",
          "00000000000000000000001", "true", "TRUE", "True", "tRUE", "false", "FALSE", "yes", "t", "",
          "2022-05-02", "2022-02-29", "2024-02-29", "2022-13-01", "2022-05-02T10:10:59Z", "2022-05-02T10:10:59",
          "2022-05-02T24:00:00Z", "2022-05-02t10:10:59z", "0.1", "0.30000000000000004", "2.50", "1\n2", "5\n"]


@pytest.mark.parametrize(("datatype", "fmt"), list(ATTRS.values()))
def test_column_screens_agree_with_the_converter(datatype, fmt):
    convert = datatypes.converter(datatype, fmt)
    column = ingest.Column(1, "a", "9", datatype, fmt, convert)
    rng = random.Random(7)
    sql = sqlite3.connect(":memory:")
    sql.execute(f"CREATE TABLE t (v {column_decl(datatype, fmt)})")  # the profile table's column type
    for value in TRICKY:
        for values in [(value,), (value, value), (value, "1"), ("1", value), (value, ""), (value, "2.5")]:
            values = rng.sample(values, len(values))
            batch = ingest._ColumnBatch(column)
            bad: dict = {}
            params = batch.convert(list(values), bad)
            params = values if params is None else params  # None: the cells are the parameters as written
            for i, v in enumerate(values):
                try:
                    typed = convert(v) if v else None  # an empty cell is NULL: the stored value stays
                except datatypes.InvalidValue:
                    assert i in bad, (datatype, values, i)
                    continue
                assert i not in bad, (datatype, values, i, bad)
                # store the column's SQL expression on its parameter, as the bulk upsert does, and read it back
                sql.execute("DELETE FROM t")
                sql.execute(f"INSERT INTO t VALUES ({batch.sql('?1')})", (params[i],))
                stored = from_column(datatype, sql.execute("SELECT v FROM t").fetchone()[0])
                assert stored == typed and type(stored) is type(typed), (datatype, values, i, params[i], typed)


# ---------------------------------------------------------------------- Upload History, warnings, wait
def test_upload_history_fields_filters_and_lookup(c, table):
    up = upload(c, table, "dir/hist.csv", "customerId,age\nc1,1\n")
    assert set(up) == UPLOAD_FIELDS
    assert up["key"] == f"{table['s3_path']}/dir/hist.csv" and up["file_name"] == "hist.csv"
    assert up["dcp_service_id"] == table["dcp_service_id"] and up["datasource_id"] == table["id"]
    assert up["size_bytes"] == len("customerId,age\nc1,1\n")
    assert up["received_at"] <= up["started_at"] <= up["finished_at"]
    assert ok(c.get(f"/_emulator/uploads/{up['id']}"), 200) == up
    assert ok(c.get("/_emulator/uploads/"), 200)[-1] == up
    assert ok(c.get(f"/_emulator/uploads?datasource_id={table['id'] + 1000}"), 200) == []
    assert c.get("/_emulator/uploads/999999").status_code == 404
    assert c.get("/_emulator/uploads?datasource_id=abc").status_code == 400


def test_same_file_name_while_pending_is_a_warning(app, c, table):
    store = app.extensions["dcp_emulator"].store
    with store.lock:  # the worker cannot start either upload while the test holds the store
        assert put(c, table, "same.csv", "customerId,age\nc1,1\n").status_code == 200
        assert put(c, table, "same.csv", "customerId,age\nc1,2\n").status_code == 200
        assert put(c, table, "other.csv", "customerId,age\nc1,3\n").status_code == 200
        pending = ok(c.get("/_emulator/uploads"), 200)
        assert [u["status"] for u in pending] == ["pending"] * 3
    ok(c.post("/_emulator/uploads/wait", json={"timeout": 30}), 200)
    first, second, other = ok(c.get("/_emulator/uploads"), 200)
    assert first["warnings"] == [] and other["warnings"] == []
    assert len(second["warnings"]) == 1 and f"id {first['id']}" in second["warnings"][0]
    assert "reorder" in second["warnings"][0]
    assert second["status"] == "succeeded" and profile(c, H, table, "c1") == {"age": 3}


def test_wait_times_out_with_504_and_validates_its_body(app, c, table):
    store = app.extensions["dcp_emulator"].store
    with store.lock:
        put(c, table, "slow.csv", "customerId,age\nc1,1\n")
        t0 = time.monotonic()
        resp = c.post("/_emulator/uploads/wait", json={"timeout": 0.3})
        assert resp.status_code == 504 and time.monotonic() - t0 >= 0.3
        err = resp.get_json()
        assert err["code"] == "upload_wait_timeout" and "pending" in err["message"]
    assert ok(c.post("/_emulator/uploads/wait", json={"timeout": 30}), 200)["status"] == "idle"
    assert ok(c.post("/_emulator/uploads/wait", json={"after": 0}), 200)["uploads"][0]["status"] == "succeeded"
    for bad in ({"timeout": "5"}, {"timeout": -1}, {"timeout": True}, {"timeout": 1e9}, {"wait": 1}):
        assert c.post("/_emulator/uploads/wait", json=bad).status_code == 400


def test_table_archived_before_processing_fails_the_upload(app, c, table):
    store = app.extensions["dcp_emulator"].store
    with store.lock:
        put(c, table, "late.csv", "customerId,age\nc1,1\n")
        ok(c.delete(f"/experiment/v1/dcp_datasources/{table['id']}", headers=H), 204)
    ok(c.post("/_emulator/uploads/wait", json={"timeout": 30}), 200)
    up = ok(c.get("/_emulator/uploads"), 200)[-1]
    assert up["status"] == "failed" and "archived" in up["failure"] and up["rows_stored"] == 0


def test_reset_forgets_uploads_and_empties_the_bucket(app, c, table):
    upload(c, table, "r.csv", "customerId,age\nc1,1\n")
    emu = app.extensions["dcp_emulator"]
    assert len(emu.s3.bucket.keys) == 1
    ok(c.post("/_emulator/reset"), 200)
    assert ok(c.get("/_emulator/uploads"), 200) == []
    assert len(emu.s3.bucket.keys) == 0


def test_concurrent_uploads_and_api_writes(c, table):
    """Uploads from several threads while the JSON API writes: every row lands, no 500."""
    url = f"/api/customer_profile/{table['dcp_service_id']}/{table['id']}"
    app = c.application
    failures = []

    def uploader(n):
        cl = app.test_client()
        for k in range(3):
            r = put(cl, table, f"t{n}-{k}.csv", "customerId,age\n" + "".join(f"u{n}-{k}-{i},{i}\n" for i in range(50)))
            if r.status_code != 200:
                failures.append(r.status_code)

    def writer():
        cl = app.test_client()
        for i in range(30):
            if cl.post(f"{url}/api-{i}", json={"data": {"age": i}}, headers=H).status_code != 201:
                failures.append("api")

    threads = [threading.Thread(target=uploader, args=(n,)) for n in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    ok(c.post("/_emulator/uploads/wait", json={"timeout": 60}), 200)
    ups = ok(c.get("/_emulator/uploads"), 200)
    assert len(ups) == 9 and all(u["status"] == "succeeded" and u["rows_stored"] == 50 for u in ups)
    assert profile(c, H, table, "u2-2-49") == {"age": 49} and profile(c, H, table, "api-29") == {"age": 29}


# ---------------------------------------------------------------------- template CSV
def test_template_csv_has_customer_id_and_active_attributes(c, table):
    attr = create_attribute(c, H, table["id"], "gone", "string")
    create_attribute(c, H, table["id"], "a b", "string")
    ok(c.delete(f"/experiment/v1/dcp_datasource_attributes/{attr['id']}", headers=H), 204)
    resp = c.get(f"/_emulator/datasources/{table['id']}/template.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    assert resp.get_data(as_text=True) == "customerId,name,age,vip,a b\r\n"
    # the template itself is a valid upload
    assert upload(c, table, "template.csv", resp.get_data())["status"] == "succeeded"
    assert c.get("/_emulator/datasources/999999/template.csv").status_code == 404


def test_aws_chunked_streaming_trailer_body_is_decoded(c, table):
    """Newer SDKs send PutObject bodies as aws-chunked with a trailing checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER)."""
    import base64
    import zlib

    from bulk_helpers import signed

    data = b"customerId,age\nchunky,5\n"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    body = f"{len(data):x}\r\n".encode() + data + f"\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode()
    resp = signed(c, "PUT", f"{table['s3_path']}/chunked.csv", table["aws_access_key"], table["aws_secret_key"], body,
                  headers={"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "Content-Encoding": "aws-chunked",
                           "x-amz-decoded-content-length": str(len(data)), "x-amz-trailer": "x-amz-checksum-crc32"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    ok(c.post("/_emulator/uploads/wait", json={"timeout": 30}), 200)
    up = ok(c.get("/_emulator/uploads"), 200)[-1]
    assert (up["status"], up["size_bytes"]) == ("succeeded", len(data))
    assert profile(c, H, table, "chunky") == {"age": 5}


def test_ingest_never_undoes_a_gc_freeze_of_the_host_process():
    """The ingest sets objects aside with gc.freeze() while uploads run, reference-counted across
    emulators, and leaves alone a freeze the embedding process made itself (e.g. before forking)."""
    import gc

    from dcp_emulator import ingest

    assert gc.get_freeze_count() == 0
    with ingest._gc_set_aside():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with ingest._gc_set_aside():  # a second emulator's upload, overlapping
            pass
        # the first upload's set-aside is still in force (an unfreeze would make it 0; other threads may
        # release a few frozen objects meanwhile)
        assert gc.get_freeze_count() > frozen // 2
    assert gc.get_freeze_count() == 0
    gc.freeze()  # the host's own freeze
    try:
        host = gc.get_freeze_count()
        with ingest._gc_set_aside():
            pass
        # Still frozen (an unfreeze would make it 0). Not exactly `host`: frozen objects that other threads
        # release meanwhile leave the permanent generation.
        assert gc.get_freeze_count() > host // 2
    finally:
        gc.unfreeze()
