"""Smoke test: the app factory builds an emulator that answers its control plane."""


def test_health_and_info(client):
    assert client.get("/_emulator/health").status_code == 200
    info = client.get("/_emulator/info").get_json()
    assert info["tokens"]["classic"] and info["default_account_id"] == 1001
