"""Memory soak (``make bench``): the served emulator's RSS over repeated rounds of uploads and snapshots.

Each round, against one ``python -m dcp_emulator serve`` process:

1. UPLOADS uploads through S3 (boto3, SigV4), each with 100 rejected rows so that every Upload History
   entry carries a full error list (~40 kB), then ``uploads/wait`` and a page of ``GET /_emulator/uploads``.
   File names cycle over a few keys, so moto holds a bounded number of objects (objects kept by moto
   across resets are measured elsewhere);
2. SNAPSHOTS named snapshots of a database of PROFILES profiles saved, then deleted.

The Upload History keeps the last --upload-history-size uploads and named snapshots beyond
--snapshot-memory-bytes go to temporary files, so after the first rounds fill those budgets the RSS
must stay flat. Target: growth from round 2 to round 5 under 8 MB. Options: --rounds N, --uploads N,
--snapshots N, --default-malloc.

The served process runs with MALLOC_ARENA_MAX=2 (unless --default-malloc): each request of the threaded
server may allocate from another glibc arena, and warming up to 8 arenas per core adds tens of MB over the
first rounds, which says nothing about what the emulator keeps. (moto keeps a ~2 kB record of every
object ever written, ~0.2 MB per round here: tracked with issue 13.)
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import boto3
import psutil
import requests
from botocore.config import Config as BotoConfig

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from served import ServedEmulator

HEADERS = {"Token": "emulator-classic-token"}
PROFILES = 20_000
SNAPSHOTS = 8
HISTORY = 50
JOURNAL = 50  # request journal entries: bounded too, filled in the first round like the others
SNAPSHOT_MEMORY = 8 * 1024 * 1024
KEYS = 10  # distinct object keys: a new upload replaces an earlier object of the same name
TARGET_MB = 8.0


def seed_text(profiles: int) -> str:
    """A seed with one table of ``profiles`` profiles and a table to upload into."""
    lines = ["dcp_services:", "- id: 600", "  name: Soak", "  datasources:", "  - id: 601", "    name: Big",
             "    keyfield_locator_type: uid", "    attributes: [{name: name, datatype: string}, {name: n, datatype: long}]",
             "    profiles:"]
    lines += [f"      c-{i}: {{name: Customer {i}, n: {i}}}" for i in range(profiles)]
    lines += ["  - id: 602", "    name: Uploads", "    keyfield_locator_type: uid",
              "    attributes: [{name: age, datatype: long}]"]
    return "\n".join(lines) + "\n"


def upload_body(i: int) -> bytes:
    """50 good rows and 100 rows whose long value is a 300-character word (each one a kept row error)."""
    good = "".join(f"u-{j},{i}\n" for j in range(50))  # the same customers every time: no growth there
    bad = "".join(f"b-{j},{'x' * 300}\n" for j in range(100))  # rejected: never stored, only reported
    return ("customerId,age\n" + good + bad).encode()


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MB."""
    return psutil.Process(pid).memory_info().rss / 1e6


def main() -> int:
    """Run the rounds and print one RSS figure per round; exit status 0 (figures are reported)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--uploads", type=int, default=100, help="uploads per round")
    parser.add_argument("--snapshots", type=int, default=SNAPSHOTS, help="snapshots saved and deleted per round")
    parser.add_argument("--default-malloc", action="store_true", help="do not set MALLOC_ARENA_MAX=2")
    args = parser.parse_args()
    env = {} if args.default_malloc else {"MALLOC_ARENA_MAX": "2"}
    with tempfile.TemporaryDirectory() as tmp:
        served = ServedEmulator("--quiet", "--upload-history-size", str(HISTORY), "--journal-size", str(JOURNAL),
                                "--snapshot-memory-bytes", str(SNAPSHOT_MEMORY), env={"TMPDIR": tmp, **env}).start()
        try:
            return soak(served, args.rounds, args.uploads, args.snapshots)
        finally:
            served.stop()


def soak(served: ServedEmulator, rounds: int, uploads: int, snapshots: int) -> int:
    """The rounds against one served emulator."""
    url = served.url
    session = requests.Session()
    resp = session.post(f"{url}/_emulator/seed", data=seed_text(PROFILES),
                        headers={"Content-Type": "application/yaml"}, timeout=300)
    resp.raise_for_status()
    table = session.get(f"{url}/experiment/v1/dcp_datasources/602", headers=HEADERS, timeout=30).json()
    s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=table["aws_access_key"],
                      aws_secret_access_key=table["aws_secret_key"], region_name="us-east-1",
                      config=BotoConfig(signature_version="s3v4"))
    pid = served.proc.pid
    start = rss_mb(pid)
    print(f"after seeding {PROFILES:,} profiles: RSS {start:7.1f} MB  (history kept: {HISTORY} uploads, "
          f"snapshots in memory: {SNAPSHOT_MEMORY // 2**20} MiB)")
    figures = []
    count = 0
    for round_no in range(1, rounds + 1):
        started = time.perf_counter()
        for _ in range(uploads):
            s3.put_object(Bucket="optimizely-import", Key=f"{table['s3_path']}/soak-{count % KEYS}.csv",
                          Body=upload_body(count))
            count += 1
            if count % 50 == 0:
                waited = session.post(f"{url}/_emulator/uploads/wait", json={"timeout": 120}, timeout=130)
                waited.raise_for_status()
        session.post(f"{url}/_emulator/uploads/wait", json={"timeout": 120}, timeout=130).raise_for_status()
        listed = session.get(f"{url}/_emulator/uploads", params={"limit": 1000}, timeout=60).json()
        for i in range(snapshots):
            session.post(f"{url}/_emulator/snapshots", json={"name": f"s{i}"}, timeout=60).raise_for_status()
        for i in range(snapshots):
            session.delete(f"{url}/_emulator/snapshots/s{i}", timeout=60).raise_for_status()
        figures.append(rss_mb(pid))
        print(f"round {round_no}: {count:5d} uploads so far, {len(listed)} in the history, {snapshots} snapshots "
              f"saved and deleted: RSS {figures[-1]:7.1f} MB  ({time.perf_counter() - started:5.1f} s)", flush=True)
    if len(figures) >= 2:
        growth = max(figures[1:]) - figures[1]
        verdict = "ok" if growth < TARGET_MB else "MISSED"
        print(f"RSS growth from round 2 to round {rounds}: {growth:+.1f} MB   target < {TARGET_MB:.0f} MB  [{verdict}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
