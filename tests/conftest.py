"""Shared fixtures of the emulator's own test suite."""

from __future__ import annotations

import pytest

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
