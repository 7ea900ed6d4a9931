"""Profile API throughput and latency (``make bench``): the emulator next to a bare Flask app doing the same SQL.

Both apps are served one after the other, in the same run, by the project's own server class
(``dcp_emulator.server.EmulatorServer``, whatever WSGI server it wraps), on loopback, and driven by a
load client in a separate process (its own interpreter and GIL) over keep-alive connections when the
server allows them. The bare app answers the same routes with the same statements on the same
database connection (the statement counts are printed side by side), with nothing else: no journal,
fault rules, request ids, validation or error envelope. The ratio (emulator req/s / bare req/s) is
the figure that matters on a shared machine; absolute numbers move with the machine's load.

Targets: profile POST and GET >= 0.7x the bare app; consolidated view of 20 tables p99 < 10 ms.

    python bench/api.py [--requests N] [--rounds R] [--connections C]
"""

from __future__ import annotations

import argparse
import http.client
import json
import pathlib
import statistics
import subprocess
import sys
import threading
import time
import types
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TOKEN = "emulator-classic-token"
VIEW_SIZES = (1, 5, 20)
RATIO_TARGET = 0.7
VIEW_P99_TARGET_MS = 10.0


# ---------------------------------------------------------------------- load client (child process)
def drive(url: str, method: str, path: str, body: bytes | None, requests: int, connections: int,
          expect: int) -> dict:
    """Send ``requests`` requests over ``connections`` connections; the wall time and each latency (s)."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Token": TOKEN, "Content-Type": "application/json"} if body else {"Token": TOKEN}
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        mine = []
        for _ in range(n):
            t0 = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            mine.append(time.perf_counter() - t0)
            if resp.status != expect and len(errors) < 3:
                errors.append(f"{resp.status} {data[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)

    per = [requests // connections + (1 if i < requests % connections else 0) for i in range(connections)]
    threads = [threading.Thread(target=worker, args=(n,)) for n in per]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"elapsed": time.perf_counter() - started, "latencies": latencies, "errors": errors}


def drive_both(urls: dict[str, str], spec: dict) -> dict[str, list[dict]]:
    """Alternate bursts on each app (``rounds`` each, who goes first alternating), so that a change in the
    machine's load hits both apps alike; each app's runs, in order."""
    runs: dict[str, list[dict]] = {name: [] for name in urls}
    body = spec["body"].encode() if spec["body"] else None
    names = list(urls)
    for i in range(spec["rounds"]):
        for name in names if i % 2 == 0 else names[::-1]:
            runs[name].append(drive(urls[name], spec["method"], spec["path"], body, spec["requests"],
                                    spec["connections"], spec["expect"]))
    return runs


def run_client(urls: dict[str, str], scenario: dict, requests: int, rounds: int, connections: int) -> dict:
    """One scenario's alternating runs on every app, the client in its own process."""
    spec = json.dumps({"urls": urls, **scenario, "requests": requests, "rounds": rounds, "connections": connections})
    done = subprocess.run([sys.executable, __file__, "--drive", spec], capture_output=True, text=True, check=True)
    out = json.loads(done.stdout)
    for name, results in out.items():
        errors = [e for r in results for e in r["errors"]]
        if errors:
            raise SystemExit(f"{scenario['label']} on the {name} app: unexpected answers {errors[:3]}")
    return out


# ---------------------------------------------------------------------- the two apps
def build_emulator() -> tuple[object, dict]:
    """The emulator with one service, 20 tables of 3 attributes, a profile in each and users aliased
    in 1, 5 and 20 tables; returns the app and the ids the scenarios use."""
    from dcp_emulator import create_app
    from dcp_emulator.config import Config

    app = create_app(Config(log_requests=False))
    c = app.test_client()
    h = {"Token": TOKEN}

    def ok(resp):
        assert resp.status_code < 300, resp.get_data(as_text=True)
        return resp.get_json()

    sid = ok(c.post("/experiment/v1/dcp_services", json={"name": "Bench"}, headers=h))["id"]
    opt = ok(c.get(f"/experiment/v1/dcp_services/{sid}/dcp_datasources", headers=h))[0]["id"]
    ok(c.post(f"/experiment/v1/dcp_datasources/{opt}/dcp_datasource_attributes",
              json={"name": "visits", "datatype": "long"}, headers=h))
    tables = []
    for i in range(max(VIEW_SIZES)):
        tid = ok(c.post(f"/experiment/v1/dcp_services/{sid}/dcp_datasources",
                        json={"name": f"T{i}", "keyfield_locator_type": "uid"}, headers=h))["id"]
        for name, datatype in (("name", "string"), ("ltv", "double"), ("vip", "bool")):
            ok(c.post(f"/experiment/v1/dcp_datasources/{tid}/dcp_datasource_attributes",
                      json={"name": name, "datatype": datatype}, headers=h))
        ok(c.post(f"/api/customer_profile/{sid}/{tid}/c-1", json={"data": {"name": f"C {i}", "ltv": 1.5, "vip": True}},
                  headers=h))
        tables.append(tid)
    for n in VIEW_SIZES:
        ok(c.post(f"/api/customer_profile/{sid}/{opt}/user-{n}", json={"data": {"visits": n}}, headers=h))
        ok(c.post(f"/api/alias/{sid}/{opt}/user-{n}", json={"data": {str(t): "c-1" for t in tables[:n]}}, headers=h))
    app.extensions["dcp_emulator"].journal.clear()
    return app, {"service": sid, "optimizely": opt, "tables": tables}


def build_bare(conn, ids: dict):
    """A bare Flask app answering the same routes with the same SQL on the same connection, and nothing else."""
    from flask import Flask, abort, jsonify, request

    app = Flask("bare", static_folder=None)
    app.json.sort_keys = False
    lock = threading.RLock()
    columns = {}  # table id -> [(column, name, bool?)]: what the emulator caches as the table's layout
    for tid in [ids["optimizely"], *ids["tables"]]:
        rows = conn.execute("SELECT id, name, datatype FROM attributes WHERE dcp_datasource_id = ? AND archived = 0 "
                            "ORDER BY id", (tid,)).fetchall()
        columns[tid] = [(f"a{aid}", name, datatype == "bool") for aid, name, datatype in rows]
    by_name = {tid: {name: (col, is_bool) for col, name, is_bool in cols} for tid, cols in columns.items()}

    def data_of(tid: int, row: tuple) -> dict:
        return {name: (bool(v) if is_bool else v) for (_, name, is_bool), v in zip(columns[tid], row[1:])
                if v is not None}

    def select(tid: int) -> str:
        return ", ".join(["customer_id"] + [col for col, _, _ in columns[tid]])

    def target(sid: int, tid: int) -> None:
        row = conn.execute("SELECT s.archived AS service_archived, d.* FROM dcp_services s LEFT JOIN datasources d "
                           "ON d.id = ? AND d.dcp_service_id = s.id WHERE s.id = ? AND s.account_id = ?",
                           (tid, sid, account())).fetchone()
        if row is None or row[1] is None:
            abort(404)

    def account() -> int:
        row = conn.execute("SELECT * FROM tokens WHERE token = ?", (request.headers.get("Token"),)).fetchone()
        if row is None:
            abort(401)
        return row[2]

    def out(sid: int, tid: int, cid: str, data: dict) -> dict:
        return {"data": data, "dcpServiceId": str(sid), "datasourceId": str(tid), "customerId": cid}

    @app.get("/api/customer_profile/<int:sid>/<int:tid>/<path:cid>")
    def read_profile(sid: int, tid: int, cid: str):
        with lock:
            target(sid, tid)
            row = conn.execute(f"SELECT {select(tid)} FROM profiles_{tid} WHERE customer_id = ?", (cid,)).fetchone()
        if row is None:
            abort(404)
        return jsonify(out(sid, tid, cid, data_of(tid, row)))

    @app.post("/api/customer_profile/<int:sid>/<int:tid>/<path:cid>")
    def write_profile(sid: int, tid: int, cid: str):
        patch = request.get_json()["data"]
        cols = [by_name[tid][k][0] for k in patch]
        values = [int(v) if by_name[tid][k][1] else v for k, v in patch.items()]
        with lock:
            conn.execute("BEGIN")
            try:
                target(sid, tid)
                row = conn.execute(
                    f"INSERT INTO profiles_{tid} (customer_id, {', '.join(cols)}) VALUES (?{', ?' * len(cols)}) "
                    f"ON CONFLICT (customer_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in cols)} "
                    f"RETURNING {select(tid)}", (cid, *values)).fetchone()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return jsonify(out(sid, tid, cid, data_of(tid, row))), 201

    @app.post("/api/alias/<int:sid>/<int:tid>/<path:uid>")
    def write_alias(sid: int, tid: int, uid: str):
        data = request.get_json()["data"]
        with lock:
            conn.execute("BEGIN")
            try:
                target(sid, tid)
                known = {str(r[0]) for r in conn.execute("SELECT id, is_optimizely, archived FROM datasources "
                                                         "WHERE dcp_service_id = ?", (sid,))}
                for key, cid in data.items():
                    if key not in known:
                        abort(400)
                    conn.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?)", (sid, uid, int(key), cid))
                rows = conn.execute("SELECT datasource_id, customer_id FROM aliases WHERE dcp_service_id = ? AND "
                                    "optimizely_user_id = ? ORDER BY datasource_id", (sid, uid)).fetchall()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return jsonify({"dcpServiceId": str(sid), "datasourceId": str(tid), "customerId": uid,
                        "data": {str(t): c for t, c in rows}}), 201

    @app.get("/api/consolidatedCustomerView/<int:sid>/<path:uid>")
    def view(sid: int, uid: str):
        with lock:
            rows = conn.execute(
                "SELECT (SELECT id FROM datasources WHERE dcp_service_id = s.id AND is_optimizely = 1) AS opt, "
                "a.datasource_id, a.customer_id FROM dcp_services s LEFT JOIN aliases a ON a.dcp_service_id = s.id "
                "AND a.optimizely_user_id = ? WHERE s.id = ? AND s.account_id = ? ORDER BY a.datasource_id",
                (uid, sid, account())).fetchall()
            if not rows:
                abort(404)
            targets = [(rows[0][0], uid)] + [(r[1], r[2]) for r in rows if r[1] is not None]
            profiles = []
            for tid, cid in targets:
                row = conn.execute(f"SELECT {select(tid)} FROM profiles_{tid} WHERE customer_id = ?",
                                   (cid,)).fetchone()
                if row is not None:
                    profiles.append(out(sid, tid, cid, data_of(tid, row)))
        return jsonify(profiles)

    app.extensions["dcp_emulator"] = types.SimpleNamespace(close=lambda: None)  # EmulatorServer.shutdown closes it
    return app


def scenarios(ids: dict) -> list[dict]:
    """The measured requests: method, path, body, expected status."""
    sid, opt, tables = ids["service"], ids["optimizely"], ids["tables"]
    body = json.dumps({"data": {"ltv": 12.5, "vip": False}})
    out = [
        {"label": "profile POST", "method": "POST", "path": f"/api/customer_profile/{sid}/{tables[0]}/c-1",
         "body": body, "expect": 201, "ratio_target": RATIO_TARGET},
        {"label": "profile GET", "method": "GET", "path": f"/api/customer_profile/{sid}/{tables[0]}/c-1",
         "body": None, "expect": 200, "ratio_target": RATIO_TARGET},
        {"label": "alias POST", "method": "POST", "path": f"/api/alias/{sid}/{opt}/user-a",
         "body": json.dumps({"data": {str(tables[0]): "c-1"}}), "expect": 201},
    ]
    for n in VIEW_SIZES:
        out.append({"label": f"consolidated view, {n:2d} tables", "method": "GET",
                    "path": f"/api/consolidatedCustomerView/{sid}/user-{n}", "body": None, "expect": 200,
                    "p99_target": VIEW_P99_TARGET_MS if n == 20 else None})
    return out


def statements(app, conn, scenario: dict) -> int:
    """How many SQL statements one request of the scenario runs (through the test client)."""
    seen: list[str] = []
    body = scenario["body"].encode() if scenario["body"] else None
    for trace in (None, seen.append):  # the second request: caches are warm, as in the measured runs
        conn.set_trace_callback(trace)
        try:
            resp = app.test_client().open(scenario["path"], method=scenario["method"], data=body,
                                          headers={"Token": TOKEN, "Content-Type": "application/json"})
            assert resp.status_code == scenario["expect"], resp.get_data(as_text=True)
        finally:
            conn.set_trace_callback(None)
    return len(seen)


def pct(samples: list[float], q: float) -> float:
    """The q-th percentile in ms (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] * 1000


def main() -> int:
    """Measure and print; exit status 0 (figures are reported, not enforced)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per run (default 200)")
    parser.add_argument("--rounds", type=int, default=10, help="runs per app and scenario, alternating (default 10)")
    parser.add_argument("--connections", type=int, default=4, help="client connections (default 4)")
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        spec = json.loads(args.drive)
        print(json.dumps(drive_both(spec["urls"], spec)))
        return 0

    from dcp_emulator.config import Config
    from dcp_emulator.server import EmulatorServer

    emu_app, ids = build_emulator()
    conn = emu_app.extensions["dcp_emulator"].store.db.conn
    bare_app = build_bare(conn, ids)
    config = Config(host="127.0.0.1", port=0, log_requests=False)
    servers = {"emulator": EmulatorServer(config, app=emu_app).start(),
               "bare": EmulatorServer(config, app=bare_app).start()}
    inner = type(servers["emulator"].server)
    print(f"server: {EmulatorServer.__module__}.EmulatorServer ({inner.__module__}.{inner.__name__}) for both apps; "
          f"client: separate process, {args.connections} connections, {args.requests} requests per run, "
          f"{args.rounds} runs per app alternating with the other app's; p50/p99 over all runs, req/s the median "
          "run; ratio: the median of each round's emulator/bare req/s (the two runs of a round are back to back), "
          "with its range")
    print(f"{'':28s} {'statements':>10s}   {'emulator':^26s}   {'bare Flask, same SQL':^26s}   ratio (range)")
    print(f"{'':28s} {'emu/bare':>10s}   {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s}   "
          f"{'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s}   req/s")
    try:
        for sc in scenarios(ids):
            counts = f"{statements(emu_app, conn, sc)}/{statements(bare_app, conn, sc)}"
            runs = run_client({name: server.url for name, server in servers.items()}, sc, args.requests,
                              args.rounds, args.connections)
            figures = {}
            for name, results in runs.items():
                latencies = [x for r in results for x in r["latencies"]]
                rate = statistics.median(args.requests / r["elapsed"] for r in results)
                figures[name] = (rate, pct(latencies, 50), pct(latencies, 99))
            ratios = [b["elapsed"] / e["elapsed"] for e, b in zip(runs["emulator"], runs["bare"])]
            ratio = statistics.median(ratios)
            goals = []
            if sc.get("ratio_target"):
                goals.append(f"target >= {sc['ratio_target']}x [{'ok' if ratio >= sc['ratio_target'] else 'MISSED'}]")
            if sc.get("p99_target"):
                p99 = figures["emulator"][2]
                goals.append(f"p99 target < {sc['p99_target']:.0f} ms [{'ok' if p99 < sc['p99_target'] else 'MISSED'}]")
            e, b = figures["emulator"], figures["bare"]
            print(f"{sc['label']:28s} {counts:>10s}   {e[0]:8.0f} {e[1]:8.2f} {e[2]:8.2f}   "
                  f"{b[0]:8.0f} {b[1]:8.2f} {b[2]:8.2f}   {ratio:5.2f}x ({min(ratios):.2f}-{max(ratios):.2f})  "
                  f"{'  '.join(goals)}", flush=True)
    finally:
        servers["bare"].shutdown()
        servers["emulator"].shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
