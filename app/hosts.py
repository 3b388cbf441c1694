"""Host names and addresses: the one rule for "is this a loopback host" (auth's open mode and `tswatch serve`)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache


@lru_cache(maxsize=64)
def is_loopback(host: str) -> bool:
    """True for `localhost` (any case) and loopback addresses (127.0.0.0/8, ::1, also in brackets)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
