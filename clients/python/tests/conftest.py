"""The tests run against a live gateway: CODEBEAKER_URL and CODEBEAKER_API_KEY (a key with
every scope and generous limits); CODEBEAKER_SLOW_API_KEY, a key with a rate of 1/s, for the
retry tests. tests/api/sdk_python.rs starts such a gateway and runs them."""

import os

import pytest

import codebeaker


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"these tests run against a live gateway and need {name}", pytrace=False)
    return value


@pytest.fixture(scope="session")
def url() -> str:
    return _env("CODEBEAKER_URL")


@pytest.fixture(scope="session")
def slow_key() -> str:
    return _env("CODEBEAKER_SLOW_API_KEY")


@pytest.fixture
def client(url):
    _env("CODEBEAKER_API_KEY")
    with codebeaker.Client() as c:  # key and URL from the environment
        yield c
