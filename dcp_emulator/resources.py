"""One declarative description per resource: its fields, their types, vocabularies, limits, and who may set them.

Everything that needs to know a resource's fields derives it from here: request validation (unknown,
read-only and badly typed fields refused with a message naming the field), rendering a stored row as the
API's JSON, the keys a seed may give and the ones an export writes, and the schemas of the OpenAPI
document (``openapi.py``). Rules that span fields or need the database (a table's locator name, an
attribute's datatype and format, a project's service) stay with the store operation; they are named
here as ``checks`` so there is one list of what each resource enforces.

No Flask and no SQL here: this module is shared by the store, the API layer, seeds and the document.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from . import datatypes
from .errors import InvalidField

# Who may set a field:
READ_ONLY = "read_only"  # set by the emulator; sent back unchanged on PUT it is accepted, otherwise refused
EDITABLE = "editable"  # settable on create and on update
CREATE_ONLY = "create_only"  # set on create, never changed afterwards (PUT accepts only the current value)
UPDATE_ONLY = "update_only"  # only PUT changes it (e.g. ``archived: false`` unarchives)

# A timestamp as the API writes it (UTC, up to 6 fractional digits, Z): what a seed may give verbatim.
TIMESTAMP_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")
_REGISTRY: dict[str, Resource] = {}  # every description by name (constant data, filled at import)
_ID_MAX = 2**63 - 1  # SQLite's INTEGER range: every integer field is an id or a count
MAX_ATTRIBUTES_PER_TABLE = 1999  # a profile table has customer_id plus one column per attribute; SQLite allows 2000
_NAME_LIMIT = 255  # names of services, tables, attributes and projects
_TEXT_LIMIT = 65_536  # free text (descriptions, project JavaScript): well past any real value


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of a resource as the API shows it."""

    name: str
    type: str  # integer | string | boolean | timestamp | array | object
    doc: str
    access: str = READ_ONLY
    required: bool = False  # must be given on create
    nullable: bool = False
    default: Any = None  # the value on create when not given (and what an export leaves out)
    enum: tuple[str, ...] | None = None
    max_length: int | None = None
    pattern: str | None = None  # a regular expression the whole string must match
    non_blank: bool = False  # a string that must contain something other than spaces
    items: str | dict | None = None  # for arrays: the resource name of the items, or their JSON Schema
    column: str | None = None  # the stored column, when named otherwise
    computed: Callable[[Mapping[str, Any]], Any] | None = None  # derived from the row, never stored
    trimmed: bool = False  # a string that must not start or end with whitespace
    omit_null: bool = False  # left out of the rendered resource when null (instead of null)
    hint: str = ""  # what to send, for the message when a required field is missing
    schema_extra: dict | None = None  # more JSON Schema for the document (what an object's values may be)
    minimum: float | None = None  # numbers: the range (integers default to ids' 0 .. 2**63-1)
    maximum: float | None = None

    @property
    def writable_on_create(self) -> bool:
        """The API accepts it in a POST body."""
        return self.access in (EDITABLE, CREATE_ONLY)

    @property
    def writable_on_update(self) -> bool:
        """The API accepts a new value of it in a PUT body."""
        return self.access in (EDITABLE, UPDATE_ONLY)

    def schema(self) -> dict:
        """The JSON Schema of the field's value."""
        if self.type == "timestamp":
            out: dict[str, Any] = {"type": "string", "format": "date-time"}
        elif self.type in ("integer", "number"):
            out = {"type": self.type}
            for key, bound in zip(("minimum", "maximum"), self._range(), strict=True):
                if bound not in (float("-inf"), float("inf")):
                    out[key] = bound
        elif self.type == "array":
            items = self.items if isinstance(self.items, dict) else {"$ref": schema_ref(self.items or "")}
            out = {"type": "array", "items": items}
        else:
            out = {"type": self.type}
        if self.enum:
            out["enum"] = list(self.enum)
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        if self.pattern is not None:
            out["pattern"] = f"^{self.pattern}$"  # JSON Schema patterns search; the API matches whole strings
        elif self.non_blank:
            out["pattern"] = r"\S"
        if self.nullable:
            if "enum" in out:
                out["enum"].append(None)
            out["type"] = [out["type"], "null"]
        out.update(self.schema_extra or {})
        out["description"] = self.doc
        if self.access == READ_ONLY:
            out["readOnly"] = True
        return out

    def check(self, value: Any) -> Any:
        """``value`` if it is a valid value of this field, else the InvalidField that says why."""
        name = self.name
        if value is None:
            if self.nullable:
                return None
            if self.type == "string" and self.non_blank:
                raise InvalidField(f"{name} is required and must be a non-empty string (got null).", field=name)
            raise InvalidField(f"{name} must be {_expected(self)}, not null.", field=name)
        if self.type == "boolean":
            if not isinstance(value, bool):
                raise InvalidField(f"{name} must be true or false (a JSON boolean).", field=name)
        elif self.type in ("object", "array"):
            if not isinstance(value, dict if self.type == "object" else list):
                raise InvalidField(f"{name} must be {_expected(self)} (got {datatypes.json_kind(value)}).",
                                   field=name)
        elif self.type == "timestamp":
            if not isinstance(value, str) or not TIMESTAMP_RE.fullmatch(value):
                raise InvalidField(f"{name} must be a UTC timestamp like 2015-08-18T21:38:55.927670Z (got "
                                   f"{json.dumps(value)}).", field=name)
        elif self.type in ("integer", "number"):
            kinds = (int,) if self.type == "integer" else (int, float)
            if not isinstance(value, kinds) or isinstance(value, bool):
                raise InvalidField(f"{name} must be {_expected(self)} (got {datatypes.json_kind(value)}).",
                                   field=name)
            low, high = self._range()
            if not low <= value <= high:
                raise InvalidField(f"{name} must be from {low} to {high} (got {value}).", field=name)
        elif self.type == "string":
            if not isinstance(value, str):
                if self.non_blank:
                    raise InvalidField(f"{name} is required and must be a non-empty string "
                                       f"(got {datatypes.json_kind(value)}).", field=name)
                raise InvalidField(f"{name} must be {_expected(self)} (got {datatypes.json_kind(value)}).",
                                   field=name)
            if self.non_blank and not value.strip():
                raise InvalidField(f"{name} is required and must be a non-empty string (got an empty string).",
                                   field=name)
            if self.max_length is not None and len(value) > self.max_length:
                raise InvalidField(f"{name} must be at most {self.max_length} characters (got {len(value)}).",
                                   field=name)
            if self.trimmed and value != value.strip():
                raise InvalidField(f"{name} must not start or end with whitespace (got {value!r}).", field=name)
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                raise InvalidField(f"{name} must match ^{self.pattern}$ (got {value!r}).", field=name)
        if self.enum is not None and value not in self.enum:
            hint = ""
            if isinstance(value, str):
                close = [v for v in self.enum if v.lower() == value.lower()]
                hint = f"; values are case-sensitive: did you mean {close[0]!r}?" if close else ""
            raise InvalidField(f"{name} must be one of {', '.join(map(repr, self.enum))} (got {value!r}{hint}).",
                               field=name)
        return value

    def _range(self) -> tuple[float, float]:
        low = self.minimum if self.minimum is not None else 0 if self.type == "integer" else float("-inf")
        high = self.maximum if self.maximum is not None else _ID_MAX if self.type == "integer" else float("inf")
        return low, high

    def render(self, row: Mapping[str, Any]) -> Any:
        """The field's API value from a stored row."""
        if self.computed is not None:
            return self.computed(row)
        value = row[self.column or self.name]
        if self.type == "boolean" and value is not None:
            return bool(value)
        if self.type == "array" and isinstance(self.items, str):
            return [_REGISTRY[self.items].render(item) for item in value]
        return value


def _expected(f: Field) -> str:
    kind = {"integer": "an integer", "number": "a number", "boolean": "true or false", "timestamp": "a timestamp",
            "object": "a JSON object", "array": "a JSON array",
            "string": "a string"}.get(f.type, f"a JSON {f.type}")
    return f"{kind} or null" if f.nullable else kind


@dataclasses.dataclass(frozen=True)
class Resource:
    """A resource of the API: its fields in the order the API shows them, and how it is spoken of."""

    name: str  # e.g. "dcp_service"
    title: str  # e.g. "DCP service"
    doc: str
    fields: tuple[Field, ...]
    checks: tuple[str, ...] = ()  # the rules the store operation adds (documented in the OpenAPI schema)
    immutable_hint: str = ""  # what to do instead of changing a create-only field

    def __post_init__(self) -> None:
        _REGISTRY[self.name] = self  # so a field can list resources of another description by name
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})
        object.__setattr__(self, "_omit_null", [f.name for f in self.fields if f.omit_null])

    def field(self, name: str) -> Field:
        """The field called ``name``."""
        return self.by_name[name]  # type: ignore[attr-defined]

    @property
    def field_names(self) -> list[str]:
        """Every field, in the API's order."""
        return [f.name for f in self.fields]

    def render(self, row: Mapping[str, Any], **extra: Any) -> dict:
        """A stored row as the API's JSON object (the serializer of the API side). A field listing other
        resources (a table's attributes) holds their rows and is rendered by their description; ``extra``
        gives fields the row does not hold."""
        out = {f.name: extra[f.name] if f.name in extra else f.render(row) for f in self.fields}
        for f in self._omit_null:  # type: ignore[attr-defined]
            if out[f] is None:
                del out[f]
        return out

    # ------------------------------------------------------------------ request bodies
    def _accepted(self, update: bool) -> list[str]:
        return sorted(f.name for f in self.fields if (f.writable_on_update if update else f.writable_on_create))

    def _refuse_unknown(self, key: str, update: bool) -> InvalidField:
        return InvalidField(f"Unknown field {key!r}; accepted fields are {', '.join(self._accepted(update))}.",
                            field=key)

    def _check_names(self, body: Mapping[str, Any], update: bool) -> None:
        # Unknown names first, whatever their place in the body: a typo is the likeliest mistake.
        for key in body:
            if key not in self.by_name:  # type: ignore[attr-defined]
                raise self._refuse_unknown(key, update)

    def parse_create(self, body: Mapping[str, Any], known: Mapping[str, Any] | None = None) -> dict:
        """The values of a POST body, every writable field present (defaults filled in), each checked.

        A read-only field is accepted only with the value it will have anyway: its default (``"archived":
        false``), or its value in ``known`` (what the URL already says, such as a profile's ids).
        """
        self._check_names(body, update=False)
        for key, value in body.items():
            f = self.field(key)
            if not f.writable_on_create:
                expected = (known or {}).get(key, f.default)
                if expected is not None and _same(value, expected):
                    continue
                how = (" (PUT changes it once the resource exists)" if f.access == UPDATE_ONLY
                       else " (the emulator sets it)")
                raise InvalidField(f"{key} is read-only{how}; leave it out of the request body.", field=key)
        values = {}
        for f in self.fields:
            if not f.writable_on_create:
                continue
            if f.name not in body:
                if f.required:
                    raise _missing(f)
                values[f.name] = f.default
            else:
                values[f.name] = f.check(body[f.name])
        return values

    def parse_update(self, body: Mapping[str, Any], row: Mapping[str, Any]) -> dict:
        """The changes of a PUT body against the resource's stored row: only fields given with a new value.

        Read-only and create-only fields sent back unchanged (as the API shows them) are accepted: clients
        PUT back what they GET. With another value they are refused, naming the field.
        """
        self._check_names(body, update=True)
        current = self.render(row)
        changes = {}
        for key, value in body.items():
            f = self.field(key)
            if not f.writable_on_update:
                if _same(value, current[key]):
                    continue
                if f.access == CREATE_ONLY:
                    hint = " " + self.immutable_hint.format(**current) if self.immutable_hint else ""
                    raise InvalidField(f"The {self.title}'s {key} cannot be changed.{hint}", field=key)
                shown = "as GET returns it" if isinstance(current[key], (list, dict)) else json.dumps(current[key])
                raise InvalidField(f"{key} is read-only (the emulator sets it): send it unchanged ({shown}) or "
                                   "leave it out.", field=key)
            value = f.check(value)
            if not _same(value, current[key]):
                changes[key] = value
        return changes

    # ------------------------------------------------------------------ seeds and export
    @property
    def seed_keys(self) -> tuple[str, ...]:
        """The keys a seed may give for this resource: all its fields, read-only ones verbatim (ids, keys,
        timestamps); children and extras are added by the seed reader."""
        return tuple(self.field_names)

    def export(self, rendered: Mapping[str, Any], *, omit: tuple[str, ...] = ()) -> dict:
        """A rendered resource as a seed entry: computed fields and values equal to their default left out."""
        out = {}
        for f in self.fields:
            if f.computed is not None or f.name in omit or f.type == "array":
                continue
            value = rendered.get(f.name)
            if _same(value, f.default):
                continue  # what a seed without it would get anyway
            out[f.name] = value
        return out

    # ------------------------------------------------------------------ the OpenAPI document
    def schema(self) -> dict:
        """The JSON Schema of the resource as the API answers it (every field always present)."""
        doc = self.doc + ("\n\nRules: " + " ".join(self.checks) if self.checks else "")
        return {"type": "object", "description": doc, "properties": {f.name: f.schema() for f in self.fields},
                "required": [f.name for f in self.fields if not f.omit_null], "additionalProperties": False}

    def request_schema(self, update: bool) -> dict:
        """The JSON Schema of a POST (create) or PUT (update) body."""
        props = {}
        for f in self.fields:
            if f.writable_on_update if update else f.writable_on_create:
                props[f.name] = {k: v for k, v in f.schema().items() if k != "readOnly"}
            elif update:
                props[f.name] = {**f.schema(), "description": f"{f.doc} Accepted only unchanged."}
            elif f.default is not None:
                props[f.name] = {**f.schema(), "description": f"{f.doc} Accepted only with the value the "
                                                              "resource will have anyway."}
        required = [] if update else [f.name for f in self.fields if f.required and f.writable_on_create]
        return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values: 1 is not true, 1.0 is 1."""
    return a == b and (isinstance(a, bool) == isinstance(b, bool))


def _missing(f: Field) -> InvalidField:
    if f.hint:
        return InvalidField(f"{f.name} is required: {f.hint}", field=f.name)
    if f.type == "string" and f.non_blank:
        return InvalidField(f"{f.name} is required and must be a non-empty string (missing).", field=f.name)
    if f.enum:
        return InvalidField(f"{f.name} is required, one of {', '.join(map(repr, f.enum))}.", field=f.name)
    return InvalidField(f"{f.name} is required.", field=f.name)


def schema_name(resource_name: str) -> str:
    """The OpenAPI component name of a resource (``dcp_service`` -> ``DcpService``)."""
    return "".join(part.capitalize() for part in resource_name.split("_"))


def schema_ref(resource_name: str) -> str:
    """The OpenAPI reference to a resource's schema."""
    return f"#/components/schemas/{schema_name(resource_name)}"


# ---------------------------------------------------------------------- shared fields
def _id(what: str) -> Field:
    return Field("id", "integer", f"The {what}'s id, unique across every kind of entity.")


def _created() -> Field:
    return Field("created", "timestamp", "When it was created (UTC, microseconds).")


def _last_modified() -> Field:
    return Field("last_modified", "timestamp", "When it was last changed (UTC, microseconds).")


def _archived(what: str) -> Field:
    return Field("archived", "boolean", f"Archived {what}s can be read but not written. DELETE archives; "
                 'PUT {"archived": false} unarchives.', access=UPDATE_ONLY, default=False)


def _aws_keys(scope: str) -> tuple[Field, Field]:
    return (Field("aws_access_key", "string", f"AWS access key id that may write under {scope} of the "
                  "import bucket."),
            Field("aws_secret_key", "string", "The secret of aws_access_key."))


KEYFIELD_LOCATOR_TYPES = ("cookie", "query parameter", "js_variable", "uid")
PROJECT_STATUSES = ("Active", "Archived")
LOCATOR_NAME_PATTERN = r"[a-zA-Z_][a-zA-Z_0-9$]*"

# ---------------------------------------------------------------------- the management API
SERVICE = Resource(
    "dcp_service", "DCP service",
    "A Dynamic Customer Profiles service: holds an account's tables (datasources). Creating one provisions its "
    "built-in Optimizely table.",
    (
        _id("DCP service"),
        Field("account_id", "integer", "The account that owns it."),
        _archived("service"),
        *_aws_keys("dcp/{id}/"),
        _created(), _last_modified(),
        Field("name", "string", "Its name.", access=EDITABLE, required=True, non_blank=True,
              max_length=_NAME_LIMIT),
        Field("s3_path", "string", "Its path in the import bucket: dcp/{id}.",
              computed=lambda row: f"dcp/{row['id']}"),
    ),
    checks=("An account has at most one active DCP service (configurable).",
            "DELETE archives the service and its tables."),
)

ATTRIBUTE = Resource(
    "dcp_datasource_attribute", "attribute",
    "A registered attribute (column) of a table: profile writes and bulk uploads may only use registered, "
    "non-archived attribute names.",
    (
        _archived("attribute"),
        _created(),
        Field("datatype", "string", "The type values must have.", access=CREATE_ONLY, required=True,
              enum=datatypes.DATATYPES),
        Field("dcp_datasource_id", "integer", "The table it belongs to."),
        Field("description", "string", "Free text.", access=EDITABLE, nullable=True, max_length=_TEXT_LIMIT),
        Field("format", "string", "For datetime only: how values are written; null for other datatypes.",
              access=CREATE_ONLY, nullable=True, enum=datatypes.DATETIME_FORMATS),
        _id("attribute"),
        Field("is_value_public", "boolean", "Whether its values may be exposed to the browser.", access=EDITABLE,
              default=False),
        _last_modified(),
        Field("name", "string", "The column name, case-sensitive, unique among the table's active attributes.",
              access=CREATE_ONLY, required=True, non_blank=True, max_length=_NAME_LIMIT),
    ),
    checks=("datatype datetime needs a format; other datatypes have format null.",
            "The name customerId is reserved; names cannot contain commas, tabs, quotes or line breaks.",
            f"A table holds at most {MAX_ATTRIBUTES_PER_TABLE} attributes (archived ones included)."),
    immutable_hint="Archive this attribute (DELETE dcp_datasource_attributes/{id}) and create a new one instead.",
)

DATASOURCE = Resource(
    "dcp_datasource", "table",
    "A table (the API calls it a datasource) of a DCP service: one profile per customer id. Each table has its own "
    "AWS key pair, scoped to its own path of the import bucket.",
    (
        _id("table"),
        _archived("table"),
        Field("attributes", "array", "Its attributes, archived ones included.", items=ATTRIBUTE.name),
        *_aws_keys("dcp/{dcp_service_id}/{id}/"),
        _created(),
        Field("dcp_service_id", "integer", "The DCP service it belongs to."),
        Field("description", "string", "Free text.", access=EDITABLE, nullable=True, max_length=_TEXT_LIMIT),
        Field("is_optimizely", "boolean", "Whether it is the service's built-in Optimizely table (keyed by "
              "Optimizely user id; it cannot be edited or deleted).", default=False),
        Field("keyfield_locator_name", "string", "The cookie, query parameter or JS variable holding the customer "
              "id; null for uid.", access=EDITABLE, nullable=True, pattern=LOCATOR_NAME_PATTERN),
        Field("keyfield_locator_type", "string", "Where the customer id is found on a page.", access=EDITABLE,
              required=True, enum=KEYFIELD_LOCATOR_TYPES),
        _last_modified(),
        Field("name", "string", "Its name.", access=EDITABLE, required=True, non_blank=True,
              max_length=_NAME_LIMIT),
        Field("s3_path", "string", "Its import path: dcp/{dcp_service_id}/{id}.",
              computed=lambda row: f"dcp/{row['dcp_service_id']}/{row['id']}"),
    ),
    checks=("keyfield_locator_name is required unless keyfield_locator_type is uid.",
            "The built-in Optimizely table cannot be edited or deleted."),
)

# The classic project script's size before any project JavaScript: what js_file_size starts from.
PROJECT_SNIPPET_BYTES = 23_693
JQUERY_LIBRARY = "jquery-1.11.3-trim"


def _js_file_size(row: Mapping[str, Any]) -> int:
    return PROJECT_SNIPPET_BYTES + len((row["project_javascript"] or "").encode("utf-8")) + (
        30_000 if row["include_jquery"] else 0)


# Fields of a project whose change rebuilds its script (and bumps code_revision).
PROJECT_SCRIPT_FIELDS = ("include_jquery", "project_javascript", "enable_force_variation",
                         "exclude_disabled_experiments", "exclude_names", "ip_anonymization", "ip_filter")

PROJECT = Resource(
    "project", "project",
    "An Optimizely project (the classic v1 resource). DCP links a project to a DCP service with "
    "dcp_service_id.",
    (
        _id("project"),
        Field("account_id", "integer", "The account that owns it."),
        Field("code_revision", "integer", "Bumped each time a change alters the project's script "
              f"({', '.join(PROJECT_SCRIPT_FIELDS)})."),
        Field("project_name", "string", "Its name.", access=EDITABLE, required=True, non_blank=True,
              max_length=_NAME_LIMIT),
        Field("project_status", "string", "Active or Archived.", access=EDITABLE, enum=PROJECT_STATUSES,
              default="Active"),
        _created(), _last_modified(),
        Field("library", "string", "The jQuery build bundled in the project script, or none.",
              computed=lambda row: JQUERY_LIBRARY if row["include_jquery"] else "none"),
        Field("include_jquery", "boolean", "Whether the project script bundles jQuery.", access=EDITABLE,
              default=False),
        Field("js_file_size", "integer", "The size in bytes of the project script.", computed=_js_file_size),
        Field("project_javascript", "string", "Project JavaScript run before experiments, or null.",
              access=EDITABLE, nullable=True, max_length=_TEXT_LIMIT),
        Field("enable_force_variation", "boolean", "Whether the optimizely_x query parameter forces variations.",
              access=EDITABLE, default=False),
        Field("exclude_disabled_experiments", "boolean", "Whether paused experiments are left out of the script.",
              access=EDITABLE, default=False),
        Field("exclude_names", "boolean", "Whether experiment and variation names are masked in the script.",
              access=EDITABLE, default=False),
        Field("ip_anonymization", "boolean", "Whether visitor IP addresses are anonymized.", access=EDITABLE,
              default=False),
        Field("ip_filter", "string", "Visitor IP addresses (a regular expression) left out of results; empty "
              "for none.", access=EDITABLE, default="", max_length=_TEXT_LIMIT),
        Field("socket_token", "string", "The token of the project's live-results socket.",
              computed=lambda row: f"{row['id'] * 2654435761 % 2**32:08X}~{row['id']}"),
        Field("dcp_service_id", "integer", "The linked DCP service (of the same account), or null.",
              access=EDITABLE, nullable=True),
    ),
    checks=("dcp_service_id must be a non-archived DCP service of the same account, or null to unlink.",
            "Projects cannot be deleted; set project_status to Archived."),
)


# ---------------------------------------------------------------------- the profile API
_PROFILE_IDS = (  # the profile API writes ids as strings
    Field("dcpServiceId", "string", "The DCP service id, as a string.",
          computed=lambda row: str(row["dcp_service_id"])),
    Field("datasourceId", "string", "The table id, as a string.", computed=lambda row: str(row["datasource_id"])),
    Field("customerId", "string", "The customer id (Optimizely user id for the Optimizely table).",
          column="customer_id"),
)

PROFILE = Resource(
    "customer_profile", "customer profile",
    "One customer's values in one table: {attribute name: typed value}; unset attributes are left out.",
    (*_PROFILE_IDS,
     Field("data", "object", "The stored values, typed: long and epoch as integers, double as numbers, bool as "
           "booleans, strings and dates as strings.", access=EDITABLE, required=True,
           hint='the body is {"data": {"<attribute name>": value, ...}}.',
           schema_extra={"additionalProperties": {"type": ["string", "number", "boolean", "null"]}})),
    checks=(("Keys of data must be registered, non-archived attribute names of the table; values must satisfy "
            "the attribute's datatype and format; null clears a value. Nothing is written if any key is refused."),),
)

ALIAS = Resource(
    "alias", "alias",
    "The customer ids of other tables linked to one Optimizely user id: {table id: customer id}.",
    (*_PROFILE_IDS,
     Field("data", "object", "{table id: customer id}; null as a customer id removes that alias.",
           access=EDITABLE, required=True, hint='the body is {"data": {"<table id>": "<customer id>", ...}}.',
           schema_extra={"additionalProperties": {"type": ["string", "integer", "null"]}})),
    checks=(("The table in the URL must be the service's Optimizely table; every key must be another table of "
            "the same service."),),
)

# ---------------------------------------------------------------------- the emulator's own resources
UPLOAD_STATUSES = ("pending", "processing", "succeeded", "completed_with_errors", "failed")
UPLOAD = Resource(
    "upload", "upload",
    "One bulk upload: an object written under a table's path of the import bucket (Upload History).",
    (
        Field("id", "integer", "Its id, in completion order."),
        Field("dcp_service_id", "integer", "The DCP service of the table."),
        Field("datasource_id", "integer", "The table."),
        Field("key", "string", "The object key in the import bucket."),
        Field("file_name", "string", "The last part of the key."),
        Field("size_bytes", "integer", "The object's size."),
        Field("status", "string", "Where it is.", enum=UPLOAD_STATUSES),
        Field("rows_total", "integer", "Data rows read so far."),
        Field("rows_stored", "integer", "Rows applied."),
        Field("rows_rejected", "integer", "Rows refused (see errors)."),
        Field("errors", "array", "The first rejected rows: line, column, value and reason.",
              computed=lambda row: json.loads(row["errors"]), items={
            "type": "object", "description": "One rejected row, or a problem of the whole file (line null).",
            "properties": {"line": {"type": ["integer", "null"]}, "column": {"type": ["string", "null"]},
                           "value": {"type": ["string", "null"]}, "reason": {"type": "string"}}}),
        Field("errors_total", "integer", "Rows rejected, plus one if the whole upload failed.",
              computed=lambda row: row["rows_rejected"] + (1 if row["failure"] else 0)),
        Field("failure", "string", "Why the whole upload failed (bad header, undecodable file), or null.",
              nullable=True),
        Field("warnings", "array", "Warnings, such as a file name re-used before the earlier upload was "
              "processed.", items={"type": "string"},
              computed=lambda row: json.loads(row["warnings"])),
        Field("received_at", "timestamp", "When the object was completed."),
        Field("started_at", "timestamp", "When processing started, or null.", nullable=True),
        Field("finished_at", "timestamp", "When processing finished, or null.", nullable=True),
    ),
)

TOKEN_KINDS = ("classic", "personal", "oauth")
TOKEN = Resource(
    "token", "API token",
    "An API token of an account (seeds and exports): classic tokens go in a Token header, OAuth access tokens "
    "in Authorization: Bearer; personal tokens are refused by the DCP APIs.",
    (
        Field("token", "string", "The token string clients send.", access=CREATE_ONLY, required=True,
              non_blank=True, trimmed=True),
        Field("kind", "string", "What kind of token it is.", access=CREATE_ONLY, enum=TOKEN_KINDS,
              default="classic"),
        Field("expires_at", "timestamp", "When it stops being accepted, or null for never.", nullable=True),
        Field("revoked", "boolean", "Revoked tokens are refused (403).", default=False),
        Field("refresh_token", "string", "The OAuth refresh token issued with it, if any.", nullable=True),
        Field("client_id", "string", "The OAuth application it was issued to, if any.", nullable=True),
        Field("account_id", "integer", "The account it belongs to."),
    ),
)

ACCOUNT = Resource(
    "account", "account",
    "An account of the emulator: owns tokens, DCP services and projects (seeds and exports).",
    (
        Field("id", "integer", "The account id."),
        Field("name", "string", "A name for people.", access=EDITABLE, non_blank=True, max_length=_NAME_LIMIT),
        Field("tokens", "array", "Its API tokens.", items=TOKEN.name),
    ),
)

OAUTH_CLIENT_TYPES = ("confidential", "public")
OAUTH_TEXT_LIMIT = 2000  # client ids, names, URIs: longer is not a plausible registration
OAUTH_APP = Resource(
    "oauth_app", "OAuth application",
    "A registered OAuth 2.0 application (client): what the vendor's developer console registers.",
    (
        Field("client_id", "string", "Its client id (generated when not given).", access=CREATE_ONLY,
              non_blank=True, trimmed=True, max_length=OAUTH_TEXT_LIMIT),
        Field("client_secret", "string", "A confidential client's secret (generated when not given); public "
              "clients have none.", access=CREATE_ONLY, nullable=True, non_blank=True, trimmed=True,
              max_length=OAUTH_TEXT_LIMIT, omit_null=True),
        Field("name", "string", "The name the consent page shows.", access=CREATE_ONLY, required=True,
              non_blank=True, trimmed=True, max_length=OAUTH_TEXT_LIMIT),
        Field("redirect_uris", "array", "Where authorization may send the browser back (absolute URIs, no "
              "fragment).", access=CREATE_ONLY, required=True, items={"type": "string"},
              hint="a list of one or more absolute URIs, such as ['https://partner.example/oauth/callback']."),
        Field("client_type", "string", "confidential (has a secret) or public (a browser or mobile app).",
              access=CREATE_ONLY, enum=OAUTH_CLIENT_TYPES, default="confidential"),
        Field("account_id", "integer", "The account of the developer who registered it (default: the default "
              "account).", access=CREATE_ONLY, nullable=True),
    ),
    checks=("A public client has no client_secret.", "client_id is unique."),
)

# ---------------------------------------------------------------------- control-plane request bodies
MAX_LATENCY_MS = 60_000  # a fault rule cannot hang a client longer than a minute
FAULT_RULE = Resource(
    "fault_rule", "fault rule",
    "A fault-injection rule: requests of the vendor APIs matching method and path get the status (and/or the "
    "latency) instead of their answer, times times, with the given probability.",
    (
        Field("id", "integer", "The rule's id."),
        Field("method", "string", "Only requests of this HTTP method (any when null).", access=CREATE_ONLY,
              nullable=True, pattern="[A-Za-z]+"),
        Field("path", "string", "A regular expression (RE2) searched in the request path (any when null).",
              access=CREATE_ONLY, nullable=True),
        Field("status", "integer", "The status to answer with (503 when neither status nor latency_ms is given).",
              access=CREATE_ONLY, nullable=True, minimum=400, maximum=599),
        Field("retry_after", "integer", "Seconds for the Retry-After header (1 for a 429 when not given).",
              access=CREATE_ONLY, nullable=True, maximum=86_400),
        Field("latency_ms", "integer", "Delay before answering.", access=CREATE_ONLY, nullable=True,
              maximum=MAX_LATENCY_MS),
        Field("times", "integer", "How many requests it applies to (unlimited when null).", access=CREATE_ONLY,
              nullable=True, minimum=1, maximum=10**9),
        Field("probability", "number", "The chance that a matching request is faulted.", access=CREATE_ONLY,
              nullable=True, minimum=0, maximum=1),
        Field("seed", "integer", "Seed of the rule's random draws (reproducible runs).", access=CREATE_ONLY,
              nullable=True, minimum=-(2**63), maximum=2**63 - 1),
        Field("remaining", "integer", "Requests it still applies to (null: unlimited).", nullable=True),
        Field("fired", "integer", "How often it fired."),
    ),
)

RESET_TARGETS = ("startup", "default")
RESET = Resource(
    "reset", "reset", "Where POST /_emulator/reset goes back to (both optional: the start-up state).",
    (Field("to", "string", "startup (the start-up seed's state) or default (no start-up seed).", access=CREATE_ONLY,
           nullable=True, enum=RESET_TARGETS),
     Field("snapshot", "string", "A saved snapshot's name.", access=CREATE_ONLY, nullable=True)),
)
SNAPSHOT = Resource(
    "snapshot", "snapshot", "A saved copy of the whole state.",
    (Field("name", "string", "Its name.", access=CREATE_ONLY, required=True, non_blank=True, max_length=200),),
)
UPLOAD_WAIT = Resource(
    "upload_wait", "wait", "How long POST /_emulator/uploads/wait waits, and from which upload it reports.",
    (Field("timeout", "number", "Seconds to wait at most (default 30).", access=CREATE_ONLY, minimum=0,
           maximum=3600, default=30),
     Field("after", "integer", "Report uploads with a higher id (default: those finished since the previous "
           "wait).", access=CREATE_ONLY, nullable=True)),
)
CLOCK_MOVE = Resource(
    "clock_move", "clock change", "Move the emulator's clock: exactly one of advance or now.",
    (Field("advance", "number", "Seconds to move it by (negative goes back).", access=CREATE_ONLY, nullable=True),
     Field("now", "string", "The time to set, a UTC timestamp like 2030-01-01T00:00:00Z.", access=CREATE_ONLY,
           nullable=True)),
)
REVOCATION = Resource(
    "revocation", "revocation", "Whose access to take from an OAuth application.",
    (Field("account_id", "integer", "The account (default: the default account).", access=CREATE_ONLY,
           nullable=True),),
)
DECISION = Resource(
    "decision", "decision", "The user's answer to a pending authorization.",
    (Field("account_id", "integer", "The account to grant (default: the default account).", access=CREATE_ONLY,
           nullable=True),
     Field("accept", "boolean", "true accepts, false denies.", access=CREATE_ONLY, default=True)),
)

RESOURCES = (SERVICE, DATASOURCE, ATTRIBUTE, PROJECT, PROFILE, ALIAS, UPLOAD, TOKEN, ACCOUNT, OAUTH_APP, FAULT_RULE)

