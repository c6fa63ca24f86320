"""Fixtures for the dev provider: each test module supplies `provider_config`; these serve it."""

from collections.abc import Iterator

import pytest
import requests

from app.devprovider import (
    Provider,
    RunningServer,
    create_provider_app,
    provider_of,
    serve_in_thread,
)


@pytest.fixture
def provider_app(provider_config):
    return create_provider_app(provider_config)


@pytest.fixture
def provider(provider_app) -> Provider:
    return provider_of(provider_app)


@pytest.fixture
def server(provider_app) -> Iterator[RunningServer]:
    with serve_in_thread(provider_app) as running:
        yield running


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session
