"""The consent page in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium):
a user accepts or denies, the browser lands on the partner's local callback, and a page of another site
cannot post the consent form. Skipped when chromium or its driver is not installed (``make browser``)."""

from __future__ import annotations

import html
import http.server
import shutil
import threading
import urllib.parse

import pytest
import requests
from requests_oauthlib import OAuth2Session

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[test])")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("chromium and chromium-driver are not installed (make browser)", allow_module_level=True)

from selenium.webdriver.common.by import By  # only once the browser is known to exist
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

DESKTOP = (1280, 900)
PHONE = (390, 844)


@pytest.fixture(autouse=True)
def _plain_http(monkeypatch):
    """oauthlib refuses http:// endpoints unless told this is a local test server."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium with a new, empty profile and nothing that reaches the network on its own."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        options.add_argument(flag)
    # The system driver, never selenium-manager (which would download one).
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


class Partner:
    """The partner's local callback server (another origin than the emulator's): records what the
    browser brings back, and can serve a page that tries to post the consent form cross-site."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.forged_form = ""
        partner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/favicon.ico":  # the browser asks on its own; not part of the flow
                    self.send_error(404)
                    return
                partner.hits.append(self.path)
                body = partner.forged_form if self.path.startswith("/forge") else "<p id='done'>Callback received</p>"
                data = f"<!doctype html><html><body>{body}</body></html>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def last_query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.hits[-1]).query))


@pytest.fixture
def partner():
    server = Partner()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def app(dcp_emulator):
    """A second account (for the chooser) and an app whose callback is on loopback (any port accepted)."""
    dcp_emulator.seed({"accounts": [{"id": 2002, "name": "Second account"}]})
    return dcp_emulator.oauth_app(name="Acme Sync", redirect_uris=["http://127.0.0.1/callback"])


def open_consent(browser, emu, app: dict, partner: Partner, **kwargs) -> OAuth2Session:
    session = OAuth2Session(app["client_id"], redirect_uri=f"{partner.url}/callback", scope=["all"], **kwargs)
    url, _ = session.authorization_url(emu.authorize_url)
    browser.get(url)
    assert browser.find_element(By.ID, "app-name").text == "Acme Sync"
    return session


def wait_for_partner(browser, partner: Partner) -> None:
    WebDriverWait(browser, 15).until(lambda d: d.current_url.startswith(partner.url))


def test_accept_in_the_browser_then_exchange_and_call_the_api(browser, dcp_emulator, app, partner, tmp_path):
    session = open_consent(browser, dcp_emulator, app, partner)
    chooser = Select(browser.find_element(By.ID, "account"))
    assert [o.text for o in chooser.options] == ["Default account (1001)", "Second account (2002)"]
    assert chooser.first_selected_option.get_attribute("value") == "1001"  # the default account preselected
    assert "Scope: all" in browser.find_element(By.ID, "scope").text
    assert browser.find_element(By.ID, "redirect-host").text == partner.url.removeprefix("http://")
    for name, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
        browser.set_window_size(width, height)
        path = tmp_path / f"consent-{name}.png"
        assert browser.save_screenshot(str(path)) and path.read_bytes().startswith(b"\x89PNG")
        # Nothing overflows sideways, and both buttons are on screen without scrolling horizontally.
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        for button in ("accept", "deny"):
            box = browser.find_element(By.ID, button).rect
            assert box["x"] >= 0 and box["x"] + box["width"] <= browser.execute_script("return window.innerWidth")
    print(f"consent page screenshots: {tmp_path}/consent-desktop.png, {tmp_path}/consent-phone.png")
    browser.find_element(By.ID, "accept").click()
    wait_for_partner(browser, partner)
    assert browser.find_element(By.ID, "done").text == "Callback received"
    query = partner.last_query()
    assert set(query) == {"code", "state"} and query["state"] == session._state
    token = session.fetch_token(dcp_emulator.token_url, authorization_response=browser.current_url,
                                client_secret=app["client_secret"])
    assert token["expires_in"] == 7200 and token["refresh_token"]
    assert session.get(f"{dcp_emulator.rest_api_url}/dcp_services", timeout=10).status_code == 200


def test_the_account_chosen_on_the_page_is_granted(browser, dcp_emulator, app, partner):
    session = open_consent(browser, dcp_emulator, app, partner)
    Select(browser.find_element(By.ID, "account")).select_by_value("2002")
    browser.find_element(By.ID, "accept").click()
    wait_for_partner(browser, partner)
    token = session.fetch_token(dcp_emulator.token_url, authorization_response=browser.current_url,
                                client_secret=app["client_secret"])
    owner = next(a["id"] for a in dcp_emulator.state()["accounts"] for t in a["tokens"]
                 if t["token"] == token["access_token"])
    assert owner == 2002


def test_deny_in_the_browser(browser, dcp_emulator, app, partner):
    session = open_consent(browser, dcp_emulator, app, partner)
    browser.find_element(By.ID, "deny").click()
    wait_for_partner(browser, partner)
    assert partner.last_query() == {"error": "access_denied", "state": session._state}


def test_implicit_grant_in_the_browser_lands_with_the_token_in_the_fragment(browser, dcp_emulator, partner):
    from oauthlib.oauth2 import MobileApplicationClient

    app = dcp_emulator.oauth_app(name="Acme Sync", client_type="public", redirect_uris=["http://127.0.0.1/callback"])
    session = open_consent(browser, dcp_emulator, app, partner, client=MobileApplicationClient(app["client_id"]))
    browser.find_element(By.ID, "accept").click()
    wait_for_partner(browser, partner)
    assert partner.hits[-1] == "/callback"  # the fragment never reaches the partner's server
    token = session.token_from_fragment(browser.current_url)
    assert token["token_type"] == "bearer" and token["expires_in"] == 7200 and "refresh_token" not in token
    assert session.get(f"{dcp_emulator.rest_api_url}/dcp_services", timeout=10).status_code == 200


def test_a_page_of_another_site_cannot_post_the_consent_form(browser, dcp_emulator, app, partner):
    # An attacker starts an authorization of their own and makes the victim's browser accept it.
    page = requests.get(dcp_emulator.authorize_url, timeout=10, params={
        "client_id": app["client_id"], "redirect_uri": f"{partner.url}/callback", "response_type": "code"})
    authorization = page.headers["X-Dcp-Emulator-Authorization"]
    partner.forged_form = (
        f"<form id='f' method='post' action='{html.escape(dcp_emulator.authorize_url)}'>"
        f"<input name='authorization' value='{authorization}'><input name='account_id' value='1001'>"
        "<input name='decision' value='accept'></form><script>document.getElementById('f').submit()</script>")
    browser.get(f"{partner.url}/forge")
    WebDriverWait(browser, 15).until(lambda d: d.current_url.startswith(dcp_emulator.authorize_url))
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "description"))
    assert browser.find_element(By.ID, "error").text == "access_denied"
    assert browser.find_element(By.ID, "description").text.startswith("Refused: the consent form was posted from "
                                                                       "another site.")
    assert not any(h.startswith("/callback") for h in partner.hits)  # no code went anywhere
    assert [p["id"] for p in dcp_emulator.pending_authorizations()] == [authorization]
