"""The authentication matrix and account isolation."""

from __future__ import annotations

import datetime as dt

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

from dcp_emulator.app import DEFAULT_TOKENS

CLASSIC = {"Token": DEFAULT_TOKENS["classic"]}
OAUTH = {"Authorization": f"Bearer {DEFAULT_TOKENS['oauth']}"}
PERSONAL = {"Authorization": f"Bearer {DEFAULT_TOKENS['personal']}"}


def _store(app):
    return app.extensions["dcp_emulator"].store


def _iso(delta: dt.timedelta) -> str:
    return (dt.datetime.now(dt.UTC) + delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def world(client):
    """A service with a table, an attribute, a profile, an alias and a project, all of the default account."""
    s = create_service(client, CLASSIC)
    t = create_table(client, CLASSIC, s["id"])
    opt = optimizely_table(client, CLASSIC, s["id"])
    a = create_attribute(client, CLASSIC, t["id"], "tier")
    ok(client.post(profile_url(s["id"], t["id"], "c1"), json={"data": {"tier": "gold"}}, headers=CLASSIC), 201)
    ok(client.post(f"/api/alias/{s['id']}/{opt['id']}/u1", json={"data": {str(t["id"]): "c1"}}, headers=CLASSIC), 201)
    p = ok(client.post(f"{MGMT}/projects", json={"project_name": "P", "dcp_service_id": s["id"]}, headers=CLASSIC), 201)
    return {"service": s, "table": t, "opt": opt, "attribute": a, "project": p}


def _reads(w: dict) -> list[str]:
    s, t, o, a, p = (w[k]["id"] for k in ("service", "table", "opt", "attribute", "project"))
    return [f"{MGMT}/dcp_services/{s}", f"{MGMT}/dcp_services/{s}/dcp_datasources", f"{MGMT}/dcp_datasources/{t}",
            f"{MGMT}/dcp_datasources/{t}/dcp_datasource_attributes", f"{MGMT}/dcp_datasource_attributes/{a}",
            f"{MGMT}/projects/{p}", profile_url(s, t, "c1"), f"/api/alias/{s}/{o}/u1",
            f"/api/consolidatedCustomerView/{s}/u1", f"/api/consolidatedCustomerView/{s}/{o}/u1"]


def _writes(w: dict) -> list[tuple[str, str, dict | None]]:
    s, t, o, a, p = (w[k]["id"] for k in ("service", "table", "opt", "attribute", "project"))
    return [("PUT", f"{MGMT}/dcp_services/{s}", {"name": "x"}),
            ("POST", f"{MGMT}/dcp_services/{s}/dcp_datasources", {"name": "T", "keyfield_locator_type": "uid"}),
            ("PUT", f"{MGMT}/dcp_datasources/{t}", {"name": "x"}),
            ("POST", f"{MGMT}/dcp_datasources/{t}/dcp_datasource_attributes", {"name": "n", "datatype": "long"}),
            ("PUT", f"{MGMT}/dcp_datasource_attributes/{a}", {"description": "x"}),
            ("PUT", f"{MGMT}/projects/{p}", {"project_name": "x"}),
            ("POST", profile_url(s, t, "c1"), {"data": {"tier": "x"}}),
            ("POST", f"/api/alias/{s}/{o}/u1", {"data": {str(t): "c2"}}),
            ("DELETE", f"{MGMT}/dcp_datasource_attributes/{a}", None),
            ("DELETE", f"{MGMT}/dcp_datasources/{t}", None),
            ("DELETE", f"{MGMT}/dcp_services/{s}", None)]


# ---------------------------------------------------------------- accepted credentials
@pytest.mark.parametrize("headers", [CLASSIC, OAUTH], ids=["classic Token header", "OAuth Bearer"])
def test_classic_and_oauth_tokens_reach_every_route(client, world, headers):
    for path in _reads(world):
        ok(client.get(path, headers=headers), 200)
    ok(client.get(f"{MGMT}/dcp_services", headers=headers), 200)
    ok(client.get(f"{MGMT}/projects", headers=headers), 200)


def test_an_oauth_token_that_expires_later_is_accepted(app, client):
    _store(app).credentials.create_token("fresh-oauth", "oauth", 1001, expires_at=_iso(dt.timedelta(hours=1)))
    ok(client.get(f"{MGMT}/dcp_services", headers={"Authorization": "Bearer fresh-oauth"}), 200)


# ---------------------------------------------------------------- refused credentials
@pytest.mark.parametrize("headers", [PERSONAL, {"Token": DEFAULT_TOKENS["personal"]}],
                         ids=["as Bearer", "as Token header"])
def test_personal_tokens_are_refused_with_a_message_about_personal_tokens(client, world, headers):
    for path in _reads(world):
        err = error(client.get(path, headers=headers), 403, "personal_token_not_accepted")
        assert "personal tokens" in err["message"] and "classic" in err["message"]


def test_no_credentials_is_401_on_every_route(client, world):
    for path in _reads(world) + [f"{MGMT}/dcp_services", f"{MGMT}/projects"]:
        err = error(client.get(path), 401, "unauthorized")
        assert "Token:" in err["message"]
    for method, path, payload in _writes(world):
        error(client.open(path, method=method, json=payload), 401, "unauthorized")
    # nothing was changed by the refused writes
    assert ok(client.get(profile_url(world["service"]["id"], world["table"]["id"], "c1"), headers=CLASSIC),
              200)["data"] == {"tier": "gold"}
    assert ok(client.get(f"{MGMT}/dcp_services/{world['service']['id']}", headers=CLASSIC), 200)["archived"] is False


@pytest.mark.parametrize("name", ["token", "access_token", "api_token", "Token"])
def test_a_token_in_the_query_string_is_401(client, name):
    err = error(client.get(f"{MGMT}/dcp_services?{name}={DEFAULT_TOKENS['classic']}"), 401, "unauthorized")
    assert "header" in err["message"]


def test_a_token_in_the_body_is_401(client):
    error(client.post(f"{MGMT}/dcp_services", json={"name": "S", "token": DEFAULT_TOKENS["classic"]}), 401)
    err = error(client.post(f"{MGMT}/dcp_services", data={"token": DEFAULT_TOKENS["classic"], "name": "S"}), 401)
    assert "header" in err["message"]
    assert ok(client.get(f"{MGMT}/dcp_services", headers=CLASSIC), 200) == []


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Token abc", "abc"])
def test_unsupported_authorization_headers_are_401(client, authorization):
    error(client.get(f"{MGMT}/dcp_services", headers={"Authorization": authorization}), 401, "unauthorized")


@pytest.mark.parametrize("headers", [{"Token": "no-such-token"}, {"Authorization": "Bearer no-such-token"},
                                     {"Token": DEFAULT_TOKENS["classic"].upper()}])
def test_unknown_tokens_are_403_authentication_failed(client, headers):
    err = error(client.get(f"{MGMT}/dcp_services", headers=headers), 403, "authentication_failed")
    assert err["message"].startswith("Authentication Failed")


def test_revoked_tokens_are_403(app, client):
    _store(app).credentials.revoke_token(DEFAULT_TOKENS["classic"])
    err = error(client.get(f"{MGMT}/dcp_services", headers=CLASSIC), 403, "authentication_failed")
    assert "revoked" in err["message"]
    ok(client.get(f"{MGMT}/dcp_services", headers=OAUTH), 200)  # the other tokens still work


def test_expired_oauth_tokens_are_403(app, client):
    _store(app).credentials.create_token("old-oauth", "oauth", 1001, expires_at=_iso(-dt.timedelta(seconds=1)))
    err = error(client.get(f"{MGMT}/dcp_services", headers={"Authorization": "Bearer old-oauth"}), 403,
                "authentication_failed")
    assert "expired at" in err["message"] and "refresh_token" in err["message"]  # says when, and how to recover


def test_the_control_plane_needs_no_token(client):
    ok(client.get("/_emulator/health"), 200)
    ok(client.get("/_emulator/info"), 200)


# ---------------------------------------------------------------- account isolation
@pytest.fixture
def other_account(app):
    """A second account with its own classic token, created directly in the store."""
    store = _store(app)
    account = store.credentials.create_account(name="Other account")
    store.credentials.create_token("other-classic-token", "classic", account["id"])
    return {"Token": "other-classic-token"}


def test_another_accounts_resources_are_404(client, world, other_account):
    assert ok(client.get(f"{MGMT}/dcp_services", headers=other_account), 200) == []
    assert ok(client.get(f"{MGMT}/projects", headers=other_account), 200) == []
    for path in _reads(world):
        err = error(client.get(path, headers=other_account), 404, "not_found")
        assert "this account" in err["message"] or "No " in err["message"]
    for method, path, payload in _writes(world):
        error(client.open(path, method=method, json=payload, headers=other_account), 404, "not_found")
    # the owner's data is untouched
    s, t = world["service"]["id"], world["table"]["id"]
    assert ok(client.get(profile_url(s, t, "c1"), headers=CLASSIC), 200)["data"] == {"tier": "gold"}
    assert ok(client.get(f"{MGMT}/dcp_services/{s}", headers=CLASSIC), 200) == world["service"]
    assert ok(client.get(f"{MGMT}/dcp_datasources/{t}", headers=CLASSIC), 200)["name"] == "CRM"


def test_404_for_another_account_is_the_same_as_for_nothing(client, world, other_account):
    """No existence leak: another account's id and a free id get the same answer."""
    mine = error(client.get(f"{MGMT}/dcp_services/{world['service']['id']}", headers=other_account), 404)
    free = error(client.get(f"{MGMT}/dcp_services/{world['service']['id'] + 100000}", headers=other_account), 404)
    assert mine["message"].replace(str(world["service"]["id"]), "N") == \
        free["message"].replace(str(world["service"]["id"] + 100000), "N")


def test_linking_another_accounts_service_is_refused(client, world, other_account):
    p = ok(client.post(f"{MGMT}/projects", json={"project_name": "Theirs"}, headers=other_account), 201)
    err = error(client.put(f"{MGMT}/projects/{p['id']}", json={"dcp_service_id": world["service"]["id"]},
                           headers=other_account), 400, "invalid_field", field="dcp_service_id")
    assert "this account" in err["message"]
    error(client.post(f"{MGMT}/projects", json={"project_name": "X", "dcp_service_id": world["service"]["id"]},
                      headers=other_account), 400, "invalid_field", field="dcp_service_id")


def test_the_service_limit_is_per_account(client, world, other_account):
    theirs = create_service(client, other_account, "Theirs")
    assert theirs["account_id"] != world["service"]["account_id"]
    assert [s["id"] for s in ok(client.get(f"{MGMT}/dcp_services", headers=CLASSIC), 200)] == [world["service"]["id"]]


def test_aliases_cannot_point_at_another_accounts_table(client, world, other_account):
    theirs = create_service(client, other_account, "Theirs")
    their_table = create_table(client, other_account, theirs["id"])
    s, o = world["service"]["id"], world["opt"]["id"]
    error(client.post(f"/api/alias/{s}/{o}/u1", json={"data": {str(their_table["id"]): "c9"}}, headers=CLASSIC),
          400, "invalid_field", field=str(their_table["id"]))
