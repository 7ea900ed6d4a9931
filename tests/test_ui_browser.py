"""The dashboard in a real browser (Debian's chromium through selenium), used as a person would: seeded
emulator, navigate, search a customer, upload a CSV with a bad row, add a fault and watch a request
fail in the journal, reset, and the same on a phone-sized window. Screenshots land in a pytest
temporary directory. Skipped when chromium, chromedriver or selenium is missing (``make browser``)."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest
import requests
from browser import Browser, browser_missing

from dcp_emulator.config import Config
from dcp_emulator.server import EmulatorServer

pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")

BAD_ROW_CSV = "customerId,full_name,orders\ncrm-2001,Edsger Dijkstra,7\ncrm-2002,Barbara Liskov,many\n"


@pytest.fixture(scope="module")
def server():
    """One served emulator with the built-in example seed for the whole module."""
    srv = EmulatorServer(Config(host="127.0.0.1", port=0, seed=["example"], log_requests=False)).start()
    yield srv
    srv.shutdown()


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module (starting one costs seconds)."""
    b = Browser()
    yield b
    b.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where the screenshots go."""
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def ui(server, browser):
    """A browser on a freshly reset emulator, at desktop width; returns (driver, base url)."""
    requests.post(server.url + "/_emulator/reset", timeout=30).raise_for_status()
    browser.size(1280, 900)
    return browser.driver, server.url


def wait_for(driver, condition, timeout: float = 30):
    """Wait until ``condition(driver)`` is truthy; returns its value."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A page that reloads itself (live refresh) can swap the element out while it is being read: retry.
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def by_css(driver, selector: str):
    """The first element matching a CSS selector."""
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def click_link(driver, text: str) -> None:
    """Click the link whose text is exactly ``text`` and wait for the next page."""
    from selenium.webdriver.common.by import By

    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.LINK_TEXT, text).click()
    wait_for(driver, lambda d: old != d.find_element(By.TAG_NAME, "html"))


def submit(driver, selector: str) -> None:
    """Click a submit button and wait for the next page."""
    from selenium.webdriver.common.by import By

    old = driver.find_element(By.TAG_NAME, "html")
    by_css(driver, selector).click()
    wait_for(driver, lambda d: old != d.find_element(By.TAG_NAME, "html"))


def body_text(driver) -> str:
    """The visible text of the page."""
    return by_css(driver, "body").text


def test_navigate_from_the_overview_to_a_customer(ui, shots, browser):
    driver, url = ui
    driver.get(url + "/_emulator/ui")
    assert "Acme Outfitters DCP" in body_text(driver)
    browser.full_page_png(shots / "overview.png", 1280)
    click_link(driver, "CRM")
    page = body_text(driver)
    assert "first_purchase 705 datetime yyyy-mm-dd" in page and "s3://optimizely-import/dcp/567/678/" in page
    browser.full_page_png(shots / "table.png", 1280)
    by_css(driver, "input[name=prefix]").send_keys("crm-100")
    submit(driver, "form.inline button[type=submit]")
    assert "prefix=crm-100" in driver.current_url
    click_link(driver, "crm-1001")
    page = body_text(driver)
    assert "Customer crm-1001" in page and "ltv double 1250.5" in page and "loyalty_member bool true" in page
    browser.full_page_png(shots / "profile.png", 1280)


def test_an_optimizely_user_with_its_consolidated_view(ui, shots, browser):
    driver, url = ui
    driver.get(url + "/_emulator/ui/services/567")
    by_css(driver, "input[name=user]").send_keys("oeu-ada")
    submit(driver, "form.inline button[type=submit]")
    page = body_text(driver)
    assert "Optimizely user oeu-ada" in page and "full_name Ada Lovelace" in page and "segment vip" in page
    browser.full_page_png(shots / "user.png", 1280)


def test_copy_buttons_appear_with_javascript_and_copy(ui):
    driver, url = ui
    driver.get(url + "/_emulator/ui/tables/678")
    button = by_css(driver, 'button.copy[data-copy="AKIAACMECRM000000678"]')
    assert button.is_displayed()
    button.click()
    wait_for(driver, lambda d: button.text == "Copied")


def test_upload_a_csv_with_one_bad_row_and_see_its_error_line(ui, shots, browser, tmp_path):
    driver, url = ui
    csv = tmp_path / "crm-update.csv"
    csv.write_text(BAD_ROW_CSV)
    driver.get(url + "/_emulator/ui/tables/678")
    by_css(driver, "input[type=file]").send_keys(str(csv))
    submit(driver, "form.upload button[type=submit]")
    assert "/_emulator/ui/uploads/" in driver.current_url
    # the page refreshes itself until the upload is finished
    wait_for(driver, lambda d: "completed with errors" in body_text(d))
    page = body_text(driver)
    assert "Rows stored\n1" in page or "Rows stored 1" in page
    row = by_css(driver, "table.errors tbody tr").text
    assert row.startswith("3 orders many expected a long")
    browser.full_page_png(shots / "upload.png", 1280)
    click_link(driver, "Uploads")
    assert "crm-update.csv" in body_text(driver)
    assert requests.get(url + "/api/customer_profile/567/678/crm-2001", headers={"Token": "emulator-classic-token"},
                        timeout=10).json()["data"]["orders"] == 7


def test_a_running_upload_updates_live_until_it_is_finished(ui, server, tmp_path):
    driver, url = ui
    ingestor = server.emulator.ingestor
    go = threading.Event()
    real = ingestor.process

    def held(row: dict) -> None:  # the worker waits for the test before processing
        go.wait(30)
        real(row)

    ingestor.process = held
    try:
        csv = tmp_path / "later.csv"
        csv.write_text(BAD_ROW_CSV)
        driver.get(url + "/_emulator/ui/tables/678")
        by_css(driver, "input[type=file]").send_keys(str(csv))
        submit(driver, "form.upload button[type=submit]")
        assert "pending" in by_css(driver, "[data-field=status]").text
        assert "In progress: this page refreshes" in body_text(driver)
        go.set()
        # no navigation by the test: the page's script notices the end and reloads with the row errors
        wait_for(driver, lambda d: "completed with errors" in body_text(d))
        assert by_css(driver, "table.errors tbody tr").text.startswith("3 orders many")
    finally:
        go.set()
        del ingestor.process


def test_add_a_fault_and_see_a_request_fail_in_the_journal(ui, shots, browser):
    driver, url = ui
    from selenium.webdriver.support.ui import Select

    driver.get(url + "/_emulator/ui/faults")
    Select(by_css(driver, "form.grid select[name=method]")).select_by_value("GET")
    by_css(driver, "form.grid input[name=path]").send_keys("^/experiment/")
    by_css(driver, "form.grid input[name=status]").send_keys("503")
    by_css(driver, "form.grid input[name=times]").send_keys("1")
    submit(driver, "form.grid button[type=submit]")
    assert "Fault rule added." in body_text(driver)
    assert "GET ^/experiment/ 503" in by_css(driver, "table tbody tr").text
    failed = requests.get(url + "/experiment/v1/dcp_services", headers={"Token": "emulator-classic-token"}, timeout=10)
    assert failed.status_code == 503
    click_link(driver, "Requests")
    row = by_css(driver, "table tbody tr")
    assert "GET" in row.text and "/experiment/v1/dcp_services" in row.text and "503" in row.text
    assert "fault 1" in row.text
    browser.full_page_png(shots / "journal.png", 1280)
    click_link(driver, row.text.split()[0])  # the entry id links to the entry
    page = body_text(driver)
    assert "injected by fault rule 1" in page and "Injected fault (rule 1" in page
    browser.full_page_png(shots / "journal-entry.png", 1280)


def test_reset_from_the_state_page(ui):
    driver, url = ui
    requests.post(url + "/_emulator/faults", json={"status": 503}, timeout=10)
    driver.get(url + "/_emulator/ui/state")
    submit(driver, "form.inline button.danger")  # the first: reset to the start-up state
    assert "The emulator was reset." in body_text(driver)
    assert requests.get(url + "/_emulator/faults", timeout=10).json() == {"faults": []}


class _OtherSite(http.server.BaseHTTPRequestHandler):
    """A page of another origin that posts the dashboard's reset form when opened."""

    target = ""

    def do_GET(self) -> None:
        page = (f'<form id="f" method="post" action="{self.target}/_emulator/ui/reset">'
                '<input type="hidden" name="to" value="default"></form><script>f.submit()</script>').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args) -> None:
        """Quiet."""


def test_a_form_posted_from_another_origin_is_refused(ui, shots, browser):
    driver, url = ui
    handler = type("Handler", (_OtherSite,), {"target": url})
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        driver.get(f"http://127.0.0.1:{other.server_port}/")
        wait_for(driver, lambda d: "/_emulator/ui/reset" in d.current_url)
        page = body_text(driver)
        assert "403 cross_origin_refused" in page and "Cross-origin request refused" in page
        browser.full_page_png(shots / "cross-origin.png", 1280)
    finally:
        other.shutdown()
        other.server_close()
    # nothing was reset to the default state: the seeded service is still there
    assert requests.get(url + "/experiment/v1/dcp_services", headers={"Token": "emulator-classic-token"},
                        timeout=10).json()[0]["name"] == "Acme Outfitters DCP"


@pytest.mark.parametrize("path", ["", "/tables/678", "/tables/678/profiles", "/requests", "/faults", "/state"])
def test_pages_fit_a_phone_width(ui, shots, browser, path):
    driver, url = ui
    browser.size(390, 844)
    driver.get(url + "/_emulator/ui" + path)
    # wide tables scroll inside their own box; the page itself never scrolls sideways
    assert driver.execute_script("return document.documentElement.scrollWidth") <= \
        driver.execute_script("return window.innerWidth")
    name = (path.strip("/").replace("/", "-") or "overview") + "-phone.png"
    browser.full_page_png(shots / name, 390)
