"""Receiving S3 objects (``make bench``): server peak RSS growth and receive time vs a disk-write floor.

Each scenario runs against a fresh ``python -m dcp_emulator serve --db FILE`` process (with a database
file the stored profiles live on disk, so RSS shows what receiving and ingesting cost, not the data):

1. a single PutObject of the whole file (plain body, Content-Length);
2. ``aws s3 cp`` of the file (the real AWS CLI: multipart, 8 MB parts, 10 concurrent);
3. a single PutObject with an aws-chunked body and a trailing CRC32 (boto3's default checksum, as it
   sends it over https; forced here over http);
4. boto3's ``upload_file`` (the transfer manager ``aws s3 cp`` uses: 8 MB parts, 10 concurrent) with
   aws-chunked parts and trailing CRC32s.

Each upload is followed by its ingest (``POST /_emulator/uploads/wait``). The growth is VmHWM (the
kernel's peak resident set of the server process) at the end minus VmHWM after a warm-up upload.
Receive time: a presigned PUT of the file from a minimal client (requests streaming the file), against
a floor measured in the same run: writing the same bytes to a file in the server's spool directory.

Targets: growth < 64 MB each; receive time <= 2x the floor. ``--mb N`` (or DCP_BENCH_RECEIVE_MB) sets
the file size (default 1024); ``--quick`` uses 64 MB. Also: RSS over 5 rounds of N objects + reset.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import boto3
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from ingest import ATTRIBUTES  # the ingest benchmark's attributes

TOKEN = {"Token": "emulator-classic-token"}
BUCKET = "optimizely-import"
MGMT = "/experiment/v1"
# A fresh temporary directory per run (set by main): runs never share files or leave them behind.
WORK = pathlib.Path()
DB = WORK / "receive.db"
ROW_BYTES = 1024  # wide rows: the ingest's own cost per row is measured by ingest.py; here bytes matter


def generate(mb: int) -> tuple[pathlib.Path, int]:
    """A CSV of ``mb`` MiB: customerId and a ~1 KB string per row; (path, rows)."""
    rows = mb * 2**20 // ROW_BYTES
    path = WORK / f"receive-{mb}mb.csv"
    marker = path.with_suffix(".done")
    if not (path.exists() and marker.exists() and marker.read_text() == str(rows)):
        filler = b"abcdefghijklmnopqrstuvwxyz0123456789" * 29  # 1044 bytes
        with path.open("wb") as f:
            f.write(b"customerId,name\n")
            for start in range(0, rows, 1000):
                f.write(b"".join(b"c%09d,%s\n" % (i, filler[i % 36:i % 36 + ROW_BYTES - 12])
                                 for i in range(start, min(rows, start + 1000))))
        marker.write_text(str(rows))
    return path, rows


class Server:
    """A served emulator subprocess with a database file."""

    def __init__(self, db: pathlib.Path):
        for leftover in (db, pathlib.Path(f"{db}.uploads")):
            if leftover.is_dir():
                shutil.rmtree(leftover)
            elif leftover.exists():
                leftover.unlink()
        self.db = db
        self.proc = subprocess.Popen([sys.executable, "-m", "dcp_emulator", "serve", "--port", "0", "--db", str(db)],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        for line in self.proc.stdout:
            m = re.search(r"listening on (http://\S+?) ", line)
            if m:
                self.url = m.group(1)
                break
        else:
            raise RuntimeError("the emulator did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def status(self, field: str) -> int:
        """A /proc/PID/status figure in bytes (VmHWM, VmRSS)."""
        text = pathlib.Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1)) * 1024

    def table(self) -> dict:
        """A service and a table with the benchmark's attributes."""
        def post(path: str, payload: dict) -> dict:
            resp = requests.post(self.url + path, json=payload, headers=TOKEN)
            resp.raise_for_status()
            return resp.json()

        svc = post(f"{MGMT}/dcp_services", {"name": "Bench"})
        table = post(f"{MGMT}/dcp_services/{svc['id']}/dcp_datasources", {"name": "T", "keyfield_locator_type": "uid"})
        for name, datatype, fmt in ATTRIBUTES:
            post(f"{MGMT}/dcp_datasources/{table['id']}/dcp_datasource_attributes",
                 {"name": name, "datatype": datatype, **({"format": fmt} if fmt else {})})
        return table

    def wait(self) -> list[dict]:
        resp = requests.post(f"{self.url}/_emulator/uploads/wait", json={"timeout": 3600}, timeout=3700)
        resp.raise_for_status()
        return resp.json()["uploads"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for leftover in (self.db, pathlib.Path(f"{self.db}.uploads")):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover.exists():
                leftover.unlink()


def s3_client(url: str, table: dict, trailer: bool = False):
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id=table["aws_access_key"],
                          aws_secret_access_key=table["aws_secret_key"], region_name="us-east-1",
                          config=BotoConfig(signature_version="s3v4", retries={"max_attempts": 1}))
    if trailer:
        # boto3 sends its default CRC32 as an aws-chunked trailer over https only; this makes it do so here.
        def to_trailer(params, **_):
            algorithm = params.get("context", {}).get("checksum", {}).get("request_algorithm")
            if isinstance(algorithm, dict) and algorithm.get("in") == "header":
                algorithm["in"] = "trailer"

        client.meta.events.register_last("before-call.s3.*", to_trailer)
    return client


def aws_cli(url: str, table: dict, *args: str) -> None:
    beside = os.path.join(os.path.dirname(sys.executable), "aws")
    aws = beside if os.access(beside, os.X_OK) else shutil.which("aws")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=table["aws_access_key"], AWS_SECRET_ACCESS_KEY=table["aws_secret_key"],
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    subprocess.run([aws, *args, "--endpoint-url", url, "--only-show-errors"], env=env, check=True)


def scenario(name: str, path: pathlib.Path, rows: int, send) -> dict:
    """Run one upload + ingest against a fresh server; returns its figures."""
    server = Server(DB)
    try:
        table = server.table()
        warm = s3_client(server.url, table)
        warm.put_object(Bucket=BUCKET, Key=f"{table['s3_path']}/warm.csv", Body=b"customerId,name\nw,1\n")
        server.wait()
        before = server.status("VmHWM")
        start = time.perf_counter()
        send(server.url, table, path)
        received = time.perf_counter() - start
        uploads = server.wait()
        total = time.perf_counter() - start
        after = server.status("VmHWM")
        up = uploads[-1]
        ok = up["status"] == "succeeded" and up["rows_stored"] == rows and up["size_bytes"] == path.stat().st_size
        return {"name": name, "growth": (after - before) / 2**20, "received": received, "total": total, "ok": ok,
                "upload": {k: up[k] for k in ("status", "rows_stored", "size_bytes")}}
    finally:
        server.stop()


def put_plain(url: str, table: dict, path: pathlib.Path) -> None:
    with path.open("rb") as f:
        s3_client(url, table).put_object(Bucket=BUCKET, Key=f"{table['s3_path']}/{path.name}", Body=f)


def put_chunked(url: str, table: dict, path: pathlib.Path) -> None:
    with path.open("rb") as f:
        s3_client(url, table, trailer=True).put_object(Bucket=BUCKET, Key=f"{table['s3_path']}/{path.name}", Body=f)


def cli_cp(url: str, table: dict, path: pathlib.Path) -> None:
    aws_cli(url, table, "s3", "cp", str(path), f"s3://{BUCKET}/{table['s3_path']}/")


def multipart_chunked(url: str, table: dict, path: pathlib.Path) -> None:
    config = TransferConfig(multipart_threshold=8 * 2**20, multipart_chunksize=8 * 2**20, max_concurrency=10)
    s3_client(url, table, trailer=True).upload_file(str(path), BUCKET, f"{table['s3_path']}/{path.name}",
                                                    Config=config)


def md5_alone(path: pathlib.Path) -> float:
    """Seconds to MD5 the file's bytes (the ETag S3 returns; part of every receive)."""
    import hashlib

    md5 = hashlib.md5(usedforsecurity=False)
    start = time.perf_counter()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
    return time.perf_counter() - start


def receive_vs_floor(path: pathlib.Path) -> tuple[float, float]:
    """(floor seconds, receive seconds): writing the bytes to a file vs a presigned PUT of them (no ingest)."""
    server = Server(DB)
    try:
        spool = pathlib.Path(f"{server.db}.uploads")
        floors, receives = [], []
        for _ in range(2):
            target = spool / "floor.bin"
            start = time.perf_counter()
            with path.open("rb") as src, target.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            floors.append(time.perf_counter() - start)
            target.unlink()
            table = server.table()  # a reset (below) drops it; keys outside a table path are refused
            put_url = s3_client(server.url, table).generate_presigned_url(
                "put_object", Params={"Bucket": BUCKET, "Key": f"{table['s3_path']}/{path.name}"})
            with path.open("rb") as f:
                start = time.perf_counter()
                resp = requests.put(put_url, data=f)
                receives.append(time.perf_counter() - start)
            resp.raise_for_status()
            requests.post(f"{server.url}/_emulator/reset").raise_for_status()  # the ingest is not timed here
        return min(floors), min(receives)
    finally:
        server.stop()


def reset_rounds(objects: int, rounds: int = 5) -> list[float]:
    """Server RSS (MB) after each round of ``objects`` small PutObjects followed by a reset."""
    server = Server(DB)
    try:
        out = []
        for _ in range(rounds):
            table = server.table()
            s3 = s3_client(server.url, table)
            for i in range(objects):
                s3.put_object(Bucket=BUCKET, Key=f"{table['s3_path']}/o{i}.csv", Body=b"customerId,name\nc,x\n")
            server.wait()
            requests.post(f"{server.url}/_emulator/reset").raise_for_status()
            out.append(server.status("VmRSS") / 2**20)
        return out
    finally:
        server.stop()


def main() -> int:
    """Run the scenarios and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=int(os.environ.get("DCP_BENCH_RECEIVE_MB", "1024")))
    parser.add_argument("--quick", action="store_true", help="64 MB files, 300 objects per reset round")
    parser.add_argument("--objects", type=int, default=1000, help="objects per reset round")
    args = parser.parse_args()
    global WORK, DB
    with tempfile.TemporaryDirectory(prefix="dcp-bench-") as work:
        WORK, DB = pathlib.Path(work), pathlib.Path(work) / "receive.db"
        return run(64 if args.quick else args.mb, 300 if args.quick else args.objects)


def run(mb: int, objects: int) -> int:
    """The scenarios proper, writing under ``WORK``."""
    path, rows = generate(mb)
    size = path.stat().st_size
    print(f"file: {path} ({size / 2**20:.0f} MiB, {rows:,} rows of ~1 KB); server: python -m dcp_emulator serve --db",
          flush=True)
    floor_s, receive_s = receive_vs_floor(path)
    ratio = receive_s / floor_s
    print(f"floor (write the bytes to a file in the spool directory): {floor_s:6.2f} s ({size / 2**20 / floor_s:,.0f} "
          "MiB/s)")
    print(f"receive (presigned PUT, streamed to disk with MD5):       {receive_s:6.2f} s ({size / 2**20 / receive_s:,.0f}"
          f" MiB/s); ratio {ratio:.2f}x (target <= 2x) {'OK' if ratio <= 2 else 'ABOVE TARGET'}", flush=True)
    print(f"(for reference: MD5 of the same bytes, which S3's ETag needs, alone takes {md5_alone(path):.2f} s here)",
          flush=True)
    for name, send in (("single PutObject", put_plain), ("aws s3 cp (multipart, 10 concurrent)", cli_cp),
                       ("single PutObject, aws-chunked + CRC32 trailer", put_chunked),
                       ("upload_file (multipart, 10 concurrent), aws-chunked", multipart_chunked)):
        r = scenario(name, path, rows, send)
        print(f"{name:<52} peak RSS growth {r['growth']:6.1f} MB (target < 64 MB) "
              f"{'OK' if r['growth'] < 64 else 'ABOVE TARGET'}; sent in {r['received']:.1f} s, ingested after "
              f"{r['total']:.1f} s; {'succeeded, all rows' if r['ok'] else 'WRONG: ' + json.dumps(r['upload'])}",
              flush=True)
    rss = reset_rounds(objects)
    print(f"server RSS after each of 5 rounds of {objects} PutObjects + reset: "
          f"{', '.join(f'{v:.0f}' for v in rss)} MB (growth from round 2 to 5: {rss[-1] - rss[1]:+.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
