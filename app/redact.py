"""Keep URL credentials (userinfo, `user:password@`) out of anything the service echoes: error bodies, logs.

Redaction is deliberately wider than RFC 3986 userinfo (which ends at the first `/`, `?` or `#`): a password
typed with an unescaped `/`, `?`, `#`, `\\` or space would otherwise be echoed in part. Everything between
the scheme's `://` (or the start, when there is none) and the LAST `@` is replaced.
"""

from __future__ import annotations

import re
from typing import Final

REDACTED: Final = "***"
_SCHEME_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# In free text a URL ends at whitespace or a double quote (never valid in a URL, and Python's repr of a
# string holding a single quote uses them); the greedy run then backtracks to the token's last '@'.
_URL_WITH_AT = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s\"<>]*@")


def redact_url(url: str) -> str:
    """`url` safe to echo: `http://user:pw@host/x` -> `http://***@host/x`; unchanged without an '@'."""
    at = url.rfind("@")
    if at < 0:
        return url
    prefix = _SCHEME_PREFIX.match(url)
    start = prefix.end() if prefix is not None and prefix.end() <= at else 0
    return f"{url[:start]}{REDACTED}{url[at:]}"


def scrub_urls(text: str) -> str:
    """Free text with the userinfo of every `scheme://...@` URL in it replaced (a backstop for messages)."""
    if "@" not in text:
        return text
    return _URL_WITH_AT.sub(lambda match: f"{match['head']}{REDACTED}@", text)
