"""Every row of the datatype conformance table, through the JSON profile API.

Each valid value is written both as a JSON string (what CSV cells are) and, where JSON has a native
type for it, as that native value; the read-back must be typed. Each invalid value must be a 400
naming the attribute, with nothing stored.
"""

from __future__ import annotations

import itertools

import pytest
from dcp_api import create_attribute, create_service, create_table, error, ok, profile_url

from dcp_emulator import create_app, datatypes
from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import Config

H = {"Token": DEFAULT_TOKENS["classic"]}
JSON = {**H, "Content-Type": "application/json"}

# attribute name -> (datatype, format)
ATTRS = {
    "b": ("bool", None),
    "l": ("long", None),
    "d": ("double", None),
    "day": ("datetime", "yyyy-mm-dd"),
    "ts": ("datetime", "yyyy-mm-ddThh:mm:ssZ"),
    "ep": ("datetime", "epoch"),
    "s": ("string", None),
}

# (attribute, value as written, value read back): the "valid" column of the vendor's datatype table, as JSON strings
# and as native JSON values.
VALID = [
    ("b", "false", False), ("b", "True", True), ("b", "TRUE", True), ("b", "tRuE", True),
    ("b", True, True), ("b", False, False),
    ("l", "1", 1), ("l", "-2", -2), ("l", "9223372036854775807", 9223372036854775807),
    ("l", "-9223372036854775807", -9223372036854775807),
    ("l", 1, 1), ("l", -2, -2), ("l", 9223372036854775807, 9223372036854775807),
    ("l", -9223372036854775807, -9223372036854775807),
    ("d", "1", 1), ("d", "-2.3", -2.3), ("d", 1, 1), ("d", -2.3, -2.3), ("d", 0.5, 0.5), ("d", "1e3", 1000.0),
    ("day", "2022-05-02", "2022-05-02"), ("day", "1999-01-02", "1999-01-02"), ("day", "2024-02-29", "2024-02-29"),
    ("ts", "2022-05-02T10:10:59Z", "2022-05-02T10:10:59Z"), ("ts", "1999-01-01T00:00:00", "1999-01-01T00:00:00"),
    ("ep", "0", 0), ("ep", "1651676123", 1651676123), ("ep", 0, 0), ("ep", 1651676123, 1651676123),
    ("ep", "1651676123000", 1651676123000),  # the older reference counts milliseconds: same validation
    ("s", "anything", "anything"), ("s", "", ""), ("s", "1", "1"), ("s", "Height: 6'1\"", "Height: 6'1\""),
    ("s", "ünïcödé 😀", "ünïcödé 😀"), ("s", "x" * 10000, "x" * 10000),
]

# (attribute, value as written): the "invalid" column of the vendor's datatype table, plus native JSON values of the wrong kind.
INVALID = [
    ("b", "0"), ("b", "1"), ("b", "y"), ("b", "n"), ("b", 0), ("b", 1), ("b", ""), ("b", "truee"),
    ("l", "foo"), ("l", "9223372036854775810"), ("l", 9223372036854775810), ("l", "-9223372036854775808"),
    ("l", -9223372036854775808), ("l", 1.5), ("l", "1.0"), ("l", True), ("l", ""), ("l", "1" * 5000),
    ("d", "foo"), ("d", "2,3"), ("d", True), ("d", ""), ("d", "1e999"), ("d", "NaN"), ("d", "Infinity"),
    ("d", [1]),
    ("day", "2022-13-01"), ("day", "2022/05/02"), ("day", "2022-02-30"), ("day", "2022-05-02T10:10:59Z"),
    ("day", 20220502),
    ("ts", "2022-05-02"), ("ts", "2022/05/02T10:10:59Z"), ("ts", "2022-05-02 10:10:59"),
    ("ts", "2022-05-02t10:10:59z"), ("ts", "2022-05-02T55:10:59Z"), ("ts", 1651676123),
    ("ep", "2022-05-02"), ("ep", "2022-05-02T10:10:59Z"), ("ep", "-1651676123"), ("ep", -1651676123), ("ep", 1.5),
    ("ep", "9223372036854775808"),
    ("s", 1), ("s", True), ("s", {"a": 1}), ("s", ["a"]),
]

_ids = itertools.count()


@pytest.fixture(scope="module")
def world():
    """One emulator with a table that has one attribute per datatype/format (shared by this module)."""
    app = create_app(Config())
    client = app.test_client()
    service = create_service(client, H)
    table = create_table(client, H, service["id"])
    for name, (datatype, fmt) in ATTRS.items():
        create_attribute(client, H, table["id"], name, datatype, fmt)
    yield client, service["id"], table["id"]
    app.extensions["dcp_emulator"].close()


def _fresh_url(world) -> str:
    _, service_id, table_id = world
    return profile_url(service_id, table_id, f"customer-{next(_ids)}")


@pytest.mark.parametrize(("attr", "written", "read_back"), VALID, ids=lambda v: repr(v)[:40])
def test_valid_value_is_stored_typed(world, attr, written, read_back):
    client = world[0]
    url = _fresh_url(world)
    out = ok(client.post(url, json={"data": {attr: written}}, headers=H), 201)
    assert out["data"] == {attr: read_back}
    stored = ok(client.get(url, headers=H), 200)["data"][attr]
    assert stored == read_back and type(stored) is type(read_back)


@pytest.mark.parametrize(("attr", "written"), INVALID, ids=lambda v: repr(v)[:40])
def test_invalid_value_is_refused_naming_the_attribute(world, attr, written):
    client = world[0]
    url = _fresh_url(world)
    err = error(client.post(url, json={"data": {attr: written}}, headers=H), 400, "invalid_field", field=attr)
    datatype, fmt = ATTRS[attr]
    assert datatype in err["message"] and (fmt is None or fmt in err["message"])
    error(client.get(url, headers=H), 404)  # nothing was written


@pytest.mark.parametrize("raw", ["NaN", "-NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 500])
def test_json_numbers_beyond_json_are_refused(world, raw):
    client = world[0]
    url = _fresh_url(world)
    err = error(client.post(url, data=f'{{"data": {{"d": {raw}}}}}', headers=JSON), 400, "invalid_json")
    assert "valid JSON" in err["message"]
    error(client.get(url, headers=H), 404)


def test_huge_json_integer_for_a_double_is_stored_as_a_double(world):
    client = world[0]
    url = _fresh_url(world)
    out = ok(client.post(url, data='{"data": {"d": 1%s}}' % ("0" * 300), headers=JSON), 201)
    assert out["data"]["d"] == 1e300


def test_null_clears_a_value_of_any_type(world):
    client = world[0]
    url = _fresh_url(world)
    everything = {"b": True, "l": 5, "d": 1.5, "day": "2022-05-02", "ts": "2022-05-02T10:10:59Z", "ep": 7, "s": "x"}
    ok(client.post(url, json={"data": everything}, headers=H), 201)
    out = ok(client.post(url, json={"data": {k: None for k in everything if k != "s"}}, headers=H), 201)
    assert out["data"] == {"s": "x"}


# ---------------------------------------------------------------- the validator itself
def test_converter_covers_every_documented_combination():
    for datatype in datatypes.DATATYPES:
        formats = datatypes.DATETIME_FORMATS if datatype == "datetime" else (None,)
        for fmt in formats:
            assert callable(datatypes.converter(datatype, fmt))
            assert datatypes.check_definition(datatype, fmt) is None
    with pytest.raises(ValueError):
        datatypes.converter("datetime", None)


@pytest.mark.parametrize(("datatype", "fmt", "problem"), [
    ("integer", None, "datatype must be one of"),
    ("datetime", None, "needs format"),
    ("datetime", "dd/mm/yyyy", "needs format"),
    ("long", "epoch", "format must be null"),
    (None, None, "datatype must be one of"),
])
def test_check_definition_explains_bad_pairs(datatype, fmt, problem):
    assert problem in datatypes.check_definition(datatype, fmt)


def test_convert_passes_null_through():
    assert datatypes.convert("long", None, None) is None


@pytest.mark.parametrize("text", ["0" * 5000 + "12", "-" + "0" * 5000 + "12", "1" * 5000])
def test_long_strings_of_digits_never_escape_as_plain_value_errors(text):
    """Python refuses int() of 4300+ digits with a ValueError; the validator must answer InvalidValue."""
    for datatype, fmt in (("long", None), ("datetime", "epoch"), ("double", None)):
        try:
            datatypes.convert(datatype, fmt, text)
        except datatypes.InvalidValue:
            pass
