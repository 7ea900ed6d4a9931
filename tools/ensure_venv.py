"""Create or update the project's virtualenv, safely when several `make` targets run at the same time.

`make serve &` and `make test` in a fresh clone (the README's two set-up commands) both need the
virtualenv. Each takes an exclusive lock on `<venv>.lock` before looking at it, so the second waits for
the first to finish instead of creating the same venv at the same time (`[Errno 17] File exists`),
then finds it ready. Standard library only: it runs before anything is installed.

    python3 tools/ensure_venv.py [--venv .venv] [--extras test]
"""

from __future__ import annotations

import argparse
import fcntl
import pathlib
import subprocess
import sys
import venv

ROOT = pathlib.Path(__file__).resolve().parent.parent


def up_to_date(stamp: pathlib.Path, extras: str) -> bool:
    """The stamp exists, is newer than pyproject.toml, and was written for these extras."""
    try:
        return (stamp.stat().st_mtime >= (ROOT / "pyproject.toml").stat().st_mtime
                and stamp.read_text().strip() == extras)
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Make sure the virtualenv exists with the package (editable) and the given extras installed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=".venv", help="where the virtualenv lives (default .venv)")
    parser.add_argument("--extras", default="test", help="comma-separated extras to install (default test)")
    args = parser.parse_args(argv)
    env_dir = pathlib.Path(args.venv)
    if not env_dir.is_absolute():
        env_dir = ROOT / env_dir
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    stamp = env_dir / ".installed"
    with open(f"{env_dir}.lock", "w") as lock:
        # The lock is released when the file is closed, also when this process is killed.
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"another install is running in {env_dir}; waiting for it ...", file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if up_to_date(stamp, args.extras):
            return 0
        print(f"installing into {env_dir} ...", file=sys.stderr, flush=True)
        python = env_dir / "bin" / "python"
        if not python.exists():  # an existing venv is updated in place, not re-created
            venv.EnvBuilder(with_pip=True).create(env_dir)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        target = f".[{args.extras}]" if args.extras else "."
        subprocess.run([*pip, "-e", target], check=True, cwd=ROOT)
        stamp.write_text(args.extras + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as e:
        sys.exit(e.returncode or 1)
