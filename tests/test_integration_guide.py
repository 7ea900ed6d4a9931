"""The vendor's integration guide, steps 3-6, end to end over HTTP against ``python -m dcp_emulator serve``;
and the README's curl walkthrough, run as written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from served import ROOT, ServedEmulator

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


def _readme_block(after: str, index: int = 0) -> str:
    """The index-th ```bash block of the README after the heading/text ``after``."""
    section = (ROOT / "README.md").read_text().split(after, 1)[1]
    return re.findall(r"```bash\n(.*?)```", section, re.DOTALL)[index]


def _bash(script: str, url: str) -> subprocess.CompletedProcess:
    prelude = f"E={url}; T='Token: {DEFAULT_TOKENS['classic']}'; J='Content-Type: application/json'\n"
    return subprocess.run(["bash", "-euo", "pipefail", "-c", prelude + script.replace("E=http://127.0.0.1:8080", f"E={url}")],
                          capture_output=True, text=True, check=False, timeout=60, cwd=Path(ROOT))


def _json_docs(stdout: str) -> list:
    lines = stdout.replace("}{", "}\n{").replace("]{", "]\n{").replace("}[", "}\n[").split("\n")
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README walkthrough is written for curl")
def test_the_readme_curl_walkthrough_and_examples_work_as_written():
    walkthrough = _readme_block("## 60-second walkthrough")
    assert "E=http://127.0.0.1:8080" in walkthrough
    h = {"Token": DEFAULT_TOKENS["classic"]}
    # `make serve` loads the example seed: the walkthrough is written against it.
    with ServedEmulator("--quiet", "--seed", "fixtures/example.yaml") as emu:
        result = _bash(walkthrough, emu.url)
        assert result.returncode == 0, result.stderr
        docs = _json_docs(result.stdout)
        assert len(docs) == walkthrough.count("curl "), result.stdout  # every curl answered JSON ...
        assert not [d for d in docs if isinstance(d, dict) and "code" in d], result.stdout  # ... and no error
        # what the README promises in its comments
        assert [s["id"] for s in docs[1]] == [567] and docs[1][0]["s3_path"] == "dcp/567"
        assert docs[2]["s3_path"] == "dcp/567/678" and docs[2]["aws_access_key"]
        assert docs[3]["data"]["orders"] == 42 and docs[3]["data"]["loyalty_member"] is True
        assert [p["datasourceId"] for p in docs[4]] == ["678", "679"]
        assert docs[5]["id"] == 1002 and docs[5]["s3_path"] == "dcp/567/1002"
        assert docs[6]["id"] == 1003 and docs[6]["name"] == "tier"
        assert [p["datasourceId"] for p in docs[-1]] == ["678", "679", "1002"]
        assert docs[-1][-1] == {"dcpServiceId": "567", "datasourceId": "1002", "customerId": "loy-7",
                                "data": {"tier": "gold"}}

        # "What is emulated": the one-line examples continue the walkthrough
        examples = _readme_block("### Endpoints")
        result = _bash(examples, emu.url)
        assert result.returncode == 0, result.stderr
        docs = _json_docs(result.stdout)
        assert not [d for d in docs if isinstance(d, dict) and "code" in d], result.stdout
        assert requests.get(f"{emu.url}{M}/projects/1004", headers=h, timeout=5).json()["dcp_service_id"] == 567
        attribute = requests.get(f"{emu.url}{M}/dcp_datasource_attributes/1003", headers=h, timeout=5).json()
        assert attribute["name"] == "tier" and attribute["archived"] is False
        # the loyalty profile has no values left, so the view leaves it out
        assert [p["datasourceId"] for p in docs[-1]] == ["678", "679"]

        # the error envelope example prints what the README shows
        error_example = _readme_block("### Status codes and the error envelope")
        command, shown = error_example.strip().split("\n# ")
        got = json.loads(_bash(command, emu.url).stdout)
        expected = json.loads(shown)
        assert {k: v for k, v in got.items() if k != "request_id"} == \
            {k: v for k, v in expected.items() if k != "request_id"}

        # the authentication table's examples answer what the table says
        auth = (ROOT / "README.md").read_text().split("### Authentication", 1)[1].split("\n## ", 1)[0]
        rows = re.findall(r"\| (\d{3}|accepted)[^|]*\| `(curl [^`]+)` \|", auth)
        assert len(rows) >= 5
        for answer, command in rows:
            if "<" in command:
                continue  # a placeholder for a token of another account
            code = _bash(command.replace("curl ", "curl -s -o /dev/null -w '%{http_code}' ", 1), emu.url).stdout
            assert code == ("200" if answer == "accepted" else answer), (command, code)
