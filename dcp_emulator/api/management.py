"""Management API: DCP services, tables (datasources), attributes and projects."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..resources import ATTRIBUTE, DATASOURCE, PROJECT, SERVICE, Resource
from . import emulator, json_object, principal, require_auth, route

bp = Blueprint("management", __name__)
require_auth(bp)


def _backend():
    return emulator().store.management


def _account() -> int:
    return principal().account_id


def _answer(resource: Resource, stored: dict | list[dict], status: int = 200) -> tuple[Response, int]:
    """The stored row(s) the backend returned, rendered by the resource's description."""
    body = [resource.render(r) for r in stored] if isinstance(stored, list) else resource.render(stored)
    return jsonify(body), status


def _no_content() -> tuple[str, int]:
    return "", 204


# ---------------------------------------------------------------- DCP services
@route(bp, "/dcp_services", methods=["GET"])
def list_services():
    """GET dcp_services: the account's services."""
    return _answer(SERVICE, _backend().list_services(_account()))


@route(bp, "/dcp_services", methods=["POST"])
def create_service():
    """POST dcp_services: a new service with its Optimizely table."""
    return _answer(SERVICE, _backend().create_service(_account(), json_object()), 201)


@route(bp, "/dcp_services/<int:service_id>", methods=["GET"])
def get_service(service_id: int):
    """GET dcp_services/{id}."""
    return _answer(SERVICE, _backend().get_service(_account(), service_id))


@route(bp, "/dcp_services/<int:service_id>", methods=["PUT"])
def update_service(service_id: int):
    """PUT dcp_services/{id}: rename, or archive/unarchive."""
    return _answer(SERVICE, _backend().update_service(_account(), service_id, json_object()), 202)


@route(bp, "/dcp_services/<int:service_id>", methods=["DELETE"])
def delete_service(service_id: int):
    """DELETE dcp_services/{id}: archive the service and its tables."""
    _backend().delete_service(_account(), service_id)
    return _no_content()


# ---------------------------------------------------------------- tables (datasources)
@route(bp, "/dcp_services/<int:service_id>/dcp_datasources", methods=["GET"])
def list_datasources(service_id: int):
    """GET dcp_services/{id}/dcp_datasources: the service's tables."""
    return _answer(DATASOURCE, _backend().list_datasources(_account(), service_id))


@route(bp, "/dcp_services/<int:service_id>/dcp_datasources", methods=["POST"])
def create_datasource(service_id: int):
    """POST dcp_services/{id}/dcp_datasources: a new table."""
    return _answer(DATASOURCE, _backend().create_datasource(_account(), service_id, json_object()), 201)


@route(bp, "/dcp_datasources/<int:datasource_id>", methods=["GET"])
def get_datasource(datasource_id: int):
    """GET dcp_datasources/{id}."""
    return _answer(DATASOURCE, _backend().get_datasource(_account(), datasource_id))


@route(bp, "/dcp_datasources/<int:datasource_id>", methods=["PUT"])
def update_datasource(datasource_id: int):
    """PUT dcp_datasources/{id}: edit, or archive/unarchive."""
    return _answer(DATASOURCE, _backend().update_datasource(_account(), datasource_id, json_object()), 202)


@route(bp, "/dcp_datasources/<int:datasource_id>", methods=["DELETE"])
def delete_datasource(datasource_id: int):
    """DELETE dcp_datasources/{id}: archive the table."""
    _backend().delete_datasource(_account(), datasource_id)
    return _no_content()


# ---------------------------------------------------------------- attributes
@route(bp, "/dcp_datasources/<int:datasource_id>/dcp_datasource_attributes", methods=["GET"])
def list_attributes(datasource_id: int):
    """GET dcp_datasources/{id}/dcp_datasource_attributes."""
    return _answer(ATTRIBUTE, _backend().list_attributes(_account(), datasource_id))


@route(bp, "/dcp_datasources/<int:datasource_id>/dcp_datasource_attributes", methods=["POST"])
def create_attribute(datasource_id: int):
    """POST dcp_datasources/{id}/dcp_datasource_attributes: register an attribute."""
    return _answer(ATTRIBUTE, _backend().create_attribute(_account(), datasource_id, json_object()), 201)


@route(bp, "/dcp_datasource_attributes/<int:attribute_id>", methods=["GET"])
def get_attribute(attribute_id: int):
    """GET dcp_datasource_attributes/{id}."""
    return _answer(ATTRIBUTE, _backend().get_attribute(_account(), attribute_id))


@route(bp, "/dcp_datasource_attributes/<int:attribute_id>", methods=["PUT"])
def update_attribute(attribute_id: int):
    """PUT dcp_datasource_attributes/{id}: description, visibility, unarchive."""
    return _answer(ATTRIBUTE, _backend().update_attribute(_account(), attribute_id, json_object()), 202)


@route(bp, "/dcp_datasource_attributes/<int:attribute_id>", methods=["DELETE"])
def delete_attribute(attribute_id: int):
    """DELETE dcp_datasource_attributes/{id}: archive the attribute."""
    _backend().delete_attribute(_account(), attribute_id)
    return _no_content()


# ---------------------------------------------------------------- projects
@route(bp, "/projects", methods=["GET"])
def list_projects():
    """GET projects: the account's projects."""
    return _answer(PROJECT, _backend().list_projects(_account()))


@route(bp, "/projects", methods=["POST"])
def create_project():
    """POST projects."""
    return _answer(PROJECT, _backend().create_project(_account(), json_object()), 201)


@route(bp, "/projects/<int:project_id>", methods=["GET"])
def get_project(project_id: int):
    """GET projects/{id}."""
    return _answer(PROJECT, _backend().get_project(_account(), project_id))


@route(bp, "/projects/<int:project_id>", methods=["PUT"])
def update_project(project_id: int):
    """PUT projects/{id}: rename, status, link or unlink a DCP service."""
    return _answer(PROJECT, _backend().update_project(_account(), project_id, json_object()), 202)
