"""Installing the emulator as users do: the Makefile's install from a fresh clone (twice at once), and a
wheel installed into a fresh virtualenv outside the repository, used by a partner's own test suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from served import ROOT

# A partner's test suite: nothing from the repository, only the installed wheel's fixture and seed.
PARTNER_TESTS = '''
import json
import urllib.request

import pytest


def get(url, token):
    req = urllib.request.Request(url, headers={"Token": token})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.dcp_seed("example")
def test_the_built_in_example_seed(dcp_emulator):
    services = get(f"{dcp_emulator.rest_api_url}/dcp_services", dcp_emulator.token)
    assert [s["id"] for s in services] == [567]


@pytest.mark.dcp_seed("example")
def test_a_bulk_upload_with_the_tables_keys(dcp_emulator):
    s3 = dcp_emulator.s3_client(678)
    s3.put_object(Bucket=dcp_emulator.bucket, Key="dcp/567/678/partner.csv", Body=b"customerId,orders\\ncrm-1001,99\\n")
    [upload] = dcp_emulator.wait_for_uploads(timeout=20)
    assert upload["status"] == "succeeded", upload
    profile = get(f"{dcp_emulator.profile_api_url}/customer_profile/567/678/crm-1001", dcp_emulator.token)
    assert profile["data"]["orders"] == 99


def test_each_test_starts_from_the_default_state(dcp_emulator):
    assert get(f"{dcp_emulator.rest_api_url}/dcp_services", dcp_emulator.token) == []


def test_the_api_docs_page_and_its_swagger_ui_are_served(dcp_emulator):
    info = get(f"{dcp_emulator.url}/_emulator/info", "")
    with urllib.request.urlopen(info["api_docs_url"], timeout=10) as resp:
        assert "swagger-ui-bundle.js" in resp.read().decode()
    with urllib.request.urlopen(f"{info['api_docs_url']}/assets/swagger-ui-bundle.js", timeout=10) as resp:
        assert b"SwaggerUIBundle" in resp.read()
'''


def _source_tree(dest: Path) -> Path:
    """A copy of the repository's tracked files, as a fresh clone has them (no .venv, no build output)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), target)
        else:
            shutil.copy2(src, target)
    return dest


def _env() -> dict[str, str]:
    # The partner's shell: no variables of this test session's virtualenv or emulator.
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "DCP_EMULATOR_URL", "DCP_EMULATOR_VALIDATE_RESPONSES")
           and not k.startswith("PYTEST")}  # a partner's environment: not our suite's contract switch
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_two_installs_at_the_same_time_in_a_fresh_clone_both_succeed(tmp_path):
    """`make serve &` then `make test` at once: both install first; the second waits for the first."""
    clone = _source_tree(tmp_path / "clone")
    cmd = ["make", "--no-print-directory", "install", f"PY={sys.executable}"]
    first = subprocess.Popen(cmd, cwd=clone, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second = subprocess.Popen(cmd, cwd=clone, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert "Errno 17" not in "".join(outputs)
    assert any("waiting for it" in out for out in outputs), outputs  # one really waited for the other
    check = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-c", "import dcp_emulator, pytest, boto3"],
                           check=False, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    # and a third run finds it ready at once
    again = subprocess.run(cmd, check=False, cwd=clone, env=_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "installing" not in again.stderr, again.stderr


def test_a_built_wheel_serves_a_partner_test_suite_in_a_fresh_venv(tmp_path):
    """pip wheel . -> a fresh venv outside the repository -> the partner's suite with dcp_seed("example")."""
    source = _source_tree(tmp_path / "source")
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
                           check=False, capture_output=True, text=True, env=_env(), timeout=600)
    assert built.returncode == 0, built.stderr
    [wheel] = dist.glob("dcp_emulator-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    # The API-docs page and every vendored Swagger UI file ship in the wheel (no CDN), and nothing more of it.
    apidocs = {f"dcp_emulator/static/apidocs/{p.name}" for p in (ROOT / "dcp_emulator" / "static" / "apidocs").iterdir()}
    assert "dcp_emulator/templates/apidocs.html" in names
    assert apidocs <= names, apidocs - names
    assert {n for n in names if n.startswith("dcp_emulator/static/apidocs/")} == apidocs

    venv = tmp_path / "partner-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    installed = subprocess.run([python, "-m", "pip", "install", "-q", str(wheel), "pytest"],
                               check=False, capture_output=True, text=True, env=_env(), timeout=600)
    assert installed.returncode == 0, installed.stderr

    project = tmp_path / "partner-project"
    project.mkdir()
    (project / "test_partner.py").write_text(textwrap.dedent(PARTNER_TESTS))
    run = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-markers"],
                         check=False, cwd=project, capture_output=True, text=True, env=_env(), timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout, run.stdout
    # the package came from the wheel, not from this checkout
    where = subprocess.run([python, "-c", "import dcp_emulator; print(dcp_emulator.__file__)"], cwd=project,
                           capture_output=True, text=True, check=True).stdout
    assert str(venv) in where and str(ROOT) not in where
