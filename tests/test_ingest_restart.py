"""An emulator killed (SIGKILL) in the middle of an upload, restarted on the same --db.

The upload must either finish after the restart or fail with a clear reason — never show up as
succeeded while only part of it was applied — and the progress recorded at the kill must match the
rows actually in the database (batches and progress commit together).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import boto3
import pytest
import requests
from botocore.config import Config as BotoConfig

from dcp_emulator.app import DEFAULT_TOKENS

H = {"Token": DEFAULT_TOKENS["classic"]}
ROWS = 300_000

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


def _serve(db: str) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, DCP_EMULATOR_INGEST_BATCH_ROWS="500", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "dcp_emulator", "serve", "--host", "127.0.0.1", "--port", "0",
                             "--db", db, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    line = proc.stdout.readline()
    assert "listening on" in line, line + proc.stdout.read()
    return proc, line.split("listening on ")[1].split()[0]


def _upload_and_kill(tmp_path) -> tuple[str, dict, dict, int]:
    """Serve, upload a big file, SIGKILL while it is being applied; returns (db, table, upload, id)."""
    db = str(tmp_path / "state.db")
    proc, url = _serve(db)
    try:
        svc = requests.post(f"{url}/experiment/v1/dcp_services", json={"name": "S"}, headers=H).json()
        table = requests.post(f"{url}/experiment/v1/dcp_services/{svc['id']}/dcp_datasources",
                              json={"name": "T", "keyfield_locator_type": "uid"}, headers=H).json()
        for name, datatype in (("n", "long"), ("s", "string")):
            r = requests.post(f"{url}/experiment/v1/dcp_datasources/{table['id']}/dcp_datasource_attributes",
                              json={"name": name, "datatype": datatype}, headers=H)
            assert r.status_code == 201, r.text
        body = "customerId,n,s\n" + "".join(f"k{i},{i},v{i % 97}\n" for i in range(ROWS))
        s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=table["aws_access_key"],
                          aws_secret_access_key=table["aws_secret_key"], region_name="us-east-1",
                          config=BotoConfig(signature_version="s3v4"))
        s3.put_object(Bucket="optimizely-import", Key=f"{table['s3_path']}/big.csv", Body=body.encode())
        deadline = time.monotonic() + 60
        while True:
            [up] = requests.get(f"{url}/_emulator/uploads").json()
            if up["status"] == "processing" and up["rows_stored"] > 0:
                break
            assert up["status"] in ("pending", "processing"), f"finished before the kill: {up}"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    return db, table, up, up["id"]


def _db_state(db: str, upload_id: int, table_id: int) -> tuple[dict, int]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone())
    count = conn.execute("SELECT count(*) FROM profiles WHERE datasource_id = ?", (table_id,)).fetchone()[0]
    conn.close()
    return row, count


def test_killed_mid_ingest_resumes_and_finishes_after_restart(tmp_path):
    db, table, seen, upload_id = _upload_and_kill(tmp_path)
    row, count = _db_state(db, upload_id, table["id"])
    # what the killed process committed: a processing upload whose progress matches the stored rows
    assert row["status"] == "processing" and 0 < row["rows_stored"] < ROWS
    assert count == row["rows_stored"] and row["records_done"] == row["rows_stored"]
    assert os.path.exists(f"{db}.uploads/{row['spool']}")
    proc, url = _serve(db)
    try:
        resp = requests.post(f"{url}/_emulator/uploads/wait", json={"timeout": 120})
        assert resp.status_code == 200, resp.text
        up = requests.get(f"{url}/_emulator/uploads/{upload_id}").json()
        assert (up["status"], up["rows_total"], up["rows_stored"], up["rows_rejected"]) == ("succeeded", ROWS, ROWS, 0)
        assert up["started_at"] == seen["started_at"]  # resumed, not restarted
        for i in (0, ROWS // 2, ROWS - 1):
            r = requests.get(f"{url}/api/customer_profile/{table['dcp_service_id']}/{table['id']}/k{i}", headers=H)
            assert r.json()["data"] == {"n": i, "s": f"v{i % 97}"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
    _, count = _db_state(db, upload_id, table["id"])
    assert count == ROWS
    assert not os.listdir(f"{db}.uploads")  # the spooled copy is dropped once applied


def test_killed_mid_ingest_without_its_spooled_file_fails_clearly(tmp_path):
    db, table, _, upload_id = _upload_and_kill(tmp_path)
    _, applied = _db_state(db, upload_id, table["id"])
    shutil.rmtree(f"{db}.uploads")
    proc, url = _serve(db)
    try:
        assert requests.post(f"{url}/_emulator/uploads/wait", json={"timeout": 60}).status_code == 200
        up = requests.get(f"{url}/_emulator/uploads/{upload_id}").json()
        assert up["status"] == "failed"
        assert "spooled copy is gone" in up["failure"] and f"{applied} row(s)" in up["failure"]
        assert up["rows_stored"] == applied < ROWS
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
