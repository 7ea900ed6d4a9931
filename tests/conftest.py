"""Shared fixtures of the emulator's own test suite."""

from __future__ import annotations

import os

import pytest

# Every response the suite sees is checked against the OpenAPI document (dcp_emulator/contract.py): set before
# any Config exists, so the apps tests build, the plugin's served emulator and `serve` subprocesses (which
# inherit the environment) all validate; a violation is a 500 naming it. DCP_EMULATOR_VALIDATE_RESPONSES=0
# switches it off (to time the suite without it).
os.environ.setdefault("DCP_EMULATOR_VALIDATE_RESPONSES", "1")

from dcp_emulator import create_app
from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import Config


@pytest.fixture
def emulator_config():
    """The Config of the ``app`` fixture; a module overrides this fixture to change it."""
    return Config()


@pytest.fixture
def app(emulator_config):
    """A fresh in-memory emulator app per test."""
    application = create_app(emulator_config)
    yield application
    application.extensions["dcp_emulator"].close()


@pytest.fixture
def client(app):
    """Flask test client of the fresh app."""
    return app.test_client()


@pytest.fixture
def auth():
    """Headers carrying the default classic token."""
    return {"Token": DEFAULT_TOKENS["classic"]}
