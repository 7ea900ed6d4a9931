"""The emulator's clock: one per emulator, moved through /_emulator/clock, read by everything that
depends on time (token, code and presigned-URL expiry, entity and upload timestamps)."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
import requests
from botocore.config import Config as BotoConfig
from dcp_api import create_service, error, ok

from dcp_emulator import create_app
from dcp_emulator.clock import parse_timestamp


def _seconds_from_real(timestamp: str) -> float:
    return (parse_timestamp(timestamp) - dt.datetime.now(dt.UTC)).total_seconds()


def test_real_time_by_default(client):
    state = ok(client.get("/_emulator/clock"), 200)
    assert state["real_time"] is True and state["offset_seconds"] == 0
    assert abs(_seconds_from_real(state["now"])) < 5


def test_advance_set_and_back_to_real_time(client):
    state = ok(client.post("/_emulator/clock", json={"advance": 7200}), 200)
    assert state["real_time"] is False and state["offset_seconds"] == pytest.approx(7200, abs=1)
    assert _seconds_from_real(state["now"]) == pytest.approx(7200, abs=5)
    state = ok(client.post("/_emulator/clock", json={"advance": -200.5}), 200)
    assert state["offset_seconds"] == pytest.approx(6999.5, abs=1)
    state = ok(client.post("/_emulator/clock", json={"now": "2030-01-01T00:00:00Z"}), 200)
    assert state["now"].startswith("2030-01-01T00:00:0")
    assert ok(client.get("/_emulator/clock"), 200)["now"].startswith("2030-01-01T00:00:")  # it keeps running
    assert ok(client.delete("/_emulator/clock"), 200)["real_time"] is True


def test_reset_restores_real_time(client):
    ok(client.post("/_emulator/clock", json={"advance": 86400}), 200)
    ok(client.post("/_emulator/reset"), 200)
    assert ok(client.get("/_emulator/clock"), 200)["real_time"] is True


@pytest.mark.parametrize(("body", "field", "message"), [
    ({}, "advance", "Send exactly one of advance (seconds to move the clock by) or now (the time to set)."),
    ({"advance": 1, "now": "2030-01-01T00:00:00Z"}, "advance",
     "Send exactly one of advance (seconds to move the clock by) or now (the time to set)."),
    ({"advance": "1h"}, "advance", "advance must be a number or null (got a string)."),
    ({"advance": True}, "advance", "advance must be a number or null (got a boolean)."),
    ({"advance": 1e300}, "advance", ("advance: the clock must stay between 1970-01-01T00:00:00.000000Z and "
                                    "9000-01-01T00:00:00.000000Z.")),
    ({"now": "next tuesday"}, "now", "now must be a UTC timestamp like 2030-01-01T00:00:00Z, got 'next tuesday'."),
    ({"now": "1900-01-01T00:00:00Z"}, "now", ("now: the clock must stay between 1970-01-01T00:00:00.000000Z and "
                                             "9000-01-01T00:00:00.000000Z.")),
    ({"speed": 2}, "speed", "Unknown field 'speed'; accepted fields are advance, now."),
])
def test_clock_refusals(client, body, field, message):
    err = error(client.post("/_emulator/clock", json=body), 400, "invalid_field", field)
    assert err["message"] == message
    assert ok(client.get("/_emulator/clock"), 200)["real_time"] is True  # nothing moved


def test_each_emulator_has_its_own_clock(client):
    other = create_app()
    try:
        ok(client.post("/_emulator/clock", json={"advance": 3600}), 200)
        assert ok(other.test_client().get("/_emulator/clock"), 200)["real_time"] is True
    finally:
        other.extensions["dcp_emulator"].close()


def test_created_and_last_modified_follow_the_clock(client, auth):
    ok(client.post("/_emulator/clock", json={"now": "2030-01-01T00:00:00Z"}), 200)
    service = create_service(client, auth)
    assert service["created"].startswith("2030-01-01T00:00:") and service["last_modified"] == service["created"]
    ok(client.post("/_emulator/clock", json={"now": "2031-06-01T12:00:00Z"}), 200)
    updated = ok(client.put(f"/experiment/v1/dcp_services/{service['id']}", headers=auth, json={"name": "New"}), 202)
    assert updated["created"] == service["created"] and updated["last_modified"].startswith("2031-06-01T12:00:")


def test_journal_timestamps_follow_the_clock(client, auth):
    ok(client.post("/_emulator/clock", json={"now": "2030-01-01T00:00:00Z"}), 200)
    client.get("/experiment/v1/dcp_services", headers=auth)
    [entry] = ok(client.get("/_emulator/requests"), 200)["requests"]
    assert entry["timestamp"].startswith("2030-01-01T00:00:")


def test_seeded_token_expires_when_the_clock_passes_it(client):
    ok(client.post("/_emulator/seed", json={"accounts": [{"id": 1001, "tokens": [
        {"token": "short-lived", "kind": "oauth", "expires_at": "2030-01-01T02:00:00Z"}]}]}), 201)
    headers = {"Authorization": "Bearer short-lived"}
    ok(client.post("/_emulator/clock", json={"now": "2030-01-01T01:59:00Z"}), 200)
    ok(client.get("/experiment/v1/dcp_services", headers=headers), 200)
    ok(client.post("/_emulator/clock", json={"advance": 60}), 200)
    err = error(client.get("/experiment/v1/dcp_services", headers=headers), 403, "authentication_failed")
    assert err["message"].startswith("Authentication Failed: the OAuth access token expired at 2030-01-01T02:00:00Z "
                                     "(the emulator's clock reads 2030-01-01T02:00:")


# ---------------------------------------------------------------------- through the served emulator (S3)
@pytest.fixture
def table(dcp_emulator) -> dict:
    """A service and a table with one attribute, made through the REST API."""
    base, headers = dcp_emulator.rest_api_url, dcp_emulator.headers
    service = requests.post(f"{base}/dcp_services", json={"name": "Clocked"}, headers=headers, timeout=10).json()
    table = requests.post(f"{base}/dcp_services/{service['id']}/dcp_datasources", headers=headers, timeout=10,
                          json={"name": "CRM", "keyfield_locator_type": "cookie", "keyfield_locator_name": "c"}).json()
    requests.post(f"{base}/dcp_datasources/{table['id']}/dcp_datasource_attributes", headers=headers, timeout=10,
                  json={"name": "n", "datatype": "long"}).raise_for_status()
    return table


def _s3(emu, table: dict):
    access, secret = emu.credentials(table["id"])
    return boto3.client("s3", endpoint_url=emu.s3_endpoint_url, aws_access_key_id=access,
                        aws_secret_access_key=secret, region_name="us-east-1",
                        config=BotoConfig(signature_version="s3v4", s3={"addressing_style": "path"}))


def test_upload_timestamps_follow_the_clock(dcp_emulator, table):
    dcp_emulator.set_clock("2030-01-01T00:00:00Z")
    _s3(dcp_emulator, table).put_object(Bucket=dcp_emulator.bucket, Key=f"{table['s3_path']}/a.csv",
                                        Body=b"customerId,n\nc1,1\n")
    [upload] = dcp_emulator.wait_for_uploads()
    assert upload["status"] == "succeeded"
    for key in ("received_at", "started_at", "finished_at"):
        assert upload[key].startswith("2030-01-01T00:0"), (key, upload)


def test_presigned_urls_expire_by_the_emulators_clock(dcp_emulator, table):
    s3 = _s3(dcp_emulator, table)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": dcp_emulator.bucket,
                                                          "Key": f"{table['s3_path']}/p.csv"}, ExpiresIn=60)
    dcp_emulator.advance_clock(61)
    resp = requests.put(url, data=b"customerId,n\nc1,1\n", timeout=10)
    assert resp.status_code == 403 and "Request has expired: the presigned URL was valid for 60 s" in resp.text
    dcp_emulator.advance_clock(-61)
    assert requests.put(url, data=b"customerId,n\nc1,1\n", timeout=10).status_code == 200


def test_the_fixture_starts_every_test_on_real_time(dcp_emulator):
    assert dcp_emulator.clock()["real_time"] is True  # the tests above moved it
    assert dcp_emulator.advance_clock(10)["offset_seconds"] == pytest.approx(10, abs=1)
