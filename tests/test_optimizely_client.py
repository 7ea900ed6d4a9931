"""A real third-party client against the served emulator: PyPI's ``optimizely`` 0.5, the classic v1 REST
client ("A Python interface to Optimizely's REST API"), installed from PyPI as a test dependency.

Its documented project flows -- create (with optional fields), list, get, change fields then ``save()``,
``update()`` -- must work unchanged. ``save()`` PUTs back every editable field it read, so the emulator must
emulate the whole classic project resource, not just the fields DCP needs.
"""

from __future__ import annotations

import json

import optimizely.client as optimizely  # a test dependency (pyproject.toml): never skipped
import pytest
import requests
from optimizely import error as optimizely_error
from optimizely import resource as optimizely_resource


@pytest.fixture
def client(dcp_emulator):
    """The package's Client, with a classic ("legacy") token, pointed at the emulator's management API."""
    return optimizely.Client(dcp_emulator.token, "legacy", api_base=dcp_emulator.rest_api_url + "/")


def test_the_client_is_the_published_0_5(client):
    import importlib.metadata

    assert importlib.metadata.version("optimizely") == "0.5"
    # the editable fields the client sends on save(): the vendor's list, which the emulator must accept
    assert set(optimizely_resource.Project.editable_fields) == {
        "project_status", "project_name", "include_jquery", "project_javascript", "enable_force_variation",
        "exclude_disabled_experiments", "exclude_names", "ip_anonymization", "ip_filter"}


def test_create_with_optional_fields_then_list_and_get(client, dcp_emulator):
    project = client.Projects.create({"project_name": "Web", "include_jquery": True, "ip_anonymization": True,
                                      "ip_filter": r"^10\.", "project_javascript": "window.dcp = 1;"})
    assert isinstance(project.id, int) and project.account_id == dcp_emulator.account_id
    assert (project.project_name, project.project_status) == ("Web", "Active")
    assert (project.include_jquery, project.ip_anonymization, project.ip_filter) == (True, True, r"^10\.")
    assert project.project_javascript == "window.dcp = 1;" and project.library != "none"
    assert (project.enable_force_variation, project.exclude_disabled_experiments, project.exclude_names) == \
        (False, False, False)
    assert project.code_revision == 1 and project.js_file_size > len("window.dcp = 1;")
    assert project.socket_token.endswith(f"~{project.id}") and project.dcp_service_id is None

    listed = client.Projects.get()
    assert [p.id for p in listed] == [project.id] and listed[0].project_name == "Web"
    fetched = client.Projects.get(project.id)
    assert isinstance(fetched, optimizely_resource.Project)
    assert {k: v for k, v in vars(fetched).items() if k != "client"} == \
        {k: v for k, v in vars(project).items() if k != "client"}


def test_change_fields_and_save(client, dcp_emulator):
    project = client.Projects.create({"project_name": "Web"})
    project.project_name = "Web (renamed)"
    project.exclude_names = True
    project.project_javascript = "console.log('hi');"
    project.save()  # PUTs every editable field it holds, changed or not
    assert (project.project_name, project.exclude_names) == ("Web (renamed)", True)
    assert project.code_revision == 2  # the project's script changed
    stored = client.Projects.get(project.id)
    assert (stored.project_name, stored.exclude_names, stored.project_javascript) == \
        ("Web (renamed)", True, "console.log('hi');")
    # saving again with nothing changed is accepted and changes nothing but last_modified
    stored.save()
    again = client.Projects.get(project.id)
    assert (again.project_name, again.code_revision) == ("Web (renamed)", 2)
    put = dcp_emulator.requests(method="PUT")[-1]
    assert set(put["request_json"]) == set(optimizely_resource.Project.editable_fields)


def test_update_archives_and_links_a_service(client, dcp_emulator):
    project = client.Projects.create({"project_name": "Web"})
    archived = client.Projects.update(project.id, {"project_status": "Archived"})
    assert archived.project_status == "Archived" and archived.project_name == "Web"
    service = requests.post(f"{dcp_emulator.rest_api_url}/dcp_services", json={"name": "Profiles"},
                            headers=dcp_emulator.headers, timeout=10).json()
    # dcp_service_id is not among the client's editable fields: update() drops it, as the client was written
    unchanged = client.Projects.update(project.id, {"dcp_service_id": service["id"]})
    assert unchanged.dcp_service_id is None


def test_refusals_reach_the_client_as_its_own_errors(client):
    with pytest.raises(optimizely_error.BadRequestError) as bad:
        client.Projects.create({"project_name": "Web", "project_status": "active"})
    body = json.loads(str(bad.value))
    assert body["field"] == "project_status" and "did you mean 'Active'" in body["message"]
    with pytest.raises(optimizely_error.NotFoundError):
        client.Projects.get(999_999)
    with pytest.raises(optimizely_error.ForbiddenError):
        optimizely.Client("not-a-token", "legacy", api_base=client.api_base).Projects.get()


def test_an_oauth_token_works_too(dcp_emulator):
    oauth = optimizely.Client(dcp_emulator.oauth_token, "oauth", api_base=dcp_emulator.rest_api_url + "/")
    project = oauth.Projects.create({"project_name": "Via OAuth"})
    assert [p.id for p in oauth.Projects.get()] == [project.id]
