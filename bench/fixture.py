"""The pytest fixture's cost (``make bench``): session start-up and per-test reset, measured the way
the fixture does them (a real served emulator, resets over HTTP through ``DcpEmulator.use_seed``).

Targets: start-up < 1 s; reset < 10 ms with the example seed and < 100 ms with 10,000 profiles.
"""

from __future__ import annotations

import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXAMPLE = ROOT / "fixtures" / "example.yaml"
RUNS = 50


def p95(samples: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(samples)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def verdict(value: float, target: float) -> str:
    """'ok' or 'MISSED' against a target (lower is better)."""
    return "ok" if value < target else "MISSED"


def big_seed(path: pathlib.Path, profiles: int) -> None:
    """A seed with one table of ``profiles`` profiles (four attributes of different datatypes)."""
    lines = ["dcp_services:", "- id: 600", "  name: Big", "  datasources:", "  - id: 601", "    name: CRM",
             "    keyfield_locator_type: uid", "    attributes:", "    - {name: name, datatype: string}",
             "    - {name: ltv, datatype: double}", "    - {name: vip, datatype: bool}",
             "    - {name: since, datatype: datetime, format: yyyy-mm-dd}", "    profiles:"]
    lines += [f"      c-{i}: {{name: Customer {i}, ltv: {i * 1.5}, vip: {'true' if i % 3 else 'false'}, "
              f"since: '2021-0{1 + i % 9}-1{i % 10}'}}" for i in range(profiles)]
    path.write_text("\n".join(lines) + "\n")


def time_resets(emu, seed, runs: int = RUNS) -> list[float]:
    """Milliseconds of each per-test preparation (what the fixture does before every test)."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        emu.use_seed(seed)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> int:
    """Measure and print; exit status 0 (figures are reported, not enforced)."""
    started = time.perf_counter()
    from dcp_emulator.config import Config
    from dcp_emulator.pytest_plugin import DcpEmulator
    from dcp_emulator.server import EmulatorServer

    server = EmulatorServer(Config(host="127.0.0.1", port=0, log_requests=False)).start()
    emu = DcpEmulator(server.url)
    cold = time.perf_counter() - started
    warm = []
    for _ in range(5):
        t0 = time.perf_counter()
        other = EmulatorServer(Config(host="127.0.0.1", port=0, log_requests=False)).start()
        DcpEmulator(other.url)
        warm.append(time.perf_counter() - t0)
        other.shutdown()
    print(f"session start-up (imports + server + first request): {cold * 1000:7.1f} ms cold, "
          f"{statistics.median(warm) * 1000:.1f} ms warm   target < 1000 ms  [{verdict(cold, 1.0)}]")

    rows = [("default state (no seed)", None, None), ("example seed", EXAMPLE, 10.0)]
    with tempfile.TemporaryDirectory() as tmp:
        big = pathlib.Path(tmp) / "big.yaml"
        big_seed(big, 10_000)
        rows.append(("10,000 profiles", big, 100.0))
        for label, seed, target in rows:
            t0 = time.perf_counter()
            emu.use_seed(seed)  # first use: reset + parse/apply the seed + save a snapshot
            first = (time.perf_counter() - t0) * 1000
            samples = time_resets(emu, seed)
            med, high = statistics.median(samples), p95(samples)
            goal = f"target < {target:.0f} ms  [{verdict(med, target)}]" if target else ""
            print(f"per-test reset, {label:24s} median {med:6.2f} ms  p95 {high:6.2f} ms  "
                  f"(first use {first:7.1f} ms)  {goal}")
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
