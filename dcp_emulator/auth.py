"""Token authentication for the DCP APIs: classic tokens and OAuth access tokens only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import AuthenticationFailed, PersonalTokenRefused, Unauthorized
from .store import Store

# Where integrators mistakenly put a token instead of a header.
_MISPLACED_TOKEN_NAMES = ("token", "access_token", "api_token", "Token")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the account and the kind of token used."""

    account_id: int
    token_kind: str


def presented_token(headers: Mapping[str, str]) -> str | None:
    """The token a request presents: the 'Token' header, else an 'Authorization: Bearer' value (stripped)."""
    token = headers.get("Token")
    if token is None:
        scheme, _, value = (headers.get("Authorization") or "").partition(" ")
        token = value if scheme.lower() == "bearer" else None
    return token.strip() if token is not None else None


def authenticate(store: Store, headers: Mapping[str, str], query: Mapping[str, str],
                 body_keys: frozenset[str] = frozenset()) -> Principal:
    """Resolve the request's credentials to a Principal, or raise 401/403 with the reason."""
    token = presented_token(headers)
    if token is None and headers.get("Token") is None and headers.get("Authorization"):
        raise Unauthorized("Unsupported Authorization header: send 'Authorization: Bearer <OAuth access token>' "
                           "or a classic token as 'Token: <token>'.")
    if not token:
        misplaced = [n for n in _MISPLACED_TOKEN_NAMES if n in query or n in body_keys]
        if misplaced:
            raise Unauthorized(f"The token was sent as {misplaced[0]!r} in the query string or body; DCP reads "
                               "credentials only from headers: 'Token: <classic token>' or "
                               "'Authorization: Bearer <OAuth access token>'.")
        raise Unauthorized("Authentication required: send 'Token: <classic token>' or "
                           "'Authorization: Bearer <OAuth access token>'.")
    token = token.strip()
    # Real tokens are ASCII; anything else (even undecodable header bytes) cannot be a known token.
    row = store.credentials.find_token(token) if token.isascii() else None
    if row is None:
        raise AuthenticationFailed("Authentication Failed: the token is unknown.")
    if row["kind"] == "personal":
        raise PersonalTokenRefused("DCP APIs do not accept personal tokens; use a classic API token "
                                   "('Token: <token>') or an OAuth 2.0 access token ('Authorization: Bearer ...').")
    if row["revoked"]:
        raise AuthenticationFailed("Authentication Failed: the token has been revoked.")
    if row["expires_at"] and store.clock.is_past(row["expires_at"]):
        raise AuthenticationFailed(f"Authentication Failed: the OAuth access token expired at {row['expires_at']} "
                                   f"(the emulator's clock reads {store.now()}); get a new one from /oauth2/token "
                                   "with grant_type=refresh_token and retry.")
    return Principal(account_id=row["account_id"], token_kind=row["kind"])
