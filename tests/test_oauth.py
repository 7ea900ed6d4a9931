"""OAuth 2.0 through HTTP, driven by a real OAuth client (requests-oauthlib): authorize, exchange, call
the APIs, expire, refresh, revoke; the implicit grant; and every refusal with its exact error."""

from __future__ import annotations

import html
import os
import pathlib
import re
import shutil
import subprocess
import sys
import urllib.parse

import pytest
import requests
from oauthlib.oauth2 import MobileApplicationClient
from oauthlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidClientError, InvalidGrantError
from requests_oauthlib import OAuth2Session

from dcp_emulator.cli import build_parser
from dcp_emulator.config import Config
from dcp_emulator.pytest_plugin import DcpEmulator, DcpEmulatorError
from dcp_emulator.server import EmulatorServer

CALLBACK = "https://partner.example/oauth/callback"


@pytest.fixture(autouse=True)
def _plain_http(monkeypatch):
    """oauthlib refuses http:// endpoints unless told this is a local test server."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def start(emu, app: dict, redirect_uri: str = CALLBACK, **kwargs) -> tuple[OAuth2Session, str]:
    """The partner sends the user to the authorization URL; returns its session and the consent page's id."""
    session = OAuth2Session(app["client_id"], redirect_uri=redirect_uri, scope=["all"], **kwargs)
    url, _state = session.authorization_url(emu.authorize_url)
    page = requests.get(url, allow_redirects=False, timeout=10)
    assert page.status_code == 200, page.text
    assert app["name"] in page.text and 'value="accept"' in page.text
    return session, page.headers["X-Dcp-Emulator-Authorization"]


def connect(emu, app: dict) -> tuple[OAuth2Session, dict]:
    """The whole code grant, the user accepting headless: the partner's session with its token."""
    session, authorization = start(emu, app)
    redirect_to = emu.decide_authorization(authorization)["redirect_to"]
    token = session.fetch_token(emu.token_url, authorization_response=redirect_to, client_secret=app["client_secret"])
    return session, token


def token_post(emu, **params) -> requests.Response:
    return requests.post(emu.token_url, data=params, timeout=10)


def oauth_error(resp: requests.Response, status: int, error: str, description: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert (body["error"], body["error_description"]) == (error, description)
    assert resp.headers["Cache-Control"] == "no-store"


def api_error(resp: requests.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    assert resp.json()["code"] == code
    return resp.json()["message"]


# ---------------------------------------------------------------------- the whole flow
def test_code_grant_exchange_and_api_call(dcp_emulator):
    app = dcp_emulator.oauth_app(name="Acme Sync")
    session, token = connect(dcp_emulator, app)
    assert token["expires_in"] == 7200 and token["token_type"] == "bearer" and token["refresh_token"]
    assert session.get(f"{dcp_emulator.rest_api_url}/dcp_services", timeout=10).status_code == 200
    assert session.get(f"{dcp_emulator.profile_api_url}/customer_profile/1/2/x", timeout=10).status_code == 404
    stored = {t["token"]: t for a in dcp_emulator.state()["accounts"] for t in a["tokens"]}
    assert stored[token["access_token"]]["client_id"] == app["client_id"]
    assert stored[token["access_token"]]["refresh_token"] == token["refresh_token"]


def test_parameters_in_the_query_string_as_the_vendor_documents(dcp_emulator):
    app = dcp_emulator.oauth_app()
    code = dcp_emulator.authorize(app)
    query = {"code": code, "client_id": app["client_id"], "client_secret": app["client_secret"],
             "redirect_uri": CALLBACK, "grant_type": "authorization_code"}
    resp = requests.post(dcp_emulator.token_url + "?" + urllib.parse.urlencode(query), timeout=10)
    assert resp.status_code == 200 and set(resp.json()) == {"access_token", "expires_in", "token_type",
                                                            "refresh_token"}
    refreshed = requests.post(dcp_emulator.token_url + "?" + urllib.parse.urlencode({
        "refresh_token": resp.json()["refresh_token"], "client_id": app["client_id"],
        "client_secret": app["client_secret"], "grant_type": "refresh_token"}), timeout=10)
    assert refreshed.status_code == 200 and set(refreshed.json()) == {"access_token", "expires_in", "token_type"}


def test_authorization_request_as_a_form_body(dcp_emulator):
    app = dcp_emulator.oauth_app(name="Form poster")
    resp = requests.post(dcp_emulator.authorize_url, timeout=10, data={
        "client_id": app["client_id"], "redirect_uri": CALLBACK, "response_type": "code", "scopes": "all"})
    assert resp.status_code == 200 and "Authorize <span id=\"app-name\">Form poster</span>" in resp.text
    assert [p["id"] for p in dcp_emulator.pending_authorizations()] == [resp.headers["X-Dcp-Emulator-Authorization"]]


def test_client_credentials_in_the_form_body(dcp_emulator):
    app = dcp_emulator.oauth_app()
    session, authorization = start(dcp_emulator, app)
    redirect_to = dcp_emulator.decide_authorization(authorization)["redirect_to"]
    token = session.fetch_token(dcp_emulator.token_url, authorization_response=redirect_to, include_client_id=True,
                                client_secret=app["client_secret"])
    assert token["access_token"]


def test_expiry_after_7200_s_then_refresh(dcp_emulator):
    app = dcp_emulator.oauth_app()
    session, token = connect(dcp_emulator, app)
    url = f"{dcp_emulator.rest_api_url}/dcp_services"
    dcp_emulator.advance_clock(7199)
    assert session.get(url, timeout=10).status_code == 200
    dcp_emulator.advance_clock(1)
    message = api_error(session.get(url, timeout=10), 403, "authentication_failed")
    expires_at = next(t["expires_at"] for a in dcp_emulator.state()["accounts"] for t in a["tokens"]
                      if t["token"] == token["access_token"])
    assert f"the OAuth access token expired at {expires_at}" in message and "grant_type=refresh_token" in message
    new = session.refresh_token(dcp_emulator.token_url, client_id=app["client_id"],
                                client_secret=app["client_secret"])
    assert new["access_token"] != token["access_token"] and new["expires_in"] == 7200
    assert new["refresh_token"] == token["refresh_token"]  # the grant's refresh token lives on (kept by the client)
    assert session.get(url, timeout=10).status_code == 200


def test_revocation_refuses_access_tokens_everywhere_and_the_refresh_token(dcp_emulator):
    app = dcp_emulator.oauth_app()
    session, token = connect(dcp_emulator, app)
    other = dcp_emulator.oauth_app(name="Unrelated app")
    _, other_token = connect(dcp_emulator, other)
    assert dcp_emulator.revoke_oauth_app(app) == {"client_id": app["client_id"], "account_id": 1001,
                                                  "revoked_tokens": 1, "revoked_codes": 0}
    for url in (f"{dcp_emulator.rest_api_url}/dcp_services", f"{dcp_emulator.profile_api_url}/customer_profile/1/2/someone"):
        assert api_error(session.get(url, timeout=10), 403, "authentication_failed") == \
            "Authentication Failed: the token has been revoked."
    resp = token_post(dcp_emulator, grant_type="refresh_token", refresh_token=token["refresh_token"],
                      client_id=app["client_id"], client_secret=app["client_secret"])
    oauth_error(resp, 403, "invalid_grant", "The user revoked this application's access to the account; send them "
                                            "through the authorization flow again.")
    with pytest.raises(InvalidGrantError):
        session.refresh_token(dcp_emulator.token_url, client_id=app["client_id"], client_secret=app["client_secret"])
    # Another application's access is untouched, and the user may authorize the revoked one again.
    assert requests.get(f"{dcp_emulator.rest_api_url}/dcp_services", timeout=10,
                        headers={"Authorization": f"Bearer {other_token['access_token']}"}).status_code == 200
    again, _ = connect(dcp_emulator, app)
    assert again.get(f"{dcp_emulator.rest_api_url}/dcp_services", timeout=10).status_code == 200


def test_revocation_withdraws_unused_codes(dcp_emulator):
    app = dcp_emulator.oauth_app()
    code = dcp_emulator.authorize(app)
    assert dcp_emulator.revoke_oauth_app(app)["revoked_codes"] == 1
    resp = token_post(dcp_emulator, grant_type="authorization_code", code=code, redirect_uri=CALLBACK,
                      client_id=app["client_id"], client_secret=app["client_secret"])
    oauth_error(resp, 400, "invalid_grant", "The authorization code was already used (codes are single-use); "
                                            "the tokens issued for it are revoked.")


def test_implicit_grant_puts_the_token_in_the_fragment(dcp_emulator):
    app = dcp_emulator.oauth_app(name="Browser widget", client_type="public")
    assert "client_secret" not in app
    session, authorization = start(dcp_emulator, app, client=MobileApplicationClient(app["client_id"]))
    outcome = dcp_emulator.decide_authorization(authorization)
    redirect_to = outcome["redirect_to"]
    parts = urllib.parse.urlsplit(redirect_to)
    assert redirect_to.startswith(CALLBACK + "#") and not parts.query
    fragment = dict(urllib.parse.parse_qsl(parts.fragment))
    assert set(fragment) == {"access_token", "token_type", "state", "expires_in"}
    assert (fragment["token_type"], fragment["expires_in"]) == ("bearer", "7200")
    token = session.token_from_fragment(redirect_to)  # oauthlib checks the state too
    assert "refresh_token" not in token
    assert session.get(f"{dcp_emulator.rest_api_url}/dcp_services", timeout=10).status_code == 200


def test_fixture_authorize_returns_the_code_or_the_fragment(dcp_emulator):
    app = dcp_emulator.oauth_app()
    code = dcp_emulator.authorize(app, state="s1")
    assert isinstance(code, str) and code
    fragment = dcp_emulator.authorize(app, response_type="token", state="s2")
    assert fragment["state"] == "s2" and fragment["token_type"] == "bearer"
    assert dcp_emulator.authorize(app, accept=False, state="s3") == {"error": "access_denied", "state": "s3"}


@pytest.mark.parametrize("response_type", ["code", "token"])
def test_deny_sends_access_denied_in_the_query_or_fragment(dcp_emulator, response_type):
    app = dcp_emulator.oauth_app()
    client = MobileApplicationClient(app["client_id"]) if response_type == "token" else None
    session, authorization = start(dcp_emulator, app, client=client)
    redirect_to = dcp_emulator.decide_authorization(authorization, accept=False)["redirect_to"]
    parts = urllib.parse.urlsplit(redirect_to)
    carried = parts.fragment if response_type == "token" else parts.query
    assert (parts.query if response_type == "token" else parts.fragment) == ""
    assert dict(urllib.parse.parse_qsl(carried)) == {"error": "access_denied", "state": session._state}
    with pytest.raises(AccessDeniedError):
        if response_type == "token":
            session.token_from_fragment(redirect_to)
        else:
            session.fetch_token(dcp_emulator.token_url, authorization_response=redirect_to,
                                client_secret=app["client_secret"])


def test_the_account_chosen_is_the_one_granted(dcp_emulator):
    dcp_emulator.seed({"accounts": [{"id": 2002, "name": "Second account"}]})
    app = dcp_emulator.oauth_app()
    code = dcp_emulator.authorize(app, account=2002)
    token = token_post(dcp_emulator, grant_type="authorization_code", code=code, redirect_uri=CALLBACK,
                       client_id=app["client_id"], client_secret=app["client_secret"]).json()
    owner = next(a["id"] for a in dcp_emulator.state()["accounts"] for t in a["tokens"]
                 if t["token"] == token["access_token"])
    assert owner == 2002


# ---------------------------------------------------------------------- token endpoint refusals
@pytest.fixture
def code_app(dcp_emulator):
    """A confidential app and a fresh code for it."""
    app = dcp_emulator.oauth_app()
    return app, dcp_emulator.authorize(app)


def exchange(emu, app: dict, code: str, **override) -> requests.Response:
    params = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
              "client_id": app["client_id"], "client_secret": app["client_secret"], **override}
    return token_post(emu, **{k: v for k, v in params.items() if v is not None})


def test_wrong_secret(dcp_emulator, code_app):
    app, code = code_app
    resp = exchange(dcp_emulator, app, code, client_secret="not-the-secret")
    oauth_error(resp, 401, "invalid_client", f"Client authentication failed: wrong client_secret for client_id "
                                             f"{app['client_id']!r}.")
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="dcp-emulator"'
    session = OAuth2Session(app["client_id"], redirect_uri=CALLBACK)
    with pytest.raises(InvalidClientError):  # the OAuth client reports it as such
        session.fetch_token(dcp_emulator.token_url, code=code, client_secret="not-the-secret")
    assert exchange(dcp_emulator, app, code).status_code == 200  # a refused attempt does not use the code


def test_missing_secret_of_a_confidential_client(dcp_emulator, code_app):
    app, code = code_app
    oauth_error(exchange(dcp_emulator, app, code, client_secret=None), 401, "invalid_client",
                "client_secret is required for a confidential client.")


def test_unknown_client(dcp_emulator, code_app):
    app, code = code_app
    oauth_error(exchange(dcp_emulator, app, code, client_id="nobody", client_secret="x"), 401, "invalid_client",
                "Unknown client_id 'nobody': no application is registered with this client ID.")
    oauth_error(exchange(dcp_emulator, app, code, client_id=None, client_secret=None), 401, "invalid_client",
                "client_id is required (with the client_secret of a confidential client).")


def test_reused_code_is_refused_and_withdraws_its_tokens(dcp_emulator, code_app):
    app, code = code_app
    first = exchange(dcp_emulator, app, code)
    assert first.status_code == 200
    oauth_error(exchange(dcp_emulator, app, code), 400, "invalid_grant",
                "The authorization code was already used (codes are single-use); the tokens issued for it are "
                "revoked.")
    resp = requests.get(f"{dcp_emulator.rest_api_url}/dcp_services", timeout=10,
                        headers={"Authorization": f"Bearer {first.json()['access_token']}"})
    assert api_error(resp, 403, "authentication_failed") == "Authentication Failed: the token has been revoked."


def test_mismatched_redirect_uri(dcp_emulator, code_app):
    app, code = code_app
    oauth_error(exchange(dcp_emulator, app, code, redirect_uri="https://partner.example/other"), 400, "invalid_grant",
                "redirect_uri 'https://partner.example/other' does not match the redirect URI of the authorization "
                f"request ({CALLBACK!r}).")
    oauth_error(exchange(dcp_emulator, app, code, redirect_uri=None), 400, "invalid_request",
                "redirect_uri is required: the same redirect URI as in the authorization request.")


def test_code_of_another_client(dcp_emulator, code_app):
    _app, code = code_app
    other = dcp_emulator.oauth_app(name="Other")
    oauth_error(exchange(dcp_emulator, other, code), 400, "invalid_grant",
                "The authorization code was issued to another client.")


def test_code_expires_after_10_minutes(dcp_emulator, code_app):
    app, code = code_app
    dcp_emulator.advance_clock(600)
    resp = exchange(dcp_emulator, app, code)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    assert resp.json()["error_description"].startswith("The authorization code expired at ")
    assert resp.json()["error_description"].endswith(" (codes are valid 10 minutes).")


def test_unknown_and_missing_code(dcp_emulator, code_app):
    app, _ = code_app
    oauth_error(exchange(dcp_emulator, app, "made-up"), 400, "invalid_grant", "Unknown authorization code.")
    oauth_error(exchange(dcp_emulator, app, None), 400, "invalid_request",
                "code is required: the code your redirect URI received.")


def test_bad_and_missing_grant_type(dcp_emulator, code_app):
    app, code = code_app
    oauth_error(exchange(dcp_emulator, app, code, grant_type="client_credentials"), 400, "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token, got 'client_credentials'.")
    oauth_error(exchange(dcp_emulator, app, code, grant_type=None), 400, "invalid_request",
                "grant_type is required: authorization_code or refresh_token.")


def test_refresh_refusals(dcp_emulator, code_app):
    app, code = code_app
    refresh = exchange(dcp_emulator, app, code).json()["refresh_token"]
    other = dcp_emulator.oauth_app(name="Other")
    base = {"grant_type": "refresh_token"}
    oauth_error(token_post(dcp_emulator, **base, refresh_token=refresh, client_id=other["client_id"],
                           client_secret=other["client_secret"]), 400, "invalid_grant",
                "The refresh token was issued to another client.")
    oauth_error(token_post(dcp_emulator, **base, refresh_token="made-up", client_id=app["client_id"],
                           client_secret=app["client_secret"]), 400, "invalid_grant", "Unknown refresh token.")
    oauth_error(token_post(dcp_emulator, **base, client_id=app["client_id"], client_secret=app["client_secret"]),
                400, "invalid_request", "refresh_token is required.")


def test_public_client_needs_no_secret(dcp_emulator):
    app = dcp_emulator.oauth_app(client_type="public")
    code = dcp_emulator.authorize(app)
    resp = token_post(dcp_emulator, grant_type="authorization_code", code=code, redirect_uri=CALLBACK,
                      client_id=app["client_id"])
    assert resp.status_code == 200 and resp.json()["refresh_token"]


def test_basic_client_id_must_agree_with_the_body(dcp_emulator, code_app):
    app, code = code_app
    resp = requests.post(dcp_emulator.token_url, auth=(app["client_id"], app["client_secret"]), timeout=10,
                         data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                               "client_id": "someone-else"})
    oauth_error(resp, 400, "invalid_request", "client_id differs from the client authenticated by the Authorization "
                                              "header.")


# ---------------------------------------------------------------------- authorize refusals
def authorize_page(emu, **params) -> requests.Response:
    return requests.get(emu.authorize_url, params=params, allow_redirects=False, timeout=10)


def error_page(resp: requests.Response, status: int, error: str, description: str) -> None:
    assert resp.status_code == status and resp.headers["Content-Type"].startswith("text/html")
    assert re.search(r'<code id="error">(.*?)</code>', resp.text).group(1) == error
    assert html.unescape(re.search(r'<p id="description">(.*?)</p>', resp.text, re.DOTALL).group(1)) == description


def test_authorize_unknown_client_and_unregistered_redirect_uri_are_shown_not_redirected(dcp_emulator):
    app = dcp_emulator.oauth_app()
    error_page(authorize_page(dcp_emulator, client_id="nobody", redirect_uri=CALLBACK, response_type="code"), 400,
               "invalid_client", "Unknown client_id 'nobody': no application is registered with this client ID.")
    error_page(authorize_page(dcp_emulator, client_id=app["client_id"], redirect_uri="https://evil.example/cb",
                              response_type="code"), 400, "invalid_request",
               f"redirect_uri 'https://evil.example/cb' is not registered for this application (registered: "
               f"{CALLBACK}).")
    error_page(authorize_page(dcp_emulator, client_id=app["client_id"], response_type="code"), 400,
               "invalid_request", "redirect_uri is required and must be one of the application's registered "
                                  "redirect URIs.")
    error_page(authorize_page(dcp_emulator, redirect_uri=CALLBACK, response_type="code"), 400, "invalid_request",
               "client_id is required: the client ID of your registered application.")


def test_authorize_errors_the_client_can_handle_are_redirected(dcp_emulator):
    app = dcp_emulator.oauth_app()
    base = {"client_id": app["client_id"], "redirect_uri": CALLBACK, "state": "st"}
    resp = authorize_page(dcp_emulator, **base, response_type="id_token")
    assert resp.status_code == 302 and resp.headers["Location"] == \
        f"{CALLBACK}?error=unsupported_response_type&state=st"
    resp = authorize_page(dcp_emulator, **base, response_type="code", scopes="admin")
    assert resp.status_code == 302 and resp.headers["Location"] == f"{CALLBACK}?error=invalid_scope&state=st"
    resp = authorize_page(dcp_emulator, **base, response_type="token", scope="all admin")
    assert resp.status_code == 302 and resp.headers["Location"] == f"{CALLBACK}#error=invalid_scope&state=st"
    resp = authorize_page(dcp_emulator, **base)
    assert resp.status_code == 302 and resp.headers["Location"] == f"{CALLBACK}?error=invalid_request&state=st"


def test_insecure_http_redirect_refused_for_the_code_grant(dcp_emulator):
    app = dcp_emulator.oauth_app(redirect_uris=["http://partner.example/cb"])
    error_page(authorize_page(dcp_emulator, client_id=app["client_id"], redirect_uri="http://partner.example/cb",
                              response_type="code"), 400, "invalid_request",
               "redirect_uri 'http://partner.example/cb' is insecure: the code grant requires an https:// redirect "
               "URI (http://localhost and http://127.0.0.1 are accepted).")
    # The implicit grant may redirect to http://, as the vendor allows.
    assert authorize_page(dcp_emulator, client_id=app["client_id"], redirect_uri="http://partner.example/cb",
                          response_type="token").status_code == 200


def test_loopback_redirects_accepted_on_any_port_by_default(dcp_emulator):
    app = dcp_emulator.oauth_app(redirect_uris=["http://127.0.0.1/callback", "http://localhost:8000/cb"])
    for uri in ("http://127.0.0.1:53123/callback", "http://127.0.0.1/callback", "http://localhost:9999/cb"):
        assert authorize_page(dcp_emulator, client_id=app["client_id"], redirect_uri=uri,
                              response_type="code").status_code == 200, uri
    code = dcp_emulator.authorize(app, redirect_uri="http://127.0.0.1:53123/callback")
    resp = exchange(dcp_emulator, app, code, redirect_uri="http://127.0.0.1:53123/callback")
    assert resp.status_code == 200
    error_page(authorize_page(dcp_emulator, client_id=app["client_id"], redirect_uri="http://127.0.0.1:1/other",
                              response_type="code"), 400, "invalid_request",
               "redirect_uri 'http://127.0.0.1:1/other' is not registered for this application (registered: "
               "http://127.0.0.1/callback, http://localhost:8000/cb).")


@pytest.fixture(scope="module")
def strict_emulator():
    """A served emulator started with the strict redirect option (as --oauth-strict-redirects does)."""
    server = EmulatorServer(Config(port=0, oauth_strict_redirects=True, log_requests=False)).start()
    yield DcpEmulator(server.url)
    server.shutdown()


def test_strict_option_refuses_loopback_http_for_the_code_grant(strict_emulator):
    app = strict_emulator.oauth_app(redirect_uris=["http://127.0.0.1:8000/cb"])
    session = OAuth2Session(app["client_id"], redirect_uri="http://127.0.0.1:8000/cb", scope=["all"])
    url, _ = session.authorization_url(strict_emulator.authorize_url)
    error_page(requests.get(url, allow_redirects=False, timeout=10), 400, "invalid_request",
               "redirect_uri 'http://127.0.0.1:8000/cb' is insecure: the code grant requires an https:// redirect URI.")
    with pytest.raises(DcpEmulatorError) as refused:  # the fixture helper says why it cannot authorize
        strict_emulator.authorize(app)
    assert refused.value.status == 400 and "is insecure" in refused.value.body
    implicit = OAuth2Session(client=MobileApplicationClient(app["client_id"]), redirect_uri="http://127.0.0.1:8000/cb")
    url, _ = implicit.authorization_url(strict_emulator.authorize_url)
    assert requests.get(url, allow_redirects=False, timeout=10).status_code == 200  # the implicit grant may


def test_strict_option_from_env_and_cli():
    assert Config.from_env({"DCP_EMULATOR_OAUTH_STRICT_REDIRECTS": "1"}).oauth_strict_redirects is True
    assert Config.from_env({}).oauth_strict_redirects is False
    args = build_parser().parse_args(["serve", "--oauth-strict-redirects"])
    assert args.oauth_strict_redirects is True


# ---------------------------------------------------------------------- the decision, headless and by form
def test_pending_authorizations_listed_and_decided_once(dcp_emulator):
    app = dcp_emulator.oauth_app(name="Lister")
    _, authorization = start(dcp_emulator, app)
    pending = dcp_emulator.pending_authorizations()
    assert [(p["id"], p["app_name"], p["response_type"], p["scope"]) for p in pending] == \
        [(authorization, "Lister", "code", "all")]
    dcp_emulator.decide_authorization(authorization)
    assert dcp_emulator.pending_authorizations() == []
    resp = requests.post(f"{dcp_emulator.url}/_emulator/oauth/authorizations/{authorization}", json={}, timeout=10)
    assert api_error(resp, 404, "not_found") == ("This authorization request is unknown or was already decided; "
                                                 "start again from the application's authorization URL.")


def test_decision_refusals(dcp_emulator):
    app = dcp_emulator.oauth_app()
    _, authorization = start(dcp_emulator, app)
    url = f"{dcp_emulator.url}/_emulator/oauth/authorizations/{authorization}"
    assert api_error(requests.post(url, json={"account_id": 999}, timeout=10), 400, "invalid_field") == \
        "account_id 999 is not an account of this emulator."
    assert api_error(requests.post(url, json={"accept": "yes"}, timeout=10), 400, "invalid_field") == \
        "accept must be true or false (a JSON boolean)."
    dcp_emulator.advance_clock(601)  # consent requests wait 10 minutes
    message = api_error(requests.post(url, json={}, timeout=10), 404, "not_found")
    assert message.startswith("This authorization request expired at ")


def test_consent_form_post_same_origin_redirects_with_the_code(dcp_emulator):
    app = dcp_emulator.oauth_app()
    _, authorization = start(dcp_emulator, app)
    resp = requests.post(dcp_emulator.authorize_url, allow_redirects=False, timeout=10,
                         headers={"Origin": dcp_emulator.url},
                         data={"authorization": authorization, "account_id": "1001", "decision": "accept"})
    assert resp.status_code == 303
    location = urllib.parse.urlsplit(resp.headers["Location"])
    assert location.netloc == "partner.example" and "code" in dict(urllib.parse.parse_qsl(location.query))


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"}, {"Referer": "https://evil.example/page"}])
def test_consent_form_posted_from_another_site_is_refused(dcp_emulator, headers):
    app = dcp_emulator.oauth_app()
    _, authorization = start(dcp_emulator, app)
    resp = requests.post(dcp_emulator.authorize_url, allow_redirects=False, timeout=10, headers=headers,
                         data={"authorization": authorization, "account_id": "1001", "decision": "accept"})
    error_page(resp, 403, "access_denied", "Refused: the consent form was posted from another site. Only the "
                                           "emulator's own consent page can accept or deny an authorization.")
    assert len(dcp_emulator.pending_authorizations()) == 1  # still waiting for the real user


def test_consent_form_bad_decision_and_unknown_request(dcp_emulator):
    app = dcp_emulator.oauth_app()
    _, authorization = start(dcp_emulator, app)
    post = lambda **d: requests.post(dcp_emulator.authorize_url, data=d, allow_redirects=False, timeout=10)
    error_page(post(authorization=authorization, decision="maybe"), 400, "invalid_request",
               "decision must be accept or deny, got 'maybe'.")
    error_page(post(authorization="nope", decision="deny"), 400, "invalid_request",
               "This authorization request is unknown or was already decided; start again from the application's "
               "authorization URL.")


def test_consent_page_cannot_be_framed_and_loads_nothing_external(dcp_emulator):
    app = dcp_emulator.oauth_app()
    resp = authorize_page(dcp_emulator, client_id=app["client_id"], redirect_uri=CALLBACK, response_type="code")
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert "http" not in resp.text.replace(CALLBACK, "")  # no external stylesheet, script, font or image


# ---------------------------------------------------------------------- registration and seeds
@pytest.mark.parametrize(("body", "field", "message"), [
    ({"redirect_uris": [CALLBACK]}, "name", "name is required and must be a non-empty string (missing)."),
    ({"name": " A", "redirect_uris": [CALLBACK]}, "name", "name must not start or end with whitespace (got ' A')."),
    ({"name": "A"}, "redirect_uris", ("redirect_uris is required: a list of one or more absolute URIs, such as "
                                     "['https://partner.example/oauth/callback'].")),
    ({"name": "A", "redirect_uris": ["/relative"]}, "redirect_uris",
     "redirect_uris: '/relative' is not an absolute URI (scheme://host/path)."),
    ({"name": "A", "redirect_uris": [CALLBACK + "#x"]}, "redirect_uris",
     (f"redirect_uris: '{CALLBACK}#x' has a fragment; redirect URIs must not (the implicit grant puts the token "
     "there).")),
    ({"name": "A", "redirect_uris": [CALLBACK], "client_type": "secret"}, "client_type",
     "client_type must be one of 'confidential', 'public' (got 'secret')."),
    ({"name": "A", "redirect_uris": [CALLBACK], "client_type": "public", "client_secret": "s"}, "client_secret",
     "A public client has no client_secret (it cannot keep one); leave it out, or register a confidential client."),
    ({"name": "A", "redirect_uris": [CALLBACK], "account_id": 5}, "account_id",
     "account_id 5 is not an account of this emulator."),
    ({"name": "A", "redirect_uris": [CALLBACK], "scopes": "all"}, "scopes",
     ("Unknown field 'scopes'; accepted fields are account_id, client_id, client_secret, client_type, name, "
     "redirect_uris.")),
])
def test_registration_refusals(client, body, field, message):
    resp = client.post("/_emulator/oauth/apps", json=body)
    assert resp.status_code == 400
    assert (resp.get_json()["field"], resp.get_json()["message"]) == (field, message)


def test_duplicate_client_id_refused(client):
    body = {"client_id": "acme", "name": "A", "redirect_uris": [CALLBACK]}
    assert client.post("/_emulator/oauth/apps", json=body).status_code == 201
    resp = client.post("/_emulator/oauth/apps", json=body)
    assert resp.status_code == 400 and resp.get_json()["message"] == \
        "An application with client_id 'acme' is already registered."
    assert client.get("/_emulator/oauth/apps/unknown").status_code == 404


def test_seeded_apps_generate_ids_and_round_trip_through_the_export(client):
    seed = {"accounts": [{"id": 2002, "name": "Partner account"}], "oauth_apps": [
        {"name": "Generated", "redirect_uris": [CALLBACK]},
        {"client_id": "fixed-id", "client_secret": "fixed-secret", "name": "Fixed", "redirect_uris": [CALLBACK],
         "client_type": "confidential", "account_id": 1001},
        {"client_id": "widget", "name": "Widget", "redirect_uris": ["http://localhost:3000/cb"],
         "client_type": "public"}]}
    resp = client.post("/_emulator/seed", json=seed)
    assert resp.status_code == 201 and resp.get_json()["created"]["oauth_apps"] == 3
    apps = client.get("/_emulator/oauth/apps").get_json()["oauth_apps"]
    generated = apps[0]
    assert generated["client_id"] and generated["client_secret"] and generated["account_id"] == 2002  # first account
    assert apps[1] == {"client_id": "fixed-id", "client_secret": "fixed-secret", "name": "Fixed",
                       "redirect_uris": [CALLBACK], "client_type": "confidential", "account_id": 1001}
    assert "client_secret" not in apps[2]
    exported = client.get("/_emulator/state?format=json").get_json()
    assert exported["oauth_apps"] == apps
    assert client.post("/_emulator/seed?reset=default", json=exported).status_code == 201
    assert client.get("/_emulator/state?format=json").get_json() == exported


def test_issued_tokens_survive_export_and_reseed(client):
    app = client.post("/_emulator/oauth/apps", json={"name": "A", "redirect_uris": [CALLBACK]}).get_json()
    page = client.get("/oauth2/authorize", query_string={"client_id": app["client_id"], "redirect_uri": CALLBACK,
                                                         "response_type": "code"})
    decided = client.post(f"/_emulator/oauth/authorizations/{page.headers['X-Dcp-Emulator-Authorization']}", json={})
    token = client.post("/oauth2/token", data={
        "grant_type": "authorization_code", "code": decided.get_json()["params"]["code"], "redirect_uri": CALLBACK,
        "client_id": app["client_id"], "client_secret": app["client_secret"]}).get_json()
    exported = client.get("/_emulator/state?format=json").get_json()
    assert client.post("/_emulator/seed?reset=default", json=exported).status_code == 201
    refreshed = client.post("/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": app["client_id"],
        "client_secret": app["client_secret"]})
    assert refreshed.status_code == 200
    assert client.get("/experiment/v1/dcp_services",
                      headers={"Authorization": f"Bearer {token['access_token']}"}).status_code == 200


def test_seed_errors_name_the_app(client):
    resp = client.post("/_emulator/seed", json={"oauth_apps": [{"name": "A", "redirect_uris": "ftp"}]})
    assert resp.status_code == 400
    assert resp.get_json()["field"] == "oauth_apps[0].redirect_uris"
    assert resp.get_json()["message"].endswith("oauth_apps[0].redirect_uris: redirect_uris: 'ftp' is not an absolute "
                                               "URI (scheme://host/path).")
    resp = client.post("/_emulator/seed", json={"oauth_apps": [{"name": "A", "redirect_uris": [CALLBACK],
                                                                "account_id": 77}]})
    assert resp.get_json()["field"] == "oauth_apps[0].account_id"


def test_token_endpoint_only_posts(client):
    resp = client.get("/oauth2/token")
    assert resp.status_code == 405 and resp.headers["Allow"] == "OPTIONS, POST"


# ---------------------------------------------------------------------- docs/oauth.md, executed
DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "oauth.md"


def doc_blocks(language: str) -> list[str]:
    """The fenced ``language`` blocks of docs/oauth.md, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", DOC.read_text(), re.DOTALL | re.MULTILINE)


@pytest.mark.skipif(not shutil.which("curl") or not shutil.which("bash"), reason="the walkthrough needs bash and curl")
def test_docs_curl_walkthrough_runs(dcp_emulator):
    script = "\n".join(doc_blocks("bash"))
    assert "oauth2/token" in script and "_emulator/clock" in script
    run = subprocess.run(["bash", "-c", script], check=False, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "BASE": dcp_emulator.url})
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert re.search(r"^https://partner\.example/oauth/callback\?code=[^&]+&state=xyz$", out, re.MULTILINE)
    assert '"token_type":"bearer"' in out.replace(" ", "") and '"expires_in":7200' in out.replace(" ", "")
    assert "the OAuth access token expired at" in out
    assert "the token has been revoked" in out and "The user revoked this application" in out
    assert re.search(r"^https://partner\.example/oauth/callback#access_token=[^&]+&token_type=bearer&state=xyz"
                     r"&expires_in=7200$", out, re.MULTILINE)
    assert dcp_emulator.clock()["real_time"] is True  # the walkthrough ends with a reset


def test_docs_fixture_example_passes(dcp_emulator, tmp_path):
    [example] = doc_blocks("python")
    (tmp_path / "test_partner_refresh_loop.py").write_text(example)
    # The example runs in its own pytest session against this test's emulator (the plugin's external mode).
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "DCP_EMULATOR_URL": dcp_emulator.url})
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr


def test_docs_seed_example_loads_and_exports_back(client):
    [seed] = doc_blocks("yaml")
    resp = client.post("/_emulator/seed", data=seed, content_type="application/yaml")
    assert resp.status_code == 201 and resp.get_json()["created"]["oauth_apps"] == 1
    [app] = client.get("/_emulator/state?format=json").get_json()["oauth_apps"]
    assert app == {"client_id": "acme-sync", "client_secret": "acme-secret", "name": "Acme Sync",
                   "redirect_uris": ["https://partner.example/oauth/callback", "http://127.0.0.1/callback"],
                   "client_type": "confidential", "account_id": 1001}
