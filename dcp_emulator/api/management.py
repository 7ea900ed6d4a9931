"""Management API: DCP services, tables (datasources), attributes and projects."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from . import emulator, json_object, principal, require_auth, route

bp = Blueprint("management", __name__)
require_auth(bp)


def _store():
    return emulator().store


def _created(body: dict) -> tuple[Response, int]:
    return jsonify(body), 201


def _accepted(body: dict) -> tuple[Response, int]:
    return jsonify(body), 202


def _no_content() -> tuple[str, int]:
    return "", 204


# ---------------------------------------------------------------- DCP services
@route(bp, "/dcp_services", methods=["GET"])
def list_services():
    """GET dcp_services: the account's services."""
    return jsonify(_store().management.list_services(principal().account_id))


@route(bp, "/dcp_services", methods=["POST"])
def create_service():
    """POST dcp_services: a new service with its Optimizely table."""
    return _created(_store().management.create_service(principal().account_id, json_object()))


@route(bp, "/dcp_services/<int:service_id>", methods=["GET"])
def get_service(service_id: int):
    """GET dcp_services/{id}."""
    return jsonify(_store().management.get_service(principal().account_id, service_id))


@route(bp, "/dcp_services/<int:service_id>", methods=["PUT"])
def update_service(service_id: int):
    """PUT dcp_services/{id}: rename, or archive/unarchive."""
    return _accepted(_store().management.update_service(principal().account_id, service_id, json_object()))


@route(bp, "/dcp_services/<int:service_id>", methods=["DELETE"])
def delete_service(service_id: int):
    """DELETE dcp_services/{id}: archive the service and its tables."""
    _store().management.delete_service(principal().account_id, service_id)
    return _no_content()


# ---------------------------------------------------------------- tables (datasources)
@route(bp, "/dcp_services/<int:service_id>/dcp_datasources", methods=["GET"])
def list_datasources(service_id: int):
    """GET dcp_services/{id}/dcp_datasources: the service's tables."""
    return jsonify(_store().management.list_datasources(principal().account_id, service_id))


@route(bp, "/dcp_services/<int:service_id>/dcp_datasources", methods=["POST"])
def create_datasource(service_id: int):
    """POST dcp_services/{id}/dcp_datasources: a new table."""
    return _created(_store().management.create_datasource(principal().account_id, service_id, json_object()))


@route(bp, "/dcp_datasources/<int:datasource_id>", methods=["GET"])
def get_datasource(datasource_id: int):
    """GET dcp_datasources/{id}."""
    return jsonify(_store().management.get_datasource(principal().account_id, datasource_id))


@route(bp, "/dcp_datasources/<int:datasource_id>", methods=["PUT"])
def update_datasource(datasource_id: int):
    """PUT dcp_datasources/{id}: edit, or archive/unarchive."""
    return _accepted(_store().management.update_datasource(principal().account_id, datasource_id, json_object()))


@route(bp, "/dcp_datasources/<int:datasource_id>", methods=["DELETE"])
def delete_datasource(datasource_id: int):
    """DELETE dcp_datasources/{id}: archive the table."""
    _store().management.delete_datasource(principal().account_id, datasource_id)
    return _no_content()


# ---------------------------------------------------------------- attributes
@route(bp, "/dcp_datasources/<int:datasource_id>/dcp_datasource_attributes", methods=["GET"])
def list_attributes(datasource_id: int):
    """GET dcp_datasources/{id}/dcp_datasource_attributes."""
    return jsonify(_store().management.list_attributes(principal().account_id, datasource_id))


@route(bp, "/dcp_datasources/<int:datasource_id>/dcp_datasource_attributes", methods=["POST"])
def create_attribute(datasource_id: int):
    """POST dcp_datasources/{id}/dcp_datasource_attributes: register an attribute."""
    return _created(_store().management.create_attribute(principal().account_id, datasource_id, json_object()))


@route(bp, "/dcp_datasource_attributes/<int:attribute_id>", methods=["GET"])
def get_attribute(attribute_id: int):
    """GET dcp_datasource_attributes/{id}."""
    return jsonify(_store().management.get_attribute(principal().account_id, attribute_id))


@route(bp, "/dcp_datasource_attributes/<int:attribute_id>", methods=["PUT"])
def update_attribute(attribute_id: int):
    """PUT dcp_datasource_attributes/{id}: description, visibility, unarchive."""
    return _accepted(_store().management.update_attribute(principal().account_id, attribute_id, json_object()))


@route(bp, "/dcp_datasource_attributes/<int:attribute_id>", methods=["DELETE"])
def delete_attribute(attribute_id: int):
    """DELETE dcp_datasource_attributes/{id}: archive the attribute."""
    _store().management.delete_attribute(principal().account_id, attribute_id)
    return _no_content()


# ---------------------------------------------------------------- projects
@route(bp, "/projects", methods=["GET"])
def list_projects():
    """GET projects: the account's projects."""
    return jsonify(_store().management.list_projects(principal().account_id))


@route(bp, "/projects", methods=["POST"])
def create_project():
    """POST projects."""
    return _created(_store().management.create_project(principal().account_id, json_object()))


@route(bp, "/projects/<int:project_id>", methods=["GET"])
def get_project(project_id: int):
    """GET projects/{id}."""
    return jsonify(_store().management.get_project(principal().account_id, project_id))


@route(bp, "/projects/<int:project_id>", methods=["PUT"])
def update_project(project_id: int):
    """PUT projects/{id}: rename, status, link or unlink a DCP service."""
    return _accepted(_store().management.update_project(principal().account_id, project_id, json_object()))
