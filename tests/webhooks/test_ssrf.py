"""SSRF policy tests. Only 127.0.0.1 is ever contacted; other names use a fake resolver."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from app.webhooks.ssrf import (
    DestinationPolicy,
    DestinationResolutionError,
    UnsafeDestinationError,
    classify,
    parse_host_literal,
    pinned_request_kwargs,
    system_resolver,
)


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"validation must not resolve {host}:{port}")


def fake_resolver(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


REFUSED_URLS = [
    # odd IPv4 spellings of loopback
    ("http://2130706433/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://127.0.0.1./", "loopback"),
    ("http://10.1.2/", "private"),
    # IPv6 forms embedding IPv4
    ("http://[::ffff:127.0.0.1]/", "IPv4-mapped"),
    ("http://[::ffff:7f00:1]/", "IPv4-mapped"),
    ("http://[::ffff:8.8.8.8]/", "IPv4-mapped"),
    ("http://[::127.0.0.1]/", "IPv4-compatible"),
    ("http://[::ffff:0:808:808]/", "IPv4-translated"),
    ("http://[64:ff9b::a00:1]/", "NAT64"),
    ("http://[64:ff9b:1::808:808]/", "local-use NAT64"),
    ("http://[2002:7f00:1::]/", "6to4"),
    ("http://[2001:0:4136:e378::1]/", "Teredo"),
    # refused IPv4 classes
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://169.254.169.254/", "link-local"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0.1.2.3/", "'this network'"),
    ("http://224.0.0.1/", "multicast"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://127.0.0.1:8080/", "loopback"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://198.19.255.255/", "benchmarking"),
    ("http://192.0.2.1/", "documentation"),
    ("http://198.51.100.7/", "documentation"),
    ("http://203.0.113.9/", "documentation"),
    ("http://192.0.0.8/", "IETF protocol assignments"),
    # refused IPv6 classes
    ("http://[::1]/", "loopback"),
    ("http://[::]/", "unspecified"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "unique-local"),
    ("http://[fd12:3456::1]/", "unique-local"),
    ("http://[fec0::1]/", "site-local"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[2001:db8::1]/", "documentation"),
    # names and URL shape
    ("http://localhost/", "loopback name"),
    ("http://LOCALHOST./", "loopback name"),
    ("http://api.localhost/", "loopback name"),
    ("ftp://example.com/", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("http://user:pw@example.com/", "credentials"),
    ("http://user@example.com/", "credentials"),
    ("http:///path", "no host"),
    ("http://example.com:0/", "port 0"),
    ("http://example.com:99999/", "malformed"),
    ("http://example.com:abc/", "malformed"),
    ("http://[fe80::1%25eth0]/", "zone ids"),
    ("http://1.2.3.256/", "not a valid IPv4"),
    ("http://1.2.3.4.5/", "not a valid IPv4"),
    ("http://08.0.0.1/", "not a valid IPv4"),
    ("http://exa mple.com/", "whitespace"),
    ("http://example.com\\@127.0.0.1/", "backslash"),
    ("http://ex\u00e4mple.com/", "non-ASCII"),
    ("http://exa_mple-.com/", "valid ASCII hostname"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED_URLS)
def test_validate_url_refuses(url: str, why: str) -> None:
    policy = DestinationPolicy([], resolver=no_dns)
    with pytest.raises(UnsafeDestinationError) as info:
        policy.validate_url(url)
    assert why in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://8.8.8.8/",
        "https://1.1.1.1/hook?x=1",
        "https://[2606:4700:4700::1111]/",
        "http://134744072/",  # 8.8.8.8 as an integer
        "https://example.com:8443/alerts",
        "https://hooks.example.com./x",
    ],
)
def test_validate_url_accepts_public(url: str) -> None:
    DestinationPolicy([], resolver=no_dns).validate_url(url)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::1"])
def test_classify_public(address: str) -> None:
    assert classify(address) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.2", "10.1.0.2"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F.0.0.01", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:7f00:1", "::ffff:127.0.0.1"),
        ("example.com", None),
        ("1.2.3.example", None),
    ],
)
def test_parse_host_literal(host: str, expected: str | None) -> None:
    parsed = parse_host_literal(host)
    assert parsed == (None if expected is None else ipaddress.ip_address(expected))


@pytest.mark.parametrize("host", ["[fe80::1%eth0]", "fe80::1%1", "[::1", "[nonsense]", "4294967296"])
def test_parse_host_literal_rejects_malformed(host: str) -> None:
    with pytest.raises(UnsafeDestinationError):
        parse_host_literal(host)


def test_allow_list_permits_only_its_networks() -> None:
    DestinationPolicy(["127.0.0.0/8"], resolver=no_dns).validate_url("http://127.0.0.1:9/")
    DestinationPolicy(["127.0.0.0/8"], resolver=no_dns).validate_url("http://localhost:9/")
    with pytest.raises(UnsafeDestinationError, match="loopback"):
        DestinationPolicy(["10.0.0.0/8"], resolver=no_dns).validate_url("http://127.0.0.1:9/")
    with pytest.raises(UnsafeDestinationError, match="IPv4-mapped"):
        DestinationPolicy(["127.0.0.0/8"], resolver=no_dns).validate_url("http://[::ffff:127.0.0.1]/")


@pytest.mark.parametrize("bad", [["127.0.0.1/8"], ["nonsense"], "127.0.0.0/8"])
def test_allow_list_rejects_bad_config(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        DestinationPolicy(bad)  # type: ignore[arg-type]


def test_resolve_checked_refuses_if_any_address_is_unsafe() -> None:
    policy = DestinationPolicy([], resolver=fake_resolver({"mixed.test": ["8.8.8.8", "10.0.0.5"]}))
    with pytest.raises(UnsafeDestinationError, match=r"10\.0\.0\.5.*private"):
        policy.resolve_checked("https://mixed.test/hook")


def test_resolve_checked_pins_first_checked_address() -> None:
    resolver = fake_resolver({"hooks.test": ["8.8.4.4", "2606:4700:4700::1111"]})
    dest = DestinationPolicy([], resolver=resolver).resolve_checked("https://hooks.test/a?b=1#frag")
    assert (dest.scheme, dest.host, dest.port, str(dest.ip), dest.path_and_query) == (
        "https",
        "hooks.test",
        443,
        "8.8.4.4",
        "/a?b=1",
    )
    url, headers, extensions = pinned_request_kwargs(dest)
    assert url == "https://8.8.4.4:443/a?b=1"
    assert headers == {"Host": "hooks.test"}
    assert extensions == {"sni_hostname": "hooks.test"}


def test_pinned_kwargs_for_literal_ipv6_and_custom_port() -> None:
    dest = DestinationPolicy([], resolver=no_dns).resolve_checked("https://[2606:4700:4700::1111]:8443/x")
    url, headers, extensions = pinned_request_kwargs(dest)
    assert url == "https://[2606:4700:4700::1111]:8443/x"
    assert headers == {"Host": "[2606:4700:4700::1111]:8443"}
    assert extensions == {}


@pytest.mark.parametrize(
    "resolver",
    [
        fake_resolver({}),  # gaierror
        fake_resolver({"gone.test": []}),
        fake_resolver({"gone.test": ["not-an-ip"]}),
    ],
)
def test_resolve_checked_fails_closed(resolver) -> None:
    with pytest.raises(DestinationResolutionError):
        DestinationPolicy([], resolver=resolver).resolve_checked("http://gone.test/")


def _loopback_allow_list() -> list[str]:
    """127.0.0.0/8, plus ::1 where /etc/hosts also maps localhost to it (any bad address refuses)."""
    extra = ["::1/128"] if any(":" in a for a in system_resolver("localhost", 80)) else []
    return ["127.0.0.0/8", *extra]


def test_localhost_real_resolver() -> None:
    dest = DestinationPolicy(_loopback_allow_list()).resolve_checked("http://localhost:9/")
    assert dest.ip.is_loopback
    with pytest.raises(UnsafeDestinationError, match="loopback"):
        DestinationPolicy([]).resolve_checked("http://localhost:9/")


class _RecordingHandler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []  # noqa: RUF012

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).seen.append((self.path, self.headers.get("Host")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[ThreadingHTTPServer]:
    _RecordingHandler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_pinned_request_reaches_loopback_with_original_host(loopback_server: ThreadingHTTPServer) -> None:
    port = loopback_server.server_address[1]

    def ipv4_only(host: str, port: int) -> list[str]:  # the server listens on 127.0.0.1 only
        return [a for a in system_resolver(host, port) if ":" not in a]

    policy = DestinationPolicy(["127.0.0.0/8"], resolver=ipv4_only)
    dest = policy.resolve_checked(f"http://localhost:{port}/x?y=1")
    url, headers, extensions = pinned_request_kwargs(dest)
    assert url == f"http://127.0.0.1:{port}/x?y=1"
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=5) as client:
        response = client.post(url, headers=headers, extensions=extensions, content=b"{}")
    assert response.status_code == 204
    assert _RecordingHandler.seen == [("/x?y=1", f"localhost:{port}")]
