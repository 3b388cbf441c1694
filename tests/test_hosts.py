"""One loopback rule for the API's open mode and `tswatch serve`."""

import pytest

from app.hosts import is_loopback


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST", "LocalHost", "127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "[::1]"],
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "[::]", "192.168.1.10", "10.0.0.1", "example.com", "localhost.example.com", "", "[]"],
)
def test_other_hosts(host: str) -> None:
    assert not is_loopback(host)
