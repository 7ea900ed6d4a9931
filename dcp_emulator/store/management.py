"""The management API's resources: DCP services, tables (datasources), attributes and projects.

Every method takes the calling account's id and checks ownership (another account's resource is
``NotFound``, never a leak). Fields are validated and rendered by the resource descriptions of
``resources.py``; the rules that need the database or span fields are here.
"""

from __future__ import annotations

from typing import Any

from .. import datatypes
from ..errors import Archived, InvalidField, LimitExceeded, NotFound
from ..resources import (
    ATTRIBUTE,
    DATASOURCE,
    EDITABLE,
    MAX_ATTRIBUTES_PER_TABLE,
    PROJECT,
    PROJECT_SCRIPT_FIELDS,
    SERVICE,
)
from .credentials import aws_key_pair
from .db import Backend, Database, _in_range, operation, read_operation
from .profile_tables import ProfileTables


class Management(Backend):
    """DCP services, tables, attributes and projects."""

    def __init__(self, database: Database, tables: ProfileTables, max_services_per_account: int = 1):
        super().__init__(database)
        self.tables = tables
        self.max_services_per_account = max_services_per_account

    # ------------------------------------------------------------------ DCP services
    def _service_row(self, account_id: int, service_id: int) -> dict:
        row = self.database._one("SELECT * FROM dcp_services WHERE id = ? AND account_id = ?", (service_id, account_id))
        if row is None:
            raise NotFound(f"No DCP service with id {service_id} in this account.")
        return row

    @read_operation
    def list_services(self, account_id: int) -> list[dict]:
        """GET dcp_services: every service of the account."""
        return self.database._all("SELECT * FROM dcp_services WHERE account_id = ? ORDER BY id", (account_id,))

    @read_operation
    def get_service(self, account_id: int, service_id: int) -> dict:
        """GET dcp_services/{id}."""
        return self._service_row(account_id, service_id)

    @operation
    def create_service(self, account_id: int, fields: dict, *, enforce_limit: bool = True, **given: Any) -> dict:
        """POST dcp_services: create a service and its built-in Optimizely table.

        ``given`` may carry id, aws keys and timestamps (seeds keep them verbatim).
        """
        values = SERVICE.parse_create(fields)
        db = self.database.db
        if enforce_limit:
            self._check_service_limit(account_id)
        sid = self.database.next_id(given.get("id"))
        access, secret = aws_key_pair("service", sid)
        ts = given.get("created") or self.database.now()
        db["dcp_services"].insert({
            "id": sid, "account_id": account_id, "name": values["name"],
            "archived": int(bool(given.get("archived"))),
            "aws_access_key": given.get("aws_access_key") or access,
            "aws_secret_key": given.get("aws_secret_key") or secret,
            "created": ts, "last_modified": given.get("last_modified") or ts,
        })
        if given.get("with_optimizely_table", True):
            self._insert_datasource(sid, OPTIMIZELY_TABLE, is_optimizely=True,
                                    given=given.get("optimizely_table") or {})
        return self.get_service(account_id, sid)

    @operation
    def update_service(self, account_id: int, service_id: int, fields: dict) -> dict:
        """PUT dcp_services/{id}: rename; ``archived`` false unarchives (with the tables archived with it)."""
        db = self.database.db
        # read, checked and written in one state: a racing DELETE cannot be undone
        row = self._service_row(account_id, service_id)
        changes = SERVICE.parse_update(fields, row)
        archived = changes.get("archived", bool(row["archived"]))
        if row["archived"] and archived:
            raise Archived(f"DCP service {service_id} is archived; archived services can be read but not "
                           'changed (PUT {"archived": false} unarchives it).')
        name = changes.get("name", row["name"])
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
        db = self.database.db
        self._service_row(account_id, service_id)
        ts = self.database.now()
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

    def _with_attributes(self, row: dict) -> dict:
        """A table's row with its attribute rows (archived ones too), as the API shows a table."""
        attrs = self.database._all("SELECT * FROM attributes WHERE dcp_datasource_id = ? ORDER BY id", (row["id"],))
        return {**row, "attributes": attrs}

    def _insert_datasource(self, service_id: int, values: dict, *,
                           is_optimizely: bool = False, given: dict | None = None) -> int:
        given = given or {}
        did = self.database.next_id(given.get("id"))
        access, secret = aws_key_pair("datasource", did)
        ts = given.get("created") or self.database.now()
        self.database.db["datasources"].insert({
            **values, "id": did, "dcp_service_id": service_id, "is_optimizely": int(is_optimizely),
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
        return [self._with_attributes(r) for r in rows]

    @read_operation
    def get_datasource(self, account_id: int, datasource_id: int) -> dict:
        """GET dcp_datasources/{id}."""
        return self._with_attributes(self._datasource_row(account_id, datasource_id))

    @operation
    def create_datasource(self, account_id: int, service_id: int, fields: dict, **given: Any) -> dict:
        """POST dcp_services/{id}/dcp_datasources: create a table with its own AWS key pair."""
        service = self._service_row(account_id, service_id)
        values = DATASOURCE.parse_create(fields)
        if service["archived"]:
            raise Archived(f"DCP service {service_id} is archived; no tables can be added to it.")
        _check_locator(values)
        did = self._insert_datasource(service_id, values, given=given)
        return self.get_datasource(account_id, did)

    @operation
    def update_datasource(self, account_id: int, datasource_id: int, fields: dict) -> dict:
        """PUT dcp_datasources/{id}: edit name, description and the customer id locator; ``archived`` false
        unarchives."""
        db = self.database.db
        row = self._datasource_row(account_id, datasource_id)
        changes = DATASOURCE.parse_update(fields, self._with_attributes(row))
        archived = changes.pop("archived", bool(row["archived"]))
        if row.get("service_archived"):
            raise Archived(f"DCP service {row['dcp_service_id']} is archived; its tables can be read but not "
                           'written (PUT {"archived": false} on the service unarchives it).')
        if row["archived"] and archived:
            raise Archived(f"Table {datasource_id} is archived; archived tables can be read but not written "
                           '(PUT {"archived": false} unarchives it).')
        if row["is_optimizely"] and (changes or archived != bool(row["archived"])):
            raise InvalidField("The built-in Optimizely table cannot be edited.",
                               field=next(iter(changes), "archived"))
        values = {**{k: row[k] for k in _DATASOURCE_EDITABLE}, **changes}
        _check_locator(values)
        db["datasources"].update(datasource_id, {**values, "archived": int(archived),
                                                 "last_modified": self.database.now()})
        return self.get_datasource(account_id, datasource_id)

    @operation
    def delete_datasource(self, account_id: int, datasource_id: int) -> None:
        """DELETE dcp_datasources/{id}: archive the table."""
        db = self.database.db
        row = self._datasource_row(account_id, datasource_id)
        if row["is_optimizely"]:
            raise InvalidField("The built-in Optimizely table cannot be deleted; delete the DCP service "
                               "instead.", field="id")
        db.execute("UPDATE datasources SET archived = 1, last_modified = ? WHERE id = ? AND archived = 0",
                   (self.database.now(), datasource_id))

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

    # ------------------------------------------------------------------ attributes
    def _attribute_row(self, account_id: int, attribute_id: int) -> dict:
        row = self.database._one(
            "SELECT a.* FROM attributes a JOIN datasources d ON d.id = a.dcp_datasource_id "
            "JOIN dcp_services s ON s.id = d.dcp_service_id WHERE a.id = ? AND s.account_id = ?",
            (attribute_id, account_id))
        if row is None:
            raise NotFound(f"No attribute with id {attribute_id} in this account.")
        return row

    @read_operation
    def list_attributes(self, account_id: int, datasource_id: int) -> list[dict]:
        """GET dcp_datasources/{id}/dcp_datasource_attributes."""
        self._datasource_row(account_id, datasource_id)
        return self.database._all("SELECT * FROM attributes WHERE dcp_datasource_id = ? ORDER BY id", (datasource_id,))

    @read_operation
    def get_attribute(self, account_id: int, attribute_id: int) -> dict:
        """GET dcp_datasource_attributes/{id}."""
        return self._attribute_row(account_id, attribute_id)

    @operation
    def create_attribute(self, account_id: int, datasource_id: int, fields: dict, **given: Any) -> dict:
        """POST dcp_datasources/{id}/dcp_datasource_attributes: register an attribute."""
        db = self.database.db
        ds = self._datasource_row(account_id, datasource_id)
        values = ATTRIBUTE.parse_create(fields)
        self._check_writable_datasource(ds)
        name, datatype, fmt = values["name"], values["datatype"], values["format"]
        if name.lower() == "customerid":
            raise InvalidField("'customerId' is reserved: it is the key column of bulk uploads. Choose another "
                               "attribute name.", field="name")
        if any(c in name for c in ",\t\r\n\""):
            raise InvalidField("Attribute names cannot contain commas, tabs, quotes or line breaks: they are "
                               "column headers of bulk uploads.", field="name")
        problem = datatypes.check_definition(datatype, fmt)
        if problem:
            raise InvalidField(f"{problem} (got datatype={datatype!r}, format={fmt!r}).", field="format")
        archived = bool(given.get("archived"))
        count = db.execute("SELECT count(*) FROM attributes WHERE dcp_datasource_id = ?", (datasource_id,)).fetchone()[0]
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
            **values, "id": aid, "dcp_datasource_id": datasource_id, "is_value_public": int(values["is_value_public"]),
            "archived": int(archived), "created": ts, "last_modified": given.get("last_modified") or ts,
        })
        self.tables._forget(datasource_id)
        self.tables._sync_profile_table(datasource_id)
        return self.get_attribute(account_id, aid)

    @operation
    def update_attribute(self, account_id: int, attribute_id: int, fields: dict) -> dict:
        """PUT dcp_datasource_attributes/{id}: edit description/is_value_public, or unarchive."""
        db = self.database.db
        row = self._attribute_row(account_id, attribute_id)
        changes = ATTRIBUTE.parse_update(fields, row)
        self._check_writable_datasource(self._datasource_row(account_id, row["dcp_datasource_id"]))
        archived = changes.pop("archived", bool(row["archived"]))
        if row["archived"] and archived and changes:
            raise Archived(f"Attribute {attribute_id} is archived; archived attributes can be read but not "
                           'changed (PUT {"archived": false} unarchives it, and may carry the edit).')
        if row["archived"] and not archived:
            clash = self.database._one("SELECT id FROM attributes WHERE dcp_datasource_id = ? AND name = ? AND "
                              "archived = 0 AND id != ?", (row["dcp_datasource_id"], row["name"], attribute_id))
            if clash:
                raise InvalidField(f"Cannot unarchive: attribute {clash['id']} of this table is already named "
                                   f"{row['name']!r}.", field="archived")
        if "is_value_public" in changes:
            changes["is_value_public"] = int(changes["is_value_public"])
        db["attributes"].update(attribute_id, {**changes, "archived": int(archived), "last_modified": self.database.now()})
        self.tables._forget(row["dcp_datasource_id"])
        return self.get_attribute(account_id, attribute_id)

    @operation
    def delete_attribute(self, account_id: int, attribute_id: int) -> None:
        """DELETE dcp_datasource_attributes/{id}: archive the attribute (its table must be writable)."""
        db = self.database.db
        row = self._attribute_row(account_id, attribute_id)
        self._check_writable_datasource(self._datasource_row(account_id, row["dcp_datasource_id"]))
        db.execute("UPDATE attributes SET archived = 1, last_modified = ? WHERE id = ? AND archived = 0",
                   (self.database.now(), attribute_id))
        self.tables._forget(row["dcp_datasource_id"])

    @read_operation
    def active_attributes(self, datasource_id: int) -> list[dict]:
        """The table's non-archived attribute rows, in id order (for writes, reads and templates)."""
        return [dict(a) for a in self.tables._layout(datasource_id).attributes]

    # ------------------------------------------------------------------ projects
    def _project_row(self, account_id: int, project_id: int) -> dict:
        row = self.database._one("SELECT * FROM projects WHERE id = ? AND account_id = ?", (project_id, account_id))
        if row is None:
            raise NotFound(f"No project with id {project_id} in this account.")
        return row

    @read_operation
    def list_projects(self, account_id: int) -> list[dict]:
        """GET projects."""
        return self.database._all("SELECT * FROM projects WHERE account_id = ? ORDER BY id", (account_id,))

    @read_operation
    def get_project(self, account_id: int, project_id: int) -> dict:
        """GET projects/{id}."""
        return self._project_row(account_id, project_id)

    @operation
    def create_project(self, account_id: int, fields: dict, **given: Any) -> dict:
        """POST projects: every editable field of the classic project, defaults for those not given."""
        db = self.database.db
        values = PROJECT.parse_create(fields)
        self._check_project_service(account_id, values["dcp_service_id"])
        pid = self.database.next_id(given.get("id"))
        ts = given.get("created") or self.database.now()
        db["projects"].insert({**_project_columns(values), "id": pid, "account_id": account_id,
                               "code_revision": given.get("code_revision") or 1, "created": ts,
                               "last_modified": given.get("last_modified") or ts})
        return self.get_project(account_id, pid)

    @operation
    def update_project(self, account_id: int, project_id: int, fields: dict) -> dict:
        """PUT projects/{id}: change editable fields (a change to the project's script bumps code_revision),
        or link/unlink a DCP service."""
        db = self.database.db
        row = self._project_row(account_id, project_id)
        changes = PROJECT.parse_update(fields, row)
        if "dcp_service_id" in changes:
            self._check_project_service(account_id, changes["dcp_service_id"])
        bump = any(k in PROJECT_SCRIPT_FIELDS for k in changes)
        db["projects"].update(project_id, {**_project_columns(changes), "last_modified": self.database.now(),
                                           "code_revision": row["code_revision"] + bump})
        return self.get_project(account_id, project_id)

    def _check_project_service(self, account_id: int, service_id: int | None) -> None:
        if service_id is None:
            return
        row = self.database._one("SELECT * FROM dcp_services WHERE id = ? AND account_id = ?", (service_id, account_id))
        if row is None:
            raise InvalidField(f"dcp_service_id {service_id} is not a DCP service of this account "
                               "(GET /experiment/v1/dcp_services lists yours).", field="dcp_service_id")
        if row["archived"]:
            raise Archived(f"DCP service {service_id} is archived and cannot be linked to a project.",
                           field="dcp_service_id")


# ---------------------------------------------------------------------- field helpers
# A table's editable fields, and the ones the built-in Optimizely table always has.
_DATASOURCE_EDITABLE = tuple(f.name for f in DATASOURCE.fields if f.access == EDITABLE)
OPTIMIZELY_TABLE = {"name": "Optimizely", "description": None, "keyfield_locator_type": "uid",
                    "keyfield_locator_name": None}


def _check_locator(values: dict) -> None:
    """A table's locator name is required unless the customer id is the Optimizely user id (uid)."""
    kind = values["keyfield_locator_type"]
    if values["keyfield_locator_name"] is None and kind != "uid":
        raise InvalidField(f"keyfield_locator_name is required when keyfield_locator_type is {kind!r}: the name "
                           "of the cookie, query parameter or JS variable holding the customer id.",
                           field="keyfield_locator_name")


def _project_columns(values: dict) -> dict:
    """A project's field values as stored (booleans as 1/0)."""
    return {k: int(v) if isinstance(v, bool) else v for k, v in values.items()}
