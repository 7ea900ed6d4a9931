"""The management API's resources: DCP services, tables (datasources), attributes and projects.

Every method takes the calling account's id and checks ownership (another account's resource is
``NotFound``, never a leak), validates field values and raises the domain errors of ``errors.py``.
"""

from __future__ import annotations

import re
from typing import Any

from .. import datatypes
from ..errors import Archived, InvalidField, LimitExceeded, NotFound
from .credentials import aws_key_pair
from .db import Backend, Database, _in_range, _is_int, operation, read_operation
from .profile_tables import ProfileTables

KEYFIELD_LOCATOR_TYPES = ("cookie", "query parameter", "js_variable", "uid")
_LOCATOR_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z_0-9$]*\Z")
PROJECT_STATUSES = ("active", "paused", "archived")
MAX_ATTRIBUTES_PER_TABLE = 1999  # a profile table has customer_id plus one column per attribute; SQLite allows 2000


class Management(Backend):
    """DCP services, tables, attributes and projects."""

    def __init__(self, database: Database, tables: ProfileTables, max_services_per_account: int = 1):
        super().__init__(database)
        self.tables = tables
        self.max_services_per_account = max_services_per_account

    # ------------------------------------------------------------------ DCP services
    def _service_row(self, account_id: int, service_id: int) -> dict:
        row = self.database._one("SELECT * FROM dcp_services WHERE id = ? AND account_id = ?",
                                 (service_id, account_id))
        if row is None:
            raise NotFound(f"No DCP service with id {service_id} in this account.")
        return row

    def _service_out(self, row: dict) -> dict:
        return {
            "id": row["id"], "account_id": row["account_id"], "archived": bool(row["archived"]),
            "aws_access_key": row["aws_access_key"], "aws_secret_key": row["aws_secret_key"],
            "created": row["created"], "last_modified": row["last_modified"], "name": row["name"],
            "s3_path": f"dcp/{row['id']}",
        }

    @read_operation
    def list_services(self, account_id: int) -> list[dict]:
        """GET dcp_services: every service of the account."""
        rows = self.database._all("SELECT * FROM dcp_services WHERE account_id = ? ORDER BY id", (account_id,))
        return [self._service_out(r) for r in rows]

    @read_operation
    def get_service(self, account_id: int, service_id: int) -> dict:
        """GET dcp_services/{id}."""
        return self._service_out(self._service_row(account_id, service_id))

    @operation
    def create_service(self, account_id: int, fields: dict, *, enforce_limit: bool = True, **given: Any) -> dict:
        """POST dcp_services: create a service and its built-in Optimizely table.

        ``given`` may carry id, aws keys and timestamps (seeds keep them verbatim).
        """
        _check_fields(fields, allowed={"name"}, readonly=_SERVICE_READONLY)
        name = _required_string(fields, "name")
        if enforce_limit:
            self._check_service_limit(account_id)
        sid = self.database.next_id(given.get("id"))
        access, secret = aws_key_pair("service", sid)
        ts = given.get("created") or self.database.now()
        self.database.db["dcp_services"].insert({
            "id": sid, "account_id": account_id, "name": name, "archived": int(bool(given.get("archived"))),
            "aws_access_key": given.get("aws_access_key") or access,
            "aws_secret_key": given.get("aws_secret_key") or secret,
            "created": ts, "last_modified": given.get("last_modified") or ts,
        })
        if given.get("with_optimizely_table", True):
            self._insert_datasource(sid, {
                "name": "Optimizely", "description": None, "keyfield_locator_type": "uid",
                "keyfield_locator_name": None}, is_optimizely=True, given=given.get("optimizely_table") or {})
        return self.get_service(account_id, sid)

    @operation
    def update_service(self, account_id: int, service_id: int, fields: dict) -> dict:
        """PUT dcp_services/{id}: rename; ``archived`` false unarchives (with the tables archived with it)."""
        row = self._service_row(account_id, service_id)
        _check_fields(fields, allowed={"name", "archived"}, readonly=_SERVICE_READONLY)
        archived = _optional_bool(fields, "archived", bool(row["archived"]))
        if row["archived"] and archived:
            raise Archived(f"DCP service {service_id} is archived; archived services can be read but not changed "
                           '(PUT {"archived": false} unarchives it).')
        name = _required_string(fields, "name") if "name" in fields else row["name"]
        db = self.database.db
        if not row["archived"] and archived:  # a rename sent with the archive is applied, as for tables
            db.execute("UPDATE dcp_services SET name = ? WHERE id = ?", (name, service_id))
            self.delete_service(account_id, service_id)
            return self.get_service(account_id, service_id)
        ts = self.database.now()
        if row["archived"]:
            self._check_service_limit(account_id)
            # DELETE stamped the service and the tables it archived with one timestamp: restore those,
            # not tables that had been archived on their own before.
            db.execute("UPDATE datasources SET archived = 0, last_modified = ? WHERE dcp_service_id = ? AND "
                       "archived = 1 AND last_modified = ?", (ts, service_id, row["last_modified"]))
        db.execute("UPDATE dcp_services SET name = ?, archived = 0, last_modified = ? WHERE id = ?",
                   (name, ts, service_id))
        return self.get_service(account_id, service_id)

    def _check_service_limit(self, account_id: int) -> None:
        active = self.database.db.execute("SELECT count(*) FROM dcp_services WHERE account_id = ? AND archived = 0",
                                          (account_id,)).fetchone()[0]
        if active >= self.max_services_per_account:
            raise LimitExceeded(
                f"This account already has {active} active DCP service(s); an account may have at most "
                f"{self.max_services_per_account}. Add tables to the existing service instead "
                "(GET /experiment/v1/dcp_services lists it), or archive it first (DELETE dcp_services/{id}).")

    @operation
    def delete_service(self, account_id: int, service_id: int) -> None:
        """DELETE dcp_services/{id}: archive the service and all its tables."""
        self._service_row(account_id, service_id)
        ts = self.database.now()
        db = self.database.db
        db.execute("UPDATE dcp_services SET archived = 1, last_modified = ? WHERE id = ? AND archived = 0",
                   (ts, service_id))
        db.execute("UPDATE datasources SET archived = 1, last_modified = ? WHERE dcp_service_id = ? "
                   "AND archived = 0", (ts, service_id))

    # ------------------------------------------------------------------ tables (datasources)
    def _datasource_row(self, account_id: int, datasource_id: int, service_id: int | None = None) -> dict:
        row = self.database._one(
            "SELECT d.*, s.archived AS service_archived FROM datasources d JOIN dcp_services s "
            "ON s.id = d.dcp_service_id WHERE d.id = ? AND s.account_id = ?", (datasource_id, account_id))
        if row is None or (service_id is not None and row["dcp_service_id"] != service_id):
            where = f" in DCP service {service_id}" if service_id is not None else " in this account"
            raise NotFound(f"No table (datasource) with id {datasource_id}{where}.")
        return row

    def _service_datasource(self, account_id: int, service_id: int, datasource_id: int) -> dict:
        """The table's row (with ``service_archived``) in one query, or the NotFound of the service or the table."""
        row = self.database._one(
            "SELECT s.archived AS service_archived, d.* FROM dcp_services s LEFT JOIN datasources d "
            "ON d.id = ? AND d.dcp_service_id = s.id WHERE s.id = ? AND s.account_id = ?",
            (datasource_id if _in_range(datasource_id) else None, service_id, account_id))
        if row is None:
            raise NotFound(f"No DCP service with id {service_id} in this account.")
        if row["id"] is None:
            raise NotFound(f"No table (datasource) with id {datasource_id} in DCP service {service_id}.")
        return row

    def _check_writable_datasource(self, row: dict) -> None:
        if row.get("service_archived"):
            raise Archived(f"DCP service {row['dcp_service_id']} is archived; its tables can be read but not "
                           "written.")
        if row["archived"]:
            raise Archived(f"Table {row['id']} is archived; archived tables can be read but not written.")

    def _datasource_out(self, row: dict) -> dict:
        attrs = self.database._all("SELECT * FROM attributes WHERE dcp_datasource_id = ? ORDER BY id", (row["id"],))
        return {
            "id": row["id"], "archived": bool(row["archived"]),
            "attributes": [self._attribute_out(a) for a in attrs],
            "aws_access_key": row["aws_access_key"], "aws_secret_key": row["aws_secret_key"],
            "created": row["created"], "dcp_service_id": row["dcp_service_id"],
            "description": row["description"], "is_optimizely": bool(row["is_optimizely"]),
            "keyfield_locator_name": row["keyfield_locator_name"],
            "keyfield_locator_type": row["keyfield_locator_type"], "last_modified": row["last_modified"],
            "name": row["name"], "s3_path": f"dcp/{row['dcp_service_id']}/{row['id']}",
        }

    def _insert_datasource(self, service_id: int, values: dict, *, is_optimizely: bool = False,
                           given: dict | None = None) -> int:
        given = given or {}
        did = self.database.next_id(given.get("id"))
        access, secret = aws_key_pair("datasource", did)
        ts = given.get("created") or self.database.now()
        self.database.db["datasources"].insert({
            "id": did, "dcp_service_id": service_id, "name": values["name"],
            "description": values.get("description"), "is_optimizely": int(is_optimizely),
            "keyfield_locator_type": values["keyfield_locator_type"],
            "keyfield_locator_name": values.get("keyfield_locator_name"),
            "archived": int(bool(given.get("archived"))),
            "aws_access_key": given.get("aws_access_key") or access,
            "aws_secret_key": given.get("aws_secret_key") or secret,
            "created": ts, "last_modified": given.get("last_modified") or ts,
        })
        self.tables._sync_profile_table(did)
        return did

    @read_operation
    def list_datasources(self, account_id: int, service_id: int) -> list[dict]:
        """GET dcp_services/{id}/dcp_datasources."""
        self._service_row(account_id, service_id)
        rows = self.database._all("SELECT * FROM datasources WHERE dcp_service_id = ? ORDER BY id", (service_id,))
        return [self._datasource_out(r) for r in rows]

    @read_operation
    def get_datasource(self, account_id: int, datasource_id: int) -> dict:
        """GET dcp_datasources/{id}."""
        return self._datasource_out(self._datasource_row(account_id, datasource_id))

    @operation
    def create_datasource(self, account_id: int, service_id: int, fields: dict, **given: Any) -> dict:
        """POST dcp_services/{id}/dcp_datasources: create a table with its own AWS key pair."""
        service = self._service_row(account_id, service_id)
        _check_fields(fields, allowed=_DATASOURCE_EDITABLE, readonly=_DATASOURCE_READONLY)
        if service["archived"]:
            raise Archived(f"DCP service {service_id} is archived; no tables can be added to it.")
        values = _datasource_values(fields, current=None)
        did = self._insert_datasource(service_id, values, given=given)
        return self.get_datasource(account_id, did)

    @operation
    def update_datasource(self, account_id: int, datasource_id: int, fields: dict) -> dict:
        """PUT dcp_datasources/{id}: edit name, description and the customer id locator; ``archived`` false
        unarchives."""
        row = self._datasource_row(account_id, datasource_id)
        _check_fields(fields, allowed=_DATASOURCE_EDITABLE | {"archived"}, readonly=_DATASOURCE_READONLY)
        archived = _optional_bool(fields, "archived", bool(row["archived"]))
        if archived == bool(row["archived"]):
            fields.pop("archived", None)  # a PUT of what GET returned: no change asked
        if row.get("service_archived"):
            raise Archived(f"DCP service {row['dcp_service_id']} is archived; its tables can be read but not "
                           'written (PUT {"archived": false} on the service unarchives it).')
        if row["archived"] and archived:
            raise Archived(f"Table {datasource_id} is archived; archived tables can be read but not written "
                           '(PUT {"archived": false} unarchives it).')
        changed = [k for k in fields if k != "archived" and fields[k] != row[k]]
        if row["is_optimizely"] and (changed or "archived" in fields):
            raise InvalidField("The built-in Optimizely table cannot be edited.",
                               field=(changed or ["archived"])[0])
        fields.pop("archived", None)
        values = _datasource_values(fields, current=row)
        self.database.db.execute(
            "UPDATE datasources SET name = ?, description = ?, keyfield_locator_type = ?, "
            "keyfield_locator_name = ?, archived = ?, last_modified = ? WHERE id = ?",
            (values["name"], values["description"], values["keyfield_locator_type"],
             values["keyfield_locator_name"], int(archived), self.database.now(), datasource_id))
        return self.get_datasource(account_id, datasource_id)

    @operation
    def delete_datasource(self, account_id: int, datasource_id: int) -> None:
        """DELETE dcp_datasources/{id}: archive the table."""
        row = self._datasource_row(account_id, datasource_id)
        if row["is_optimizely"]:
            raise InvalidField("The built-in Optimizely table cannot be deleted; delete the DCP service instead.",
                               field="id")
        self.database.db.execute("UPDATE datasources SET archived = 1, last_modified = ? WHERE id = ? AND "
                                 "archived = 0", (self.database.now(), datasource_id))

    # ------------------------------------------------------------------ attributes
    def _attribute_row(self, account_id: int, attribute_id: int) -> dict:
        row = self.database._one(
            "SELECT a.* FROM attributes a JOIN datasources d ON d.id = a.dcp_datasource_id "
            "JOIN dcp_services s ON s.id = d.dcp_service_id WHERE a.id = ? AND s.account_id = ?",
            (attribute_id, account_id))
        if row is None:
            raise NotFound(f"No attribute with id {attribute_id} in this account.")
        return row

    @staticmethod
    def _attribute_out(row: dict) -> dict:
        return {
            "archived": bool(row["archived"]), "created": row["created"], "datatype": row["datatype"],
            "dcp_datasource_id": row["dcp_datasource_id"], "description": row["description"],
            "format": row["format"], "id": row["id"], "is_value_public": bool(row["is_value_public"]),
            "last_modified": row["last_modified"], "name": row["name"],
        }

    @read_operation
    def list_attributes(self, account_id: int, datasource_id: int) -> list[dict]:
        """GET dcp_datasources/{id}/dcp_datasource_attributes."""
        self._datasource_row(account_id, datasource_id)
        rows = self.database._all("SELECT * FROM attributes WHERE dcp_datasource_id = ? ORDER BY id",
                                  (datasource_id,))
        return [self._attribute_out(r) for r in rows]

    @read_operation
    def get_attribute(self, account_id: int, attribute_id: int) -> dict:
        """GET dcp_datasource_attributes/{id}."""
        return self._attribute_out(self._attribute_row(account_id, attribute_id))

    @operation
    def create_attribute(self, account_id: int, datasource_id: int, fields: dict, **given: Any) -> dict:
        """POST dcp_datasources/{id}/dcp_datasource_attributes: register an attribute."""
        ds = self._datasource_row(account_id, datasource_id)
        _check_fields(fields, allowed=_ATTRIBUTE_FIELDS, readonly=_ATTRIBUTE_READONLY)
        self._check_writable_datasource(ds)
        name = _required_string(fields, "name")
        if name.lower() == "customerid":
            raise InvalidField("'customerId' is reserved: it is the key column of bulk uploads. Choose another "
                               "attribute name.", field="name")
        if any(c in name for c in ",\t\r\n\""):
            raise InvalidField("Attribute names cannot contain commas, tabs, quotes or line breaks: they are "
                               "column headers of bulk uploads.", field="name")
        datatype, fmt = fields.get("datatype"), fields.get("format")
        if "datatype" not in fields:
            raise InvalidField(f"datatype is required, one of {', '.join(datatypes.DATATYPES)}.", field="datatype")
        problem = datatypes.check_definition(datatype, fmt)
        if problem:
            raise InvalidField(f"{problem} (got datatype={datatype!r}, format={fmt!r}).",
                               field="datatype" if datatype not in datatypes.DATATYPES else "format")
        description = _optional_string(fields, "description")
        is_public = _optional_bool(fields, "is_value_public", False)
        archived = bool(given.get("archived"))
        db = self.database.db
        count = db.execute("SELECT count(*) FROM attributes WHERE dcp_datasource_id = ?",
                           (datasource_id,)).fetchone()[0]
        if count >= MAX_ATTRIBUTES_PER_TABLE:
            raise LimitExceeded(f"Table {datasource_id} already has {count} attributes (archived ones included); "
                                f"the emulator stores at most {MAX_ATTRIBUTES_PER_TABLE} per table.")
        if not archived:
            clash = db.execute("SELECT id FROM attributes WHERE dcp_datasource_id = ? AND name = ? AND archived = 0",
                               (datasource_id, name)).fetchone()
            if clash:
                raise InvalidField(f"Table {datasource_id} already has an attribute named {name!r} (id {clash[0]}); "
                                   "names are case-sensitive and unique within a table.", field="name")
        aid = self.database.next_id(given.get("id"))
        ts = given.get("created") or self.database.now()
        db["attributes"].insert({
            "id": aid, "dcp_datasource_id": datasource_id, "name": name, "datatype": datatype,
            "format": fmt, "description": description, "is_value_public": int(is_public),
            "archived": int(archived), "created": ts, "last_modified": given.get("last_modified") or ts,
        })
        self.tables._forget(datasource_id)
        self.tables._sync_profile_table(datasource_id)
        return self.get_attribute(account_id, aid)

    @operation
    def update_attribute(self, account_id: int, attribute_id: int, fields: dict) -> dict:
        """PUT dcp_datasource_attributes/{id}: edit description/is_value_public, or unarchive."""
        row = self._attribute_row(account_id, attribute_id)
        _check_fields(fields, allowed=_ATTRIBUTE_FIELDS | {"archived"}, readonly=_ATTRIBUTE_READONLY)
        for immutable in ("name", "datatype", "format"):
            if immutable in fields and fields[immutable] != row[immutable]:
                raise InvalidField(
                    f"An attribute's {immutable} cannot be changed. Archive this attribute (DELETE "
                    f"dcp_datasource_attributes/{attribute_id}) and create a new one instead.", field=immutable)
        ds = self._datasource_row(account_id, row["dcp_datasource_id"])
        self._check_writable_datasource(ds)
        description = _optional_string(fields, "description") if "description" in fields else row["description"]
        is_public = _optional_bool(fields, "is_value_public", bool(row["is_value_public"]))
        archived = _optional_bool(fields, "archived", bool(row["archived"]))
        if row["archived"] and archived and (description, is_public) != (row["description"],
                                                                          bool(row["is_value_public"])):
            raise Archived(f"Attribute {attribute_id} is archived; archived attributes can be read but not changed "
                           '(PUT {"archived": false} unarchives it, and may carry the edit).')
        if row["archived"] and not archived:
            clash = self.database._one("SELECT id FROM attributes WHERE dcp_datasource_id = ? AND name = ? AND "
                                       "archived = 0 AND id != ?", (row["dcp_datasource_id"], row["name"], attribute_id))
            if clash:
                raise InvalidField(f"Cannot unarchive: attribute {clash['id']} of this table is already named "
                                   f"{row['name']!r}.", field="archived")
        self.database.db.execute("UPDATE attributes SET description = ?, is_value_public = ?, archived = ?, "
                                 "last_modified = ? WHERE id = ?",
                                 (description, int(is_public), int(archived), self.database.now(), attribute_id))
        self.tables._forget(row["dcp_datasource_id"])
        return self.get_attribute(account_id, attribute_id)

    @operation
    def delete_attribute(self, account_id: int, attribute_id: int) -> None:
        """DELETE dcp_datasource_attributes/{id}: archive the attribute (its table must be writable)."""
        row = self._attribute_row(account_id, attribute_id)
        self._check_writable_datasource(self._datasource_row(account_id, row["dcp_datasource_id"]))
        self.database.db.execute("UPDATE attributes SET archived = 1, last_modified = ? WHERE id = ? AND "
                                 "archived = 0", (self.database.now(), attribute_id))
        self.tables._forget(row["dcp_datasource_id"])

    # ------------------------------------------------------------------ projects
    def _project_row(self, account_id: int, project_id: int) -> dict:
        row = self.database._one("SELECT * FROM projects WHERE id = ? AND account_id = ?", (project_id, account_id))
        if row is None:
            raise NotFound(f"No project with id {project_id} in this account.")
        return row

    @staticmethod
    def _project_out(row: dict) -> dict:
        return {k: row[k] for k in ("id", "account_id", "project_name", "project_status", "created",
                                    "last_modified", "dcp_service_id")}

    @read_operation
    def list_projects(self, account_id: int) -> list[dict]:
        """GET projects."""
        return [self._project_out(r) for r in
                self.database._all("SELECT * FROM projects WHERE account_id = ? ORDER BY id", (account_id,))]

    @read_operation
    def get_project(self, account_id: int, project_id: int) -> dict:
        """GET projects/{id}."""
        return self._project_out(self._project_row(account_id, project_id))

    @operation
    def create_project(self, account_id: int, fields: dict, **given: Any) -> dict:
        """POST projects."""
        _check_fields(fields, allowed=_PROJECT_FIELDS, readonly=_PROJECT_READONLY)
        name = _required_string(fields, "project_name")
        status = _project_status(fields, "active")
        service_id = self._project_service(account_id, fields, None)
        pid = self.database.next_id(given.get("id"))
        ts = given.get("created") or self.database.now()
        self.database.db["projects"].insert({"id": pid, "account_id": account_id, "project_name": name,
                                             "project_status": status, "dcp_service_id": service_id, "created": ts,
                                             "last_modified": given.get("last_modified") or ts})
        return self.get_project(account_id, pid)

    @operation
    def update_project(self, account_id: int, project_id: int, fields: dict) -> dict:
        """PUT projects/{id}: rename, change status, or link/unlink a DCP service."""
        row = self._project_row(account_id, project_id)
        _check_fields(fields, allowed=_PROJECT_FIELDS, readonly=_PROJECT_READONLY)
        name = _required_string(fields, "project_name") if "project_name" in fields else row["project_name"]
        status = _project_status(fields, row["project_status"])
        service_id = self._project_service(account_id, fields, row["dcp_service_id"])
        self.database.db.execute("UPDATE projects SET project_name = ?, project_status = ?, dcp_service_id = ?, "
                                 "last_modified = ? WHERE id = ?",
                                 (name, status, service_id, self.database.now(), project_id))
        return self.get_project(account_id, project_id)

    def _project_service(self, account_id: int, fields: dict, current: int | None) -> int | None:
        if "dcp_service_id" not in fields:
            return current
        sid = fields["dcp_service_id"]
        if sid is None:
            return None
        if not _is_int(sid):
            raise InvalidField("dcp_service_id must be an integer service id, or null to unlink.",
                               field="dcp_service_id")
        row = self.database._one("SELECT * FROM dcp_services WHERE id = ? AND account_id = ?", (sid, account_id))
        if row is None:
            raise InvalidField(f"dcp_service_id {sid} is not a DCP service of this account "
                               "(GET /experiment/v1/dcp_services lists yours).", field="dcp_service_id")
        if row["archived"]:
            raise Archived(f"DCP service {sid} is archived and cannot be linked to a project.",
                           field="dcp_service_id")
        return sid


# ---------------------------------------------------------------------- field helpers
_SERVICE_READONLY = {"id", "account_id", "archived", "aws_access_key", "aws_secret_key", "created",
                     "last_modified", "s3_path"}
_DATASOURCE_EDITABLE = {"name", "description", "keyfield_locator_type", "keyfield_locator_name"}
_DATASOURCE_READONLY = {"id", "archived", "attributes", "aws_access_key", "aws_secret_key", "created",
                        "dcp_service_id", "is_optimizely", "last_modified", "s3_path"}
_ATTRIBUTE_FIELDS = {"name", "datatype", "format", "description", "is_value_public"}
_ATTRIBUTE_READONLY = {"id", "archived", "created", "dcp_datasource_id", "last_modified"}
_PROJECT_FIELDS = {"project_name", "project_status", "dcp_service_id"}
_PROJECT_READONLY = {"id", "account_id", "created", "last_modified"}


def _check_fields(fields: dict, allowed: set[str], readonly: set[str]) -> None:
    """Refuse unknown fields by name; drop read-only ones (clients often PUT back what they GET)."""
    for key in list(fields):
        if key in allowed:
            continue
        if key in readonly:
            fields.pop(key)
            continue
        raise InvalidField(f"Unknown field {key!r}; accepted fields are {', '.join(sorted(allowed))}.", field=key)


def _required_string(fields: dict, name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        got = "missing" if name not in fields else f"got {datatypes.json_kind(value) if not isinstance(value, str) else 'an empty string'}"
        raise InvalidField(f"{name} is required and must be a non-empty string ({got}).", field=name)
    if len(value) > 255:
        raise InvalidField(f"{name} must be at most 255 characters (got {len(value)}).", field=name)
    return value


def _optional_string(fields: dict, name: str) -> str | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidField(f"{name} must be a string or null.", field=name)
    return value


def _optional_bool(fields: dict, name: str, default: bool) -> bool:
    value = fields.get(name, default)
    if not isinstance(value, bool):
        raise InvalidField(f"{name} must be true or false (a JSON boolean).", field=name)
    return value


def _project_status(fields: dict, default: str) -> str:
    status = fields.get("project_status", default)
    if status not in PROJECT_STATUSES:
        raise InvalidField(f"project_status must be one of {', '.join(PROJECT_STATUSES)}, got {status!r}.",
                           field="project_status")
    return status


def _datasource_values(fields: dict, current: dict | None) -> dict:
    """Validate a table's editable fields, merged over its current values on update."""
    merged = {k: (current or {}).get(k) for k in _DATASOURCE_EDITABLE}
    merged.update(fields)
    if current is None or "name" in fields:
        _required_string(merged, "name")
    _optional_string(merged, "description")
    kind = merged.get("keyfield_locator_type")
    if kind not in KEYFIELD_LOCATOR_TYPES:
        raise InvalidField(f"keyfield_locator_type is required, one of {', '.join(map(repr, KEYFIELD_LOCATOR_TYPES))} "
                           f"(got {kind!r}).", field="keyfield_locator_type")
    locator = merged.get("keyfield_locator_name")
    if locator is None:
        if kind != "uid":
            raise InvalidField(f"keyfield_locator_name is required when keyfield_locator_type is {kind!r}: the name "
                               "of the cookie, query parameter or JS variable holding the customer id.",
                               field="keyfield_locator_name")
    elif not isinstance(locator, str) or not _LOCATOR_NAME_RE.match(locator):
        raise InvalidField(f"keyfield_locator_name must match ^[a-zA-Z_][a-zA-Z_0-9$]*$ (got {locator!r}).",
                           field="keyfield_locator_name")
    return merged
