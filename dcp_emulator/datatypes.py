"""The one datatype validator, shared by the JSON profile API and the CSV/TSV ingest.

``converter(datatype, format)`` returns a function that turns a written value (a CSV cell, or a
JSON value) into the typed value we store, or raises ``InvalidValue`` with a reason an integrator
can act on. Converters are built once per column so the bulk ingest pays no lookup per cell.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Callable
from typing import Any

DATATYPES = ("string", "bool", "long", "double", "datetime")
DATETIME_FORMATS = ("yyyy-mm-dd", "yyyy-mm-ddThh:mm:ssZ", "epoch")
LONG_MAX = 2**63 - 1  # the documented range is symmetric: ±(2^63−1)

_INT_RE = re.compile(r"-?[0-9]+\Z")
_EPOCH_RE = re.compile(r"[0-9]+\Z")
_DOUBLE_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})\Z")
# 'T' is mandatory and upper-case; the trailing 'Z' is optional (the seed's own table accepts
# 1999-01-01T00:00:00) but must be upper-case when present.
_DATETIME_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z?\Z")

Converter = Callable[[Any], Any]


class InvalidValue(ValueError):
    """A value does not satisfy its attribute's datatype/format; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _to_string(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise InvalidValue(f"expected a string for a string attribute, got {json_kind(v)}")


def _to_bool(v: Any) -> bool:
    if _is_bool(v):
        return v
    if isinstance(v, str):
        low = v.lower()
        if low == "true":
            return True
        if low == "false":
            return False
    raise InvalidValue(f"expected a bool: true or false (any letter case), got {_show(v)}")


def _whole(text: str) -> int:
    """The integer of a string of digits (optional '-'); anything past 19 digits is just 'too big'.

    Python refuses int() of 4300+ digits with a ValueError, and such values are out of range anyway.
    """
    negative = text.startswith("-")
    digits = text.lstrip("-").lstrip("0") or "0"
    if len(digits) > 19:
        return -(10**19) if negative else 10**19
    return -int(digits) if negative else int(digits)


def _to_long(v: Any) -> int:
    if isinstance(v, int) and not _is_bool(v):
        n = v
    elif isinstance(v, str) and _INT_RE.match(v):
        n = _whole(v)
    else:
        raise InvalidValue(f"expected a long: a whole number such as 42 or -7, got {_show(v)}")
    if -LONG_MAX <= n <= LONG_MAX:
        return n
    raise InvalidValue(f"long out of range: must be between -{LONG_MAX} and {LONG_MAX}, got {_show(v)}")


def _to_double(v: Any) -> float | int:
    if isinstance(v, (int, float)) and not _is_bool(v):
        try:
            f = float(v)
        except OverflowError:  # a JSON integer with hundreds of digits
            raise InvalidValue(f"double out of range (larger than about 1.8e308): {str(v)[:20]}...") from None
        if not math.isfinite(f):
            raise InvalidValue(f"expected a finite double, got {_show(v)}")
        # A double holds about 17 significant digits: huge integers are stored as what a double keeps.
        return v if isinstance(v, float) or -LONG_MAX <= v <= LONG_MAX else f
    if isinstance(v, str) and _DOUBLE_RE.match(v):
        f = float(v)
        if math.isinf(f):
            raise InvalidValue(f"double out of range (larger than about 1.8e308): {_show(v)}")
        # Keep integral values integral ("1" stays 1), as the JSON API returns them; the length
        # check keeps int() away from Python's limit on digits (a ValueError for 4300+ digits).
        if len(v) <= 20 and _INT_RE.match(v) and -LONG_MAX <= int(v) <= LONG_MAX:
            return int(v)
        return f
    raise InvalidValue(
        f"expected a double: a number with '.' as decimal separator such as -2.3, got {_show(v)}"
    )


def _to_date(v: Any) -> str:
    m = _DATE_RE.match(v) if isinstance(v, str) else None
    if not m:
        raise InvalidValue(f"expected a date formatted yyyy-mm-dd such as 2022-05-02, got {_show(v)}")
    try:
        _dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError as e:
        raise InvalidValue(f"not a real calendar date ({e}): {v}") from None
    return v


def _to_datetime(v: Any) -> str:
    m = _DATETIME_RE.match(v) if isinstance(v, str) else None
    if not m:
        raise InvalidValue(
            "expected a datetime formatted yyyy-mm-ddThh:mm:ssZ such as 2022-05-02T10:10:59Z "
            f"('T' and 'Z' upper-case), got {_show(v)}"
        )
    try:
        _dt.datetime(*(int(g) for g in m.groups()))
    except ValueError as e:
        raise InvalidValue(f"not a real date and time ({e}): {v}") from None
    return v


def _to_epoch(v: Any) -> int:
    if isinstance(v, int) and not _is_bool(v):
        n = v
    elif isinstance(v, str) and _EPOCH_RE.match(v):
        n = _whole(v)
    else:
        raise InvalidValue(
            f"expected an epoch timestamp: a non-negative whole number of seconds, got {_show(v)}"
        )
    if n < 0:
        raise InvalidValue(f"epoch timestamps cannot be negative, got {v}")
    if n > LONG_MAX:
        raise InvalidValue(f"epoch timestamp out of range, got {_show(v)}")
    return n


_CONVERTERS: dict[tuple[str, str | None], Converter] = {
    ("string", None): _to_string,
    ("bool", None): _to_bool,
    ("long", None): _to_long,
    ("double", None): _to_double,
    ("datetime", "yyyy-mm-dd"): _to_date,
    ("datetime", "yyyy-mm-ddThh:mm:ssZ"): _to_datetime,
    ("datetime", "epoch"): _to_epoch,
}


def converter(datatype: str, fmt: str | None) -> Converter:
    """The function that validates and types one value of an attribute with this datatype/format."""
    try:
        return _CONVERTERS[(datatype, fmt)]
    except KeyError:
        raise ValueError(f"unknown datatype/format combination: {datatype!r}/{fmt!r}") from None


def convert(datatype: str, fmt: str | None, value: Any) -> Any:
    """Validate and type one value; ``None`` (clear the value) passes through."""
    if value is None:
        return None
    return converter(datatype, fmt)(value)


def check_definition(datatype: Any, fmt: Any) -> str | None:
    """Why a (datatype, format) pair cannot define an attribute, or None when it can."""
    if datatype not in DATATYPES:
        return f"datatype must be one of {', '.join(DATATYPES)}"
    if datatype == "datetime":
        if fmt not in DATETIME_FORMATS:
            return f"a datetime attribute needs format, one of {', '.join(DATETIME_FORMATS)}"
    elif fmt is not None:
        return f"format must be null for datatype {datatype} (only datetime attributes have a format)"
    return None


def json_kind(v: Any) -> str:
    """How a JSON value is named in error messages: "a number", "an array", "null", ..."""
    if v is None:
        return "null"
    if _is_bool(v):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, (list, tuple)):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, str):
        return "a string"
    return type(v).__name__


def _show(v: Any) -> str:
    if isinstance(v, str):
        return repr(v) if len(v) <= 60 else repr(v[:57] + "...")
    return json_kind(v) if isinstance(v, (list, tuple, dict, bool)) or v is None else repr(v)
