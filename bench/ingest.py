"""Bulk ingest benchmark (``make bench``): emulator ingest rows/s vs the csv+executemany floor, and RSS growth.

1. A CSV of 1,000,000 rows x 6 attributes (string, long, double, bool, datetime yyyy-mm-dd, datetime
   epoch) is generated under a fresh temporary directory, removed at the end.
2. Floor: the same file read with the csv module and inserted with executemany into SQLite in one
   transaction, no validation. Emulator: the file spooled and queued exactly as a completed S3 object
   is (``Ingestor.spool`` + ``Ingestor.enqueue``), timed until the worker has applied it. Both in
   memory (the emulator's default) and with a database file (``--db``).
3. Peak RSS growth while the emulator (with a database file, so stored profiles are on disk) ingests
   a ~1 GB file, measured in a fresh process by sampling psutil every 20 ms.

Targets: ingest within 2x of the floor; RSS growth under 64 MB. Options: --rows N, --rss-mb N, --skip-rss.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dcp_emulator import create_app
from dcp_emulator.config import Config
from dcp_emulator.resources import DATASOURCE

HEADER = ["customerId", "name", "visits", "ltv", "vip", "signup", "last_seen"]
ATTRIBUTES = [("name", "string", None), ("visits", "long", None), ("ltv", "double", None), ("vip", "bool", None),
              ("signup", "datetime", "yyyy-mm-dd"), ("last_seen", "datetime", "epoch")]
GENERATOR_VERSION = "1"


def generate(path: pathlib.Path, rows: int, seed: int = 1) -> pathlib.Path:
    """Write the benchmark CSV (reused when a file of the same version and size exists)."""
    marker = path.with_suffix(".done")
    if path.exists() and marker.exists() and marker.read_text() == f"{GENERATOR_VERSION}:{rows}":
        return path
    rnd = random.Random(seed)
    bools = ["true", "false", "TRUE", "False"]
    with path.open("w", newline="", encoding="utf-8") as f:
        f.write(",".join(HEADER) + "\n")
        chunk = []
        for i in range(rows):
            chunk.append(f"cust-{i:08d},Name {rnd.randrange(10**6)},{rnd.randrange(10**6)},"
                         f"{rnd.randrange(100000) / 100},{bools[i & 3]},20{10 + i % 14}-0{1 + i % 9}-{10 + i % 19},"
                         f"{1600000000 + rnd.randrange(10**8)}\n")
            if len(chunk) == 10000:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))
    marker.write_text(f"{GENERATOR_VERSION}:{rows}")
    return path


def floor(path: pathlib.Path, db: str) -> float:
    """Seconds to read the file with csv and executemany it into SQLite in one transaction."""
    if db != ":memory:" and os.path.exists(db):
        os.remove(db)
    conn = sqlite3.connect(db)
    if db != ":memory:":
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"CREATE TABLE rows ({', '.join(f'c{i}' for i in range(len(HEADER)))})")
    start = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        with conn:
            conn.executemany(f"INSERT INTO rows VALUES ({', '.join('?' * len(HEADER))})", reader)
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def emulator_with_table(db: str | None):
    """A fresh emulator with one table holding the benchmark's attributes: (app, emulator, table)."""
    if db and os.path.exists(db):
        os.remove(db)
    app = create_app(Config(db=db))
    emu = app.extensions["dcp_emulator"]
    store = emu.store
    account = emu.default_account_id
    service = store.management.create_service(account, {"name": "Bench"})
    row = store.management.create_datasource(account, service["id"], {"name": "T", "keyfield_locator_type": "uid"})
    for name, datatype, fmt in ATTRIBUTES:
        store.management.create_attribute(account, row["id"], {"name": name, "datatype": datatype, "format": fmt})
    return app, emu, DATASOURCE.render(store.management.get_datasource(account, row["id"]))


def ingest(path: pathlib.Path, db: str | None) -> tuple[float, float, dict]:
    """(spool seconds, apply seconds, upload) for one file through the emulator's upload queue."""
    _, emu, table = emulator_with_table(db)
    try:
        start = time.perf_counter()
        with path.open("rb") as f:
            spool, size = emu.ingestor.spool(f)
        spooled = time.perf_counter()
        emu.ingestor.enqueue(emu.default_account_id, table["dcp_service_id"], table["id"],
                             f"{table['s3_path']}/{path.name}", spool, size)
        if not emu.ingestor.wait_idle(3600):
            raise RuntimeError("ingest did not finish within an hour")
        done = time.perf_counter()
        upload = emu.store.uploads.list_uploads()[-1]
    finally:
        emu.close()
    if upload["status"] != "succeeded":
        raise RuntimeError(f"benchmark upload did not succeed: {upload}")
    return spooled - start, done - spooled, upload


def rss_child(path: str) -> None:
    """(In a fresh process) ingest ``path`` and print the peak RSS growth as JSON."""
    import psutil

    proc = psutil.Process()
    # With a database file: the profiles themselves live on disk, so what RSS shows is the ingest's own
    # memory (in memory, the stored profiles would of course grow with the file).
    _, emu, table = emulator_with_table(str(pathlib.Path(path).parent / "rss.db"))  # the run's own directory
    baseline = proc.memory_info().rss
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    with open(path, "rb") as f:
        spool, size = emu.ingestor.spool(f)
    emu.ingestor.enqueue(emu.default_account_id, table["dcp_service_id"], table["id"], f"{table['s3_path']}/big.csv",
                         spool, size)
    emu.ingestor.wait_idle(7200)
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    upload = emu.store.uploads.list_uploads()[-1]
    emu.close()
    print(json.dumps({"baseline": baseline, "peak": peak[0], "seconds": elapsed, "rows": upload["rows_stored"],
                      "status": upload["status"], "bytes": size}))


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rss-mb", type=int, default=1024, help="size of the RSS test file in MB")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return 0
    # A fresh directory per run, removed at the end: runs never share or leave files in a fixed path.
    with tempfile.TemporaryDirectory(prefix="dcp-bench-") as work:
        return run(args, pathlib.Path(work))


def run(args: argparse.Namespace, work: pathlib.Path) -> int:
    """The benchmark proper, writing its files under ``work``."""
    path = generate(work / f"rows-{args.rows}.csv", args.rows)
    mb = path.stat().st_size / 1e6
    print(f"file: {path} ({args.rows:,} rows x {len(ATTRIBUTES)} attributes, {mb:.0f} MB)")
    worst = 0.0
    for label, floor_db, emu_db in (("in memory", ":memory:", None),
                                    ("--db file", str(work / "floor.db"), str(work / "emulator.db"))):
        floor_s = min(floor(path, floor_db) for _ in range(2))
        spool_s, apply_s, upload = ingest(path, emu_db)
        ratio = apply_s / floor_s
        worst = max(worst, ratio)
        print(f"[{label}] floor (csv + executemany, one transaction): {args.rows / floor_s:>10,.0f} rows/s "
              f"({floor_s:.2f} s)")
        print(f"[{label}] emulator ingest (validate + merge):        {args.rows / apply_s:>10,.0f} rows/s "
              f"({apply_s:.2f} s; spooling the object took {spool_s:.2f} s more)")
        print(f"[{label}] ratio ingest/floor: {ratio:.2f}x (target <= 2x) "
              f"{'OK' if ratio <= 2 else 'ABOVE TARGET'}; rows stored {upload['rows_stored']:,}")
    status = 0
    if not args.skip_rss:
        big_rows = int(args.rows * args.rss_mb * 1e6 / path.stat().st_size)
        big = generate(work / f"rows-{big_rows}.csv", big_rows, seed=2)
        print(f"RSS test file: {big} ({big.stat().st_size / 1e6:.0f} MB, {big_rows:,} rows); ingesting in a fresh "
              "process...", flush=True)
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(big)], capture_output=True, text=True, check=False)
        if out.returncode:
            print(out.stdout, out.stderr)
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        growth = (r["peak"] - r["baseline"]) / 2**20
        print(f"peak RSS growth while ingesting {r['bytes'] / 1e6:.0f} MB: {growth:.1f} MB (target < 64 MB) "
              f"{'OK' if growth < 64 else 'ABOVE TARGET'}; {r['rows'] / r['seconds']:,.0f} rows/s, {r['status']}")
    return status


if __name__ == "__main__":
    sys.exit(main())
