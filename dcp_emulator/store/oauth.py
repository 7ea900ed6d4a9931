"""OAuth 2.0 state: registered applications, authorization requests awaiting the user, codes, and the access
tokens grants issue (rows of ``tokens``, kind ``oauth``). The protocol -- checking requests, redirect URIs,
client authentication, building redirects -- is ``dcp_emulator/oauth.py``; every read and write of it is an
operation here, so each decision and each grant is one transaction.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from ..errors import InvalidField, NotFound, OAuthError
from .credentials import Credentials
from .db import Backend, Database, operation, read_operation

ACCESS_TOKEN_SECONDS = 7200  # the vendor's access token lifetime
CODE_SECONDS = 600  # authorization codes are single-use and expire after 10 minutes
REQUEST_SECONDS = 600  # a consent page left open longer must be reloaded


class OAuthStore(Backend):
    """Applications, pending authorization requests, codes and the tokens grants issue."""

    def __init__(self, database: Database, credentials: Credentials):
        super().__init__(database)
        self.credentials = credentials

    # ------------------------------------------------------------------ applications
    @operation
    def register_app(self, app: dict) -> dict:
        """Store a checked registration (redirect URIs as a list); its account must exist, its client_id be new."""
        if app["account_id"] not in self.credentials.find_account_ids():
            raise InvalidField(f"account_id {app['account_id']!r} is not an account of this emulator.",
                               field="account_id")
        if self.find_app(app["client_id"]) is not None:
            raise InvalidField(f"An application with client_id {app['client_id']!r} is already registered.",
                               field="client_id")
        self.database.db["oauth_apps"].insert({**app, "redirect_uris": json.dumps(app["redirect_uris"])})
        return self.find_app(app["client_id"])

    @read_operation
    def find_app(self, client_id: str) -> dict | None:
        """A registered application's row (redirect URIs as a list), or None."""
        row = self.database._one("SELECT * FROM oauth_apps WHERE client_id = ?", (client_id,))
        return None if row is None else {**row, "redirect_uris": json.loads(row["redirect_uris"])}

    @read_operation
    def list_apps(self) -> list[dict]:
        """Every registered application, in registration order."""
        return [{**r, "redirect_uris": json.loads(r["redirect_uris"])}
                for r in self.database._all("SELECT * FROM oauth_apps ORDER BY rowid")]

    @operation
    def revoke(self, client_id: str, account_id: int) -> dict:
        """The user withdraws an application's access to an account: its tokens and unused codes stop working."""
        if self.find_app(client_id) is None:
            raise NotFound(f"No OAuth application with client_id {client_id!r}.", field="client_id")
        db = self.database.db
        tokens = db.execute("UPDATE tokens SET revoked = 1 WHERE client_id = ? AND account_id = ? AND revoked = 0",
                            (client_id, account_id)).rowcount
        codes = db.execute("UPDATE oauth_codes SET used = 1 WHERE client_id = ? AND account_id = ? AND used = 0",
                           (client_id, account_id)).rowcount
        return {"client_id": client_id, "account_id": account_id, "revoked_tokens": tokens, "revoked_codes": codes}

    # ------------------------------------------------------------------ authorization requests
    @operation
    def add_request(self, pending: dict) -> None:
        """Record an authorization request awaiting the user; requests nobody decided on in time are dropped."""
        self.database.db.execute("DELETE FROM oauth_requests WHERE expires_at < ?", (pending["created"],))
        self.database.db["oauth_requests"].insert(pending)

    @read_operation
    def pending_requests(self) -> list[dict]:
        """Requests awaiting a decision (with their application's name), oldest first."""
        return self.database._all("SELECT r.*, a.name AS app_name FROM oauth_requests r JOIN oauth_apps a "
                                  "USING (client_id) WHERE r.expires_at > ? ORDER BY r.rowid", (self.database.now(),))

    @operation
    def decide(self, request_id: str, account_id: Any, accept: bool) -> tuple[dict, dict]:
        """The user's decision on a pending request, for ``account_id``: (the request, the parameters the
        browser carries back: a code, a token or an error). The request is used up."""
        row = self.database._one("SELECT * FROM oauth_requests WHERE id = ?", (request_id,))
        if row is None:
            raise NotFound("This authorization request is unknown or was already decided; start again from the "
                           "application's authorization URL.", field="authorization")
        if isinstance(account_id, str) and account_id.isdigit():
            account_id = int(account_id)
        if isinstance(account_id, bool) or not isinstance(account_id, int) or \
                account_id not in self.credentials.find_account_ids():
            raise InvalidField(f"account_id {account_id!r} is not an account of this emulator.", field="account_id")
        db = self.database.db
        db.execute("DELETE FROM oauth_requests WHERE id = ?", (request_id,))
        if self.database.clock.is_past(row["expires_at"]):
            raise NotFound(f"This authorization request expired at {row['expires_at']} (requests wait "
                           f"{REQUEST_SECONDS // 60} minutes for a decision); start again from the application's "
                           "authorization URL.", field="authorization")
        if not accept:
            params: dict[str, Any] = {"error": "access_denied", "state": row["state"]}
        elif row["response_type"] == "token":
            params = {"access_token": self._issue(row["client_id"], account_id, refresh_token=None),
                      "token_type": "bearer", "state": row["state"], "expires_in": str(ACCESS_TOKEN_SECONDS)}
        else:
            params = {"code": secrets.token_urlsafe(24), "state": row["state"]}
            db["oauth_codes"].insert({"code": params["code"], "client_id": row["client_id"], "account_id": account_id,
                                      "redirect_uri": row["redirect_uri"],
                                      "expires_at": self.database.clock.timestamp(CODE_SECONDS), "used": 0})
        return {**row, "account_id": account_id}, {k: v for k, v in params.items() if v is not None}

    # ------------------------------------------------------------------ grants
    def _issue(self, client_id: str, account_id: int, refresh_token: str | None) -> str:
        token = secrets.token_urlsafe(32)
        self.credentials.create_token(token, "oauth", account_id,
                                      expires_at=self.database.clock.timestamp(ACCESS_TOKEN_SECONDS),
                                      refresh_token=refresh_token, client_id=client_id)
        return token

    @operation
    def redeem_code(self, code: str, client_id: str, redirect_uri: str | None) -> tuple[str, str] | None:
        """Exchange an unused code for (access token, refresh token). A code used before returns None after
        revoking what it granted (RFC 6749 4.1.2: it may have been stolen), so that this write commits and the
        caller refuses the request."""
        row = self.database._one("SELECT * FROM oauth_codes WHERE code = ?", (code,))
        if row is None:
            raise OAuthError("invalid_grant", "Unknown authorization code.")
        if row["used"]:
            self.database.db.execute("UPDATE tokens SET revoked = 1 WHERE refresh_token = ?", (row["refresh_token"],))
            return None
        if self.database.clock.is_past(row["expires_at"]):
            raise OAuthError("invalid_grant", f"The authorization code expired at {row['expires_at']} (codes "
                                              f"are valid {CODE_SECONDS // 60} minutes).")
        if row["client_id"] != client_id:
            raise OAuthError("invalid_grant", "The authorization code was issued to another client.")
        if not redirect_uri:
            raise OAuthError("invalid_request", "redirect_uri is required: the same redirect URI as in the "
                                                "authorization request.")
        if redirect_uri != row["redirect_uri"]:
            raise OAuthError("invalid_grant", f"redirect_uri {redirect_uri!r} does not match the redirect URI of the "
                                              f"authorization request ({row['redirect_uri']!r}).")
        refresh = secrets.token_urlsafe(32)
        access = self._issue(client_id, row["account_id"], refresh_token=refresh)
        self.database.db.execute("UPDATE oauth_codes SET used = 1, refresh_token = ? WHERE code = ?", (refresh, code))
        return access, refresh

    @operation
    def refresh(self, refresh_token: str, client_id: str) -> str:
        """A new access token for a grant's refresh token, unless the user revoked the application."""
        row = self.database._one("SELECT client_id, account_id, MIN(revoked) AS all_revoked FROM tokens "
                                 "WHERE refresh_token = ? AND kind = 'oauth' GROUP BY client_id, account_id",
                                 (refresh_token,))
        if row is None:
            raise OAuthError("invalid_grant", "Unknown refresh token.")
        if row["client_id"] != client_id:
            raise OAuthError("invalid_grant", "The refresh token was issued to another client.")
        if row["all_revoked"]:  # every access token of the grant is revoked: the user revoked the application
            raise OAuthError("invalid_grant", "The user revoked this application's access to the account; "
                                              "send them through the authorization flow again.", 403)
        return self._issue(client_id, row["account_id"], refresh_token=refresh_token)
