"""Temporary files of this process, named so that those a killed process left behind can be told apart.

Snapshot copies of a --db database and the spool directory of an in-memory emulator live in the
system's temporary directory. A process killed with SIGKILL cannot remove them, so each name carries
the owner's pid and a token drawn once per process: at start-up, an emulator removes the ones whose
owner is gone (``remove_leftovers``), and never touches anything it cannot prove is an orphan.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile

_TOKEN = secrets.token_hex(4)  # tells this process from an earlier one that had the same pid


def _pid_namespace() -> int:
    """An id of this process's PID namespace: a pid means something only inside its own namespace (a process
    started with `unshare --pid`, or in a container sharing /tmp, sees other pids as absent)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


_NAMESPACE = _pid_namespace()
_OWNED_RE = re.compile(r"dcp-emulator-(?:snapshot|uploads)-([0-9]+)-([0-9]+)-([0-9a-f]{8})-")


def owned_prefix(kind: str) -> str:
    """The name prefix of a temporary file or directory of ``kind`` ("snapshot", "uploads") of this process."""
    return f"dcp-emulator-{kind}-{_NAMESPACE}-{os.getpid()}-{_TOKEN}-"


def _orphaned(namespace: int, pid: int, token: str) -> bool:
    if namespace != _NAMESPACE:
        return False  # another PID namespace's pid cannot be checked from here
    if pid == os.getpid():
        return token != _TOKEN  # our pid, another token: a previous process (e.g. PID 1 of a restarted container)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: the process exists (another user's)
        return False
    return False


def remove_leftovers(directory: str | None = None) -> list[str]:
    """Remove snapshot files and spool directories left in the temporary directory by emulator processes
    that no longer run; returns the names removed."""
    directory = directory or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = _OWNED_RE.match(name)
        if not m or not _orphaned(int(m[1]), int(m[2]), m[3]):
            continue
        path = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(name)
    return removed
