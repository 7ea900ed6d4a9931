"""The vendor's integration guide, steps 3-6, end to end over HTTP against ``python -m dcp_emulator serve``
(the README's own examples are run by test_readme.py)."""

from __future__ import annotations

import requests
from served import ServedEmulator

from dcp_emulator.app import DEFAULT_TOKENS

M = "/experiment/v1"


def test_integration_guide_steps_3_to_6():
    with ServedEmulator("--quiet") as emu, requests.Session() as api:
        base = emu.url
        # Step 2 recommends OAuth: the emulator accepts the seeded OAuth access token as Bearer.
        api.headers["Authorization"] = f"Bearer {DEFAULT_TOKENS['oauth']}"

        def call(method: str, path: str, status: int, payload: dict | None = None):
            resp = api.request(method, base + path, json=payload, timeout=10)
            assert resp.status_code == status, f"{method} {path}: {resp.status_code} {resp.text}"
            return resp.json() if resp.content else None

        # 3. Create a DCP service and associate it with the project.
        service = call("POST", f"{M}/dcp_services/", 201, {"name": "Acme DCP"})  # published clients use the slash
        sid = service["id"]
        project = call("POST", f"{M}/projects", 201, {"project_name": "Acme web"})
        linked = call("PUT", f"{M}/projects/{project['id']}", 202, {"dcp_service_id": sid})
        assert linked["dcp_service_id"] == sid
        opt = next(t for t in call("GET", f"{M}/dcp_services/{sid}/dcp_datasources", 200) if t["is_optimizely"])

        # 4. Create a table for the application's customer data.
        table = call("POST", f"{M}/dcp_services/{sid}/dcp_datasources", 201, {
            "name": "Acme CRM", "description": "Customers from the CRM", "keyfield_locator_type": "cookie",
            "keyfield_locator_name": "acme_customer_id"})
        tid = table["id"]
        assert table["s3_path"] == f"dcp/{sid}/{tid}" and table["aws_access_key"] and table["aws_secret_key"]

        # 5. Register attributes before any data is written.
        for name, datatype, fmt in (("tier", "string", None), ("lifetime_value", "double", None),
                                    ("newsletter", "bool", None), ("orders", "long", None),
                                    ("first_order", "datetime", "yyyy-mm-dd")):
            call("POST", f"{M}/dcp_datasources/{tid}/dcp_datasource_attributes", 201,
                 {"name": name, "datatype": datatype, "format": fmt, "description": f"the {name}"})
        registered = call("GET", f"{M}/dcp_datasources/{tid}", 200)["attributes"]
        assert [a["name"] for a in registered] == ["tier", "lifetime_value", "newsletter", "orders", "first_order"]

        # 6. Write customer profile attribute values (as strings, as a CSV-minded integration would).
        p1 = call("POST", f"/api/customer_profile/{sid}/{tid}/cust-1", 201, {"data": {
            "tier": "gold", "lifetime_value": "1234.5", "newsletter": "TRUE", "orders": "17",
            "first_order": "2019-04-01"}})
        assert p1["data"] == {"tier": "gold", "lifetime_value": 1234.5, "newsletter": True, "orders": 17,
                              "first_order": "2019-04-01"}
        call("POST", f"/api/customer_profile/{sid}/{tid}/cust-1", 201, {"data": {"orders": 18}})  # an update
        call("POST", f"/api/customer_profile/{sid}/{tid}/cust-2", 201, {"data": {"tier": "silver"}})
        # The Optimizely table can hold values of its own, keyed by Optimizely user id.
        call("POST", f"{M}/dcp_datasources/{opt['id']}/dcp_datasource_attributes", 201,
             {"name": "segment", "datatype": "string"})
        call("POST", f"/api/customer_profile/{sid}/{opt['id']}/oeu-1", 201, {"data": {"segment": "returning"}})

        # Alias the CRM customer to the Optimizely user, then read the consolidated view.
        alias = call("POST", f"/api/alias/{sid}/{opt['id']}/oeu-1", 201, {"data": {str(tid): "cust-1"}})
        assert alias["data"] == {str(tid): "cust-1"}
        view = call("GET", f"/api/consolidatedCustomerView/{sid}/oeu-1", 200)
        assert call("GET", f"/api/consolidatedCustomerView/{sid}/{opt['id']}/oeu-1", 200) == view
        by_table = {v["datasourceId"]: v for v in view}
        assert by_table[str(opt["id"])]["data"] == {"segment": "returning"}
        assert by_table[str(tid)] == {"data": {"tier": "gold", "lifetime_value": 1234.5, "newsletter": True,
                                               "orders": 18, "first_order": "2019-04-01"},
                                      "dcpServiceId": str(sid), "datasourceId": str(tid), "customerId": "cust-1"}
        assert len(view) == 2  # cust-2 is not aliased to this user
        assert call("GET", f"/api/consolidatedCustomerView/{sid}/oeu-unknown", 200) == []
