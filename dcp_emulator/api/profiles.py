"""Profile API: customer profiles, aliases and the consolidated customer view."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from flask import Blueprint, jsonify, request

from ..errors import InvalidField
from ..resources import ALIAS, PROFILE
from . import emulator, json_object, principal, require_auth, route

bp = Blueprint("profiles", __name__)
require_auth(bp)

_PROFILE = "/customer_profile/<int:service_id>/<int:datasource_id>/<path:customer_id>"
_ALIAS = "/alias/<int:service_id>/<int:datasource_id>/<path:user_id>"


def _store():
    return emulator().store


def _key(path_id: str) -> str:
    """A customer/user id from a <path:...> URL part, without the optional trailing slash.

    Ids may contain '/' (a %2F is decoded before routing), so they are matched as paths; the path
    then swallows the trailing slash every route accepts, and ``cust-1/`` must mean ``cust-1``.
    """
    if "\ufffd" in path_id:  # werkzeug replaced undecodable bytes: two different ids would collide
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
        try:
            unquote_to_bytes(raw.split("?", 1)[0]).decode("utf-8")
        except UnicodeError:
            raise InvalidField("The id in the URL is not valid UTF-8 once percent-decoded; ids are UTF-8 text.",
                               field="customerId") from None
    return path_id


def _ids(service_id: int, datasource_id: int, key: str) -> dict:
    """What the URL says of a profile or alias: a body sending these back unchanged (a GET answer) is fine."""
    return {"dcpServiceId": str(service_id), "datasourceId": str(datasource_id), "customerId": key}


@route(bp, _PROFILE, methods=["POST"])
def write_profile(service_id: int, datasource_id: int, customer_id: str):
    """POST customer_profile/...: merge values into one customer's profile."""
    key = _key(customer_id)
    body = PROFILE.parse_create(json_object(), known=_ids(service_id, datasource_id, key))["data"]
    out = _store().profiles.write_profile(principal().account_id, service_id, datasource_id, key, body)
    return jsonify(out), 201


@route(bp, _PROFILE, methods=["GET"])
def read_profile(service_id: int, datasource_id: int, customer_id: str):
    """GET customer_profile/...: one customer's stored values, typed."""
    return jsonify(_store().profiles.read_profile(principal().account_id, service_id, datasource_id, _key(customer_id)))


@route(bp, _PROFILE, methods=["PUT"])
def update_profile(service_id: int, datasource_id: int, customer_id: str):
    """PUT customer_profile/... ("update attributes" in some versions of the vendor's reference): POST's body,
    merge and answer, with the 202 of every PUT."""
    key = _key(customer_id)
    body = PROFILE.parse_create(json_object(), known=_ids(service_id, datasource_id, key))["data"]
    out = _store().profiles.write_profile(principal().account_id, service_id, datasource_id, key, body)
    return jsonify(out), 202


@route(bp, _PROFILE, methods=["DELETE"])
def delete_profile(service_id: int, datasource_id: int, customer_id: str):
    """DELETE customer_profile/...: remove one customer's profile (204, no body)."""
    _store().profiles.delete_profile(principal().account_id, service_id, datasource_id, _key(customer_id))
    return "", 204


@route(bp, _ALIAS, methods=["POST"])
def write_alias(service_id: int, datasource_id: int, user_id: str):
    """POST alias/...: link customer ids of other tables to an Optimizely user id."""
    key = _key(user_id)
    body = ALIAS.parse_create(json_object(), known=_ids(service_id, datasource_id, key))["data"]
    out = _store().profiles.write_alias(principal().account_id, service_id, datasource_id, key, body)
    return jsonify(out), 201


@route(bp, _ALIAS, methods=["GET"])
def read_alias(service_id: int, datasource_id: int, user_id: str):
    """GET alias/...: the tables and customer ids linked to an Optimizely user id."""
    return jsonify(_store().profiles.read_alias(principal().account_id, service_id, datasource_id, _key(user_id)))


@route(bp, "/consolidatedCustomerView/<int:service_id>/<path:user_id>", methods=["GET"])
def consolidated_view(service_id: int, user_id: str):
    """GET consolidatedCustomerView/{service}/{user}: every profile of the user."""
    return jsonify(_store().profiles.consolidated_view(principal().account_id, service_id, _key(user_id)))


@route(bp, "/consolidatedCustomerView/<int:service_id>/<int:datasource_id>/<path:user_id>", methods=["GET"])
def consolidated_view_in_table(service_id: int, datasource_id: int, user_id: str):
    """GET consolidatedCustomerView/{service}/{optimizely table}/{user} (newer form)."""
    return jsonify(_store().profiles.consolidated_view(principal().account_id, service_id, _key(user_id), datasource_id))
