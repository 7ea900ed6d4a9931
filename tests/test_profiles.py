"""Customer profiles (attribute-level merge), aliases and the consolidated customer view."""

from __future__ import annotations

import json

import pytest
from dcp_api import (
    MGMT,
    create_attribute,
    create_service,
    create_table,
    error,
    ok,
    optimizely_table,
    profile_url,
)

from dcp_emulator import create_app
from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import Config

H = {"Token": DEFAULT_TOKENS["classic"]}
PROFILE_KEYS = {"data", "dcpServiceId", "datasourceId", "customerId"}


@pytest.fixture
def w(client):
    """A service with its Optimizely table, a CRM table (tier, score, vip) and a second table (email)."""
    s = create_service(client, H)
    opt = optimizely_table(client, H, s["id"])
    crm = create_table(client, H, s["id"], "CRM")
    mail = create_table(client, H, s["id"], "Mail", keyfield_locator_type="uid", keyfield_locator_name=None)
    create_attribute(client, H, crm["id"], "tier")
    create_attribute(client, H, crm["id"], "score", "long")
    create_attribute(client, H, crm["id"], "vip", "bool")
    create_attribute(client, H, mail["id"], "email")
    create_attribute(client, H, opt["id"], "segment")
    return {"s": s["id"], "opt": opt["id"], "crm": crm["id"], "mail": mail["id"]}


def _url(w, customer: str, table: str = "crm") -> str:
    return profile_url(w["s"], w[table], customer)


# ---------------------------------------------------------------- profiles
def test_write_then_read_a_profile(client, w):
    out = ok(client.post(_url(w, "cust-1"), json={"data": {"tier": "gold", "score": "7"}}, headers=H), 201)
    assert out == {"data": {"tier": "gold", "score": 7}, "dcpServiceId": str(w["s"]),
                   "datasourceId": str(w["crm"]), "customerId": "cust-1"}
    assert ok(client.get(_url(w, "cust-1"), headers=H), 200) == out


def test_writes_merge_attribute_by_attribute(client, w):
    url = _url(w, "cust-1")
    ok(client.post(url, json={"data": {"tier": "gold"}}, headers=H), 201)
    assert ok(client.post(url, json={"data": {"score": 3}}, headers=H), 201)["data"] == {"tier": "gold", "score": 3}
    assert ok(client.post(url, json={"data": {"tier": "silver"}}, headers=H), 201)["data"] == \
        {"tier": "silver", "score": 3}
    assert ok(client.post(url, json={"data": {}}, headers=H), 201)["data"] == {"tier": "silver", "score": 3}
    assert ok(client.get(url, headers=H), 200)["data"] == {"tier": "silver", "score": 3}


def test_null_clears_one_value_and_keeps_the_others(client, w):
    url = _url(w, "cust-1")
    ok(client.post(url, json={"data": {"tier": "gold", "score": 3, "vip": True}}, headers=H), 201)
    assert ok(client.post(url, json={"data": {"score": None}}, headers=H), 201)["data"] == {"tier": "gold", "vip": True}
    assert ok(client.get(url, headers=H), 200)["data"] == {"tier": "gold", "vip": True}
    ok(client.post(url, json={"data": {"score": 4}}, headers=H), 201)  # and can be set again
    assert ok(client.get(url, headers=H), 200)["data"] == {"tier": "gold", "vip": True, "score": 4}


def test_profiles_are_per_table_and_per_customer(client, w):
    ok(client.post(_url(w, "a"), json={"data": {"tier": "gold"}}, headers=H), 201)
    ok(client.post(_url(w, "b"), json={"data": {"tier": "bronze"}}, headers=H), 201)
    ok(client.post(_url(w, "a", "mail"), json={"data": {"email": "h@x"}}, headers=H), 201)
    assert ok(client.get(_url(w, "a"), headers=H), 200)["data"] == {"tier": "gold"}
    assert ok(client.get(_url(w, "b"), headers=H), 200)["data"] == {"tier": "bronze"}
    assert ok(client.get(_url(w, "a", "mail"), headers=H), 200)["data"] == {"email": "h@x"}


def test_unknown_customer_is_404(client, w):
    err = error(client.get(_url(w, "nobody"), headers=H), 404, "not_found")
    assert "nobody" in err["message"]


@pytest.mark.parametrize("customer", ["user@example.com", "with space", "ünï", "a+b", "x" * 1024, "a/b", "12345"])
def test_customer_ids_of_any_shape(client, w, customer):
    from urllib.parse import quote
    url = _url(w, quote(customer, safe=""))
    out = ok(client.post(url, json={"data": {"tier": "gold"}}, headers=H), 201)
    assert out["customerId"] == customer
    assert ok(client.get(url, headers=H), 200)["customerId"] == customer


def test_a_customer_id_over_1024_characters_is_refused(client, w):
    error(client.post(_url(w, "x" * 1025), json={"data": {"tier": "gold"}}, headers=H), 400, "invalid_field",
          field="customerId")


def test_unknown_attribute_is_400_naming_the_key_and_nothing_is_written(client, w):
    url = _url(w, "cust-1")
    before = ok(client.post(url, json={"data": {"tier": "gold", "score": 1}}, headers=H), 201)
    err = error(client.post(url, json={"data": {"tier": "silver", "Score": 2}}, headers=H), 400, "invalid_field",
                field="Score")
    assert "'Score'" in err["message"] and "'score'" in err["message"]  # suggests the right case
    assert ok(client.get(url, headers=H), 200) == before  # the valid key of the same write is not applied either
    err = error(client.post(url, json={"data": {"tier": "silver", "email": "x"}}, headers=H), 400, field="email")
    assert "registered" in err["message"]
    assert ok(client.get(url, headers=H), 200) == before


def test_invalid_value_after_valid_ones_writes_nothing(client, w):
    url = _url(w, "cust-1")
    before = ok(client.post(url, json={"data": {"tier": "gold", "score": 1}}, headers=H), 201)
    error(client.post(url, json={"data": {"tier": "silver", "vip": True, "score": "lots"}}, headers=H), 400,
          "invalid_field", field="score")
    assert ok(client.get(url, headers=H), 200) == before
    error(client.post(_url(w, "new"), json={"data": {"tier": "x", "score": "lots"}}, headers=H), 400)
    error(client.get(_url(w, "new"), headers=H), 404)


def test_archived_attribute_is_400_naming_the_key_and_nothing_is_written(client, w):
    attrs = ok(client.get(f"{MGMT}/dcp_datasources/{w['crm']}/dcp_datasource_attributes", headers=H), 200)
    vip = next(a for a in attrs if a["name"] == "vip")
    url = _url(w, "cust-1")
    ok(client.post(url, json={"data": {"tier": "gold", "vip": True}}, headers=H), 201)
    ok(client.delete(f"{MGMT}/dcp_datasource_attributes/{vip['id']}", headers=H), 204)
    err = error(client.post(url, json={"data": {"tier": "silver", "vip": False}}, headers=H), 400, "invalid_field",
                field="vip")
    assert "archived" in err["message"]
    assert ok(client.get(url, headers=H), 200)["data"] == {"tier": "gold"}


@pytest.mark.parametrize(("payload", "field"), [
    ({}, "data"), ({"data": None}, "data"), ({"data": []}, "data"), ({"data": "tier=gold"}, "data"),
    ({"data": {"tier": "gold"}, "customerId": "x"}, "customerId"), ({"tier": "gold"}, "tier"),
])
def test_the_body_must_be_a_data_object(client, w, payload, field):
    error(client.post(_url(w, "cust-1"), json=payload, headers=H), 400, "invalid_field", field=field)
    error(client.get(_url(w, "cust-1"), headers=H), 404)


def test_unknown_or_mismatched_service_and_table_are_404(client, w):
    body = {"data": {"tier": "gold"}}
    error(client.post(profile_url(999999, w["crm"], "c"), json=body, headers=H), 404)
    error(client.post(profile_url(w["s"], 999999, "c"), json=body, headers=H), 404)
    error(client.get(profile_url(w["s"], 999999, "c"), headers=H), 404)
    error(client.post(profile_url(w["crm"], w["s"], "c"), json=body, headers=H), 404)


def test_a_table_of_another_service_is_404():
    app = create_app(Config(max_services_per_account=2))
    try:
        c = app.test_client()
        s1, s2 = create_service(c, H, "one"), create_service(c, H, "two")
        t2 = create_table(c, H, s2["id"])
        create_attribute(c, H, t2["id"], "tier")
        error(c.post(profile_url(s1["id"], t2["id"], "c"), json={"data": {"tier": "x"}}, headers=H), 404)
        ok(c.post(profile_url(s2["id"], t2["id"], "c"), json={"data": {"tier": "x"}}, headers=H), 201)
        error(c.post(f"/api/alias/{s1['id']}/{optimizely_table(c, H, s1['id'])['id']}/u",
                     json={"data": {str(t2["id"]): "c"}}, headers=H), 400, field=str(t2["id"]))
    finally:
        app.extensions["dcp_emulator"].close()


# ---------------------------------------------------------------- PUT and DELETE of a profile
def test_put_merges_like_post_and_answers_202(client, w):
    url = _url(w, "cust-1")
    ok(client.post(url, json={"data": {"tier": "gold", "score": 1}}, headers=H), 201)
    out = ok(client.put(url, json={"data": {"score": "2", "vip": True}}, headers=H), 202)
    assert out == {"data": {"tier": "gold", "score": 2, "vip": True}, "dcpServiceId": str(w["s"]),
                   "datasourceId": str(w["crm"]), "customerId": "cust-1"}
    assert ok(client.put(url, json={"data": {"tier": None}}, headers=H), 202)["data"] == {"score": 2, "vip": True}
    assert ok(client.get(url, headers=H), 200)["data"] == {"score": 2, "vip": True}
    # POST's semantics, creation included: a PUT to a customer without a profile creates it
    assert ok(client.put(_url(w, "new"), json={"data": {"tier": "x"}}, headers=H), 202)["data"] == {"tier": "x"}


def test_a_profile_read_can_be_sent_back_but_its_ids_cannot_be_changed(client, w):
    url = _url(w, "cust-1")
    ok(client.post(url, json={"data": {"tier": "gold"}}, headers=H), 201)
    read = ok(client.get(url, headers=H), 200)
    read["data"]["score"] = 3
    assert ok(client.put(url, json=read, headers=H), 202)["data"] == {"tier": "gold", "score": 3}
    assert ok(client.post(url, json=read, headers=H), 201)["data"] == {"tier": "gold", "score": 3}
    err = error(client.put(url, json={**read, "customerId": "someone-else"}, headers=H), 400, "invalid_field",
                field="customerId")
    assert err["message"] == "customerId is read-only (the emulator sets it); leave it out of the request body."
    error(client.put(url, json={**read, "dcpServiceId": w["s"]}, headers=H), 400, field="dcpServiceId")  # not "…"


def test_put_refuses_what_post_refuses_and_writes_nothing(client, w):
    url = _url(w, "cust-1")
    before = ok(client.post(url, json={"data": {"tier": "gold"}}, headers=H), 201)
    err = error(client.put(url, json={"data": {"tier": "x", "score": "lots"}}, headers=H), 400, "invalid_field",
                field="score")
    assert "Invalid value for attribute 'score'" in err["message"]
    err = error(client.put(url, json={"tier": "x"}, headers=H), 400, "invalid_field", field="tier")
    assert "Unknown field 'tier'" in err["message"]
    assert ok(client.get(url, headers=H), 200) == before


def test_delete_removes_the_profile(client, w):
    url = _url(w, "cust-1")
    ok(client.post(url, json={"data": {"tier": "gold", "score": 1}}, headers=H), 201)
    ok(client.post(_url(w, "cust-2"), json={"data": {"tier": "silver"}}, headers=H), 201)
    resp = client.delete(url, headers=H)
    assert resp.status_code == 204 and resp.get_data() == b""
    err = error(client.get(url, headers=H), 404, "not_found")
    assert err["message"] == f"No profile for customer 'cust-1' in table {w['crm']}."
    assert ok(client.get(_url(w, "cust-2"), headers=H), 200)["data"] == {"tier": "silver"}  # only that one
    err = error(client.delete(url, headers=H), 404, "not_found")  # a second DELETE: nothing left to delete
    assert err["message"] == f"No profile for customer 'cust-1' in table {w['crm']}."


def test_delete_of_an_unknown_customer_service_or_table_is_404(client, w):
    err = error(client.delete(_url(w, "nobody"), headers=H), 404, "not_found")
    assert err["message"] == f"No profile for customer 'nobody' in table {w['crm']}."
    err = error(client.delete(profile_url(999999, w["crm"], "c"), headers=H), 404, "not_found")
    assert err["message"] == "No DCP service with id 999999 in this account."
    err = error(client.delete(profile_url(w["s"], 999999, "c"), headers=H), 404, "not_found")
    assert err["message"] == f"No table (datasource) with id 999999 in DCP service {w['s']}."
    err = error(client.delete(_url(w, "x" * 1025), headers=H), 400, "invalid_field", field="customerId")
    assert "1 to 1024 characters" in err["message"]


def test_delete_then_post_starts_a_fresh_profile(client, w):
    url = _url(w, "cust-1")
    ok(client.post(url, json={"data": {"tier": "gold", "score": 1, "vip": True}}, headers=H), 201)
    ok(client.delete(url, headers=H), 204)
    assert ok(client.post(url, json={"data": {"score": 5}}, headers=H), 201)["data"] == {"score": 5}
    assert ok(client.get(url, headers=H), 200)["data"] == {"score": 5}  # no old value came back


def test_put_and_delete_of_a_profile_in_an_archived_table_or_service_are_400(client, w):
    url = _url(w, "cust-1")
    ok(client.post(url, json={"data": {"tier": "gold"}}, headers=H), 201)
    ok(client.delete(f"{MGMT}/dcp_datasources/{w['crm']}", headers=H), 204)
    for resp in (client.put(url, json={"data": {"tier": "x"}}, headers=H), client.delete(url, headers=H)):
        err = error(resp, 400, "archived")
        assert err["message"] == f"Table {w['crm']} is archived; archived tables can be read but not written."
    ok(client.put(f"{MGMT}/dcp_datasources/{w['crm']}", json={"archived": False}, headers=H), 202)
    ok(client.delete(f"{MGMT}/dcp_services/{w['s']}", headers=H), 204)
    for resp in (client.put(url, json={"data": {"tier": "x"}}, headers=H), client.delete(url, headers=H)):
        err = error(resp, 400, "archived")
        assert err["message"] == (f"DCP service {w['s']} is archived; its tables can be read but not written.")
    assert ok(client.get(url, headers=H), 200)["data"] == {"tier": "gold"}  # neither was applied


def test_aliases_to_a_deleted_profile_stay_and_resolve_to_no_data(client, w):
    ok(client.post(_url(w, "oeu-1", "opt"), json={"data": {"segment": "new"}}, headers=H), 201)
    ok(client.post(_url(w, "cust-1"), json={"data": {"tier": "gold"}}, headers=H), 201)
    ok(client.post(_url(w, "m-1", "mail"), json={"data": {"email": "h@x"}}, headers=H), 201)
    links = {str(w["crm"]): "cust-1", str(w["mail"]): "m-1"}
    ok(client.post(_alias(w), json={"data": links}, headers=H), 201)
    ok(client.delete(_url(w, "cust-1"), headers=H), 204)
    view = ok(client.get(f"/api/consolidatedCustomerView/{w['s']}/oeu-1", headers=H), 200)
    assert sorted((v["datasourceId"], v["customerId"]) for v in view) == sorted(
        [(str(w["opt"]), "oeu-1"), (str(w["mail"]), "m-1")])
    assert ok(client.get(_alias(w), headers=H), 200)["data"] == links  # the alias rows themselves stay
    ok(client.delete(_url(w, "oeu-1", "opt"), headers=H), 204)  # the user's own Optimizely profile too
    view = ok(client.get(f"/api/consolidatedCustomerView/{w['s']}/{w['opt']}/oeu-1", headers=H), 200)
    assert [(v["datasourceId"], v["customerId"]) for v in view] == [(str(w["mail"]), "m-1")]


def test_a_bulk_upload_after_a_delete_stores_the_profile_afresh(client, w):
    from bulk_helpers import upload

    url = _url(w, "cust-1")
    ok(client.post(url, json={"data": {"tier": "gold", "vip": True}}, headers=H), 201)
    ok(client.delete(url, headers=H), 204)
    crm = ok(client.get(f"{MGMT}/dcp_datasources/{w['crm']}", headers=H), 200)
    up = upload(client, crm, "after-delete.csv", "customerId,score\ncust-1,9\ncust-2,3\n")
    assert (up["status"], up["rows_stored"]) == ("succeeded", 2), up
    assert ok(client.get(url, headers=H), 200)["data"] == {"score": 9}


def test_the_dashboard_lists_what_is_left_after_a_delete(client, w):
    for customer in ("cust-1", "cust-2"):
        ok(client.post(_url(w, customer), json={"data": {"tier": "gold"}}, headers=H), 201)
    ok(client.delete(_url(w, "cust-1"), headers=H), 204)
    page = client.get(f"/_emulator/ui/tables/{w['crm']}/profiles")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "cust-2" in html and "cust-1" not in html


# ---------------------------------------------------------------- aliases
def _alias(w, user: str = "oeu-1") -> str:
    return f"/api/alias/{w['s']}/{w['opt']}/{user}"


def test_write_and_read_an_alias(client, w):
    out = ok(client.post(_alias(w), json={"data": {str(w["crm"]): "cust-1", str(w["mail"]): "m-1"}}, headers=H), 201)
    assert out == {"dcpServiceId": str(w["s"]), "datasourceId": str(w["opt"]), "customerId": "oeu-1",
                   "data": {str(w["crm"]): "cust-1", str(w["mail"]): "m-1"}}
    assert ok(client.get(_alias(w), headers=H), 200) == out


def test_a_new_alias_for_the_same_table_replaces_the_old_one(client, w):
    ok(client.post(_alias(w), json={"data": {str(w["crm"]): "cust-1", str(w["mail"]): "m-1"}}, headers=H), 201)
    out = ok(client.post(_alias(w), json={"data": {str(w["crm"]): "cust-2"}}, headers=H), 201)
    assert out["data"] == {str(w["crm"]): "cust-2", str(w["mail"]): "m-1"}
    out = ok(client.post(_alias(w), json={"data": {str(w["mail"]): None}}, headers=H), 201)  # null removes
    assert out["data"] == {str(w["crm"]): "cust-2"}


def test_integer_table_keys_and_customer_ids(client, w):
    out = ok(client.post(_alias(w), json={"data": {str(w["crm"]): 12345}}, headers=H), 201)
    assert out["data"] == {str(w["crm"]): "12345"}


def test_unknown_user_alias_is_404(client, w):
    error(client.get(_alias(w, "nobody"), headers=H), 404, "not_found")


def test_the_url_table_must_be_the_optimizely_table(client, w):
    err = error(client.post(f"/api/alias/{w['s']}/{w['crm']}/oeu-1", json={"data": {str(w["mail"]): "m"}},
                            headers=H), 400, "invalid_field")
    assert "Optimizely table" in err["message"] and str(w["opt"]) in err["message"]
    error(client.get(f"/api/alias/{w['s']}/{w['crm']}/oeu-1", headers=H), 400, "invalid_field")


@pytest.mark.parametrize(("key", "value", "code"), [
    ("999999", "c", "invalid_field"), ("crm-table", "c", "invalid_field"), ("opt", "c", "invalid_field"),
    ("crm", "", "invalid_field"), ("crm", ["c"], "invalid_field"), ("crm", {"c": 1}, "invalid_field"),
    ("crm", True, "invalid_field"),
])
def test_alias_keys_must_be_other_tables_of_the_service(client, w, key, value, code):
    key = str(w[key]) if key in w else key
    ok(client.post(_alias(w), json={"data": {str(w["mail"]): "m-1"}}, headers=H), 201)
    error(client.post(_alias(w), json={"data": {str(w["crm"]): "c-9", key: value}}, headers=H), 400, code, field=key)
    # nothing of the refused write was applied
    assert ok(client.get(_alias(w), headers=H), 200)["data"] == {str(w["mail"]): "m-1"}


def test_alias_to_an_archived_table_is_refused(client, w):
    ok(client.delete(f"{MGMT}/dcp_datasources/{w['mail']}", headers=H), 204)
    error(client.post(_alias(w), json={"data": {str(w["mail"]): "m-1"}}, headers=H), 400, "archived",
          field=str(w["mail"]))


@pytest.mark.parametrize("payload", [{}, {"data": None}, {"data": ["x"]}, {"data": {}, "more": 1}])
def test_alias_body_must_be_a_data_object(client, w, payload):
    error(client.post(_alias(w), json=payload, headers=H), 400, "invalid_field")


# ---------------------------------------------------------------- consolidated customer view
def test_consolidated_view_in_both_url_forms(client, w):
    ok(client.post(_url(w, "oeu-1", "opt"), json={"data": {"segment": "returning"}}, headers=H), 201)
    ok(client.post(_url(w, "cust-1"), json={"data": {"tier": "gold", "score": 5}}, headers=H), 201)
    ok(client.post(_url(w, "m-1", "mail"), json={"data": {"email": "h@x"}}, headers=H), 201)
    ok(client.post(_url(w, "cust-2"), json={"data": {"tier": "other customer"}}, headers=H), 201)
    ok(client.post(_alias(w), json={"data": {str(w["crm"]): "cust-1", str(w["mail"]): "m-1"}}, headers=H), 201)
    two = ok(client.get(f"/api/consolidatedCustomerView/{w['s']}/oeu-1", headers=H), 200)
    three = ok(client.get(f"/api/consolidatedCustomerView/{w['s']}/{w['opt']}/oeu-1", headers=H), 200)
    assert two == three
    assert all(set(v) == PROFILE_KEYS for v in two)
    assert sorted((v["datasourceId"], v["customerId"], tuple(sorted(v["data"].items()))) for v in two) == sorted([
        (str(w["opt"]), "oeu-1", (("segment", "returning"),)),
        (str(w["crm"]), "cust-1", (("score", 5), ("tier", "gold"))),
        (str(w["mail"]), "m-1", (("email", "h@x"),)),
    ])
    assert {v["dcpServiceId"] for v in two} == {str(w["s"])}


def test_consolidated_view_leaves_out_aliases_without_data(client, w):
    ok(client.post(_url(w, "cust-1"), json={"data": {"tier": "gold"}}, headers=H), 201)
    ok(client.post(_alias(w), json={"data": {str(w["crm"]): "cust-1", str(w["mail"]): "no-profile"}}, headers=H), 201)
    view = ok(client.get(f"/api/consolidatedCustomerView/{w['s']}/oeu-1", headers=H), 200)
    assert [(v["datasourceId"], v["customerId"]) for v in view] == [(str(w["crm"]), "cust-1")]


def test_consolidated_view_hides_archived_attributes(client, w):
    ok(client.post(_url(w, "cust-1"), json={"data": {"tier": "gold", "vip": True}}, headers=H), 201)
    ok(client.post(_alias(w), json={"data": {str(w["crm"]): "cust-1"}}, headers=H), 201)
    attrs = ok(client.get(f"{MGMT}/dcp_datasources/{w['crm']}/dcp_datasource_attributes", headers=H), 200)
    ok(client.delete(f"{MGMT}/dcp_datasource_attributes/{next(a['id'] for a in attrs if a['name'] == 'vip')}",
                     headers=H), 204)
    view = ok(client.get(f"/api/consolidatedCustomerView/{w['s']}/oeu-1", headers=H), 200)
    assert [v["data"] for v in view] == [{"tier": "gold"}]


def test_consolidated_view_of_an_unknown_user_is_an_empty_list(client, w):
    assert ok(client.get(f"/api/consolidatedCustomerView/{w['s']}/nobody", headers=H), 200) == []
    assert ok(client.get(f"/api/consolidatedCustomerView/{w['s']}/{w['opt']}/nobody/", headers=H), 200) == []


def test_consolidated_view_refusals(client, w):
    error(client.get("/api/consolidatedCustomerView/999999/oeu-1", headers=H), 404)
    err = error(client.get(f"/api/consolidatedCustomerView/{w['s']}/{w['crm']}/oeu-1", headers=H), 400,
                "invalid_field")
    assert "Optimizely table" in err["message"]


def test_user_ids_with_a_slash_work_in_both_view_forms(client, w):
    ok(client.post(_url(w, "a/b", "opt"), json={"data": {"segment": "slashed"}}, headers=H), 201)
    for url in (f"/api/consolidatedCustomerView/{w['s']}/a%2Fb", f"/api/consolidatedCustomerView/{w['s']}/a%2Fb/",
                f"/api/consolidatedCustomerView/{w['s']}/{w['opt']}/a%2Fb"):
        view = ok(client.get(url, headers=H), 200)
        assert [(v["customerId"], v["data"]) for v in view] == [("a/b", {"segment": "slashed"})], url


def test_ids_that_are_not_utf8_are_refused_not_merged(client, w):
    # %ff and %fe would both decode to U+FFFD: two different ids must not land on one profile
    for url in (_url(w, "%ff"), _url(w, "%fe")):
        error(client.post(url, json={"data": {"tier": "x"}}, headers=H), 400, "invalid_field", field="customerId")
    error(client.get(f"/api/consolidatedCustomerView/{w['s']}/%ff", headers=H), 400, "invalid_field")
    ok(client.post(_url(w, "caf%C3%A9"), json={"data": {"tier": "ok"}}, headers=H), 201)  # real UTF-8 is fine
    assert ok(client.get(_url(w, "café"), headers=H), 200)["customerId"] == "café"


def test_a_table_with_many_attributes(client, w, app):
    """Each attribute is a column of the table's profile table; 150 of them (JSON view built in parts) work."""
    names = [f"n{i}" for i in range(150)]
    for i, name in enumerate(names):
        create_attribute(client, H, w["crm"], name, "bool" if i % 2 else "long")
    data = {name: (i % 4 == 1) if i % 2 else i for i, name in enumerate(names)}
    assert ok(client.post(_url(w, "many"), json={"data": data}, headers=H), 201)["data"] == data
    stored = app.extensions["dcp_emulator"].store.db.execute(
        "SELECT data FROM profiles WHERE datasource_id = ? AND customer_id = 'many'", (w["crm"],)).fetchone()[0]
    assert len(json.loads(stored)) == 150


def test_attributes_per_table_are_bounded(client, w, monkeypatch):
    from dcp_emulator.store import management

    monkeypatch.setattr(management, "MAX_ATTRIBUTES_PER_TABLE", 4)  # the CRM table has 3
    create_attribute(client, H, w["crm"], "fourth")
    resp = client.post(f"{MGMT}/dcp_datasources/{w['crm']}/dcp_datasource_attributes",
                       json={"name": "fifth", "datatype": "string"}, headers=H)
    assert error(resp, 400)["code"] == "limit_exceeded"


def test_a_reset_cannot_land_between_a_profile_writes_checks_and_its_write(app, client, w, monkeypatch):
    """A reset from another thread waits for the whole write (checks, validation, upsert): it used to
    land in between and give a 500 (KeyError) or leave a row in a table the reset had removed."""
    import threading

    from dcp_emulator.store import profiles as store_module

    emulator = app.extensions["dcp_emulator"]
    emulator.save_snapshot("no-crm-yet")
    ok(client.post(f"{MGMT}/dcp_datasources/{w['crm']}/dcp_datasource_attributes",
                   json={"name": "late", "datatype": "long"}, headers=H), 201)  # not in the snapshot
    reset_done = threading.Event()
    real_patch = store_module.profile_patch

    def patch_then_race(attributes, data):
        resetter = threading.Thread(target=lambda: (emulator.reset("no-crm-yet"), reset_done.set()))
        resetter.start()
        assert not reset_done.wait(0.3)  # blocked: the write holds the store until it is complete
        return real_patch(attributes, data)

    monkeypatch.setattr(store_module, "profile_patch", patch_then_race)
    resp = client.post(_url(w, "cust-1"), json={"data": {"late": 5}}, headers=H)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["data"] == {"late": 5}
    assert reset_done.wait(10)  # ... and then the reset ran, to the snapshot without the attribute
    monkeypatch.setattr(store_module, "profile_patch", real_patch)
    names = [a["name"] for a in ok(client.get(f"{MGMT}/dcp_datasources/{w['crm']}/dcp_datasource_attributes",
                                               headers=H), 200)]
    assert "late" not in names
    error(client.get(_url(w, "cust-1"), headers=H), 404)
