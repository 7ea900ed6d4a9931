"""Fuzz the served API from its own OpenAPI document with schemathesis (`make fuzz`, run by .ci/run).

Starts `dcp-emulator serve --seed example` on a free port, then runs schemathesis against
/_emulator/openapi.json with a fixed seed and a bounded number of cases, authenticated with the seed's
classic token. Checks: no 5xx, every status documented for its operation, the documented content type,
bodies valid against the documented schemas. The control plane's writes are left out (they would reset,
reseed, fault or freeze the emulator under the run); the vendor APIs and the control plane's reads are in.
Prints one summary line with the number of cases; exits non-zero on any failure.

    python tools/fuzz_api.py [--max-examples N] [--seed N] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tools" / "schemathesis.toml"
TOKEN = "emulator-classic-token"  # the default account's classic token (the example seed's account 1001)
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Return once /_emulator/health answers 200; raise if the server exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dcp-emulator serve exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(base + "/_emulator/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"dcp-emulator did not become healthy within {timeout:.0f} s")


def excluded_operations(doc: dict) -> list[str]:
    """operationIds of the control plane's writes: resets, seeds, faults, snapshots, clock, OAuth control, waits."""
    return sorted(op["operationId"] for path, item in doc["paths"].items() if path.startswith("/_emulator/")
                  for method, op in item.items() if method != "get")


def count_cases(report: pathlib.Path) -> tuple[int, int, int]:
    """(test cases, checks run, checks failed) from schemathesis's NDJSON event stream."""
    cases = checked = failed = 0
    for line in report.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if finished:
            recorder = finished.get("recorder") or {}
            cases += len(recorder.get("cases") or {})
            for checks in (recorder.get("checks") or {}).values():
                checked += len(checks)
                failed += sum(1 for check in checks if str(check.get("status")).lower() == "failure")
    return cases, checked, failed


def main(argv: list[str] | None = None) -> int:
    """Serve, fuzz, print the summary; the exit code is schemathesis's (0: no failure)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=60, help="cases per operation and phase (default 60)")
    parser.add_argument("--seed", type=int, default=20261201, help="schemathesis's random seed (fixed)")
    parser.add_argument("--workers", type=int, default=1,
                        help="concurrent schemathesis workers (default 1: with more, Python 3.11 may fail in "
                             "hypothesis's lambda introspection with 'AST constructor recursion depth mismatch')")
    args = parser.parse_args(argv)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DCP_EMULATOR_VALIDATE_RESPONSES", None)  # schemathesis checks the responses itself, with details
    server = subprocess.Popen([sys.executable, "-m", "dcp_emulator", "serve", "--host", "127.0.0.1",
                               "--port", str(port), "--seed", "example", "--quiet"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    try:
        wait_healthy(base, server)
        with urllib.request.urlopen(base + "/_emulator/openapi.json", timeout=10) as resp:
            doc = json.load(resp)
        excluded = excluded_operations(doc)
        with tempfile.TemporaryDirectory() as tmp:
            report = pathlib.Path(tmp) / "events.ndjson"
            command = [
                str(pathlib.Path(sys.executable).with_name("schemathesis")), "--config-file", str(CONFIG),
                "--no-color", "run", base + "/_emulator/openapi.json",
                "--checks", CHECKS, "--seed", str(args.seed), "--max-examples", str(args.max_examples),
                "--workers", str(args.workers), "--header", f"Token: {TOKEN}",
                "--phases", "examples,coverage,fuzzing", "--generation-database", "none",
                "--exclude-operation-id-regex", "^(" + "|".join(map(re.escape, excluded)) + ")$",
                "--report", "ndjson", "--report-ndjson-path", str(report), "--request-timeout", "30",
            ]
            run = subprocess.run(command, cwd=tmp, check=False)  # its cache directory goes away with tmp
            cases, checked, failed = count_cases(report) if report.exists() else (0, 0, 0)
    finally:
        server.terminate()
        try:
            _, stderr = server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
    if "Traceback" in (stderr or ""):
        print(stderr, file=sys.stderr)
    elapsed = time.monotonic() - started
    verdict = "passed" if run.returncode == 0 else f"FAILED (schemathesis exit {run.returncode})"
    operations = sum(len(item) for item in doc["paths"].values()) - len(excluded)
    print(f"fuzz: {cases} cases over {operations} operations ({len(excluded)} control-plane writes left out), "
          f"{checked} checks, {failed} failed, {elapsed:.0f} s: {verdict}")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
