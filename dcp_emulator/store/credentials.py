"""Accounts, API tokens and the AWS key pairs of services and tables (who may call what)."""

from __future__ import annotations

import base64
import hashlib

from ..resources import TOKEN_KINDS
from .db import Backend, now, operation, read_operation


def aws_key_pair(kind: str, entity_id: int, salt: str = "") -> tuple[str, str]:
    """A deterministic AWS-looking key pair for an entity, so seeded and exported state is stable."""
    digest = hashlib.sha256(f"dcp-emulator:{salt}:{kind}:{entity_id}".encode()).digest()
    access = "AKIA" + base64.b32encode(digest[:10]).decode()[:16]
    secret = base64.b64encode(hashlib.sha256(digest).digest()).decode()[:40].replace("/", "x").replace("+", "y")
    return access, secret


class Credentials(Backend):
    """Accounts, tokens and AWS credentials."""

    @operation
    def create_account(self, account_id: int | None = None, name: str = "Emulated account") -> dict:
        """Create an account (used by seeds and the default state)."""
        aid = self.database.next_id(account_id)
        self.database.db["accounts"].insert({"id": aid, "name": name})
        return {"id": aid, "name": name}

    @operation
    def create_token(self, token: str, kind: str, account_id: int, expires_at: str | None = None,
                     refresh_token: str | None = None, client_id: str | None = None) -> dict:
        """Register an API token of kind classic, personal or oauth for an account."""
        row = {"token": token, "kind": kind, "account_id": account_id, "expires_at": expires_at,
               "revoked": 0, "refresh_token": refresh_token, "client_id": client_id}
        self.database.db["tokens"].insert(row, replace=True)
        return row

    @read_operation
    def find_account_ids(self) -> list[int]:
        """Every account id, in id order."""
        return [r["id"] for r in self.database._all("SELECT id FROM accounts ORDER BY id")]

    @read_operation
    def first_tokens(self, account_id: int) -> dict[str, str | None]:
        """The first token of each kind of an account ({"classic": ..., "personal": ..., "oauth": ...})."""
        rows = self.database._all("SELECT kind, token FROM tokens WHERE account_id = ? AND revoked = 0 "
                                  "ORDER BY rowid", (account_id,))
        out: dict[str, str | None] = {kind: None for kind in TOKEN_KINDS}
        for r in rows:
            if out.get(r["kind"]) is None:
                out[r["kind"]] = r["token"]
        return out

    @read_operation
    def find_token(self, token: str) -> dict | None:
        """The token's row, or None when it is unknown."""
        return self.database._one("SELECT * FROM tokens WHERE token = ?", (token,))

    @operation
    def revoke_token(self, token: str) -> None:
        """Mark a token revoked (it is then refused with 403)."""
        self.database.db.execute("UPDATE tokens SET revoked = 1 WHERE token = ?", (token,))

    @read_operation
    def list_accounts(self) -> list[dict]:
        """Every account with its tokens (kind, expiry, revoked, expired), in id order (the dashboard)."""
        current = now()
        tokens: dict[int, list[dict]] = {}
        for t in self.database._all("SELECT token, kind, account_id, expires_at, revoked, client_id FROM tokens "
                                    "ORDER BY rowid"):
            t["revoked"] = bool(t["revoked"])
            t["expired"] = bool(t["expires_at"] and t["expires_at"] <= current)  # the rule auth.py applies
            tokens.setdefault(t["account_id"], []).append(t)
        return [{**a, "tokens": tokens.get(a["id"], [])}
                for a in self.database._all("SELECT id, name FROM accounts ORDER BY id")]

    @read_operation
    def owner_account(self, entity_id: int) -> int | None:
        """The account owning a DCP service or table (datasource) by id, or None."""
        row = self.database._one("SELECT account_id FROM dcp_services WHERE id = ? UNION ALL SELECT s.account_id "
                                 "FROM datasources d JOIN dcp_services s ON s.id = d.dcp_service_id WHERE d.id = ?",
                                 (entity_id, entity_id))
        return row["account_id"] if row else None

    @read_operation
    def aws_credentials(self, entity_id: int) -> dict | None:
        """The AWS key pair of a table or DCP service by id (any account; ids are unique across types)."""
        row = self.database._one("SELECT id, dcp_service_id, aws_access_key, aws_secret_key FROM datasources "
                                 "WHERE id = ?", (entity_id,))
        if row:
            return {"id": row["id"], "kind": "datasource", "aws_access_key": row["aws_access_key"],
                    "aws_secret_key": row["aws_secret_key"], "prefix": f"dcp/{row['dcp_service_id']}/{row['id']}/"}
        row = self.database._one("SELECT id, aws_access_key, aws_secret_key FROM dcp_services WHERE id = ?",
                                 (entity_id,))
        if row:
            return {"id": row["id"], "kind": "dcp_service", "aws_access_key": row["aws_access_key"],
                    "aws_secret_key": row["aws_secret_key"], "prefix": f"dcp/{row['id']}/"}
        return None

    @read_operation
    def resolve_aws_key(self, access_key: str) -> dict | None:
        """Who an AWS access key belongs to: its secret and the S3 prefix it may write under."""
        row = self.database._one("SELECT d.id AS datasource_id, d.dcp_service_id, d.aws_secret_key, d.archived "
                                 "FROM datasources d WHERE d.aws_access_key = ?", (access_key,))
        if row:
            return {"secret": row["aws_secret_key"], "service_id": row["dcp_service_id"],
                    "datasource_id": row["datasource_id"], "archived": bool(row["archived"]),
                    "prefix": f"dcp/{row['dcp_service_id']}/{row['datasource_id']}/"}
        row = self.database._one("SELECT id, aws_secret_key, archived FROM dcp_services WHERE aws_access_key = ?",
                                 (access_key,))
        if row:
            return {"secret": row["aws_secret_key"], "service_id": row["id"], "datasource_id": None,
                    "archived": bool(row["archived"]), "prefix": f"dcp/{row['id']}/"}
        return None
