"""Emulator configuration: one dataclass, filled from defaults, environment variables and CLI options."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

ENV_PREFIX = "DCP_EMULATOR_"


@dataclass
class Config:
    """Everything that shapes one emulator instance; every field can be set by DCP_EMULATOR_<NAME>."""

    host: str = "127.0.0.1"
    port: int = 8080
    db: str | None = None  # SQLite file; None keeps state in memory
    seed: list[str] = field(default_factory=list)  # seed files applied at start-up and on reset
    max_services_per_account: int = 1
    max_body_bytes: int = 1024 * 1024  # JSON API request bodies
    max_object_bytes: int = 10 * 1000**3  # S3 objects (the vendor's 10 GB limit)
    journal_size: int = 1000  # request journal entries kept (oldest dropped)
    upload_error_limit: int = 100  # row errors kept per upload (the total is always counted)
    upload_history_size: int = 1000  # finished uploads kept in the Upload History (oldest dropped)
    snapshot_memory_bytes: int = 256 * 1024 * 1024  # named snapshots held in memory; the rest go to temp files
    ingest_batch_rows: int = 2000  # rows applied per transaction by the bulk ingest
    log_requests: bool = True
    oauth_strict_redirects: bool = False  # refuse http://localhost redirect URIs for the code grant, as the vendor does
    threads: int = 32  # requests handled at once (a long uploads/wait or an injected latency holds one)
    idle_timeout: int = 60  # seconds before an idle or stalled connection is closed
    # Check every response against the OpenAPI document (contract.py; needs jsonschema). Its default is
    # read from the environment even by Config(...), so one variable switches it on for a whole test session:
    # the apps tests build themselves, the pytest plugin's server and `serve` subprocesses alike.
    validate_responses: bool = field(default_factory=lambda: _env_flag("VALIDATE_RESPONSES"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Config:
        """A Config from DCP_EMULATOR_* variables, then explicit overrides (None means 'not given')."""
        environ = os.environ if environ is None else environ
        cfg = cls()
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                setattr(cfg, f.name, _parse(f.name, raw, getattr(cfg, f.name)))
        for name, value in overrides.items():
            if value is not None:
                setattr(cfg, name, value)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ValueError naming the option when a number is out of its range (0 rows per batch, ...)."""
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= (high or value):
                upper = f" and {high}" if high else ""
                bound = f"between {low}{upper}" if high else f"at least {low}"
                raise ValueError(f"{name.replace('_', '-')} ({ENV_PREFIX}{name.upper()}) must be an integer "
                                 f"{bound}, got {value!r}")


# Inclusive bounds of the numeric settings (None: no upper bound). A batch of 0 rows would mark an
# upload succeeded with nothing applied; a port above 65535 would be wrapped by the OS.
_RANGES: dict[str, tuple[int, int | None]] = {
    "port": (0, 65535),
    "max_services_per_account": (1, None),
    "max_body_bytes": (1, None),
    "max_object_bytes": (1, None),
    "journal_size": (0, None),
    "upload_error_limit": (0, None),
    "upload_history_size": (1, None),
    "snapshot_memory_bytes": (0, None),
    "ingest_batch_rows": (1, None),
    "threads": (1, 1000),
    "idle_timeout": (1, None),
}


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _env_flag(name: str) -> bool:
    """A boolean DCP_EMULATOR_<NAME> variable (unset or empty: False)."""
    raw = os.environ.get(ENV_PREFIX + name)
    return bool(raw) and _parse(name.lower(), raw, False)


def _parse(name: str, raw: str, default):
    if isinstance(default, bool):
        # A typo must not silently mean "off": refused like a bad integer.
        value = raw.strip().lower()
        if value in _TRUE or value in _FALSE:
            return value in _TRUE
        raise ValueError(f"{ENV_PREFIX}{name.upper()} must be a boolean (1/true/yes/on or 0/false/no/off), "
                         f"got {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}{name.upper()} must be an integer, got {raw!r}") from None
    if isinstance(default, list):
        # Several seed files: separated by the OS path separator or commas.
        return [p for p in raw.replace(os.pathsep, ",").split(",") if p.strip()]
    return raw
