"""OAuth 2.0 for partner integrations: registered applications, the authorization request and the
user's decision, authorization codes, and the token endpoint's grants (no Flask here).

The vendor's flow: a partner registers an application (client id, client secret, redirect URIs,
public or confidential); the user accepts or denies it on the authorize page; the code grant
redirects with ``?code=..&state=..``, the implicit grant with ``#access_token=..&token_type=bearer
&state=..&expires_in=7200``; ``/oauth2/token`` exchanges a code for an access token (7200 s) and a
refresh token, and a refresh token for a new access token until the user revokes the application
(then 403). Access tokens are rows of the store's ``tokens`` table (kind ``oauth``, with their
``client_id`` and the ``refresh_token`` of their grant), so the DCP APIs authenticate them like any
token. Every time comes from the store's clock, which tests can move.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import ipaddress
import secrets
import urllib.parse
from collections.abc import Mapping
from typing import Any

from .clock import format_timestamp
from .errors import InvalidField, NotFound, OAuthError
from .resources import OAUTH_APP, OAUTH_TEXT_LIMIT
from .store import Store
from .store.oauth import ACCESS_TOKEN_SECONDS, CODE_SECONDS, REQUEST_SECONDS

__all__ = ["ACCESS_TOKEN_SECONDS", "CODE_SECONDS", "REQUEST_SECONDS", "OAuthError"]  # used by the API and tests

SCOPE = "all"  # the vendor's only scope
RESPONSE_TYPES = ("code", "token")
GRANT_TYPES = ("authorization_code", "refresh_token")
_LOOPBACK_HOSTS = ("localhost",)


class AuthorizeError(Exception):
    """The authorization request is refused.

    ``redirect`` is None when the client or its redirect URI cannot be trusted: the user is then shown
    the error instead of being sent anywhere (RFC 6749 4.1.2.1); otherwise it is the URL that carries
    the error back to the client.
    """

    def __init__(self, error: str, description: str, redirect: str | None = None, status: int = 400):
        super().__init__(description)
        self.error, self.description, self.redirect, self.status = error, description, redirect, status


# ---------------------------------------------------------------------- redirect URIs
def is_loopback(uri: str) -> bool:
    """True for http://127.0.0.1:*, http://[::1]:* and http://localhost:* (a partner's local callback)."""
    parts = urllib.parse.urlsplit(uri)
    host = (parts.hostname or "").lower()
    if parts.scheme != "http":
        return False
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _without_port(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    return urllib.parse.urlunsplit((parts.scheme, f"[{host}]" if ":" in host else host, parts.path, parts.query, ""))


def redirect_matches(registered: list[str], uri: str) -> bool:
    """The exact string, or for loopback URIs the same URI on any port (a local callback server picks a
    free port; RFC 8252 7.3 asks servers to accept any)."""
    if uri in registered:
        return True
    return is_loopback(uri) and any(is_loopback(r) and _without_port(r) == _without_port(uri) for r in registered)


def with_params(uri: str, params: dict[str, str | None], fragment: bool = False) -> str:
    """``uri`` with ``params`` added to its query string (or set as its fragment), Nones left out."""
    encoded = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    parts = urllib.parse.urlsplit(uri)
    if fragment:
        return urllib.parse.urlunsplit(parts._replace(fragment=encoded))
    query = f"{parts.query}&{encoded}" if parts.query else encoded
    return urllib.parse.urlunsplit(parts._replace(query=query))


# ---------------------------------------------------------------------- registration
def _redirect_uris(value: Any) -> list[str]:
    if not value:
        raise InvalidField(f"redirect_uris must be {OAUTH_APP.field('redirect_uris').hint}", field="redirect_uris")
    for uri in value:
        parts = urllib.parse.urlsplit(uri) if isinstance(uri, str) and len(uri) <= OAUTH_TEXT_LIMIT else None
        if parts is None or not parts.scheme or not (parts.netloc or parts.path) or uri != uri.strip():
            raise InvalidField(f"redirect_uris: {uri!r} is not an absolute URI (scheme://host/path).",
                               field="redirect_uris")
        if parts.fragment or uri.endswith("#"):
            raise InvalidField(f"redirect_uris: {uri!r} has a fragment; redirect URIs must not (the implicit "
                               "grant puts the token there).", field="redirect_uris")
    if len(set(value)) != len(value):
        raise InvalidField("redirect_uris lists the same URI twice.", field="redirect_uris")
    return list(value)


def register_app(store: Store, fields: Mapping[str, Any], default_account_id: int) -> dict:
    """Register an application; ``client_id`` (and a confidential client's ``client_secret``) are
    generated when absent. Returns the application, secret included."""
    if isinstance(fields.get("redirect_uris"), str):  # one URI may be given as a string
        fields = {**fields, "redirect_uris": [fields["redirect_uris"]]}
    values = OAUTH_APP.parse_create(fields)
    client_type, secret = values["client_type"], values["client_secret"]
    client_id = values["client_id"] or "app-" + secrets.token_hex(8)
    if client_type == "public" and secret is not None:
        raise InvalidField("A public client has no client_secret (it cannot keep one); leave it out, or "
                           "register a confidential client.", field="client_secret")
    if client_type == "confidential" and secret is None:
        secret = secrets.token_urlsafe(32)
    account_id = default_account_id if values["account_id"] is None else values["account_id"]
    return OAUTH_APP.render(store.oauth.register_app({
        "client_id": client_id, "client_secret": secret, "name": values["name"],
        "redirect_uris": _redirect_uris(values["redirect_uris"]), "client_type": client_type,
        "account_id": account_id}))


def get_app(store: Store, client_id: str) -> dict:
    """One registered application (NotFound when there is none)."""
    row = store.oauth.find_app(client_id)
    if row is None:
        raise NotFound(f"No OAuth application with client_id {client_id!r}.", field="client_id")
    return OAUTH_APP.render(row)


def list_apps(store: Store) -> list[dict]:
    """Every registered application in registration order, as a seed lists them (secrets included)."""
    return [OAUTH_APP.render(r) for r in store.oauth.list_apps()]


def account_choices(store: Store) -> list[dict]:
    """Every account ({id, name}, in id order): the consent page lets the user grant any of them."""
    return [{"id": a["id"], "name": a["name"]} for a in store.credentials.list_accounts()]


def revoke(store: Store, client_id: str, account_id: int) -> dict:
    """What the user does in "API Access" settings: the app loses its access to the account. Its access
    tokens are then refused (403) everywhere, its refresh tokens at /oauth2/token (403), and unused
    codes cannot be exchanged."""
    return store.oauth.revoke(client_id, account_id)


# ---------------------------------------------------------------------- the flows
class OAuthServer:
    """The authorization server of one emulator: authorization requests, decisions and token grants."""

    def __init__(self, store: Store, strict_redirects: bool = False):
        self.store = store
        self.strict_redirects = strict_redirects  # refuse loopback http:// for the code grant, like the vendor

    # ------------------------------------------------------------------ authorize
    def start_authorization(self, params: Mapping[str, str]) -> dict:
        """Validate an authorization request and record it as pending (the consent page shows it)."""
        client_id = params.get("client_id")
        if not client_id:
            raise AuthorizeError("invalid_request", "client_id is required: the client ID of your registered "
                                                    "application.")
        row = self.store.oauth.find_app(client_id)
        if row is None:
            raise AuthorizeError("invalid_client", f"Unknown client_id {client_id!r}: no application is registered "
                                                   "with this client ID.")
        app = OAUTH_APP.render(row)
        uri = params.get("redirect_uri")
        if not uri:
            raise AuthorizeError("invalid_request", "redirect_uri is required and must be one of the application's "
                                                    "registered redirect URIs.")
        if not redirect_matches(app["redirect_uris"], uri):
            raise AuthorizeError("invalid_request", f"redirect_uri {uri!r} is not registered for this application "
                                                    f"(registered: {', '.join(app['redirect_uris'])}).")
        response_type = params.get("response_type")
        if not response_type:
            raise AuthorizeError("invalid_request", "response_type is required: code or token.",
                                 with_params(uri, {"error": "invalid_request", "state": params.get("state")}))
        if response_type not in RESPONSE_TYPES:
            raise AuthorizeError("unsupported_response_type", f"response_type must be code or token, got "
                                 f"{response_type!r}.", with_params(uri, {"error": "unsupported_response_type",
                                                                          "state": params.get("state")}))
        if response_type == "code" and urllib.parse.urlsplit(uri).scheme == "http" and \
                (self.strict_redirects or not is_loopback(uri)):
            allowed = "" if self.strict_redirects else " (http://localhost and http://127.0.0.1 are accepted)"
            raise AuthorizeError("invalid_request", f"redirect_uri {uri!r} is insecure: the code grant requires an "
                                                    f"https:// redirect URI{allowed}.")
        fragment = response_type == "token"
        scope = params.get("scopes") or params.get("scope") or SCOPE
        if any(s != SCOPE for s in scope.replace(",", " ").split()):
            raise AuthorizeError("invalid_scope", f"The only scope is {SCOPE!r}, got {scope!r}.",
                                 with_params(uri, {"error": "invalid_scope", "state": params.get("state")}, fragment))
        now = self.store.clock.now()
        pending = {"id": secrets.token_urlsafe(24), "client_id": client_id, "redirect_uri": uri,
                   "response_type": response_type, "state": params.get("state"),
                   "created": format_timestamp(now),
                   "expires_at": format_timestamp(now + _dt.timedelta(seconds=REQUEST_SECONDS))}
        self.store.oauth.add_request(pending)
        return {**pending, "app": app, "scope": SCOPE}

    def pending_authorizations(self) -> list[dict]:
        """Authorization requests awaiting a decision, oldest first."""
        rows = self.store.oauth.pending_requests()
        return [{"id": r["id"], "client_id": r["client_id"], "app_name": r["app_name"],
                 "redirect_uri": r["redirect_uri"], "response_type": r["response_type"], "state": r["state"],
                 "scope": SCOPE, "created": r["created"], "expires_at": r["expires_at"]} for r in rows]

    def decide(self, request_id: str, account_id: Any, accept: bool) -> dict:
        """The user's decision on a pending request, for ``account_id``: where the browser goes next
        (``redirect_to``) and the parameters it carries (code, or token, or error)."""
        row, params = self.store.oauth.decide(request_id, account_id, accept)
        fragment = row["response_type"] == "token"
        return {"redirect_to": with_params(row["redirect_uri"], params, fragment), "response_type": row["response_type"],
                "account_id": row["account_id"], "accepted": bool(accept), "params": params}

    # ------------------------------------------------------------------ token endpoint
    def _client(self, params: Mapping[str, str], basic: tuple[str, str] | None) -> dict:
        """The authenticated client (client_id/client_secret in the parameters, or HTTP Basic)."""
        client_id, secret = params.get("client_id"), params.get("client_secret")
        if basic is not None:
            if client_id and client_id != basic[0]:
                raise OAuthError("invalid_request", "client_id differs from the client authenticated by the "
                                                    "Authorization header.")
            client_id, secret = basic
        challenge = {"WWW-Authenticate": 'Basic realm="dcp-emulator"'}
        if not client_id:
            raise OAuthError("invalid_client", "client_id is required (with the client_secret of a confidential "
                                               "client).", 401, challenge)
        row = self.store.oauth.find_app(client_id)
        if row is None:
            raise OAuthError("invalid_client", f"Unknown client_id {client_id!r}: no application is registered "
                                               "with this client ID.", 401, challenge)
        if row["client_type"] == "confidential":
            if not secret:
                raise OAuthError("invalid_client", "client_secret is required for a confidential client.", 401,
                                 challenge)
            if not hmac.compare_digest(secret.encode(), row["client_secret"].encode()):
                raise OAuthError("invalid_client", "Client authentication failed: wrong client_secret for "
                                                   f"client_id {client_id!r}.", 401, challenge)
        return row

    def token(self, params: Mapping[str, str], basic: tuple[str, str] | None = None) -> dict:
        """POST /oauth2/token: the authorization_code or refresh_token grant, or an OAuthError."""
        grant_type = params.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required: authorization_code or refresh_token.")
        if grant_type not in GRANT_TYPES:
            raise OAuthError("unsupported_grant_type", f"grant_type must be authorization_code or refresh_token, "
                                                       f"got {grant_type!r}.")
        client = self._client(params, basic)
        if grant_type == "authorization_code":
            return self._code_grant(client, params)
        return self._refresh_grant(client, params)

    def _code_grant(self, client: dict, params: Mapping[str, str]) -> dict:
        code = params.get("code")
        if not code:
            raise OAuthError("invalid_request", "code is required: the code your redirect URI received.")
        tokens = self.store.oauth.redeem_code(code, client["client_id"], params.get("redirect_uri"))
        if tokens is None:
            raise OAuthError("invalid_grant", "The authorization code was already used (codes are single-use); "
                                              "the tokens issued for it are revoked.")
        access, refresh = tokens
        return {"access_token": access, "expires_in": ACCESS_TOKEN_SECONDS, "token_type": "bearer",
                "refresh_token": refresh}

    def _refresh_grant(self, client: dict, params: Mapping[str, str]) -> dict:
        refresh = params.get("refresh_token")
        if not refresh:
            raise OAuthError("invalid_request", "refresh_token is required.")
        access = self.store.oauth.refresh(refresh, client["client_id"])
        return {"access_token": access, "expires_in": ACCESS_TOKEN_SECONDS, "token_type": "bearer"}
