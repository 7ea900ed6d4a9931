"""The management API — services, tables (datasources), attributes, projects.

Every success path, every documented refusal (with the field named), the fields of every entity in
every response, the documented status codes, and archive/unarchive semantics.
"""

from __future__ import annotations

import json

import pytest
from dcp_api import (
    ATTRIBUTE_FIELDS,
    DATASOURCE_FIELDS,
    MGMT,
    PROJECT_FIELDS,
    SERVICE_FIELDS,
    TIMESTAMP_RE,
    create_attribute,
    create_service,
    create_table,
    error,
    ok,
    optimizely_table,
    profile_url,
)

from dcp_emulator import create_app
from dcp_emulator.app import DEFAULT_ACCOUNT_ID, DEFAULT_TOKENS
from dcp_emulator.config import Config

H = {"Token": DEFAULT_TOKENS["classic"]}


@pytest.fixture
def service(client):
    """A fresh DCP service of the default account."""
    return create_service(client, H)


@pytest.fixture
def table(client, service):
    """A cookie-keyed table in the fresh service."""
    return create_table(client, H, service["id"])


def _assert_service(s: dict) -> None:
    assert set(s) == SERVICE_FIELDS
    assert s["s3_path"] == f"dcp/{s['id']}"
    assert s["account_id"] == DEFAULT_ACCOUNT_ID and isinstance(s["archived"], bool)
    assert TIMESTAMP_RE.match(s["created"]) and TIMESTAMP_RE.match(s["last_modified"])
    assert s["aws_access_key"] and s["aws_secret_key"]


def _assert_table(t: dict) -> None:
    assert set(t) == DATASOURCE_FIELDS
    assert t["s3_path"] == f"dcp/{t['dcp_service_id']}/{t['id']}"
    assert isinstance(t["attributes"], list) and all(set(a) == ATTRIBUTE_FIELDS for a in t["attributes"])
    assert TIMESTAMP_RE.match(t["created"]) and TIMESTAMP_RE.match(t["last_modified"])
    assert isinstance(t["archived"], bool) and isinstance(t["is_optimizely"], bool)


# ---------------------------------------------------------------- DCP services
def test_a_fresh_emulator_has_no_services(client):
    assert ok(client.get(f"{MGMT}/dcp_services", headers=H), 200) == []


def test_create_service_returns_every_field(client):
    s = create_service(client, H, "My service")
    _assert_service(s)
    assert s["name"] == "My service" and s["archived"] is False
    assert ok(client.get(f"{MGMT}/dcp_services", headers=H), 200) == [s]
    assert ok(client.get(f"{MGMT}/dcp_services/{s['id']}", headers=H), 200) == s


def test_create_service_provisions_the_optimizely_table(client, service):
    tables = ok(client.get(f"{MGMT}/dcp_services/{service['id']}/dcp_datasources", headers=H), 200)
    assert len(tables) == 1
    opt = tables[0]
    _assert_table(opt)
    assert (opt["name"], opt["is_optimizely"], opt["keyfield_locator_type"], opt["keyfield_locator_name"]) == \
        ("Optimizely", True, "uid", None)
    assert opt["dcp_service_id"] == service["id"] and opt["attributes"] == []


@pytest.mark.parametrize(("payload", "field"), [
    ({}, "name"), ({"name": ""}, "name"), ({"name": "   "}, "name"), ({"name": 5}, "name"),
    ({"name": None}, "name"), ({"name": ["x"]}, "name"), ({"name": "x" * 256}, "name"),
    ({"name": "x", "colour": "red"}, "colour"),
])
def test_create_service_refuses_bad_fields(client, payload, field):
    error(client.post(f"{MGMT}/dcp_services", json=payload, headers=H), 400, "invalid_field", field=field)
    assert ok(client.get(f"{MGMT}/dcp_services", headers=H), 200) == []


def test_a_read_only_field_sent_on_create_with_the_value_it_gets_anyway_is_accepted(client, service):
    table = ok(client.post(f"{MGMT}/dcp_services/{service['id']}/dcp_datasources", json={
        "name": "T", "keyfield_locator_type": "uid", "archived": False, "is_optimizely": False}, headers=H), 201)
    assert (table["archived"], table["is_optimizely"]) == (False, False)
    error(client.post(f"{MGMT}/dcp_services/{service['id']}/dcp_datasources", json={
        "name": "T", "keyfield_locator_type": "uid", "is_optimizely": True}, headers=H), 400, field="is_optimizely")


@pytest.mark.parametrize(("field", "value", "why"), [
    ("id", 5, "the emulator sets it"), ("s3_path", "x", "the emulator sets it"),
    ("archived", True, "PUT changes it once the resource exists"),
])
def test_read_only_fields_sent_on_create_are_refused_by_name(client, field, value, why):
    err = error(client.post(f"{MGMT}/dcp_services", json={"name": "S", field: value}, headers=H), 400,
                "invalid_field", field=field)
    assert err["message"] == f"{field} is read-only ({why}); leave it out of the request body."
    assert ok(client.get(f"{MGMT}/dcp_services", headers=H), 200) == []


def test_one_service_per_account_by_default(client, service):
    err = error(client.post(f"{MGMT}/dcp_services", json={"name": "Second"}, headers=H), 400, "limit_exceeded")
    assert "at most 1" in err["message"]
    assert len(ok(client.get(f"{MGMT}/dcp_services", headers=H), 200)) == 1


def test_the_service_limit_is_configurable():
    app = create_app(Config(max_services_per_account=2))
    try:
        c = app.test_client()
        create_service(c, H, "one")
        create_service(c, H, "two")
        err = error(c.post(f"{MGMT}/dcp_services", json={"name": "three"}, headers=H), 400, "limit_exceeded")
        assert "at most 2" in err["message"]
    finally:
        app.extensions["dcp_emulator"].close()


def test_an_archived_service_does_not_count_against_the_limit(client, service):
    ok(client.delete(f"{MGMT}/dcp_services/{service['id']}", headers=H), 204)
    second = create_service(client, H, "Replacement")
    # ... but unarchiving the first would make two active services
    error(client.put(f"{MGMT}/dcp_services/{service['id']}", json={"archived": False}, headers=H), 400,
          "limit_exceeded")
    assert ok(client.get(f"{MGMT}/dcp_services/{second['id']}", headers=H), 200)["archived"] is False


def test_update_service_renames(client, service):
    out = ok(client.put(f"{MGMT}/dcp_services/{service['id']}", json={"name": "Renamed"}, headers=H), 202)
    _assert_service(out)
    assert out["name"] == "Renamed" and out["created"] == service["created"]
    assert out["last_modified"] >= service["last_modified"]
    assert ok(client.get(f"{MGMT}/dcp_services/{service['id']}", headers=H), 200) == out


def test_update_service_accepts_what_get_returned(client, service):
    out = ok(client.put(f"{MGMT}/dcp_services/{service['id']}", json={**service, "name": "Back"}, headers=H), 202)
    assert out["name"] == "Back" and out["id"] == service["id"]


@pytest.mark.parametrize(("payload", "field"), [
    ({"name": ""}, "name"), ({"name": 1}, "name"), ({"archived": "no"}, "archived"), ({"owner": "x"}, "owner"),
])
def test_update_service_refuses_bad_fields(client, service, payload, field):
    error(client.put(f"{MGMT}/dcp_services/{service['id']}", json=payload, headers=H), 400, "invalid_field",
          field=field)
    assert ok(client.get(f"{MGMT}/dcp_services/{service['id']}", headers=H), 200) == service


def test_delete_service_archives_it_and_its_tables(client, service, table):
    resp = client.delete(f"{MGMT}/dcp_services/{service['id']}", headers=H)
    assert resp.status_code == 204 and resp.get_data() == b""
    got = ok(client.get(f"{MGMT}/dcp_services/{service['id']}", headers=H), 200)
    assert got["archived"] is True
    tables = ok(client.get(f"{MGMT}/dcp_services/{service['id']}/dcp_datasources", headers=H), 200)
    assert [t["archived"] for t in tables] == [True, True]
    # archived things can be read but not written
    error(client.put(f"{MGMT}/dcp_services/{service['id']}", json={"name": "x"}, headers=H), 400, "archived")
    error(client.post(f"{MGMT}/dcp_services/{service['id']}/dcp_datasources",
                      json={"name": "T", "keyfield_locator_type": "uid"}, headers=H), 400, "archived")
    error(client.put(f"{MGMT}/dcp_datasources/{table['id']}", json={"name": "x"}, headers=H), 400, "archived")
    error(client.post(f"{MGMT}/dcp_datasources/{table['id']}/dcp_datasource_attributes",
                      json={"name": "a", "datatype": "string"}, headers=H), 400, "archived")
    # deleting again is harmless
    ok(client.delete(f"{MGMT}/dcp_services/{service['id']}/", headers=H), 204)


def test_unarchive_service_restores_the_tables_archived_with_it(client, service, table):
    other = create_table(client, H, service["id"], "Other")
    ok(client.delete(f"{MGMT}/dcp_datasources/{other['id']}", headers=H), 204)  # archived on its own, earlier
    ok(client.delete(f"{MGMT}/dcp_services/{service['id']}", headers=H), 204)
    out = ok(client.put(f"{MGMT}/dcp_services/{service['id']}", json={"archived": False}, headers=H), 202)
    assert out["archived"] is False
    archived = {t["name"]: t["archived"] for t in
                ok(client.get(f"{MGMT}/dcp_services/{service['id']}/dcp_datasources", headers=H), 200)}
    assert archived == {"Optimizely": False, "CRM": False, "Other": True}
    create_attribute(client, H, table["id"], "ok_again")


def test_put_archived_true_archives_like_delete(client, service):
    out = ok(client.put(f"{MGMT}/dcp_services/{service['id']}", json={"archived": True}, headers=H), 202)
    assert out["archived"] is True


def test_archive_with_a_rename_applies_both(client, service):
    out = ok(client.put(f"{MGMT}/dcp_services/{service['id']}", json={"archived": True, "name": "Old DCP"},
                        headers=H), 202)
    assert out["archived"] is True and out["name"] == "Old DCP"


def test_unknown_service_is_404(client, service):
    for method in ("get", "put", "delete"):
        error(getattr(client, method)(f"{MGMT}/dcp_services/999999", json={"name": "x"}, headers=H), 404,
              "not_found")
    error(client.get(f"{MGMT}/dcp_services/999999/dcp_datasources", headers=H), 404)
    error(client.post(f"{MGMT}/dcp_services/999999/dcp_datasources",
                      json={"name": "T", "keyfield_locator_type": "uid"}, headers=H), 404)


# ---------------------------------------------------------------- tables (datasources)
def test_create_table_returns_every_field(client, service):
    t = create_table(client, H, service["id"], "CRM", description="From the CRM")
    _assert_table(t)
    assert (t["name"], t["description"], t["keyfield_locator_type"], t["keyfield_locator_name"]) == \
        ("CRM", "From the CRM", "cookie", "crm_id")
    assert t["is_optimizely"] is False and t["archived"] is False and t["attributes"] == []
    assert t["dcp_service_id"] == service["id"]
    assert ok(client.get(f"{MGMT}/dcp_datasources/{t['id']}", headers=H), 200) == t
    listed = ok(client.get(f"{MGMT}/dcp_services/{service['id']}/dcp_datasources/", headers=H), 200)
    assert [x["id"] for x in listed] == [optimizely_table(client, H, service["id"])["id"], t["id"]]


def test_each_table_has_its_own_aws_key_pair(client, service):
    a, b = create_table(client, H, service["id"], "A"), create_table(client, H, service["id"], "B")
    keys = {service["aws_access_key"], a["aws_access_key"], b["aws_access_key"]}
    secrets = {service["aws_secret_key"], a["aws_secret_key"], b["aws_secret_key"]}
    assert len(keys) == 3 and len(secrets) == 3


@pytest.mark.parametrize(("kind", "locator"), [
    ("cookie", "crm_id"), ("query parameter", "cid"), ("js_variable", "window_user$1"), ("uid", None),
    ("uid", "_also_fine"),
])
def test_every_keyfield_locator_type_is_accepted(client, service, kind, locator):
    payload = {"name": "T", "keyfield_locator_type": kind}
    if locator is not None:
        payload["keyfield_locator_name"] = locator
    t = ok(client.post(f"{MGMT}/dcp_services/{service['id']}/dcp_datasources", json=payload, headers=H), 201)
    assert (t["keyfield_locator_type"], t["keyfield_locator_name"]) == (kind, locator)
    assert t["description"] is None


@pytest.mark.parametrize(("payload", "field"), [
    ({"keyfield_locator_type": "uid"}, "name"),
    ({"name": "", "keyfield_locator_type": "uid"}, "name"),
    ({"name": 3, "keyfield_locator_type": "uid"}, "name"),
    ({"name": "T"}, "keyfield_locator_type"),
    ({"name": "T", "keyfield_locator_type": "header"}, "keyfield_locator_type"),
    ({"name": "T", "keyfield_locator_type": "Cookie", "keyfield_locator_name": "x"}, "keyfield_locator_type"),
    ({"name": "T", "keyfield_locator_type": "cookie"}, "keyfield_locator_name"),
    ({"name": "T", "keyfield_locator_type": "cookie", "keyfield_locator_name": "1abc"}, "keyfield_locator_name"),
    ({"name": "T", "keyfield_locator_type": "cookie", "keyfield_locator_name": "a-b"}, "keyfield_locator_name"),
    ({"name": "T", "keyfield_locator_type": "cookie", "keyfield_locator_name": "a b"}, "keyfield_locator_name"),
    ({"name": "T", "keyfield_locator_type": "cookie", "keyfield_locator_name": ""}, "keyfield_locator_name"),
    ({"name": "T", "keyfield_locator_type": "cookie", "keyfield_locator_name": 7}, "keyfield_locator_name"),
    ({"name": "T", "keyfield_locator_type": "uid", "description": 7}, "description"),
    ({"name": "T", "keyfield_locator_type": "uid", "is_public": True}, "is_public"),
])
def test_create_table_refuses_bad_fields(client, service, payload, field):
    error(client.post(f"{MGMT}/dcp_services/{service['id']}/dcp_datasources", json=payload, headers=H), 400,
          "invalid_field", field=field)
    assert len(ok(client.get(f"{MGMT}/dcp_services/{service['id']}/dcp_datasources", headers=H), 200)) == 1


def test_update_table_edits_its_editable_fields(client, table):
    out = ok(client.put(f"{MGMT}/dcp_datasources/{table['id']}", headers=H, json={
        "name": "CRM 2", "description": "new", "keyfield_locator_type": "query parameter",
        "keyfield_locator_name": "uid_param"}), 202)
    _assert_table(out)
    assert (out["name"], out["description"], out["keyfield_locator_type"], out["keyfield_locator_name"]) == \
        ("CRM 2", "new", "query parameter", "uid_param")
    out = ok(client.put(f"{MGMT}/dcp_datasources/{table['id']}/", json={"description": None}, headers=H), 202)
    assert out["description"] is None and out["name"] == "CRM 2"
    # switching to uid makes the locator name optional
    out = ok(client.put(f"{MGMT}/dcp_datasources/{table['id']}", headers=H,
                        json={"keyfield_locator_type": "uid", "keyfield_locator_name": None}), 202)
    assert (out["keyfield_locator_type"], out["keyfield_locator_name"]) == ("uid", None)
    assert out["aws_access_key"] == table["aws_access_key"] and out["s3_path"] == table["s3_path"]


def test_update_table_accepts_what_get_returned(client, table):
    out = ok(client.put(f"{MGMT}/dcp_datasources/{table['id']}", json={**table, "name": "Back"}, headers=H), 202)
    assert out["name"] == "Back"


@pytest.mark.parametrize(("payload", "field"), [
    ({"name": ""}, "name"),
    ({"keyfield_locator_type": "nope"}, "keyfield_locator_type"),
    ({"keyfield_locator_name": "9x"}, "keyfield_locator_name"),
    ({"keyfield_locator_name": None}, "keyfield_locator_name"),  # still a cookie table: the name is needed
    ({"description": ["x"]}, "description"),
    ({"is_optimizely": "x", "colour": 1}, "colour"),
])
def test_update_table_refuses_bad_fields(client, table, payload, field):
    error(client.put(f"{MGMT}/dcp_datasources/{table['id']}", json=payload, headers=H), 400, "invalid_field",
          field=field)
    assert ok(client.get(f"{MGMT}/dcp_datasources/{table['id']}", headers=H), 200) == table


def test_the_optimizely_table_cannot_be_edited_or_deleted(client, service):
    opt = optimizely_table(client, H, service["id"])
    error(client.put(f"{MGMT}/dcp_datasources/{opt['id']}", json={"name": "Mine"}, headers=H), 400, "invalid_field")
    error(client.delete(f"{MGMT}/dcp_datasources/{opt['id']}", headers=H), 400, "invalid_field")
    # a PUT of exactly what GET returned changes nothing and is fine
    ok(client.put(f"{MGMT}/dcp_datasources/{opt['id']}", json=opt, headers=H), 202)


def test_delete_table_archives_it_and_put_unarchives(client, service, table):
    create_attribute(client, H, table["id"], "tier")
    url = profile_url(service["id"], table["id"], "c1")
    ok(client.post(url, json={"data": {"tier": "gold"}}, headers=H), 201)
    resp = client.delete(f"{MGMT}/dcp_datasources/{table['id']}", headers=H)
    assert resp.status_code == 204 and resp.get_data() == b""
    assert ok(client.get(f"{MGMT}/dcp_datasources/{table['id']}", headers=H), 200)["archived"] is True
    assert ok(client.get(url, headers=H), 200)["data"] == {"tier": "gold"}  # still readable
    error(client.post(url, json={"data": {"tier": "x"}}, headers=H), 400, "archived")
    error(client.put(f"{MGMT}/dcp_datasources/{table['id']}", json={"name": "x"}, headers=H), 400, "archived")
    out = ok(client.put(f"{MGMT}/dcp_datasources/{table['id']}", json={"archived": False}, headers=H), 202)
    assert out["archived"] is False
    ok(client.post(url, json={"data": {"tier": "silver"}}, headers=H), 201)


def test_unknown_table_is_404(client, service):
    for method in ("get", "put", "delete"):
        error(getattr(client, method)(f"{MGMT}/dcp_datasources/999999", json={"name": "x"}, headers=H), 404)
    error(client.get(f"{MGMT}/dcp_datasources/999999/dcp_datasource_attributes", headers=H), 404)
    error(client.post(f"{MGMT}/dcp_datasources/999999/dcp_datasource_attributes",
                      json={"name": "a", "datatype": "string"}, headers=H), 404)


# ---------------------------------------------------------------- attributes
@pytest.mark.parametrize(("datatype", "fmt"), [
    ("string", None), ("bool", None), ("long", None), ("double", None),
    ("datetime", "yyyy-mm-dd"), ("datetime", "yyyy-mm-ddThh:mm:ssZ"), ("datetime", "epoch"),
])
def test_create_attribute_of_every_datatype(client, table, datatype, fmt):
    a = create_attribute(client, H, table["id"], "attr", datatype, fmt, description="d", is_value_public=True)
    assert set(a) == ATTRIBUTE_FIELDS
    assert (a["name"], a["datatype"], a["format"], a["description"], a["is_value_public"], a["archived"]) == \
        ("attr", datatype, fmt, "d", True, False)
    assert a["dcp_datasource_id"] == table["id"]
    assert TIMESTAMP_RE.match(a["created"]) and TIMESTAMP_RE.match(a["last_modified"])
    assert ok(client.get(f"{MGMT}/dcp_datasource_attributes/{a['id']}", headers=H), 200) == a
    assert ok(client.get(f"{MGMT}/dcp_datasources/{table['id']}/dcp_datasource_attributes", headers=H), 200) == [a]
    assert ok(client.get(f"{MGMT}/dcp_datasources/{table['id']}", headers=H), 200)["attributes"] == [a]


def test_attribute_defaults(client, table):
    a = create_attribute(client, H, table["id"], "plain")
    assert (a["format"], a["description"], a["is_value_public"]) == (None, None, False)


@pytest.mark.parametrize(("payload", "field"), [
    ({"datatype": "string"}, "name"),
    ({"name": "", "datatype": "string"}, "name"),
    ({"name": 12, "datatype": "string"}, "name"),
    ({"name": "customerId", "datatype": "string"}, "name"),
    ({"name": "a,b", "datatype": "string"}, "name"),
    ({"name": "a"}, "datatype"),
    ({"name": "a", "datatype": "int"}, "datatype"),
    ({"name": "a", "datatype": None}, "datatype"),
    ({"name": "a", "datatype": "datetime"}, "format"),
    ({"name": "a", "datatype": "datetime", "format": "dd/mm/yyyy"}, "format"),
    ({"name": "a", "datatype": "long", "format": "epoch"}, "format"),
    ({"name": "a", "datatype": "string", "is_value_public": "yes"}, "is_value_public"),
    ({"name": "a", "datatype": "string", "description": 5}, "description"),
    ({"name": "a", "datatype": "string", "unit": "cm"}, "unit"),
])
def test_create_attribute_refuses_bad_fields(client, table, payload, field):
    error(client.post(f"{MGMT}/dcp_datasources/{table['id']}/dcp_datasource_attributes", json=payload, headers=H),
          400, "invalid_field", field=field)
    assert ok(client.get(f"{MGMT}/dcp_datasources/{table['id']}/dcp_datasource_attributes", headers=H), 200) == []


def test_attribute_names_are_unique_per_table_and_case_sensitive(client, service, table):
    create_attribute(client, H, table["id"], "age", "long")
    err = error(client.post(f"{MGMT}/dcp_datasources/{table['id']}/dcp_datasource_attributes",
                            json={"name": "age", "datatype": "long"}, headers=H), 400, "invalid_field", field="name")
    assert "age" in err["message"]
    create_attribute(client, H, table["id"], "Age", "long")  # another name: names are case-sensitive
    other = create_table(client, H, service["id"], "Other")
    create_attribute(client, H, other["id"], "age", "string")  # unique per table only


def test_update_attribute_edits_description_and_visibility(client, table):
    a = create_attribute(client, H, table["id"], "tier")
    out = ok(client.put(f"{MGMT}/dcp_datasource_attributes/{a['id']}", headers=H,
                        json={"description": "Loyalty tier", "is_value_public": True}), 202)
    assert set(out) == ATTRIBUTE_FIELDS
    assert (out["description"], out["is_value_public"], out["name"]) == ("Loyalty tier", True, "tier")
    # a PUT of what GET returned (unchanged name/datatype/format) is fine
    ok(client.put(f"{MGMT}/dcp_datasource_attributes/{a['id']}/", json=out, headers=H), 202)


@pytest.mark.parametrize(("change", "field"), [
    ({"name": "level"}, "name"), ({"datatype": "long"}, "datatype"), ({"format": "epoch"}, "format"),
])
def test_changing_name_datatype_or_format_says_archive_and_recreate(client, table, change, field):
    a = create_attribute(client, H, table["id"], "tier")
    err = error(client.put(f"{MGMT}/dcp_datasource_attributes/{a['id']}", json=change, headers=H), 400,
                "invalid_field", field=field)
    assert "archive" in err["message"].lower() and "new one" in err["message"]
    assert ok(client.get(f"{MGMT}/dcp_datasource_attributes/{a['id']}", headers=H), 200) == a


def test_delete_attribute_archives_it(client, service, table):
    tier = create_attribute(client, H, table["id"], "tier")
    create_attribute(client, H, table["id"], "score", "long")
    url = profile_url(service["id"], table["id"], "c1")
    ok(client.post(url, json={"data": {"tier": "gold", "score": 3}}, headers=H), 201)
    resp = client.delete(f"{MGMT}/dcp_datasource_attributes/{tier['id']}", headers=H)
    assert resp.status_code == 204 and resp.get_data() == b""
    assert ok(client.get(f"{MGMT}/dcp_datasource_attributes/{tier['id']}", headers=H), 200)["archived"] is True
    # left out of reads, refused in writes
    assert ok(client.get(url, headers=H), 200)["data"] == {"score": 3}
    err = error(client.post(url, json={"data": {"tier": "x"}}, headers=H), 400, "invalid_field", field="tier")
    assert "archived" in err["message"]
    # unarchive: the value written before is visible again
    out = ok(client.put(f"{MGMT}/dcp_datasource_attributes/{tier['id']}", json={"archived": False}, headers=H), 202)
    assert out["archived"] is False
    assert ok(client.get(url, headers=H), 200)["data"] == {"tier": "gold", "score": 3}


def test_an_archived_attribute_cannot_be_edited_unless_unarchived_in_the_same_put(client, table):
    tier = create_attribute(client, H, table["id"], "tier")
    url = f"{MGMT}/dcp_datasource_attributes/{tier['id']}"
    archived = (ok(client.delete(url, headers=H), 204), ok(client.get(url, headers=H), 200))[1]
    for edit in ({"description": "new"}, {"is_value_public": True}):
        err = error(client.put(url, json=edit, headers=H), 400, "archived")
        assert "archived attributes can be read but not changed" in err["message"]
    assert ok(client.get(url, headers=H), 200) == archived  # nothing was written
    ok(client.put(url, json=archived, headers=H), 202)  # PUT back what GET returned is no change: fine
    out = ok(client.put(url, json={"archived": False, "description": "back"}, headers=H), 202)
    assert out["archived"] is False and out["description"] == "back"


def test_attributes_of_an_archived_table_cannot_be_archived(client, service, table):
    tier = create_attribute(client, H, table["id"], "tier")
    ok(client.delete(f"{MGMT}/dcp_services/{service['id']}", headers=H), 204)
    error(client.delete(f"{MGMT}/dcp_datasource_attributes/{tier['id']}", headers=H), 400, "archived")
    assert ok(client.get(f"{MGMT}/dcp_datasource_attributes/{tier['id']}", headers=H), 200)["archived"] is False


def test_archive_and_recreate_with_another_datatype(client, service, table):
    old = create_attribute(client, H, table["id"], "tier")
    url = profile_url(service["id"], table["id"], "c1")
    ok(client.post(url, json={"data": {"tier": "3"}}, headers=H), 201)
    ok(client.delete(f"{MGMT}/dcp_datasource_attributes/{old['id']}", headers=H), 204)
    new = create_attribute(client, H, table["id"], "tier", "long")
    assert new["id"] != old["id"]
    assert ok(client.get(url, headers=H), 200)["data"] == {}  # the old values belong to the old attribute
    assert ok(client.post(url, json={"data": {"tier": "4"}}, headers=H), 201)["data"] == {"tier": 4}
    # the old one cannot come back while the new one holds its name
    error(client.put(f"{MGMT}/dcp_datasource_attributes/{old['id']}", json={"archived": False}, headers=H), 400,
          "invalid_field", field="archived")


def test_unknown_attribute_is_404(client, table):
    for method in ("get", "put", "delete"):
        error(getattr(client, method)(f"{MGMT}/dcp_datasource_attributes/999999", json={}, headers=H), 404)


# ---------------------------------------------------------------- projects
def test_projects_create_list_get_update(client, service):
    assert ok(client.get(f"{MGMT}/projects", headers=H), 200) == []
    p = ok(client.post(f"{MGMT}/projects", json={"project_name": "Web"}, headers=H), 201)
    assert set(p) == PROJECT_FIELDS
    assert (p["project_name"], p["project_status"], p["dcp_service_id"], p["account_id"]) == \
        ("Web", "Active", None, DEFAULT_ACCOUNT_ID)
    assert TIMESTAMP_RE.match(p["created"]) and TIMESTAMP_RE.match(p["last_modified"])
    assert ok(client.get(f"{MGMT}/projects", headers=H), 200) == [p]
    assert ok(client.get(f"{MGMT}/projects/{p['id']}", headers=H), 200) == p
    out = ok(client.put(f"{MGMT}/projects/{p['id']}", json={"project_name": "Web 2", "project_status": "Archived"},
                        headers=H), 202)
    assert set(out) == PROJECT_FIELDS and (out["project_name"], out["project_status"]) == ("Web 2", "Archived")


def test_link_and_unlink_a_project_to_a_service(client, service):
    p = ok(client.post(f"{MGMT}/projects", json={"project_name": "Web"}, headers=H), 201)
    linked = ok(client.put(f"{MGMT}/projects/{p['id']}", json={"dcp_service_id": service["id"]}, headers=H), 202)
    assert linked["dcp_service_id"] == service["id"]
    assert ok(client.get(f"{MGMT}/projects/{p['id']}", headers=H), 200)["dcp_service_id"] == service["id"]
    unlinked = ok(client.put(f"{MGMT}/projects/{p['id']}/", json={"dcp_service_id": None}, headers=H), 202)
    assert unlinked["dcp_service_id"] is None
    created_linked = ok(client.post(f"{MGMT}/projects", json={"project_name": "App", "dcp_service_id": service["id"]},
                                    headers=H), 201)
    assert created_linked["dcp_service_id"] == service["id"]


@pytest.mark.parametrize(("payload", "field"), [
    ({}, "project_name"), ({"project_name": ""}, "project_name"), ({"project_name": 1}, "project_name"),
    ({"project_name": "P", "project_status": "running"}, "project_status"),
    ({"project_name": "P", "dcp_service_id": "123"}, "dcp_service_id"),
    ({"project_name": "P", "dcp_service_id": True}, "dcp_service_id"),
    ({"project_name": "P", "dcp_service_id": 1.5}, "dcp_service_id"),
    ({"project_name": "P", "dcp_service_id": 999999}, "dcp_service_id"),
    ({"project_name": "P", "dcp_service_id": 99999999999999999999999}, "dcp_service_id"),
    ({"project_name": "P", "platform": "web"}, "platform"),
])
def test_create_project_refuses_bad_fields(client, payload, field):
    error(client.post(f"{MGMT}/projects", json=payload, headers=H), 400, "invalid_field", field=field)
    assert ok(client.get(f"{MGMT}/projects", headers=H), 200) == []


def test_linking_an_archived_service_is_refused(client, service):
    p = ok(client.post(f"{MGMT}/projects", json={"project_name": "Web"}, headers=H), 201)
    ok(client.delete(f"{MGMT}/dcp_services/{service['id']}", headers=H), 204)
    error(client.put(f"{MGMT}/projects/{p['id']}", json={"dcp_service_id": service["id"]}, headers=H), 400,
          "archived", field="dcp_service_id")


def test_a_new_project_has_the_vendors_classic_fields_and_defaults(client):
    p = ok(client.post(f"{MGMT}/projects", json={"project_name": "Web"}, headers=H), 201)
    assert {k: p[k] for k in ("project_status", "include_jquery", "project_javascript", "enable_force_variation",
                              "exclude_disabled_experiments", "exclude_names", "ip_anonymization", "ip_filter",
                              "code_revision", "library", "dcp_service_id")} == {
        "project_status": "Active", "include_jquery": False, "project_javascript": None,
        "enable_force_variation": False, "exclude_disabled_experiments": False, "exclude_names": False,
        "ip_anonymization": False, "ip_filter": "", "code_revision": 1, "library": "none", "dcp_service_id": None}
    assert isinstance(p["js_file_size"], int) and p["socket_token"].endswith(f"~{p['id']}")
    with_jquery = ok(client.put(f"{MGMT}/projects/{p['id']}", json={"include_jquery": True}, headers=H), 202)
    assert with_jquery["library"].startswith("jquery") and with_jquery["js_file_size"] > p["js_file_size"]


def test_code_revision_counts_changes_of_the_project_script_only(client):
    p = ok(client.post(f"{MGMT}/projects", json={"project_name": "Web"}, headers=H), 201)
    url = f"{MGMT}/projects/{p['id']}"
    assert ok(client.put(url, json={"project_name": "Renamed"}, headers=H), 202)["code_revision"] == 1
    assert ok(client.put(url, json={"ip_filter": "^10\\."}, headers=H), 202)["code_revision"] == 2
    assert ok(client.put(url, json={"ip_filter": "^10\\."}, headers=H), 202)["code_revision"] == 2  # no change
    assert ok(client.put(url, json={"project_javascript": "x()", "exclude_names": True}, headers=H),
              202)["code_revision"] == 3


def test_a_project_put_back_as_read_is_accepted_and_read_only_changes_are_refused(client):
    p = ok(client.post(f"{MGMT}/projects", json={"project_name": "Web"}, headers=H), 201)
    url = f"{MGMT}/projects/{p['id']}"
    out = ok(client.put(url, json={**p, "project_name": "Web 2"}, headers=H), 202)  # everything it read, sent back
    assert out["project_name"] == "Web 2" and out["code_revision"] == p["code_revision"]
    # a stale copy is not what the project is now: its last_modified says so
    err = error(client.put(url, json={**p, "project_name": "Web 3"}, headers=H), 400, field="last_modified")
    assert err["message"].startswith("last_modified is read-only")
    p = out
    for field, value in (("code_revision", 7), ("socket_token", "x"), ("js_file_size", 1), ("library", "none!"),
                         ("account_id", 1), ("id", p["id"] + 1)):
        err = error(client.put(url, json={**p, field: value}, headers=H), 400, "invalid_field", field=field)
        assert err["message"] == f"{field} is read-only (the emulator sets it): send it unchanged ({json.dumps(p[field])}) " \
                                 "or leave it out."
    assert ok(client.get(url, headers=H), 200)["project_name"] == "Web 2"


@pytest.mark.parametrize(("payload", "field", "message"), [
    ({"project_status": "active"}, "project_status",
     ("project_status must be one of 'Active', 'Archived' (got 'active'; values are case-sensitive: did you mean "
     "'Active'?).")),
    ({"project_status": "paused"}, "project_status", ("project_status must be one of 'Active', 'Archived' "
                                                     "(got 'paused').")),
    ({"include_jquery": "yes"}, "include_jquery", "include_jquery must be true or false (a JSON boolean)."),
    ({"project_javascript": 5}, "project_javascript", "project_javascript must be a string or null (got a number)."),
    ({"ip_filter": None}, "ip_filter", "ip_filter must be a string, not null."),
    ({"exclude_names": None}, "exclude_names", "exclude_names must be true or false, not null."),
])
def test_project_fields_are_checked_with_a_message_naming_the_field(client, payload, field, message):
    p = ok(client.post(f"{MGMT}/projects", json={"project_name": "Web"}, headers=H), 201)
    for resp in (client.post(f"{MGMT}/projects", json={"project_name": "P", **payload}, headers=H),
                 client.put(f"{MGMT}/projects/{p['id']}", json=payload, headers=H)):
        assert error(resp, 400, "invalid_field", field=field)["message"] == message
    assert ok(client.get(f"{MGMT}/projects", headers=H), 200) == [p]


def test_a_database_file_of_an_older_version_gets_the_classic_project_fields(tmp_path):
    import sqlite3

    from dcp_emulator.resources import PROJECT
    from dcp_emulator.store import Store

    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
        "INSERT INTO accounts VALUES (1001, 'a');"
        "CREATE TABLE projects (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL REFERENCES accounts(id), "
        "project_name TEXT NOT NULL, project_status TEXT NOT NULL, dcp_service_id INTEGER, created TEXT NOT NULL, "
        "last_modified TEXT NOT NULL);"
        "INSERT INTO projects VALUES (1, 1001, 'A', 'active', NULL, 't', 't'), (2, 1001, 'B', 'paused', NULL, 't', 't'),"
        " (3, 1001, 'C', 'archived', NULL, 't', 't');")
    conn.commit()
    conn.close()
    store = Store(path)  # the migration runs when the store opens the file
    try:
        projects = [PROJECT.render(p) for p in store.management.list_projects(1001)]
    finally:
        store.close()
    assert [(p["project_name"], p["project_status"]) for p in projects] == \
        [("A", "Active"), ("B", "Active"), ("C", "Archived")]
    assert all(set(p) == PROJECT_FIELDS and p["code_revision"] == 1 and p["ip_filter"] == "" for p in projects)


def test_projects_have_no_delete(client):
    p = ok(client.post(f"{MGMT}/projects", json={"project_name": "Web"}, headers=H), 201)
    error(client.delete(f"{MGMT}/projects/{p['id']}", headers=H), 405, "method_not_allowed")
    error(client.get(f"{MGMT}/projects/999999", headers=H), 404)
    error(client.put(f"{MGMT}/projects/999999", json={"project_name": "x"}, headers=H), 404)


# ---------------------------------------------------------------- every route, with and without a slash
def _all_routes(client) -> list[tuple[str, str, dict | None, int]]:
    """(method, path, body, expected status) for every management and profile route."""
    s = create_service(client, H)
    t = create_table(client, H, s["id"])
    opt = optimizely_table(client, H, s["id"])
    a = create_attribute(client, H, t["id"], "tier")
    p = ok(client.post(f"{MGMT}/projects", json={"project_name": "P"}, headers=H), 201)
    ok(client.post(profile_url(s["id"], t["id"], "c1"), json={"data": {"tier": "x"}}, headers=H), 201)
    ok(client.post(f"/api/alias/{s['id']}/{opt['id']}/u1", json={"data": {str(t["id"]): "c1"}}, headers=H), 201)
    sid, tid, oid, aid, pid = s["id"], t["id"], opt["id"], a["id"], p["id"]
    return [
        ("GET", f"{MGMT}/dcp_services", None, 200),
        ("POST", f"{MGMT}/dcp_services", {"name": "S2"}, 201),
        ("GET", f"{MGMT}/dcp_services/{sid}", None, 200),
        ("PUT", f"{MGMT}/dcp_services/{sid}", {"name": "S"}, 202),
        ("GET", f"{MGMT}/dcp_services/{sid}/dcp_datasources", None, 200),
        ("POST", f"{MGMT}/dcp_services/{sid}/dcp_datasources", {"name": "T", "keyfield_locator_type": "uid"}, 201),
        ("GET", f"{MGMT}/dcp_datasources/{tid}", None, 200),
        ("PUT", f"{MGMT}/dcp_datasources/{tid}", {"description": "d"}, 202),
        ("GET", f"{MGMT}/dcp_datasources/{tid}/dcp_datasource_attributes", None, 200),
        ("POST", f"{MGMT}/dcp_datasources/{tid}/dcp_datasource_attributes", {"name": "n", "datatype": "long"}, 201),
        ("GET", f"{MGMT}/dcp_datasource_attributes/{aid}", None, 200),
        ("PUT", f"{MGMT}/dcp_datasource_attributes/{aid}", {"description": "d"}, 202),
        ("GET", f"{MGMT}/projects", None, 200),
        ("POST", f"{MGMT}/projects", {"project_name": "Q"}, 201),
        ("GET", f"{MGMT}/projects/{pid}", None, 200),
        ("PUT", f"{MGMT}/projects/{pid}", {"dcp_service_id": sid}, 202),
        ("GET", f"/api/customer_profile/{sid}/{tid}/c1", None, 200),
        ("POST", f"/api/customer_profile/{sid}/{tid}/c1", {"data": {"tier": "y"}}, 201),
        ("GET", f"/api/alias/{sid}/{oid}/u1", None, 200),
        ("POST", f"/api/alias/{sid}/{oid}/u1", {"data": {str(tid): "c1"}}, 201),
        ("GET", f"/api/consolidatedCustomerView/{sid}/u1", None, 200),
        ("GET", f"/api/consolidatedCustomerView/{sid}/{oid}/u1", None, 200),
        ("GET", "/_emulator/health", None, 200),
        ("GET", "/_emulator/info", None, 200),
        ("DELETE", f"{MGMT}/dcp_datasource_attributes/{aid}", None, 204),
        ("DELETE", f"{MGMT}/dcp_datasources/{tid}", None, 204),
        ("DELETE", f"{MGMT}/dcp_services/{sid}", None, 204),
    ]


@pytest.mark.parametrize("slash", ["", "/"], ids=["no-slash", "slash"])
def test_every_route_answers_with_and_without_trailing_slash(slash):
    app = create_app(Config(max_services_per_account=10))
    try:
        client = app.test_client()
        for method, path, payload, status in _all_routes(client):
            resp = client.open(path + slash, method=method, json=payload, headers=H)
            assert not 300 <= resp.status_code < 400, (method, path + slash, resp.headers.get("Location"))
            assert resp.status_code == status, (method, path + slash, resp.get_data(as_text=True))
            if method == "DELETE":
                assert resp.get_data() == b""
            if path.startswith("/api/customer_profile") and method == "GET":
                assert resp.get_json()["customerId"] == "c1"  # the slash is not part of the id
            if path.startswith("/api/alias") and method == "GET":
                assert resp.get_json()["customerId"] == "u1"
            if "consolidatedCustomerView" in path:
                assert [v["customerId"] for v in resp.get_json()] == ["c1"]
    finally:
        app.extensions["dcp_emulator"].close()
