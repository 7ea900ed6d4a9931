"""The API reference page (/_emulator/docs) through Flask's test client: the page, its vendored Swagger UI
assets, their caching, the refusals of unknown and ``..`` asset names, the links to it, and the vendoring
script (tools/vendor_swagger_ui.py) run against a stand-in ``npm``. The page rendered in a real browser is
tests/test_apidocs_browser.py."""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import tomllib

import pytest

DOCS = "/_emulator/docs"
ROOT = pathlib.Path(__file__).resolve().parent.parent
VENDORED = ROOT / "dcp_emulator" / "static" / "apidocs"
OWN_FILES = {"apidocs.js", "apidocs.css"}  # the page's own files next to the vendored ones


def page_assets(html: str) -> list[str]:
    """The URLs of the scripts, stylesheets and icon a page loads."""
    return re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', html)


# ---------------------------------------------------------------------- the page
@pytest.mark.parametrize("path", [DOCS, DOCS + "/"])
def test_the_page_is_html_that_renders_the_served_document(client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.mimetype == "text/html" and r.mimetype_params["charset"] == "utf-8"
    html = r.get_data(as_text=True)
    openapi_path = client.get("/_emulator/info").get_json()["openapi_url"].removeprefix("http://localhost")
    assert f'data-openapi-url="{openapi_path}"' in html  # what apidocs.js hands to SwaggerUIBundle({url})
    assert client.get(openapi_path).get_json()["openapi"].startswith("3.1")


def test_the_page_loads_only_its_own_assets_and_no_inline_script(client):
    html = client.get(DOCS).get_data(as_text=True)
    assets = page_assets(html)
    assert {a.rsplit("/", 1)[-1] for a in assets} == {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png",
                                                      "apidocs.js", "apidocs.css"}
    assert all(a.startswith(f"{DOCS}/assets/") for a in assets), assets  # no CDN
    assert "://" not in re.sub(r"<a\b[^>]*>", "", html)  # nothing absolute apart from links a person follows
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # every script is a file
    assert not re.search(r"<[^>]*\son\w+=", html)  # no onclick= handlers either


def test_the_page_forbids_scripts_from_anywhere_else(client):
    headers = client.get(DOCS).headers
    policy = dict(d.strip().split(" ", 1) for d in headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"  # the document and "try it out" go to this emulator only
    assert policy["frame-ancestors"] == "'none'" and headers["X-Frame-Options"] == "DENY"


def test_the_starter_script_passes_the_pages_document_url_to_swagger_ui(client):
    r = client.get(f"{DOCS}/assets/apidocs.js")
    assert r.status_code == 200 and r.mimetype == "text/javascript"
    script = r.get_data(as_text=True)
    assert "SwaggerUIBundle(" in script and "url: root.dataset.openapiUrl" in script
    assert "validatorUrl: null" in script  # the default badge would send the document to validator.swagger.io


# ---------------------------------------------------------------------- the assets
@pytest.mark.parametrize("name, mimetype", [("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css"),
                                            ("favicon-32x32.png", "image/png"), ("LICENSE", "text/plain"),
                                            ("NOTICE", "text/plain")])
def test_assets_are_the_vendored_files_with_their_types(client, name, mimetype):
    r = client.get(f"{DOCS}/assets/{name}")
    assert r.status_code == 200 and r.mimetype == mimetype
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.get_data() == (VENDORED / name).read_bytes()


def test_the_bundle_is_swagger_ui_5_which_renders_openapi_3_1(client):
    version = (VENDORED / "VERSION").read_text().strip()
    assert re.fullmatch(r"5\.\d+\.\d+", version)
    assert f'PACKAGE_VERSION:"{version}"' in client.get(f"{DOCS}/assets/swagger-ui-bundle.js").get_data(as_text=True)


def test_an_asset_is_revalidated_not_downloaded_again(client):
    first = client.get(f"{DOCS}/assets/swagger-ui-bundle.js")
    assert "no-cache" in first.headers["Cache-Control"] and first.headers["ETag"]
    again = client.get(f"{DOCS}/assets/swagger-ui-bundle.js", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""


@pytest.mark.parametrize("name", ["swagger-ui.js", "swagger-ui-bundle.js.map", "index.html", "sub/dir.js"])
def test_an_unknown_asset_is_a_404_in_the_json_envelope(client, name):
    r = client.get(f"{DOCS}/assets/{name}")
    assert r.status_code == 404 and r.mimetype == "application/json"
    body = r.get_json()
    assert body["code"] == "not_found" and body["request_id"]
    assert body["message"].startswith(f"No API-docs asset named {name!r}; the assets are: ")
    assert "swagger-ui-bundle.js" in body["message"]


@pytest.mark.parametrize("path", ["../openapi.json", "%2e%2e/openapi.json", "..%2fopenapi.json", "../../api/apidocs.py",
                                  "..%2F..%2F..%2Fpyproject.toml", "%2e%2e%2f%2e%2e%2fapp.py"])
def test_dot_dot_traversal_out_of_the_assets_is_refused(client, path):
    r = client.get(f"{DOCS}/assets/{path}")
    assert r.status_code == 404 and r.mimetype == "application/json"
    assert r.get_json()["message"].startswith("No API-docs asset named '..")
    assert b"openapi" not in r.get_data().split(b"the assets are")[1]  # nothing of the target leaked


def test_an_absolute_path_is_not_an_asset(client):
    r = client.get(f"{DOCS}/assets//etc/passwd")
    assert r.status_code == 404 and r.get_json()["code"] == "not_found"
    assert "root:" not in r.get_data(as_text=True)


def test_assets_answer_get_only(client):
    r = client.post(f"{DOCS}/assets/apidocs.js", json={})
    assert r.status_code == 405 and r.get_json()["code"] == "method_not_allowed"
    assert "GET" in r.headers["Allow"]


# ---------------------------------------------------------------------- where it is linked from
def test_info_links_the_api_docs_next_to_the_document(client):
    info = client.get("/_emulator/info").get_json()
    assert info["api_docs_url"] == "http://localhost/_emulator/docs"
    assert info["openapi_url"] == "http://localhost/_emulator/openapi.json"
    assert client.get(info["api_docs_url"].removeprefix("http://localhost")).status_code == 200


def test_the_dashboard_navigation_links_the_api_docs(client):
    html = client.get("/_emulator/ui").get_data(as_text=True)
    nav = re.search(r"<nav>(.*?)</nav>", html, re.DOTALL).group(1)
    assert f'<a href="{DOCS}/">API docs</a>' in nav


def test_the_page_links_back_to_the_dashboard_and_the_document(client):
    html = client.get(DOCS).get_data(as_text=True)
    links = re.findall(r'<a [^>]*href="([^"]+)"', html)
    assert "/_emulator/ui/" in links and "/_emulator/openapi.json" in links
    for link in links:
        assert client.get(link).status_code == 200, link


def test_the_start_up_banner_links_the_api_docs():
    from dcp_emulator.config import Config
    from dcp_emulator.server import EmulatorServer

    server = EmulatorServer(Config(host="127.0.0.1", port=0, log_requests=False))
    try:
        assert f"API docs         {server.url}/_emulator/docs" in server.banner()
    finally:
        server.shutdown()


# ---------------------------------------------------------------------- packaging of the vendored files
def test_the_vendored_files_are_package_data_without_source_maps():
    """Every file of static/apidocs matches a package-data glob (tests/test_packaging.py checks the wheel)."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["dcp_emulator"]
    package = ROOT / "dcp_emulator"
    files = [*VENDORED.iterdir(), package / "templates" / "apidocs.html"]
    for f in files:
        assert any(f.relative_to(package).match(g) for g in globs), f
    assert not [f for f in files if f.suffix == ".map" or "es-bundle" in f.name]
    assert sum(f.stat().st_size for f in files) < 2_500_000  # the bundle, its CSS and licences: no duplicates


def test_the_vendored_files_are_those_the_vendoring_script_recorded():
    """README.md lists the sha256 of each file as copied from npm's tarball: nobody edited them since."""
    readme = (VENDORED / "README.md").read_text()
    sums = re.findall(r"^\s+([0-9a-f]{64})  (\S+)$", readme, re.MULTILINE)
    recorded = {name: digest for digest, name in sums}
    assert set(recorded) == {p.name for p in VENDORED.iterdir()} - OWN_FILES - {"README.md", "VERSION"}
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDORED / name).read_bytes()).hexdigest() == digest, name
    assert f"`swagger-ui-dist` {(VENDORED / 'VERSION').read_text().strip()} from the npm registry" in readme


# ---------------------------------------------------------------------- tools/vendor_swagger_ui.py
FAKE_NPM = '''\
#!{python}
"""Stands in for `npm pack --json <spec>`: writes a swagger-ui-dist tarball of version {version} here."""
import io, json, sys, tarfile
assert sys.argv[1:3] == ["pack", "--json"], sys.argv
name = "swagger-ui-dist-{version}.tgz"
with tarfile.open(name, "w:gz") as tar:
    for member in {members!r}:
        data = ("content of " + member).encode()
        info = tarfile.TarInfo("package/" + member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
print(json.dumps([{{"name": "swagger-ui-dist", "version": "{version}", "filename": name,
                   "integrity": "sha512-fake"}}]))
'''
PACKAGE_FILES = ["LICENSE", "NOTICE", "README.md", "index.html", "package.json", "swagger-ui-bundle.js",
                 "swagger-ui-bundle.js.map", "swagger-ui-es-bundle.js", "swagger-ui-standalone-preset.js",
                 "swagger-ui.css", "swagger-ui.css.map", "favicon-16x16.png", "favicon-32x32.png",
                 "swagger-ui-bundle.js.LICENSE.txt"]


def _vendor(tmp_path: pathlib.Path, version: str) -> tuple[subprocess.CompletedProcess, pathlib.Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(textwrap.dedent(FAKE_NPM.format(python=sys.executable, version=version, members=PACKAGE_FILES)))
    npm.chmod(0o755)
    dest = tmp_path / "apidocs"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "vendor_swagger_ui.py"), "--spec", "swagger-ui-dist@5",
                          "--dest", str(dest)], check=False, capture_output=True, text=True, env=env, timeout=60)
    return run, dest


def test_the_vendoring_script_copies_only_the_bundle_css_icon_and_licences(tmp_path):
    run, dest = _vendor(tmp_path, "5.99.1")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        ["LICENSE", "NOTICE", "README.md", "VERSION", "favicon-32x32.png", "swagger-ui-bundle.js",
         "swagger-ui-bundle.js.LICENSE.txt", "swagger-ui.css"])
    assert (dest / "VERSION").read_text() == "5.99.1\n"
    assert (dest / "swagger-ui.css").read_text() == "content of swagger-ui.css"
    readme = (dest / "README.md").read_text()
    assert "`swagger-ui-dist` 5.99.1 from the npm registry" in readme and "sha512-fake" in readme
    digest = hashlib.sha256(b"content of swagger-ui-bundle.js").hexdigest()
    assert f"    {digest}  swagger-ui-bundle.js" in readme


def test_the_vendoring_script_refuses_a_version_that_is_not_5(tmp_path):
    run, dest = _vendor(tmp_path, "4.19.1")
    assert run.returncode == 1
    assert "swagger-ui-dist@5 is 4.19.1; the page is written for 5.x" in run.stderr
    assert not dest.exists()


def test_the_makefile_target_runs_the_vendoring_script():
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^vendor-swagger-ui:\n\t(.+)$", makefile, re.MULTILINE)
    assert target and "tools/vendor_swagger_ui.py" in target.group(1)
