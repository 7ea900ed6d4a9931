"""The API reference page (/_emulator/docs) in a real browser (Debian's chromium through selenium): Swagger UI
renders the served OpenAPI document (title, one operation block per operation), breaks none of the page's
Content-Security-Policy, and "try it out" sends its request to this emulator. Screenshots land in a pytest
temporary directory (``make screenshots`` regenerates docs/apidocs.png). Skipped when chromium,
chromedriver or selenium is missing (``make browser``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from browser import Browser, browser_missing
from test_ui_browser import by_css, wait_for

from dcp_emulator.config import Config
from dcp_emulator.server import EmulatorServer

pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")

ROOT = Path(__file__).resolve().parent.parent
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Records every Content-Security-Policy violation of the page, from before its first script runs.
CSP_RECORDER = ("window.__cspViolations = []; document.addEventListener('securitypolicyviolation', "
                "e => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));")


def operations(doc: dict) -> list[tuple[str, str]]:
    """(method, path) of every operation of a document."""
    return [(m, p) for p, item in doc["paths"].items() for m in item if m in HTTP_METHODS]


@pytest.fixture(scope="module")
def server():
    """One served emulator for the module."""
    srv = EmulatorServer(Config(host="127.0.0.1", port=0, log_requests=False)).start()
    yield srv
    srv.shutdown()


@pytest.fixture(scope="module")
def document(server):
    """The OpenAPI document the emulator serves."""
    return requests.get(server.url + "/_emulator/openapi.json", timeout=10).json()


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module."""
    b = Browser()
    b.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_RECORDER})
    yield b
    b.quit()


@pytest.fixture
def docs_page(server, browser):
    """The browser on /_emulator/docs once Swagger UI has rendered the document's title; (driver, url)."""
    browser.size(1280, 900)
    browser.driver.get(server.url + "/_emulator/docs")
    wait_for(browser.driver, lambda d: d.find_elements("css selector", ".swagger-ui .info .title"))
    return browser.driver, server.url


def test_swagger_ui_renders_the_served_documents_title_and_every_operation(docs_page, document, browser,
                                                                           tmp_path_factory):
    driver, _ = docs_page
    assert len(operations(document)) > 50  # every vendor and control-plane operation
    title = " ".join(by_css(driver, ".swagger-ui .info .title").text.split())
    # the title, the version badge and the OpenAPI version Swagger UI read (4.x would refuse 3.1)
    assert title == f"{document['info']['title']} {document['info']['version']} OAS 3.1"
    shown = driver.execute_script(
        "return [...document.querySelectorAll('.opblock')].map(b => [b.querySelector('.opblock-summary-method')"
        ".textContent.toLowerCase(), b.querySelector('.opblock-summary-path').dataset.path])")
    assert sorted(map(tuple, shown)) == sorted(operations(document))
    assert driver.execute_script("return window.versions.swaggerUI.version") == \
        (ROOT / "dcp_emulator" / "static" / "apidocs" / "VERSION").read_text().strip()
    assert driver.execute_script("return window.__cspViolations") == []
    browser.full_page_png(tmp_path_factory.mktemp("screenshots") / "apidocs.png", 1280)


def test_try_it_out_sends_the_request_to_this_emulator(docs_page):
    driver, url = docs_page
    block = by_css(driver, '.opblock-get:has(.opblock-summary-path[data-path="/_emulator/health"])')
    block.find_element("css selector", ".opblock-summary").click()
    wait_for(driver, lambda d: block.find_elements("css selector", ".try-out__btn"))[0].click()
    wait_for(driver, lambda d: block.find_elements("css selector", ".btn.execute"))[0].click()
    status = wait_for(driver, lambda d: block.find_elements("css selector", ".live-responses-table tbody .response-col_status"))
    assert status[0].text.strip() == "200"
    assert block.find_element("css selector", ".request-url pre").text == url + "/_emulator/health"
    body = json.loads(block.find_element("css selector", ".live-responses-table .microlight").text)
    assert body["status"] == "ok" and "store" in body["parts"]
    assert driver.execute_script("return window.__cspViolations") == []


def test_the_page_links_back_to_the_dashboard(docs_page):
    driver, url = docs_page
    driver.find_element("link text", "Dashboard").click()
    wait_for(driver, lambda d: d.current_url == url + "/_emulator/ui/")
    driver.find_element("link text", "API docs").click()
    wait_for(driver, lambda d: d.find_elements("css selector", ".swagger-ui .info .title"))


def test_on_a_phone_tag_descriptions_stay_readable_and_nothing_overflows(server, browser):
    browser.size(390, 900)
    try:
        browser.driver.get(server.url + "/_emulator/docs")
        wait_for(browser.driver, lambda d: d.find_elements("css selector", ".swagger-ui .opblock"))
        widths = browser.driver.execute_script(
            "return [...document.querySelectorAll('.opblock-tag small')].map(s => s.getBoundingClientRect().width)")
        assert widths and min(widths) > 200, widths  # Swagger UI alone squeezes them into one-letter columns
        assert browser.driver.execute_script("return document.documentElement.scrollWidth") <= 390
    finally:
        browser.size(1280, 900)
