"""Run every benchmark of the project and print its figures (``make bench``)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
BENCHES = ["ingest.py", "receive.py", "fixture.py", "soak.py", "ui.py", "api.py"]  # each prints its own figures


def main() -> int:
    """Run each benchmark script in its own process (so RSS figures are not polluted)."""
    status = 0
    for name in BENCHES:
        path = HERE / name
        if not path.exists():
            print(f"[{name}] not present, skipped")
            continue
        print(f"=== {name} ===", flush=True)
        status |= subprocess.call([sys.executable, str(path)])
    return status


if __name__ == "__main__":
    sys.exit(main())
