"""The emulator's clock: real UTC time shifted by an offset that tests can move.

Each emulator owns one ``Clock`` (its store holds it), so two emulators in one process never share
a moved clock. Everything time-dependent reads it: token and code expiry, presigned-URL expiry,
``created``/``last_modified`` and upload timestamps. Moving it shifts the clock, which then keeps
running from there (a frozen clock would give every entity created after the move the same
timestamp, and ordering by time would break).
"""

from __future__ import annotations

import datetime as _dt
import re
import threading

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # the API's timestamps: UTC, microseconds, 'Z'
EARLIEST = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
LATEST = _dt.datetime(9000, 1, 1, tzinfo=_dt.UTC)
_TIMESTAMP_RE = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})\Z")


def format_timestamp(moment: _dt.datetime) -> str:
    """A datetime in the API's timestamp format (``2015-08-18T21:38:55.927670Z``)."""
    return moment.astimezone(_dt.UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> _dt.datetime:
    """An ISO-8601 UTC timestamp (``...Z`` or an explicit offset, 0-6 fractional digits); ValueError otherwise."""
    match = _TIMESTAMP_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"not a timestamp like 2015-08-18T21:38:55.927670Z: {text!r}")
    base, fraction, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    return _dt.datetime.fromisoformat(f"{base}.{(fraction or '0').ljust(6, '0')}{zone}").astimezone(_dt.UTC)


class Clock:
    """Real time plus an offset; ``advance``/``set`` move it, ``reset`` returns to real time."""

    def __init__(self) -> None:
        self._offset = _dt.timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> _dt.datetime:
        """The emulator's current time (timezone-aware UTC)."""
        return _dt.datetime.now(_dt.UTC) + self._offset

    def timestamp(self, after_seconds: float = 0) -> str:
        """The current time (plus ``after_seconds``) in the API's timestamp format."""
        return format_timestamp(self.now() + _dt.timedelta(seconds=after_seconds))

    def is_past(self, timestamp: str) -> bool:
        """True when the timestamp is at or before the emulator's current time."""
        return parse_timestamp(timestamp) <= self.now()

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, with a negative number) by ``seconds``; ValueError past the range."""
        with self._lock:
            try:
                offset = self._offset + _dt.timedelta(seconds=seconds)
            except OverflowError:
                offset = None
            self._offset = self._checked(offset)

    def set(self, moment: _dt.datetime) -> None:
        """Make the current time ``moment``; the clock keeps running from there. ValueError past the range."""
        with self._lock:
            self._offset = self._checked(moment - _dt.datetime.now(_dt.UTC))

    @staticmethod
    def _checked(offset: _dt.timedelta | None) -> _dt.timedelta:
        # Years 1970 to 9000: timestamps keep four digits and adding a token lifetime cannot overflow.
        moment = None
        if offset is not None:
            try:
                moment = _dt.datetime.now(_dt.UTC) + offset
            except OverflowError:
                pass
        if moment is None or not EARLIEST <= moment <= LATEST:
            raise ValueError(f"the clock must stay between {format_timestamp(EARLIEST)} and "
                             f"{format_timestamp(LATEST)}")
        return offset

    def reset(self) -> None:
        """Back to real time."""
        with self._lock:
            self._offset = _dt.timedelta(0)

    def state(self) -> dict:
        """What GET /_emulator/clock answers: the time, the offset from real time, whether it is real."""
        offset = self._offset
        return {"now": self.timestamp(), "offset_seconds": offset.total_seconds(), "real_time": not offset}
