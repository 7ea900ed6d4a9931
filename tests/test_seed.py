"""Seed files: the shipped example, verbatim ids/keys/timestamps, deterministic generation,
path-naming errors, atomicity, the export round trip, start-up seeds from the CLI and --db."""

from __future__ import annotations

import json
import pathlib

import pytest
import yaml

from dcp_emulator import create_app
from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.cli import main as cli_main
from dcp_emulator.config import Config
from dcp_emulator.errors import SeedError
from dcp_emulator.seed import SEED_TIMESTAMP, apply_seed, export_state, load_seed_file, parse_seed
from dcp_emulator.store import aws_key_pair

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "example.yaml"
T = {"Token": DEFAULT_TOKENS["classic"]}


@pytest.fixture
def make_app():
    """Build emulators with a given config; all closed at the end."""
    apps = []

    def make(**kwargs):
        application = create_app(Config(**kwargs))
        apps.append(application)
        return application

    yield make
    for application in apps:
        application.extensions["dcp_emulator"].close()


def emu(application):
    return application.extensions["dcp_emulator"]


def state_yaml(application) -> str:
    resp = application.test_client().get("/_emulator/state")
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


# ---------------------------------------------------------------------- the shipped example
def test_example_seed_is_served_with_its_fixed_ids(make_app):
    c = make_app(seed=[str(EXAMPLE)]).test_client()
    services = c.get("/experiment/v1/dcp_services", headers=T).get_json()
    assert [(s["id"], s["account_id"], s["s3_path"]) for s in services] == [(567, 1001, "dcp/567")]
    tables = c.get("/experiment/v1/dcp_services/567/dcp_datasources", headers=T).get_json()
    assert [(t["id"], t["name"], t["is_optimizely"]) for t in tables] == [
        (566, "Optimizely", True), (678, "CRM", False), (679, "Email platform", False)]
    crm = tables[1]
    assert crm["aws_access_key"] == "AKIAACMECRM000000678" and crm["keyfield_locator_name"] == "crm_id"
    assert crm["created"] == "2024-03-01T09:05:00.000000Z"
    assert {a["name"]: (a["datatype"], a["format"], a["archived"]) for a in crm["attributes"]} == {
        "full_name": ("string", None, False), "ltv": ("double", None, False),
        "loyalty_member": ("bool", None, False), "orders": ("long", None, False),
        "first_purchase": ("datetime", "yyyy-mm-dd", False),
        "last_visit": ("datetime", "yyyy-mm-ddThh:mm:ssZ", False), "fax_number": ("string", None, True)}
    profile = c.get("/api/customer_profile/567/678/crm-1001", headers=T).get_json()
    assert profile["data"] == {"full_name": "Ada Lovelace", "ltv": 1250.5, "loyalty_member": True, "orders": 42,
                               "first_purchase": "2019-04-12", "last_visit": "2024-02-28T18:30:00Z"}
    view = c.get("/api/consolidatedCustomerView/567/566/oeu-ada", headers=T).get_json()
    assert [(p["datasourceId"], p["customerId"]) for p in view] == [("678", "crm-1001"), ("679", "em-ada")]
    assert view[1]["data"] == {"email_opt_in": True, "last_open": 1709150400, "segment": "vip"}
    assert c.get("/experiment/v1/projects/890", headers=T).get_json()["dcp_service_id"] == 567
    # The seed's expired OAuth token is refused; the default tokens still work.
    assert c.get("/experiment/v1/dcp_services", headers={"Authorization": "Bearer acme-expired-oauth-token"}
                 ).status_code == 403
    # Ids the API generates afterwards still start after the default account.
    created = c.post("/experiment/v1/dcp_services/567/dcp_datasources", headers=T,
                     json={"name": "POS", "keyfield_locator_type": "uid"}).get_json()
    assert created["id"] == 1002


def test_example_round_trip_is_identical(make_app, tmp_path):
    """Export, seed a fresh emulator with the export (at start-up and at runtime), export again: identical."""
    first = state_yaml(make_app(seed=[str(EXAMPLE)]))
    exported = tmp_path / "exported.yaml"
    exported.write_text(first)
    assert state_yaml(make_app(seed=[str(exported)])) == first
    fresh = make_app()
    resp = fresh.test_client().post("/_emulator/seed", data=first, content_type="application/yaml")
    assert resp.status_code == 201, resp.get_json()
    assert state_yaml(fresh) == first
    # The JSON export round-trips too.
    as_json = make_app(seed=[str(EXAMPLE)]).test_client().get("/_emulator/state?format=json").get_json()
    other = make_app()
    assert other.test_client().post("/_emulator/seed", json=as_json).status_code == 201
    assert state_yaml(other) == first


def test_round_trip_keeps_api_made_state(make_app, tmp_path):
    """State built through the API (generated ids, now() timestamps, archives, aliases) survives export/seed."""
    source = make_app(seed=[str(EXAMPLE)])
    c = source.test_client()
    table = c.post("/experiment/v1/dcp_services/567/dcp_datasources", headers=T,
                   json={"name": "POS", "keyfield_locator_type": "js_variable", "keyfield_locator_name": "pos_id",
                         "description": None}).get_json()
    attr = c.post(f"/experiment/v1/dcp_datasources/{table['id']}/dcp_datasource_attributes", headers=T,
                  json={"name": "visits", "datatype": "long", "is_value_public": True}).get_json()
    assert c.post(f"/api/customer_profile/567/{table['id']}/p-1", headers=T, json={"data": {"visits": 3}}
                  ).status_code == 201
    assert c.post("/api/alias/567/566/oeu-new", headers=T, json={"data": {str(table["id"]): "p-1"}}
                  ).status_code == 201
    assert c.delete(f"/experiment/v1/dcp_datasource_attributes/{attr['id']}", headers=T).status_code == 204
    assert c.delete("/experiment/v1/dcp_datasources/679", headers=T).status_code == 204
    first = state_yaml(source)
    copy = tmp_path / "copy.yaml"
    copy.write_text(first)
    assert state_yaml(make_app(seed=[str(copy)])) == first


def test_round_trip_keeps_values_of_archived_attributes(make_app, tmp_path):
    """Archived values are invisible but come back on unarchive, so export -> seed must carry them,
    even when an active attribute has taken the archived one's name."""
    source = make_app(seed=[str(EXAMPLE)])
    copy = make_app()
    c = source.test_client()
    old = c.post("/experiment/v1/dcp_datasources/678/dcp_datasource_attributes", headers=T,
                 json={"name": "tmp", "datatype": "long"}).get_json()
    c.post("/api/customer_profile/567/678/crm-1001", headers=T, json={"data": {"tmp": 5}})
    c.post("/api/customer_profile/567/678/only-archived", headers=T, json={"data": {"tmp": 6}})
    c.delete(f"/experiment/v1/dcp_datasource_attributes/{old['id']}", headers=T)
    new = c.post("/experiment/v1/dcp_datasources/678/dcp_datasource_attributes", headers=T,
                 json={"name": "tmp", "datatype": "string"}).get_json()
    c.post("/api/customer_profile/567/678/crm-1001", headers=T, json={"data": {"tmp": "x"}})
    exported = state_yaml(source)
    table = yaml.safe_load(exported)["dcp_services"][0]["datasources"][1]
    assert table["attributes"][-2]["values"] == {"crm-1001": 5, "only-archived": 6}
    assert "values" not in table["attributes"][-1] and table["profiles"]["only-archived"] == {}
    assert copy.test_client().post("/_emulator/seed", data=exported, content_type="application/yaml").status_code == 201
    assert state_yaml(copy) == exported
    for application in (source, copy):  # unarchiving shows the same values in the original and the copy
        c = application.test_client()
        assert c.delete(f"/experiment/v1/dcp_datasource_attributes/{new['id']}", headers=T).status_code == 204
        assert c.put(f"/experiment/v1/dcp_datasource_attributes/{old['id']}", headers=T,
                     json={"archived": False}).status_code == 202
        assert c.get("/api/customer_profile/567/678/crm-1001", headers=T).get_json()["data"]["tmp"] == 5
        assert c.get("/api/customer_profile/567/678/only-archived", headers=T).get_json()["data"] == {"tmp": 6}


@pytest.mark.parametrize("values, path, problem", [
    ({"c-1": 1}, "dcp_services[0].datasources[0].attributes[0].values", "only an archived attribute"),
    ({"c-1": "many"}, 'dcp_services[0].datasources[0].attributes[1].values["c-1"]', "invalid long value"),
    ({"c-1": None}, 'dcp_services[0].datasources[0].attributes[1].values["c-1"]', "not null"),
    (["c-1"], "dcp_services[0].datasources[0].attributes[1].values", "expected a mapping"),
])
def test_archived_attribute_values_are_validated(make_app, values, path, problem):
    attrs = [{"name": "a", "datatype": "long"}, {"name": "b", "datatype": "long", "archived": True}]
    attrs[0 if "only an archived" in problem else 1]["values"] = values
    seed = {"dcp_services": [{"name": "S", "datasources": [
        {"name": "T", "keyfield_locator_type": "uid", "attributes": attrs}]}]}
    resp = make_app().test_client().post("/_emulator/seed", json=seed)
    assert resp.status_code == 400 and resp.get_json()["field"] == path
    assert problem in resp.get_json()["message"]


# ---------------------------------------------------------------------- verbatim and deterministic values
def test_missing_ids_keys_and_timestamps_are_generated_deterministically(make_app):
    seed = {"dcp_services": [{"name": "S", "datasources": [
        {"name": "T", "keyfield_locator_type": "uid", "attributes": [{"name": "a", "datatype": "string"}]}]}],
        "projects": [{"project_name": "P", "dcp_service_id": 1002}]}
    exports = []
    for _ in range(2):
        application = make_app()
        assert application.test_client().post("/_emulator/seed", json=seed).status_code == 201
        exports.append(export_state(emu(application).store))
    assert exports[0] == exports[1]
    service = exports[0]["dcp_services"][0]
    assert service["id"] == 1002 and service["account_id"] == 1001
    assert (service["aws_access_key"], service["aws_secret_key"]) == aws_key_pair("service", 1002)
    assert service["created"] == service["last_modified"] == SEED_TIMESTAMP
    opt, table = service["datasources"]
    assert (opt["id"], table["id"], table["attributes"][0]["id"]) == (1003, 1004, 1005)
    assert (table["aws_access_key"], table["aws_secret_key"]) == aws_key_pair("datasource", 1004)
    assert opt["created"] == table["created"] == table["attributes"][0]["created"] == SEED_TIMESTAMP
    assert exports[0]["projects"][0]["created"] == SEED_TIMESTAMP


def test_yaml_dates_and_timestamps_stay_the_strings_written():
    data = parse_seed("a: 2022-05-02\nb: 2015-08-18T21:38:55.927670Z\nc: 1999-01-01T00:00:00\n")
    assert data == {"a": "2022-05-02", "b": "2015-08-18T21:38:55.927670Z", "c": "1999-01-01T00:00:00"}


def test_profiles_and_aliases_accept_the_api_response_shape(make_app):
    seed = """
dcp_services:
  - id: 10
    name: S
    datasources:
      - {id: 11, is_optimizely: true}
      - id: 12
        name: CRM
        keyfield_locator_type: uid
        attributes: [{name: born, datatype: datetime, format: yyyy-mm-dd}, {name: vip, datatype: bool}]
        profiles:
          - {customerId: c-1, data: {born: 2022-05-02, vip: "TRUE"}}
          - {customerId: 42, data: {vip: false}}
    aliases:
      - {customerId: oeu-1, data: {"12": c-1}}
"""
    application = make_app()
    c = application.test_client()
    assert c.post("/_emulator/seed", data=seed, content_type="application/yaml").status_code == 201
    assert c.get("/api/customer_profile/10/12/c-1", headers=T).get_json()["data"] == {"born": "2022-05-02",
                                                                                      "vip": True}
    assert c.get("/api/customer_profile/10/12/42", headers=T).get_json()["data"] == {"vip": False}
    assert c.get("/api/alias/10/11/oeu-1", headers=T).get_json()["data"] == {"12": "c-1"}


def test_archived_service_archives_its_tables_after_filling_them(make_app):
    seed = {"dcp_services": [{"id": 20, "name": "Old", "archived": True, "datasources": [
        {"id": 21, "name": "T", "keyfield_locator_type": "uid", "attributes": [{"name": "x", "datatype": "long"}],
         "profiles": {"c": {"x": 1}}}]}]}
    c = make_app().test_client()
    assert c.post("/_emulator/seed", json=seed).status_code == 201
    assert c.get("/experiment/v1/dcp_services/20", headers=T).get_json()["archived"] is True
    assert c.get("/experiment/v1/dcp_datasources/21", headers=T).get_json()["archived"] is True
    assert c.get("/api/customer_profile/20/21/c", headers=T).get_json()["data"] == {"x": 1}
    # An archived service does not count against the one-service limit.
    assert c.post("/experiment/v1/dcp_services", headers=T, json={"name": "New"}).status_code == 201


def test_seeded_accounts_tokens_and_merging_into_the_default_account(make_app):
    seed = {"accounts": [{"id": 1001, "tokens": [{"token": "extra", "kind": "classic"},
                                                 {"token": DEFAULT_TOKENS["oauth"], "kind": "oauth", "revoked": True}]},
                         {"id": 3000, "name": "Other", "tokens": [{"token": "other-token"}]}],
            "dcp_services": [{"name": "Mine"}, {"name": "Theirs", "account_id": 3000}]}
    application = make_app()
    c = application.test_client()
    assert c.post("/_emulator/seed", json=seed).status_code == 201
    assert [s["name"] for s in c.get("/experiment/v1/dcp_services", headers={"Token": "extra"}).get_json()] == ["Mine"]
    assert [s["name"] for s in c.get("/experiment/v1/dcp_services", headers={"Token": "other-token"}).get_json()
            ] == ["Theirs"]
    assert c.get("/experiment/v1/dcp_services", headers={"Authorization": f"Bearer {DEFAULT_TOKENS['oauth']}"}
                 ).status_code == 403
    assert c.get("/_emulator/info").get_json()["default_account_id"] == 1001


# ---------------------------------------------------------------------- errors
BAD_SEEDS = [
    (("dcp_services:\n- name: X\n  datasources:\n  - {name: A, keyfield_locator_type: uid}\n"
      "  - name: B\n    keyfield_locator_type: uid\n    attributes:\n    - {name: a, datatype: string}\n"
      "    - {name: b, datatype: long}\n    - {name: c, datatype: number}\n"),
     "dcp_services[0].datasources[1].attributes[2].datatype", "datatype must be one of"),
    (("dcp_services:\n- name: X\n  datasources:\n  - name: A\n    keyfield_locator_type: uid\n"
      "    attributes: [{name: ltv, datatype: double}]\n    profiles: {c-1: {ltv: '2,3'}}\n"),
     'dcp_services[0].datasources[0].profiles["c-1"].ltv', "expected a double"),
    (("dcp_services:\n- name: X\n  datasources:\n  - name: A\n    keyfield_locator_type: uid\n"
      "    profiles: {c-1: {nope: 1}}\n"), 'dcp_services[0].datasources[0].profiles["c-1"].nope',
     "not an attribute of table"),
    ("dcp_services:\n- name: X\n  datasources:\n  - {name: A, keyfield_locator_type: cookie}\n",
     "dcp_services[0].datasources[0].keyfield_locator_name", "required"),
    ("dcp_services:\n- {name: X, colour: red}\n", "dcp_services[0].colour", "unknown field"),
    ("dcp_services:\n- {}\n", "dcp_services[0].name", "required"),
    ("accounts:\n- tokens: [{token: t, kind: admin}]\n", "accounts[0].tokens[0].kind", "'classic', 'personal', 'oauth'"),
    ("accounts:\n- tokens: [{token: emulator-classic-token}]\n", "accounts[0].tokens[0].token",
     "already belongs to account 1001"),
    ("dcp_services:\n- {name: X, created: yesterday}\n", "dcp_services[0].created", "UTC timestamp"),
    ("dcp_services:\n- {name: X, id: -4}\n", "dcp_services[0].id", "positive integer"),
    ("dcp_services:\n- {name: X, id: 50}\n- {name: Y, id: 50}\n", "dcp_services[1].id", "already exists"),
    ("dcp_services:\n- name: X\n  aliases: {oeu-1: {999: c-1}}\n", 'dcp_services[0].aliases["oeu-1"]["999"]',
     "not a table id"),
    ("dcp_services:\n- {name: X, account_id: 77}\n", "dcp_services[0].account_id", "does not exist"),
    ("projects:\n- {project_name: P, dcp_service_id: 5}\n", "projects[0].dcp_service_id", "not a DCP service"),
    ("colour: red\n", "colour", "unknown field"),
    ("dcp_services: {name: X}\n", "dcp_services", "expected a list"),
    ("dcp_services:\n- name: X\n  name: Y\n", "line 3, column 3", "duplicate key 'name'"),
    ("dcp_services: [\n", "line 2, column 1", "invalid YAML"),
    ("- a\n- b\n", "", "a seed must be a mapping"),
]


@pytest.mark.parametrize("text, path, problem", BAD_SEEDS)
def test_invalid_seed_names_path_and_problem(make_app, tmp_path, text, path, problem):
    seed_file = tmp_path / "bad.yaml"
    seed_file.write_text(text)
    with pytest.raises(SeedError) as info:
        make_app(seed=[str(seed_file)])
    assert info.value.source == str(seed_file)
    assert info.value.path == path
    assert problem in info.value.problem
    assert str(info.value).startswith(f"{seed_file}: {path + ': ' if path else ''}")
    # At runtime the same seed is a 400 in the error envelope, with the path as the field.
    resp = make_app().test_client().post("/_emulator/seed", data=text, content_type="application/yaml")
    body = resp.get_json()
    assert resp.status_code == 400 and body["code"] == "invalid_seed"
    assert body.get("field") == (path or None) and problem in body["message"]


def test_a_seed_applies_entirely_or_not_at_all(make_app):
    application = make_app(seed=[str(EXAMPLE)])
    before = export_state(emu(application).store)
    bad = {"accounts": [{"id": 4000, "tokens": [{"token": "new-token"}]}],
           "dcp_services": [{"id": 900, "name": "Good", "account_id": 4000, "datasources": [
               {"name": "T", "keyfield_locator_type": "uid", "attributes": [{"name": "n", "datatype": "long"}],
                "profiles": {"a": {"n": 1}, "b": {"n": "many"}}}]}]}
    resp = application.test_client().post("/_emulator/seed", json=bad)
    assert resp.status_code == 400
    assert resp.get_json()["field"] == "dcp_services[0].datasources[0].profiles.b.n"
    assert export_state(emu(application).store) == before
    # Nothing of it is left over: not even the sequence, so the next generated id is unchanged.
    made = application.test_client().post("/experiment/v1/dcp_services/567/dcp_datasources", headers=T,
                                          json={"name": "X", "keyfield_locator_type": "uid"}).get_json()
    assert made["id"] == 1002


def test_cli_reports_an_invalid_seed_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_SEEDS[0][0])
    assert cli_main(["serve", "--port", "0", "--seed", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert f"{bad}: dcp_services[0].datasources[1].attributes[2].datatype:" in err


def test_several_seeds_from_options_and_environment(make_app, tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("accounts:\n- id: 5000\n  tokens: [{token: five}]\n")
    config = Config.from_env({"DCP_EMULATOR_SEED": f"{EXAMPLE},{extra}"})
    assert config.seed == [str(EXAMPLE), str(extra)]
    application = create_app(config)
    try:
        detail = application.test_client().get("/_emulator/health").get_json()["parts"]["seed"]
        assert detail["ready"] and str(EXAMPLE) in detail["detail"] and str(extra) in detail["detail"]
        assert emu(application).store.credentials.find_token("five")["account_id"] == 5000
    finally:
        emu(application).close()


def test_with_db_seeds_apply_once_and_reset_returns_to_this_runs_start(tmp_path):
    db = str(tmp_path / "state.db")
    first = create_app(Config(db=db, seed=[str(EXAMPLE)]))
    c = first.test_client()
    c.post("/experiment/v1/dcp_services/567/dcp_datasources", headers=T,
           json={"name": "Kept", "keyfield_locator_type": "uid"})
    emu(first).close()
    second = create_app(Config(db=db, seed=[str(EXAMPLE)]))  # the seed is not applied twice
    try:
        c = second.test_client()
        assert "already holds state" in c.get("/_emulator/health").get_json()["parts"]["seed"]["detail"]
        names = lambda: [t["name"] for t in c.get("/experiment/v1/dcp_services/567/dcp_datasources",
                                                    headers=T).get_json()]
        assert names() == ["Optimizely", "CRM", "Email platform", "Kept"]
        c.post("/experiment/v1/dcp_services/567/dcp_datasources", headers=T,
               json={"name": "Temporary", "keyfield_locator_type": "uid"})
        assert c.post("/_emulator/reset").status_code == 200
        # Not "default state + start-up seeds": the state the database held when this process started.
        assert names() == ["Optimizely", "CRM", "Email platform", "Kept"]
        assert "reset returns to the state it held at this start" in c.get("/_emulator/health").get_json()[
            "parts"]["seed"]["detail"]
        # {"to": "default"} is the pure default state, also with --db (written into the database file).
        assert c.post("/_emulator/reset", json={"to": "default"}).get_json()["to"] == "default"
        assert c.get("/experiment/v1/dcp_services", headers=T).get_json() == []
        assert c.post("/_emulator/reset").status_code == 200
        assert names() == ["Optimizely", "CRM", "Email platform", "Kept"]
        # The start-up copy of a --db store lives in a temporary file (not in memory), unlinked once written
        # so that even a killed process leaves nothing behind.
        startup = emu(second)._startup_snapshot
        assert startup.on_disk and startup.path is None
    finally:
        emu(second).close()


def test_load_and_apply_helpers(tmp_path):
    """The module API used by scripts: load_seed_file + apply_seed on a bare store."""
    from dcp_emulator.store import Store

    store = Store()
    try:
        counts = apply_seed(store, load_seed_file(EXAMPLE), source=str(EXAMPLE), default_account_id=1001)
        assert counts["profiles"] == 5 and counts["aliases"] == 4 and counts["attributes"] == 10
        exported = export_state(store)
        assert json.loads(json.dumps(exported))["dcp_services"][0]["id"] == 567
        assert yaml.safe_load(yaml.safe_dump(exported)) == exported
    finally:
        store.close()


def test_absurd_nesting_is_refused_before_it_can_crash_the_parser(client):
    """libyaml's composer recurses in C: 100,000 '[' would be a segfault, not an exception."""
    for text in ("[" * 100_000, "- " * 100_000 + "x"):
        with pytest.raises(SeedError) as info:
            parse_seed(text, "deep.yaml")
        assert "nested deeper than 64 levels" in info.value.problem
    resp = client.post("/_emulator/seed", data="[" * 100_000, content_type="application/yaml")
    assert resp.status_code == 400 and resp.get_json()["code"] == "invalid_seed"
    resp = client.post("/_emulator/seed", data="[" * 100_000, content_type="application/json")
    assert resp.status_code == 400 and "invalid JSON" in resp.get_json()["message"]


def test_lone_surrogates_in_a_json_seed_are_a_400_naming_the_path(make_app):
    client = make_app().test_client()
    body = ('{"dcp_services": [{"name": "S", "datasources": [{"name": "T", "keyfield_locator_type": "uid", '
            '"attributes": [{"name": "s", "datatype": "string"}], "profiles": {"c1": {"s": "x\\ud800y"}}}]}]}')
    resp = client.post("/_emulator/seed", data=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.get_data(as_text=True)
    err = resp.get_json()
    assert err["code"] == "invalid_seed" and err["field"] == "dcp_services[0].datasources[0].profiles.c1.s"
    assert "lone UTF-16 surrogate" in err["message"]
    state = client.get("/_emulator/state?format=json").get_json()
    assert not state.get("dcp_services")  # nothing was applied


def test_built_in_seeds_are_named_without_a_path_and_files_win():
    from dcp_emulator.seeds import builtin_seed, builtin_seed_names

    assert "example" in builtin_seed_names()
    assert builtin_seed("example") == EXAMPLE.resolve()  # fixtures/example.yaml is a link to the packaged seed
    for not_a_name in ("example.yaml", "./example", "seeds/example", "nope", ""):
        assert builtin_seed(not_a_name) is None, not_a_name
    assert load_seed_file("example") == load_seed_file(EXAMPLE)
    with pytest.raises(SeedError, match="neither a file .* nor a built-in seed .built in: example"):
        load_seed_file("no-such-built-in-seed")


def test_seeds_of_earlier_versions_load_their_project_status(client):
    seed = {"projects": [{"project_name": "A", "project_status": "active"}, {"project_name": "B",
            "project_status": "paused"}, {"project_name": "C", "project_status": "archived"}]}
    assert client.post("/_emulator/seed", json=seed).status_code == 201
    projects = client.get("/experiment/v1/projects", headers=T).get_json()
    assert [p["project_status"] for p in projects] == ["Active", "Active", "Archived"]


@pytest.mark.parametrize(("entry", "field"), [
    ({"project_name": "A", "js_file_size": 5}, "js_file_size"),
    ({"project_name": "A", "library": "jquery-9"}, "library"),
    ({"project_name": "A", "id": 700, "socket_token": "x"}, "socket_token"),
])
def test_a_seed_repeating_a_computed_field_must_give_its_value(client, entry, field):
    resp = client.post("/_emulator/seed", json={"projects": [entry]})
    assert resp.status_code == 400 and resp.get_json()["field"] == f"projects[0].{field}"
    assert "the emulator computes it" in resp.get_json()["message"]
    exported = client.get("/_emulator/state?format=json").get_json()
    assert exported["projects"] == []  # nothing half-written
