"""The resource descriptions (dcp_emulator/resources.py): how one description validates, renders, exports and
documents a resource, and that the API, the seeds and the OpenAPI document all take their fields from it."""

from __future__ import annotations

import pytest
from dcp_api import MGMT, ok

from dcp_emulator.errors import InvalidField
from dcp_emulator.resources import (
    ATTRIBUTE,
    CREATE_ONLY,
    DATASOURCE,
    EDITABLE,
    OAUTH_APP,
    PROJECT,
    RESOURCES,
    SERVICE,
    UPDATE_ONLY,
    Field,
    Resource,
    schema_name,
)
from dcp_emulator.seed import _ATTRIBUTE_KEYS, _DATASOURCE_KEYS, _PROJECT_KEYS, _SERVICE_KEYS

H = {"Token": "emulator-classic-token"}

THING = Resource("thing", "thing", "A test resource.", (
    Field("id", "integer", "Its id."),
    Field("name", "string", "Its name.", access=EDITABLE, required=True, non_blank=True, max_length=5),
    Field("kind", "string", "Its kind.", access=CREATE_ONLY, enum=("a", "b"), default="a"),
    Field("note", "string", "A note.", access=EDITABLE, nullable=True),
    Field("archived", "boolean", "Archived?", access=UPDATE_ONLY, default=False),
    Field("path", "string", "Computed.", computed=lambda row: f"things/{row['id']}"),
), immutable_hint="Make a new {name} instead.")


def refused(fn, *args) -> InvalidField:
    with pytest.raises(InvalidField) as e:
        fn(*args)
    return e.value


def test_create_fills_defaults_and_checks_every_given_field():
    assert THING.parse_create({"name": "x"}) == {"name": "x", "kind": "a", "note": None}
    assert refused(THING.parse_create, {}).message == "name is required and must be a non-empty string (missing)."
    err = refused(THING.parse_create, {"name": "toolong"})
    assert (err.field, err.message) == ("name", "name must be at most 5 characters (got 7).")
    err = refused(THING.parse_create, {"name": "x", "kind": "A"})
    assert err.message == "kind must be one of 'a', 'b' (got 'A'; values are case-sensitive: did you mean 'a'?)."


def test_unknown_fields_are_named_before_anything_else():
    err = refused(THING.parse_create, {"id": 3, "colour": 1})
    assert (err.field, err.message) == ("colour", "Unknown field 'colour'; accepted fields are kind, name, note.")
    err = refused(THING.parse_update, {"id": 4, "colour": 1}, {"id": 3, "name": "x", "kind": "a", "note": None,
                                                              "archived": 0})
    assert err.message == "Unknown field 'colour'; accepted fields are archived, name, note."


def test_read_only_fields_are_refused_on_create_and_accepted_unchanged_on_update():
    assert refused(THING.parse_create, {"name": "x", "id": 1}).message == \
        "id is read-only (the emulator sets it); leave it out of the request body."
    assert refused(THING.parse_create, {"name": "x", "archived": True}).message == \
        "archived is read-only (PUT changes it once the resource exists); leave it out of the request body."
    row = {"id": 3, "name": "x", "kind": "a", "note": None, "archived": 0}
    shown = THING.render(row)
    assert THING.parse_update(shown, row) == {}  # a GET sent back unchanged changes nothing
    assert THING.parse_update({**shown, "name": "y", "archived": True}, row) == {"name": "y", "archived": True}
    err = refused(THING.parse_update, {**shown, "path": "elsewhere"}, row)
    assert err.message == 'path is read-only (the emulator sets it): send it unchanged ("things/3") or leave it out.'
    assert THING.parse_create({"name": "x", "archived": False}) == {"name": "x", "kind": "a", "note": None}
    assert THING.parse_create({"name": "x", "id": 7}, known={"id": 7})["name"] == "x"
    err = refused(THING.parse_update, {"kind": "b"}, row)
    assert (err.field, err.message) == ("kind", "The thing's kind cannot be changed. Make a new x instead.")
    assert refused(Field("data", "object", "d", access=EDITABLE).check, [1]).message == \
        "data must be a JSON object (got an array)."
    # a value equal in Python but not in JSON (1 for true) is a change, and is checked as one
    assert refused(THING.parse_update, {"archived": 1}, row).message == \
        "archived must be true or false (a JSON boolean)."


def test_render_types_computes_and_nests():
    assert THING.render({"id": 3, "name": "x", "kind": "a", "note": None, "archived": 1, "extra": "ignored"}) == \
        {"id": 3, "name": "x", "kind": "a", "note": None, "archived": True, "path": "things/3"}
    table = DATASOURCE.render({
        "id": 9, "archived": 0, "aws_access_key": "k", "aws_secret_key": "s", "created": "c", "dcp_service_id": 8,
        "description": None, "is_optimizely": 0, "keyfield_locator_name": "c", "keyfield_locator_type": "cookie",
        "last_modified": "m", "name": "T", "attributes": [{
            "archived": 0, "created": "c", "datatype": "bool", "dcp_datasource_id": 9, "description": None,
            "format": None, "id": 10, "is_value_public": 1, "last_modified": "m", "name": "vip"}]})
    assert table["s3_path"] == "dcp/8/9" and table["attributes"][0]["is_value_public"] is True
    assert list(table) == DATASOURCE.field_names
    assert "client_secret" not in OAUTH_APP.render({"client_id": "c", "client_secret": None, "name": "n",
                                                    "redirect_uris": [], "client_type": "public", "account_id": 1})


def test_export_leaves_out_defaults_and_computed_fields():
    row = {"id": 3, "name": "x", "kind": "a", "note": None, "archived": 0}
    assert THING.export(THING.render(row)) == {"id": 3, "name": "x"}
    assert THING.export(THING.render({**row, "kind": "b", "note": "n", "archived": 1})) == \
        {"id": 3, "name": "x", "kind": "b", "note": "n", "archived": True}


def test_schemas_say_what_validation_enforces():
    schema = THING.schema()
    assert schema["required"] == THING.field_names and schema["additionalProperties"] is False
    assert schema["properties"]["id"]["readOnly"] is True
    assert schema["properties"]["note"]["type"] == ["string", "null"]
    assert schema["properties"]["name"]["maxLength"] == 5
    # JSON Schema patterns search; the API matches whole strings, so the document anchors them
    assert DATASOURCE.schema()["properties"]["keyfield_locator_name"]["pattern"] == "^[a-zA-Z_][a-zA-Z_0-9$]*$"
    create, update = THING.request_schema(update=False), THING.request_schema(update=True)
    # on create, a read-only field is documented where its default is accepted ("archived": false)
    assert (set(create["properties"]), create["required"]) == ({"name", "kind", "note", "archived"}, ["name"])
    assert set(update["properties"]) == {"id", "name", "kind", "note", "archived", "path"}
    assert update["required"] == []


def test_the_document_takes_every_schema_from_the_descriptions(client):
    doc = ok(client.get("/_emulator/openapi.json"), 200)
    for resource in RESOURCES:
        assert doc["components"]["schemas"][schema_name(resource.name)] == resource.schema()
    post = doc["paths"]["/experiment/v1/projects"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert post == PROJECT.request_schema(update=False)


def test_the_api_answers_every_described_field_and_seeds_take_them(client):
    service = ok(client.post(f"{MGMT}/dcp_services", json={"name": "S"}, headers=H), 201)
    project = ok(client.post(f"{MGMT}/projects", json={"project_name": "P"}, headers=H), 201)
    tables = ok(client.get(f"{MGMT}/dcp_services/{service['id']}/dcp_datasources", headers=H), 200)
    assert list(service) == SERVICE.field_names and list(project) == PROJECT.field_names
    assert list(tables[0]) == DATASOURCE.field_names
    # a seed entry is the resource's own fields plus what it contains
    assert set(_SERVICE_KEYS) == set(SERVICE.field_names) | {"datasources", "aliases"}
    assert set(_DATASOURCE_KEYS) == set(DATASOURCE.field_names) | {"profiles"}
    assert set(_ATTRIBUTE_KEYS) == set(ATTRIBUTE.field_names) | {"values"}
    assert set(_PROJECT_KEYS) == set(PROJECT.field_names)
    # and an export seeds back to the same answers
    state = ok(client.get("/_emulator/state?format=json"), 200)
    assert {k for p in state["projects"] for k in p} <= set(PROJECT.field_names)
    ok(client.post("/_emulator/seed?reset=default", json=state), 201)
    assert ok(client.get(f"{MGMT}/projects/{project['id']}", headers=H), 200) == project
