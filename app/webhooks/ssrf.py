"""Outbound URL safety for alert webhooks (SSRF protection).

Two checks: ``validate_url`` at registration (no DNS), and ``resolve_checked`` at send
time, which resolves once, checks every address and returns the IP to connect to.
Callers must send via ``pinned_request_kwargs`` (never the raw URL) so that a DNS answer
changing between check and connect (rebinding) cannot redirect the request. Clients
should also disable redirects and proxies from the environment.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.redact import redact_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

ALLOW_ENV_VAR = "TSWATCH_WEBHOOK_ALLOW_CIDRS"
_POLICY_HINT = f"outbound webhooks may only reach public addresses unless {ALLOW_ENV_VAR} permits it"
_DEFAULT_PORTS = {"http": 80, "https": 443}

_V4_REFUSED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/32", "unspecified"),
    ("0.0.0.0/8", "'this network'"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT shared space"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "broadcast"),
)

_EMBEDS_V4 = "embeds an IPv4 address"
_V6_REFUSED: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", f"IPv4-compatible, {_EMBEDS_V4}"),
    ("::ffff:0:0/96", f"IPv4-mapped, {_EMBEDS_V4}"),
    ("::ffff:0:0:0/96", f"IPv4-translated, {_EMBEDS_V4}"),
    ("64:ff9b::/96", f"NAT64, {_EMBEDS_V4}"),
    ("64:ff9b:1::/48", f"local-use NAT64, {_EMBEDS_V4}"),
    ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001::/32", f"Teredo, {_EMBEDS_V4}"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", f"6to4, {_EMBEDS_V4}"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "SRv6 SIDs"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def _build_table(rows: Iterable[tuple[str, str]]) -> tuple[tuple[IPNetwork, str], ...]:
    """Most specific network first, so the reported reason is the narrowest one."""
    table = [(ipaddress.ip_network(cidr), label) for cidr, label in rows]
    return tuple(sorted(table, key=lambda row: row[0].prefixlen, reverse=True))


_REFUSED_TABLE = _build_table(_V4_REFUSED + _V6_REFUSED)

_NUMERIC_LABEL = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")
_V4_PART = re.compile(r"^(?:0[xX](?P<hex>[0-9a-fA-F]+)|(?P<oct>0[0-7]*)|(?P<dec>[1-9][0-9]*))$")
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


class UnsafeDestinationError(ValueError):
    """The webhook URL or one of its addresses may not be contacted."""


class DestinationResolutionError(UnsafeDestinationError):
    """DNS failed or returned nothing usable; refused (fail closed), may be retried later."""


@dataclass(frozen=True)
class ResolvedDestination:
    scheme: str
    host: str  # as written in the URL (lowercase, no brackets): Host header and TLS SNI
    port: int
    ip: IPAddress  # checked address to connect to
    path_and_query: str
    addresses: tuple[IPAddress, ...]  # every address the resolver returned, all checked


# --- literal parsing -------------------------------------------------------------------------


def _parse_v4_part(text: str) -> int | None:
    match = _V4_PART.match(text)
    if match is None:
        return None
    if match["hex"] is not None:
        return int(match["hex"], 16)
    if match["oct"] is not None:
        return int(match["oct"], 8)
    return int(match["dec"], 10)


def _parse_inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """libc inet_aton: 1-4 parts, each hex/octal/decimal; the last part fills the remaining bytes."""
    parts = text.split(".")
    if len(parts) > 4:
        return None
    values = [_parse_v4_part(part) for part in parts]
    if any(value is None for value in values):
        return None
    *leading, last = [v for v in values if v is not None]
    if any(v > 255 for v in leading) or last >= 256 ** (4 - len(leading)):
        return None
    number = last
    for index, value in enumerate(leading):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _parse_ipv6(text: str, original: str) -> ipaddress.IPv6Address:
    if "%" in text:
        raise UnsafeDestinationError(f"host {original!r}: IPv6 zone ids are not allowed")
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        raise UnsafeDestinationError(f"host {original!r} is not a valid IPv6 literal") from None


def parse_host_literal(host: str) -> IPAddress | None:
    """Return the address a host literal denotes in any spelling libc accepts, None for names.

    Raises UnsafeDestinationError for malformed literals (bad IPv6, zone ids, and names whose
    last label is numeric but which are not valid IPv4, e.g. ``1.2.3.256``).
    """
    if host.startswith("[") or host.endswith("]"):
        if not (host.startswith("[") and host.endswith("]")):
            raise UnsafeDestinationError(f"host {host!r} has unbalanced brackets")
        return _parse_ipv6(host[1:-1], host)
    if ":" in host:
        return _parse_ipv6(host, host)
    name = host.removesuffix(".")
    if not _NUMERIC_LABEL.match(name.rsplit(".", 1)[-1]):
        return None
    address = _parse_inet_aton(name)
    if address is None:
        raise UnsafeDestinationError(f"host {host!r} looks numeric but is not a valid IPv4 address")
    return address


# --- classification --------------------------------------------------------------------------


def classify(address: IPAddress | str) -> str | None:
    """Why ``address`` is not a public unicast address, or None if it is."""
    addr = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
        return "scoped (has an IPv6 zone id)"
    for network, label in _REFUSED_TABLE:
        if addr.version == network.version and addr in network:
            return f"{label} ({network})"
    if isinstance(addr, ipaddress.IPv6Address) and addr not in _V6_GLOBAL_UNICAST:
        return f"outside IPv6 global unicast space ({_V6_GLOBAL_UNICAST})"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """All addresses getaddrinfo returns, in its preference order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# --- URL policy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    literal: IPAddress | None
    path_and_query: str
    shown: str  # the URL as error messages may quote it (credentials redacted)


def _part(url: str, text: str) -> str:
    """A piece parsed out of `url`, for an error message. Hidden when the URL holds an '@': its redaction
    (app.redact) then covers the pieces too, since with an unescaped '/', '?' or '#' in a password any of them
    may be part of it."""
    return text if redact_url(url) == url else "(not shown)"


def _malformed(url: str, error: ValueError) -> UnsafeDestinationError:
    return UnsafeDestinationError(f"URL {redact_url(url)!r} is malformed: {_part(url, str(error))}")


def _is_localhost_name(host: str) -> bool:
    name = host.removesuffix(".")
    return name == "localhost" or name.endswith(".localhost")


def _check_hostname_syntax(url: str, host: str) -> None:
    name = host.removesuffix(".")
    if len(name) > 253 or not all(_DNS_LABEL.match(label) for label in name.split(".")):
        raise UnsafeDestinationError(
            f"URL {redact_url(url)!r}: {_part(url, repr(host))} is not a valid ASCII hostname (use xn-- form)"
        )


def _host_literal(url: str, host: str) -> IPAddress | None:
    try:
        return parse_host_literal(host)
    except UnsafeDestinationError as error:
        raise UnsafeDestinationError(f"URL {redact_url(url)!r}: {_part(url, str(error))}") from None


def _split_url(url: str) -> _Target:
    """Parse and check the URL's shape. Messages never quote its credentials: see `_part`."""
    shown = redact_url(url)
    if not url.isascii() or any(ch <= " " or ch in "\x7f\\" for ch in url):
        raise UnsafeDestinationError(
            f"URL {shown!r} contains whitespace, control, backslash or non-ASCII characters"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _malformed(url, exc) from None
    if "@" in parts.netloc:
        raise UnsafeDestinationError(f"URL {shown!r}: credentials (user:password@) are not allowed")
    try:
        port = parts.port
    except ValueError as exc:
        raise _malformed(url, exc) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeDestinationError(
            f"URL {shown!r}: scheme must be http or https, not {_part(url, repr(scheme))}"
        )
    host = parts.hostname or ""
    if not host:
        raise UnsafeDestinationError(f"URL {shown!r} has no host")
    if port == 0:
        raise UnsafeDestinationError(f"URL {shown!r}: port 0 is not allowed")
    literal = _host_literal(url, host)
    if literal is None:
        _check_hostname_syntax(url, host)
    query = f"?{parts.query}" if parts.query else ""
    path_and_query = (parts.path or "/") + query
    return _Target(scheme, host, port or _DEFAULT_PORTS[scheme], literal, path_and_query, shown)


def _parse_allow_cidrs(allow_cidrs: Sequence[str]) -> tuple[IPNetwork, ...]:
    if isinstance(allow_cidrs, str):
        raise TypeError("allow_cidrs must be a sequence of CIDR strings, not a single string")
    networks = []
    for cidr in allow_cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=True))
        except ValueError as exc:
            raise ValueError(f"{ALLOW_ENV_VAR}: invalid CIDR {cidr!r}: {exc}") from None
    return tuple(networks)


class DestinationPolicy:
    """Decides which webhook URLs may be contacted.

    ``allow_cidrs`` is the operator allow-list: addresses inside it are permitted even when
    ``classify`` refuses them. Matching is per address family (``::ffff:127.0.0.1`` is not
    inside ``127.0.0.0/8``). The names ``localhost`` and ``*.localhost`` are treated as
    loopback at registration and are refused unless the allow-list covers 127.0.0.1 or ::1;
    other names are only checked when resolved at send time.
    """

    def __init__(self, allow_cidrs: Sequence[str] = (), resolver: Resolver | None = None) -> None:
        self._allowed = _parse_allow_cidrs(allow_cidrs)
        self._resolver = resolver or system_resolver

    def is_allowed(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self._allowed)

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` is refused under this policy, or None if it may be contacted."""
        reason = classify(address)
        return None if reason is None or self.is_allowed(address) else reason

    def validate_url(self, url: str) -> None:
        """Registration-time check, without DNS. Raises UnsafeDestinationError."""
        self._check_target(url)

    def resolve_checked(self, url: str) -> ResolvedDestination:
        """Send-time check: resolve once, refuse if ANY address is unsafe, return one to pin."""
        target = self._check_target(url)
        if target.literal is not None:
            addresses: tuple[IPAddress, ...] = (target.literal,)
        else:
            addresses = self._resolve(url, target)
            for address in addresses:
                reason = self.refusal(address)
                if reason is not None:
                    raise UnsafeDestinationError(
                        f"URL {target.shown!r}: {_part(url, target.host)} resolves to {address}, "
                        f"which is {reason}; {_POLICY_HINT}"
                    )
        return ResolvedDestination(
            target.scheme, target.host, target.port, addresses[0], target.path_and_query, addresses
        )

    def _check_target(self, url: str) -> _Target:
        target = _split_url(url)
        if target.literal is not None:
            reason = self.refusal(target.literal)
            if reason is not None:
                raise UnsafeDestinationError(
                    f"URL {target.shown!r}: address {_part(url, str(target.literal))} is {reason}; {_POLICY_HINT}"
                )
        elif _is_localhost_name(target.host) and not (
            self.is_allowed(ipaddress.IPv4Address("127.0.0.1"))
            or self.is_allowed(ipaddress.IPv6Address("::1"))
        ):
            raise UnsafeDestinationError(
                f"URL {target.shown!r}: {_part(url, repr(target.host))} is a loopback name; {_POLICY_HINT}"
            )
        return target

    def _resolve(self, url: str, target: _Target) -> tuple[IPAddress, ...]:
        try:
            raw = self._resolver(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            raise DestinationResolutionError(
                f"URL {target.shown!r}: cannot resolve {_part(url, target.host)}: {exc}"
            ) from None
        try:
            addresses = tuple(ipaddress.ip_address(item) for item in raw)
        except ValueError as exc:
            raise DestinationResolutionError(
                f"URL {target.shown!r}: resolver returned a bad address: {exc}"
            ) from None
        if not addresses:
            raise DestinationResolutionError(
                f"URL {target.shown!r}: {_part(url, target.host)} resolved to no addresses"
            )
        return addresses


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def pinned_request_kwargs(
    dest: ResolvedDestination,
) -> tuple[str, dict[str, str], dict[str, object]]:
    """(url, headers, extensions) for httpx that connect to ``dest.ip`` while presenting the
    original host in the Host header and, for https, as TLS SNI and certificate hostname
    (httpcore honours ``extensions["sni_hostname"]`` as ``server_hostname``)."""
    url = f"{dest.scheme}://{_host_for_url(str(dest.ip))}:{dest.port}{dest.path_and_query}"
    host_header = _host_for_url(dest.host)
    if dest.port != _DEFAULT_PORTS[dest.scheme]:
        host_header = f"{host_header}:{dest.port}"
    extensions: dict[str, object] = {}
    if dest.scheme == "https" and parse_host_literal(dest.host) is None:
        extensions["sni_hostname"] = dest.host
    return url, {"Host": host_header}, extensions
