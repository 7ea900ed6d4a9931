"""Every example in the README runs as written.

Each fenced block of the README is preceded by a ``<!-- readme-test: NAME -->`` marker, and this
module has a test for every NAME: a block without a marker, or a marker without a test, fails
``test_every_readme_example_is_run_by_a_test``. Shell blocks run in bash against a served emulator
(``$E`` pointed at it), Python blocks as scripts or as a partner's pytest file, YAML as a seed,
JSON shapes against what the emulator really answers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from served import ROOT, ServedEmulator

from dcp_emulator.app import DEFAULT_TOKENS

README = (ROOT / "README.md").read_text()
BLOCK_RE = re.compile(r"(?:<!-- readme-test: (?P<name>[\w-]+) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.DOTALL)
H = {"Token": DEFAULT_TOKENS["classic"]}
M = "/experiment/v1"
BIN = Path(sys.executable).parent  # the aws CLI of the test extra lives next to this Python


def blocks() -> dict[str, str]:
    """Every marked block of the README by name."""
    return {m["name"]: m["body"] for m in BLOCK_RE.finditer(README) if m["name"]}


def block(name: str) -> str:
    return blocks()[name]


def bash(script: str, url: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a README shell block with the walkthrough's variables pointed at ``url``."""
    prelude = f"E={url}; T='Token: {DEFAULT_TOKENS['classic']}'; J='Content-Type: application/json'\n"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", prelude + script.replace("E=http://127.0.0.1:8080", f"E={url}")],
                          capture_output=True, text=True, check=False, timeout=timeout, cwd=cwd, env=env)


def json_docs(stdout: str) -> list:
    """The JSON documents a run of curl commands printed, one per line."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def run_pytest_file(source: str, tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a README Python block as a partner's test file, with the installed plugin."""
    (tmp_path / "test_partner.py").write_text(source)
    environ = {k: v for k, v in os.environ.items() if k != "DCP_EMULATOR_URL" and not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "--strict-markers", "test_partner.py"], check=False, cwd=tmp_path, capture_output=True, text=True,
                          env={**environ, **(env or {})}, timeout=300)


@pytest.fixture(scope="module")
def seeded():
    """One emulator served as `make serve` serves it (the built-in example seed)."""
    with ServedEmulator("--quiet", "--seed", "example") as emu:
        yield emu


@pytest.fixture
def example(seeded):
    """The served example, back to its start-up state."""
    requests.post(seeded.url + "/_emulator/reset", timeout=10).raise_for_status()
    return seeded


def test_every_readme_example_is_run_by_a_test():
    found = list(BLOCK_RE.finditer(README))
    unmarked = [m["body"].splitlines()[0] for m in found if not m["name"]]
    assert not unmarked, f"README blocks without a <!-- readme-test: NAME --> marker: {unmarked}"
    names = [m["name"] for m in found]
    assert len(names) == len(set(names)), "a readme-test name is used twice"
    tested = {name.removeprefix("test_readme_").replace("_", "-") for name in globals() if name.startswith("test_readme_")}
    assert set(names) == tested, f"blocks without a test: {set(names) - tested}; tests without a block: {tested - set(names)}"


def test_readme_setup():
    """The two set-up commands are the Makefile's serve and test targets, and CI runs the second."""
    commands = [line.split("#")[0].strip() for line in block("setup").splitlines() if line.strip()]
    assert commands == ["make serve", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^serve: install$", makefile, re.MULTILINE) and re.search(r"^test: install$", makefile, re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert re.search(r"--seed example", makefile)  # the walkthrough is written against the example seed


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's shell examples use curl")
def test_readme_walkthrough(example, tmp_path):
    script = block("walkthrough")
    result = bash(script, example.url, tmp_path)
    assert result.returncode == 0, result.stderr
    docs = json_docs(result.stdout)
    assert len(docs) == script.count("curl "), result.stdout  # every curl answered JSON ...
    assert not [d for d in docs if isinstance(d, dict) and "code" in d], result.stdout  # ... and no error
    # what the README promises in its comments
    assert docs[0]["s3_endpoint_url"] == example.url
    assert [s["id"] for s in docs[1]] == [567] and docs[1][0]["s3_path"] == "dcp/567"
    assert docs[2]["s3_path"] == "dcp/567/678" and docs[2]["aws_access_key"]
    assert docs[3]["data"]["orders"] == 42 and docs[3]["data"]["loyalty_member"] is True
    assert [p["datasourceId"] for p in docs[4]] == ["678", "679"]
    assert docs[5]["id"] == 1002 and docs[5]["s3_path"] == "dcp/567/1002"
    assert docs[6]["id"] == 1003 and docs[6]["name"] == "tier"
    assert [p["datasourceId"] for p in docs[-2]] == ["678", "679", "1002"]
    assert docs[-2][-1] == {"dcpServiceId": "567", "datasourceId": "1002", "customerId": "loy-7",
                            "data": {"tier": "gold"}}
    # ... and the reset at the end started over
    assert docs[-1]["to"] == "startup"
    assert requests.get(f"{example.url}{M}/dcp_datasources/1002", headers=H, timeout=5).status_code == 404


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's shell examples use curl")
def test_readme_walkthrough_s3(example, tmp_path):
    result = bash(block("walkthrough-s3"), example.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "crm.csv").exists() and "upload: ./crm.csv" in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    waited, profile = (json.loads(line) for line in lines)
    [upload] = waited["uploads"]
    assert upload["status"] == "completed_with_errors" and upload["rows_stored"] == 1
    assert [(e["line"], e["column"], e["value"]) for e in upload["errors"]] == [(3, "orders", "oops")]
    assert profile["data"]["orders"] == 43


def test_readme_fixture(tmp_path):
    result = run_pytest_file(block("fixture"), tmp_path)
    assert result.returncode == 0 and "3 passed" in result.stdout, result.stdout + result.stderr


def test_readme_fixture_override(tmp_path):
    result = run_pytest_file(block("fixture-override"), tmp_path)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr


def _command(line: str) -> tuple[dict[str, str], list[str]]:
    """(environment assignments, arguments after `serve`) of a README `python -m dcp_emulator serve` line."""
    words = shlex.split(line.split("#")[0].rstrip(" &"))
    env = dict(w.split("=", 1) for w in words if re.match(r"[A-Z_]+=", w))
    words = [w for w in words if not re.match(r"[A-Z_]+=", w)]
    assert words[:4] == ["python", "-m", "dcp_emulator", "serve"], line
    return env, words[4:]


def test_readme_serve(tmp_path):
    """Each `serve` line starts a healthy emulator with what it says (on a free port instead of 8080)."""
    (tmp_path / "more.yaml").write_text("projects:\n  - {id: 900, project_name: More}\n")
    for line in filter(str.strip, block("serve").splitlines()):
        env, args = _command(line)
        args = [a for a in args if a != "--port"]
        with ServedEmulator("--quiet", *args, env=env, cwd=tmp_path) as emu:
            projects = {p["id"] for p in requests.get(f"{emu.url}{M}/projects", headers=H, timeout=5).json()}
            services = requests.get(f"{emu.url}{M}/dcp_services", headers=H, timeout=5).json()
        seeds = args.count("--seed") + len(env.get("DCP_EMULATOR_SEED", "").split(",")) - ("DCP_EMULATOR_SEED" not in env)
        if seeds == 2:
            assert projects == {890, 900} and [s["id"] for s in services] == [567], line
        else:
            assert projects == set() and services == [], line
        if "--db" in args:
            assert (tmp_path / args[args.index("--db") + 1]).stat().st_size > 0


def test_readme_ci(tmp_path):
    """The background `serve` line, then the fixture pointed at it by DCP_EMULATOR_URL."""
    start, export = [line for line in block("ci").splitlines() if line.strip()]
    _, args = _command(start)
    port = args.index("--port")
    args[port + 1] = "0"
    assert export.startswith("export DCP_EMULATOR_URL=http://127.0.0.1:8080")
    with ServedEmulator("--quiet", *args, port_arg=False, cwd=tmp_path) as emu:
        result = run_pytest_file(block("fixture"), tmp_path, env={"DCP_EMULATOR_URL": emu.url})
        assert result.returncode == 0 and "3 passed" in result.stdout, result.stdout + result.stderr
        # the tests really ran there: its journal saw the fixture's profile POSTs
        journal = requests.get(f"{emu.url}/_emulator/requests?path=customer_profile", timeout=5).json()["requests"]
        assert [r["status"] for r in journal] == [429, 429, 201]


def test_readme_install(tmp_path):
    """From a local clone, a git URL and a built wheel (the git host replaced by this clone's file:// URL;
    --no-deps --target: what is checked here is the package itself, `test_packaging` runs a full install)."""
    lines = [line.split("  #")[0].strip() for line in block("install").splitlines() if line.strip()]
    assert len(lines) == 4
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    for i, line in enumerate(lines):
        line = line.replace("/path/to/dcp-emulator", str(clone)).replace(
            "git+https://example.com/your-org/dcp-emulator.git", f"git+file://{clone}")
        words = shlex.split(line)
        assert words[0] in ("pip",), line
        words[0:1] = [sys.executable, "-m", "pip"]
        if words[3] == "install":
            words[4:4] = ["--no-deps", "-q", "--target", str(tmp_path / f"site{i}")]
        if "dist/dcp_emulator-*.whl" in words:
            [wheel] = (tmp_path / "dist").glob("dcp_emulator-*.whl")
            words[words.index("dist/dcp_emulator-*.whl")] = str(wheel)
        result = subprocess.run(words, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (line, result.stderr)
    for site in (tmp_path / "site0", tmp_path / "site1", tmp_path / "site3"):
        assert (site / "dcp_emulator" / "seeds" / "example.yaml").is_file()
        assert (site / "dcp_emulator" / "pytest_plugin.py").is_file()


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's shell examples use curl")
def test_readme_endpoints(example, tmp_path):
    result = bash(block("endpoints"), example.url, tmp_path)
    assert result.returncode == 0, result.stderr
    docs = json_docs(result.stdout)
    assert not [d for d in docs if isinstance(d, dict) and "code" in d], result.stdout
    assert docs[0]["id"] == 1002 and docs[1]["dcp_service_id"] == 567
    assert docs[3]["customerId"] == "em-ada" and docs[3]["data"]["segment"] == "gold"  # the profile PUT
    assert requests.get(f"{example.url}/api/customer_profile/567/679/em-ada", headers=H, timeout=5).status_code == 404
    attribute = requests.get(f"{example.url}{M}/dcp_datasource_attributes/713", headers=H, timeout=5).json()
    assert attribute["name"] == "segment" and attribute["archived"] is False
    assert docs[-1] == [{"dcpServiceId": "567", "datasourceId": "678", "customerId": "crm-1002",
                         "data": docs[-1][0]["data"]}]  # em-grace has no values left, so only the CRM profile


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's shell examples use curl")
def test_readme_openapi(example, tmp_path):
    result = bash(block("openapi"), example.url, tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "openapi.json").read_text())
    assert doc["openapi"] == "3.1.0" and "/api/customer_profile/{service_id}/{datasource_id}/{customer_id}" in doc["paths"]
    assert requests.get(f"{example.url}/_emulator/docs", timeout=5).status_code == 200


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's shell examples use curl")
def test_readme_error_envelope(example, tmp_path):
    command, shown = block("error-envelope").strip().split("\n# ")
    got = json.loads(bash(command, example.url, tmp_path).stdout)
    expected = json.loads(shown)
    assert {k: v for k, v in got.items() if k != "request_id"} == {k: v for k, v in expected.items() if k != "request_id"}


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's shell examples use curl")
def test_the_readme_authentication_table_answers_what_it_says(example, tmp_path):
    auth = README.split("### Authentication", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"\| (\d{3}|accepted)[^|]*\| `(curl [^`]+)` \|", auth)
    assert len(rows) >= 5
    for answer, command in rows:
        if "<" in command:
            continue  # a placeholder for a token of another account
        code = bash(command.replace("curl ", "curl -s -o /dev/null -w '%{http_code}' ", 1), example.url, tmp_path).stdout
        assert code == ("200" if answer == "accepted" else answer), (command, code)


def test_readme_s3_boto3(example, tmp_path):
    script = block("s3-boto3").replace('E = "http://127.0.0.1:8080"', f"E = {example.url!r}")
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "succeeded"
    profile = requests.get(f"{example.url}/api/customer_profile/567/678/crm-1003", headers=H, timeout=5).json()
    assert profile["data"]["orders"] == 1


def test_readme_seed_yaml(example):
    resp = requests.post(f"{example.url}/_emulator/seed?reset=default", data=block("seed-yaml").encode(),
                         headers={"Content-Type": "application/yaml"}, timeout=10)
    assert resp.status_code == 201, resp.text
    assert resp.json()["created"]["profiles"] == 1 and resp.json()["created"]["aliases"] == 1
    assert requests.get(f"{example.url}{M}/dcp_services", headers={"Token": "my-token"}, timeout=5).json()[0]["id"] == 567
    old = requests.get(f"{example.url}{M}/dcp_services", headers={"Authorization": "Bearer old-oauth"}, timeout=5)
    assert old.status_code == 403  # the seed's expired OAuth token


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's shell examples use curl")
def test_readme_control(example, tmp_path):
    result = bash(block("control"), example.url, tmp_path)
    assert result.returncode == 0, result.stderr
    health, seeded, snapshot, back, reset = json_docs(result.stdout)
    assert health["status"] == "ok" and all(p["ready"] for p in health["parts"].values())
    assert (tmp_path / "state.yaml").read_text().startswith("# dcp-emulator")
    assert seeded["status"] == "seeded" and seeded["created"]["profiles"] == 5
    assert snapshot["name"] == "before-import"
    assert back["to"] == "snapshot" and back["snapshot"] == "before-import"
    assert reset["to"] == "startup"


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's shell examples use curl")
def test_readme_journal(example, tmp_path):
    result = bash(block("journal"), example.url, tmp_path)
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)["requests"]
    assert entry["path"] == "/api/customer_profile/567/678/crm-1001" and entry["status"] == 200


def test_readme_journal_shape(example):
    """The shape shown is the shape served: the same keys, at both levels."""
    requests.get(f"{example.url}/api/customer_profile/567/678/crm-1001", headers=H, timeout=5)
    served = requests.get(f"{example.url}/_emulator/requests", timeout=5).json()
    shown = json.loads(block("journal-shape"))
    assert served.keys() == shown.keys()
    assert served["requests"][0].keys() == shown["requests"][0].keys()
    assert served["requests"][0]["headers"]["token"] == shown["requests"][0]["headers"]["token"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's shell examples use curl")
def test_readme_faults(example, tmp_path):
    result = bash(block("faults"), example.url, tmp_path)
    assert result.returncode == 0, result.stderr
    first, second, third, listed = json_docs(result.stdout)
    assert first["status"] == 429 and first["remaining"] == 2 and third["latency_ms"] == 1500
    assert [f["id"] for f in listed["faults"]] == [first["id"], second["id"], third["id"]]
    assert requests.get(f"{example.url}/_emulator/faults", timeout=5).json() == {"faults": []}


def test_readme_faults_shape(example):
    requests.post(f"{example.url}/_emulator/faults", json={"method": "POST", "path": "^/api/customer_profile/",
                                                           "status": 429, "retry_after": 2, "times": 2}, timeout=5)
    served = requests.get(f"{example.url}/_emulator/faults", timeout=5).json()
    shown = json.loads(block("faults-shape"))
    assert {k: v for k, v in served["faults"][0].items() if k != "id"} == \
        {k: v for k, v in shown["faults"][0].items() if k != "id"}
