"""A partner's CI suite against the emulator running as a service container (docs/ci.md).

Written as a partner writes it: ``pip install dcp-emulator`` for the pytest plugin, then every test uses the
``dcp_emulator`` fixture, which talks to the container named by ``DCP_EMULATOR_URL`` and resets it before
each test. Nothing else from dcp_emulator is imported. The repository's container test runs this file
against the image built from its Dockerfile.
"""

from __future__ import annotations

import pytest
import requests

BUCKET = "optimizely-import"

pytestmark = pytest.mark.dcp_seed("example")  # the built-in example retailer: service 567, tables 678/679


def test_write_and_read_a_profile(dcp_emulator):
    url = f"{dcp_emulator.profile_api_url}/customer_profile/567/678/crm-7"
    created = requests.post(url, json={"data": {"orders": 3, "loyalty_member": "true"}},
                            headers=dcp_emulator.headers, timeout=10)
    assert created.status_code == 201, created.text
    got = requests.get(url, headers=dcp_emulator.headers, timeout=10).json()
    assert got["data"]["orders"] == 3 and got["data"]["loyalty_member"] is True


def test_aliases_link_tables_in_the_consolidated_view(dcp_emulator):
    api, headers = dcp_emulator.profile_api_url, dcp_emulator.headers
    linked = requests.post(f"{api}/alias/567/566/oeu-new", json={"data": {"678": "crm-1002"}}, headers=headers,
                           timeout=10)
    assert linked.status_code == 201, linked.text
    view = requests.get(f"{api}/consolidatedCustomerView/567/oeu-new", headers=headers, timeout=10).json()
    assert [(p["datasourceId"], p["customerId"]) for p in view] == [("678", "crm-1002")]


def test_bulk_upload_through_s3_with_the_tables_keys(dcp_emulator):
    s3 = dcp_emulator.s3_client(678)
    s3.put_object(Bucket=BUCKET, Key="dcp/567/678/nightly.csv",
                  Body=b"customerId,orders,loyalty_member\ncrm-1001,43,TRUE\ncrm-9,many,false\n")
    [upload] = dcp_emulator.wait_for_uploads(timeout=30)
    assert upload["status"] == "completed_with_errors" and upload["rows_stored"] == 1
    assert upload["errors"][0]["line"] == 3 and upload["errors"][0]["column"] == "orders"
    profile = requests.get(f"{dcp_emulator.profile_api_url}/customer_profile/567/678/crm-1001",
                           headers=dcp_emulator.headers, timeout=10).json()
    assert profile["data"]["orders"] == 43


def test_the_journal_records_what_the_integration_sent(dcp_emulator):
    requests.post(f"{dcp_emulator.profile_api_url}/customer_profile/567/678/crm-8", json={"data": {"orders": 1}},
                  headers={**dcp_emulator.headers, "X-Test-Id": "journal"}, timeout=10)
    [entry] = dcp_emulator.requests(header="X-Test-Id:journal")
    assert entry["method"] == "POST" and entry["status"] == 201 and entry["request_json"] == {"data": {"orders": 1}}


def test_a_fault_rule_makes_the_api_rate_limit(dcp_emulator):
    dcp_emulator.fault(method="GET", path=r"^/api/customer_profile/", status=429, retry_after=1, times=1)
    url = f"{dcp_emulator.profile_api_url}/customer_profile/567/678/crm-1001"
    first = requests.get(url, headers=dcp_emulator.headers, timeout=10)
    assert first.status_code == 429 and first.headers["Retry-After"] == "1"
    assert requests.get(url, headers=dcp_emulator.headers, timeout=10).status_code == 200
