"""Smoke test: the app factory builds an emulator that answers its control plane."""


def test_health_and_info(client):
    assert client.get("/_emulator/health").status_code == 200
    info = client.get("/_emulator/info").get_json()
    assert info["tokens"]["classic"] and info["default_account_id"] == 1001


def test_create_app_refuses_out_of_range_settings():
    import pytest

    from dcp_emulator import create_app
    from dcp_emulator.config import Config

    with pytest.raises(ValueError, match="ingest-batch-rows .* at least 1, got 0"):
        create_app(Config(ingest_batch_rows=0))
