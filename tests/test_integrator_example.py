"""Written only as an integrator would: the installed plugin's ``dcp_emulator`` fixture, requests and boto3.

Nothing from dcp_emulator is imported. This is what a retailer's own test suite looks like when it
tests its DCP integration (a profile sync job, an S3 bulk upload, retry logic) against the emulator.
"""

from __future__ import annotations

import time

import pytest
import requests

EXAMPLE = "../fixtures/example.yaml"  # relative to this file


# ---------------------------------------------------------------------- the "integration" under test
def push_profile(base_url: str, token: str, service_id: int, table_id: int, customer_id: str, data: dict,
                 max_attempts: int = 5) -> requests.Response:
    """An integrator's client: POST a profile, retrying 429/503 after Retry-After (as the vendor asks)."""
    for attempt in range(1, max_attempts + 1):
        resp = requests.post(f"{base_url}/customer_profile/{service_id}/{table_id}/{customer_id}",
                             json={"data": data}, headers={"Token": token, "X-Test-Id": "sync-job"}, timeout=10)
        if resp.status_code not in (429, 503) or attempt == max_attempts:
            return resp
        time.sleep(float(resp.headers.get("Retry-After", "0")))
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------- tests
def test_fresh_account_has_no_services(dcp_emulator):
    resp = requests.get(f"{dcp_emulator.rest_api_url}/dcp_services", headers={"Token": dcp_emulator.token})
    assert resp.status_code == 200 and resp.json() == []


def test_build_a_table_and_write_a_profile(dcp_emulator):
    api, headers = dcp_emulator.rest_api_url, {"Token": dcp_emulator.token}
    service = requests.post(f"{api}/dcp_services/", json={"name": "Shop"}, headers=headers).json()
    table = requests.post(f"{api}/dcp_services/{service['id']}/dcp_datasources", headers=headers, json={
        "name": "CRM", "keyfield_locator_type": "cookie", "keyfield_locator_name": "crm_id"}).json()
    requests.post(f"{api}/dcp_datasources/{table['id']}/dcp_datasource_attributes", headers=headers,
                  json={"name": "ltv", "datatype": "double"}).raise_for_status()
    resp = push_profile(dcp_emulator.profile_api_url, dcp_emulator.token, service["id"], table["id"], "c-1",
                        {"ltv": "12.5"})
    assert resp.status_code == 201 and resp.json()["data"] == {"ltv": 12.5}


def test_state_from_the_previous_test_is_gone(dcp_emulator):
    resp = requests.get(f"{dcp_emulator.rest_api_url}/dcp_services", headers={"Token": dcp_emulator.token})
    assert resp.json() == []


@pytest.mark.dcp_seed(EXAMPLE)
def test_consolidated_view_of_the_seeded_retailer(dcp_emulator):
    resp = requests.get(f"{dcp_emulator.profile_api_url}/consolidatedCustomerView/567/oeu-ada",
                        headers={"Token": dcp_emulator.token})
    assert [(p["datasourceId"], p["customerId"]) for p in resp.json()] == [("678", "crm-1001"), ("679", "em-ada")]


@pytest.mark.dcp_seed(EXAMPLE)
def test_bulk_upload_through_s3(dcp_emulator):
    s3 = dcp_emulator.s3_client(678)
    s3.put_object(Bucket="optimizely-import", Key="dcp/567/678/nightly.csv",
                  Body=b"customerId,orders,loyalty_member\ncrm-1001,43,TRUE\ncrm-9,many,false\n")
    [upload] = dcp_emulator.wait_for_uploads(timeout=10)
    assert upload["status"] == "completed_with_errors" and upload["rows_stored"] == 1
    assert upload["errors"][0]["line"] == 3 and upload["errors"][0]["column"] == "orders"
    profile = requests.get(f"{dcp_emulator.profile_api_url}/customer_profile/567/678/crm-1001",
                           headers={"Token": dcp_emulator.token}).json()
    assert profile["data"]["orders"] == 43 and profile["data"]["loyalty_member"] is True


@pytest.mark.dcp_seed(EXAMPLE)
def test_a_tables_keys_cannot_write_into_another_table(dcp_emulator):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as info:
        dcp_emulator.s3_client(679).put_object(Bucket="optimizely-import", Key="dcp/567/678/x.csv",
                                               Body=b"customerId\nc\n")
    assert info.value.response["Error"]["Code"] == "AccessDenied"


@pytest.mark.dcp_seed(EXAMPLE)
def test_sync_job_retries_after_rate_limiting(dcp_emulator):
    dcp_emulator.fault(method="POST", path=r"^/api/customer_profile/", status=429, retry_after=0, times=2)
    resp = push_profile(dcp_emulator.profile_api_url, dcp_emulator.token, 567, 678, "crm-1002", {"orders": 4})
    assert resp.status_code == 201
    sent = dcp_emulator.requests(header="X-Test-Id:sync-job")
    assert [r["status"] for r in sent] == [429, 429, 201]
    assert all(r["request_json"] == {"data": {"orders": 4}} and r["token_kind"] == "classic" for r in sent)


@pytest.mark.dcp_seed(EXAMPLE)
def test_sync_job_gives_up_when_the_service_stays_down(dcp_emulator):
    dcp_emulator.fault(path="customer_profile", status=503)
    resp = push_profile(dcp_emulator.profile_api_url, dcp_emulator.token, 567, 678, "crm-1002", {"orders": 4},
                        max_attempts=3)
    assert resp.status_code == 503
    assert len(dcp_emulator.requests(path="customer_profile", status=503)) == 3
