"""The web dashboard (/_emulator/ui) through Flask's test client: every page, paging, the browser upload
through the S3 gateway, the journal, faults, state forms and the cross-origin refusal."""

from __future__ import annotations

import html
import io
import pathlib
import re
import tomllib

import pytest

from dcp_emulator import create_app
from dcp_emulator.config import Config
from dcp_emulator.server import EmulatorServer
from dcp_emulator.store import Store
from dcp_emulator.store.profiles import _prefix_upper_bound

UI = "/_emulator/ui"
ROOT = pathlib.Path(__file__).resolve().parent.parent
BAD_ROW_CSV = b"customerId,full_name,orders\ncrm-2001,Edsger Dijkstra,7\ncrm-2002,Barbara Liskov,many\n"


@pytest.fixture
def emulator_config():
    """The example seed: a service, three tables, profiles, aliases and an expired token."""
    return Config(seed=["example"])


@pytest.fixture
def emu(app):
    """The Emulator behind the app."""
    return app.extensions["dcp_emulator"]


def text(response) -> str:
    """The page's text (copy buttons and tags removed, whitespace collapsed, entities decoded)."""
    body = re.sub(r'<button type="button" class="copy".*?</button>', "", response.get_data(as_text=True))
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


def links(response) -> list[str]:
    """Every href of the page, entities decoded."""
    return [html.unescape(h) for h in re.findall(r'href="([^"]+)"', response.get_data(as_text=True))]


def upload(client, table_id: int, body: bytes, name: str = "crm.csv", **headers):
    """Post a file with the table page's upload form."""
    return client.post(f"{UI}/tables/{table_id}/upload", data={"file": (io.BytesIO(body), name)},
                       content_type="multipart/form-data", headers=headers)


# ---------------------------------------------------------------------- accounts, services, tables
def test_overview_lists_accounts_tokens_services_and_tables(client):
    r = client.get(UI)
    assert r.status_code == 200 and r.mimetype == "text/html"
    page = text(r)
    assert "Acme Outfitters account 1001" in page
    assert "acme-expired-oauth-token oauth 2020-01-01 00:00:00 expired" in page
    assert "emulator-classic-token classic never valid" in page
    assert "2:emulator-personal-token personal never refused by DCP APIs" in page
    assert "Acme Outfitters DCP service 567" in page
    for name, table_id in (("Optimizely", 566), ("CRM", 678), ("Email platform", 679)):
        assert f"{UI}/tables/{table_id}" in links(r), name
    assert "CRM 678 cookie crm_id 6 dcp/567/678/" in page  # six active attributes, the archived one not counted


def test_overview_answers_with_and_without_trailing_slash(client):
    assert client.get(UI + "/").status_code == 200
    assert client.get(UI).status_code == 200


def test_a_revoked_token_is_shown_revoked(client, emu):
    emu.store.credentials.revoke_token("emulator-oauth-token")
    assert "emulator-oauth-token oauth never revoked" in text(client.get(UI))


def test_service_page_shows_its_keys_and_tables(client):
    r = client.get(f"{UI}/services/567")
    page = text(r)
    assert r.status_code == 200
    assert "s3://optimizely-import/dcp/567/" in page
    assert f"{UI}/tables/679" in links(r)
    assert 'action="/_emulator/ui/services/567/users"' in r.get_data(as_text=True)


def test_table_page_shows_attributes_s3_path_keys_and_template(client):
    r = client.get(f"{UI}/tables/678")
    body, page = r.get_data(as_text=True), text(r)
    assert r.status_code == 200
    assert "first_purchase 705 datetime yyyy-mm-dd no active" in page
    assert "ltv 702 double no active Lifetime value in USD" in page
    assert "fax_number 707 string no archived" in page
    assert "s3://optimizely-import/dcp/567/678/" in page
    # keys readable without JavaScript, each with a copy button (shown by ui.js)
    for secret in ("AKIAACMECRM000000678", "acme-crm-secret-key-000000000000000000678"):
        assert f"<code>{secret}</code>" in body
        assert f'data-copy="{secret}" hidden' in body
    assert "/_emulator/datasources/678/template.csv" in links(r)
    template = client.get("/_emulator/datasources/678/template.csv")
    assert template.get_data(as_text=True).startswith("customerId,full_name,ltv,")


def test_an_unknown_table_is_an_html_404_with_the_apis_message(client):
    r = client.get(f"{UI}/tables/9999")
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert "404 not_found" in text(r)
    assert "No table (datasource) with id 9999." in text(r)


def test_static_assets_are_served_from_the_package(client):
    css = client.get(f"{UI}/static/ui.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert "@media (max-width: 640px)" in css.get_data(as_text=True)
    assert client.get(f"{UI}/static/ui.js").status_code == 200


def test_templates_and_assets_are_package_data():
    """Every dashboard file matches a package-data glob, so an installed wheel serves the dashboard."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["dcp_emulator"]
    package = ROOT / "dcp_emulator"
    files = [p for d in ("templates/ui", "static/ui") for p in (package / d).iterdir()]
    assert files
    for f in files:
        assert any(f.relative_to(package).match(g) for g in globs), f


# ---------------------------------------------------------------------- profiles
def test_profile_page_shows_typed_values(client):
    r = client.get(f"{UI}/tables/678/profiles/crm-1001")
    page = text(r)
    assert r.status_code == 200
    assert "ltv double 1250.5" in page
    assert "loyalty_member bool true" in page
    assert "orders long 42" in page
    assert "first_purchase datetime yyyy-mm-dd 2019-04-12" in page
    assert "fax_number" not in page  # archived attributes are left out of profile reads
    turing = text(client.get(f"{UI}/tables/678/profiles/crm-1003"))
    assert "ltv double not set" in turing and "orders long 0" in turing


def test_an_unknown_profile_is_a_404_page(client):
    r = client.get(f"{UI}/tables/678/profiles/nobody")
    assert r.status_code == 404
    assert "No profile for customer 'nobody' in table 678." in text(r)


def test_search_by_customer_id_prefix(client):
    r = client.get(f"{UI}/tables/678/profiles?prefix=crm-100")
    assert r.status_code == 200
    found = re.findall(r"/tables/678/profiles/(crm-[0-9]+)", r.get_data(as_text=True))
    assert found == ["crm-1001", "crm-1002", "crm-1003"]
    none = client.get(f"{UI}/tables/678/profiles?prefix=zzz")
    assert "No profiles whose customer id starts with “zzz”." in text(none)


def _fill(emu, count: int) -> None:
    """``count`` profiles c-0000 ... in table 679 (through the store's own write path)."""
    emu.store.profile_tables.upsert_profiles(679, [(f"c-{i:04d}", {"713": f"s{i}"}) for i in range(count)])


def test_paging_through_a_table_visits_every_profile_once_in_order(client, emu):
    _fill(emu, 120)
    seen, url, pages = [], f"{UI}/tables/679/profiles?prefix=c-", 0
    while url:
        r = client.get(url)
        assert r.status_code == 200
        seen += re.findall(r"/tables/679/profiles/(c-[0-9]+)", r.get_data(as_text=True))
        nxt = [h for h in links(r) if "after=" in h]
        url, pages = (nxt[0] if nxt else None), pages + 1
    assert pages == 3
    assert seen == [f"c-{i:04d}" for i in range(120)]


def test_previous_page_link_goes_back_one_page(client, emu):
    _fill(emu, 120)
    first = client.get(f"{UI}/tables/679/profiles")
    assert not [h for h in links(first) if "before=" in h]  # no previous page on the first one
    second = client.get(next(h for h in links(first) if "after=" in h))
    back = client.get(next(h for h in links(second) if "before=" in h))
    ids = lambda r: re.findall(r"/tables/679/profiles/([a-z]+-[0-9a-z]+)", r.get_data(as_text=True))
    assert ids(back) == ids(first)
    assert len(ids(first)) == 50


def test_store_list_profiles_is_keyset_paged():
    store = Store()
    try:
        store.credentials.create_account(1)
        service = store.management.create_service(1, {"name": "s"})
        table = store.management.create_datasource(1, service["id"], {"name": "t", "keyfield_locator_type": "uid"})
        attr = store.management.create_attribute(1, table["id"], {"name": "n", "datatype": "long"})
        store.profile_tables.upsert_profiles(table["id"], [(cid, {str(attr["id"]): i}) for i, cid in
                                            enumerate(["a", "ab", "ab\U0010ffff", "ab\U0010ffffz", "ac", "b"])])
        page = store.profiles.list_profiles(1, service["id"], table["id"], prefix="ab", limit=10)
        assert [p["customerId"] for p in page["profiles"]] == ["ab", "ab\U0010ffff", "ab\U0010ffffz"]
        assert page["profiles"][0]["data"] == {"n": 1} and page["more"] is False
        page = store.profiles.list_profiles(1, service["id"], table["id"], after="ab", limit=2)
        assert [p["customerId"] for p in page["profiles"]] == ["ab\U0010ffff", "ab\U0010ffffz"] and page["more"]
        page = store.profiles.list_profiles(1, service["id"], table["id"], before="ac", limit=2)
        assert [p["customerId"] for p in page["profiles"]] == ["ab\U0010ffff", "ab\U0010ffffz"] and page["more"]
    finally:
        store.close()


def test_prefix_upper_bound():
    assert _prefix_upper_bound("ab") == "ac"
    assert _prefix_upper_bound("a\U0010ffff") == "b"
    assert _prefix_upper_bound("\U0010ffff") is None
    assert _prefix_upper_bound("a\ud7ff") == "a\ue000"


def test_optimizely_user_page_shows_aliases_and_consolidated_view(client):
    r = client.get(f"{UI}/services/567/users/oeu-ada")
    page = text(r)
    assert r.status_code == 200
    assert "CRM 678 crm-1001" in page and "Email platform 679 em-ada" in page
    assert "CRM table 678 · customer crm-1001" in page
    assert "full_name Ada Lovelace" in page and "email_opt_in true" in page


def test_user_lookup_form_redirects_to_the_user(client):
    r = client.get(f"{UI}/services/567/users?user=oeu-grace")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"{UI}/services/567/users/oeu-grace")
    empty = client.get(f"{UI}/services/567/users?user=")
    assert empty.status_code == 400 and "Enter an Optimizely user id." in text(empty)
    assert "No aliases for this user." in text(client.get(f"{UI}/services/567/users/oeu-nobody"))


# ---------------------------------------------------------------------- uploads
def test_browser_upload_goes_through_s3_and_shows_its_row_error(client, emu):
    r = upload(client, 678, BAD_ROW_CSV, name="my crm.csv")
    assert r.status_code == 303
    upload_id = int(r.headers["Location"].rsplit("/", 1)[1])
    # the object is in the emulator's S3 bucket under the table's path: it came through the gateway
    assert "dcp/567/678/my_crm.csv" in emu.s3.bucket.keys
    assert emu.ingestor.wait_idle(10)
    page = text(client.get(r.headers["Location"]))
    assert "completed with errors" in page
    assert "Rows read 2 Rows stored 1 Rows rejected 1" in page
    assert "3 orders many expected a long" in page  # line, column, value, reason
    assert client.get("/api/customer_profile/567/678/crm-2001", headers={"Token": "emulator-classic-token"}) \
        .get_json()["data"] == {"full_name": "Edsger Dijkstra", "orders": 7}
    history = client.get(f"{UI}/uploads")
    assert f"{UI}/uploads/{upload_id}" in links(history)
    assert "my_crm.csv 678 completed with errors 2 1 1" in text(history)


def test_a_failed_upload_shows_its_failure(client, emu):
    r = upload(client, 678, b"customerId,shoe_size\nc1,42\n")
    assert emu.ingestor.wait_idle(10)
    page = text(client.get(r.headers["Location"]))
    assert "failed" in page and "Failure" in page and "shoe_size" in page


def test_upload_to_an_archived_table_is_refused_by_the_s3_gateway(client, emu):
    emu.store.management.delete_datasource(1001, 679)
    r = upload(client, 679, b"customerId,segment\ne1,x\n")
    assert r.status_code == 403
    assert "The S3 endpoint refused the upload (AccessDenied)" in text(r)
    assert emu.store.uploads.list_uploads() == []


def test_browser_upload_size_is_limited_by_the_s3_object_limit_not_the_json_body_limit():
    app = create_app(Config(seed=["example"], max_body_bytes=1024, max_object_bytes=20_000))
    try:
        client = app.test_client()
        rows = b"".join(b"c%04d,%d\n" % (i, i) for i in range(800))  # ~8 KB: over the JSON limit
        assert upload(client, 678, b"customerId,orders\n" + rows).status_code == 303
        r = upload(client, 678, b"customerId,orders\n" + rows * 4)  # ~32 KB: over the object limit
        assert r.status_code == 413
        assert "larger than the 20,000 bytes this endpoint accepts" in r.get_json()["message"]
    finally:
        app.extensions["dcp_emulator"].close()


def test_upload_without_a_file_is_refused(client):
    r = client.post(f"{UI}/tables/678/upload", data={}, content_type="multipart/form-data")
    assert r.status_code == 400 and "Choose a CSV or TSV file to upload." in text(r)


def test_a_running_upload_page_refreshes_itself(client, emu):
    # Holding the store's (re-entrant) lock keeps the ingest worker from picking the upload up, while
    # this thread's requests still read the store: the upload stays pending while we look.
    with emu.store.lock:
        pending = emu.store.uploads.record_upload(1001, 567, 678, "dcp/567/678/big.csv", 10_000, "not-spooled")
        body = client.get(f"{UI}/uploads/{pending['id']}").get_data(as_text=True)
        history = client.get(f"{UI}/uploads").get_data(as_text=True)
    assert 'data-live="1"' in body and '<meta http-equiv="refresh"' in body  # JS poll, or meta refresh without JS
    assert f'data-poll="/_emulator/uploads/{pending["id"]}"' in body
    assert "In progress: this page refreshes" in body and "pending" in body
    assert 'data-live="1"' in history

# ---------------------------------------------------------------------- journal
def test_journal_lists_requests_and_filters_them(client, auth):
    client.get("/experiment/v1/dcp_services", headers=auth)
    client.get("/experiment/v1/dcp_services")  # 401
    r = client.get(f"{UI}/requests")
    page = text(r)
    assert r.status_code == 200
    assert page.count("GET /experiment/v1/dcp_services") == 2
    failed = text(client.get(f"{UI}/requests?status=4xx"))
    assert failed.count("/experiment/v1/dcp_services") == 1 and " 401 " in failed
    assert "No matching requests." in text(client.get(f"{UI}/requests?method=DELETE"))
    assert text(client.get(f"{UI}/requests?header=token")).count("GET /experiment/v1/dcp_services") == 1


def test_journal_filter_errors_are_shown(client):
    r = client.get(f"{UI}/requests?status=abc")
    assert r.status_code == 400
    assert "status must be a code such as 429 or a class such as 4xx, got 'abc'." in text(r)
    assert "limit must be a non-negative integer" in text(client.get(f"{UI}/requests?limit=-1"))


def test_journal_entry_shows_request_and_response_bodies(client, auth):
    client.post("/api/customer_profile/567/678/crm-9", headers=auth, json={"data": {"orders": 5}})
    r = client.get(f"{UI}/requests")
    entry = client.get(next(h for h in links(r) if re.search(r"/requests/[0-9]+$", h)))
    page = text(entry)
    assert entry.status_code == 200
    assert "POST /api/customer_profile/567/678/crm-9" in page
    assert '"orders": 5' in page and '"customerId": "crm-9"' in page
    assert client.get(f"{UI}/requests/999").status_code == 404


# ---------------------------------------------------------------------- faults
def test_add_a_fault_see_a_request_fail_then_delete_it(client, auth):
    r = client.post(f"{UI}/faults", data={"path": "^/experiment/", "status": "503", "times": "1"})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"{UI}/faults?done=fault-added")
    assert "Fault rule added." in text(client.get(r.headers["Location"]))
    assert "1 any ^/experiment/ 503 1.0 1 0" in text(client.get(f"{UI}/faults"))
    assert client.get("/experiment/v1/dcp_services", headers=auth).status_code == 503
    journal = text(client.get(f"{UI}/requests"))
    assert "503 fault 1" in journal
    gone = client.post(f"{UI}/faults/1/delete")
    assert gone.status_code == 303
    assert "No fault rules." in text(client.get(f"{UI}/faults"))
    assert client.post(f"{UI}/faults/1/delete").status_code == 404


@pytest.mark.parametrize("form, message", [
    ({"status": "abc"}, "status must be a whole number, got 'abc'."),
    ({"status": "200"}, "status must be from 400 to 599 (got 200)."),
    ({"probability": "often"}, "probability must be a number from 0 to 1, got 'often'."),
    ({"path": "("}, "path is not a valid regular expression"),
])
def test_an_invalid_fault_form_is_refused_with_the_reason(client, form, message):
    r = client.post(f"{UI}/faults", data=form)
    assert r.status_code == 400
    assert message in text(r)
    assert "No fault rules." in text(r)


# ---------------------------------------------------------------------- reset, snapshots, export
def test_snapshot_save_reset_to_it_and_delete(client, auth, emu):
    assert client.post(f"{UI}/snapshots", data={"name": "before"}).status_code == 303
    assert "before" in text(client.get(f"{UI}/state"))
    client.post("/api/customer_profile/567/678/crm-new", headers=auth, json={"data": {"orders": 1}})
    assert client.post(f"{UI}/reset", data={"to": "snapshot", "snapshot": "before"}).status_code == 303
    assert client.get("/api/customer_profile/567/678/crm-new", headers=auth).status_code == 404
    assert client.post(f"{UI}/snapshots/delete", data={"name": "before"}).status_code == 303
    assert "No snapshots saved." in text(client.get(f"{UI}/state"))
    r = client.post(f"{UI}/snapshots/delete", data={"name": "before"})
    assert r.status_code == 404 and "No snapshot named 'before'." in text(r)
    r = client.post(f"{UI}/snapshots", data={"name": ""})
    assert r.status_code == 400 and "name is required" in text(r)


def test_reset_forms(client, auth, emu):
    client.post(f"{UI}/faults", data={"status": "503"})
    r = client.post(f"{UI}/reset", data={"to": "startup"})
    assert r.status_code == 303 and "The emulator was reset." in text(client.get(r.headers["Location"]))
    assert emu.faults.list() == []
    assert client.get("/api/customer_profile/567/678/crm-1001", headers=auth).status_code == 200
    client.post(f"{UI}/reset", data={"to": "default"})
    assert "Acme Outfitters DCP" not in text(client.get(UI))
    r = client.post(f"{UI}/reset", data={"to": "yesterday"})
    assert r.status_code == 400 and "to must be startup, default or snapshot, got 'yesterday'." in text(r)


def test_state_page_links_the_yaml_export(client):
    r = client.get(f"{UI}/state")
    assert "/_emulator/state" in links(r)
    export = client.get("/_emulator/state")
    assert export.mimetype == "application/yaml" and "Acme Outfitters DCP" in export.get_data(as_text=True)


# ---------------------------------------------------------------------- cross-origin refusal
@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Referer": "http://evil.example/page.html"},
                                     {"Origin": "http://localhost:9999"}])
@pytest.mark.parametrize("path, form", [("/reset", {"to": "default"}), ("/snapshots", {"name": "x"}),
                                        ("/faults", {"status": "503"}), ("/faults/1/delete", {})])
def test_a_form_posted_from_another_origin_gets_403(client, emu, headers, path, form):
    emu.faults.add({"status": 500, "path": "^/nothing"})
    r = client.post(UI + path, data=form, headers=headers)
    assert r.status_code == 403
    page = text(r)
    assert "cross_origin_refused" in page
    assert "Cross-origin request refused" in page and "not from this emulator" in page
    assert len(emu.faults.list()) == 1 and emu.snapshot_names() == []  # nothing changed
    assert "Acme Outfitters DCP" in text(client.get(UI))


def test_a_cross_origin_upload_is_refused_before_anything_is_stored(client, emu):
    r = upload(client, 678, BAD_ROW_CSV, Origin="http://evil.example")
    assert r.status_code == 403 and "cross_origin_refused" in text(r)
    assert emu.store.uploads.list_uploads() == [] and not list(emu.s3.bucket.keys)


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://localhost"}, {"Referer": "http://localhost/_emulator/ui"}])
def test_same_origin_or_headerless_posts_are_allowed(client, headers):
    r = client.post(f"{UI}/snapshots", data={"name": "mine"}, headers=headers)
    assert r.status_code == 303


# ---------------------------------------------------------------------- links to the dashboard
def test_info_links_the_dashboard(client):
    assert client.get("/_emulator/info").get_json()["ui_url"] == "http://localhost/_emulator/ui"


def test_the_start_up_banner_links_the_dashboard():
    server = EmulatorServer(Config(host="127.0.0.1", port=0, log_requests=False))
    try:
        assert f"dashboard        {server.url}/_emulator/ui" in server.banner()
    finally:
        server.shutdown()
