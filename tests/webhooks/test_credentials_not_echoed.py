"""URL credentials are never echoed: no 400/422 body of `POST`/`PATCH /v1/webhooks` repeats a URL's userinfo,
whichever check refuses the URL (SSRF policy, URL shape, pydantic, JSON parsing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from app.redact import redact_url, scrub_urls
from app.webhooks.ssrf import DestinationPolicy, UnsafeDestinationError

from .helpers import AUTH, server_env

SECRET = "s3cretpass"
JSON = {"content-type": "application/json"}

# Userinfo alone, and userinfo plus every other way the URL can be refused.
URLS_WITH_CREDENTIALS = [
    f"http://user:{SECRET}@127.0.0.1/",
    f"http://{SECRET}@127.0.0.1/",
    f"https://user:{SECRET}@example.com/",
    f"ftp://user:{SECRET}@127.0.0.1/",
    f"http://user:{SECRET}@127.0.0.1:99999/",
    f"http://user:{SECRET}@127.0.0.1:abc/",
    f"http://user:{SECRET}@10.0.0.1/",
    f"http://user:{SECRET}@localhost/",
    f"http://user:{SECRET}@exa_mple-.com/",
    f"http://user:{SECRET}@1.2.3.256/",
    f"http://user:{SECRET}@[::1/",
    f"http://user:{SECRET} x@127.0.0.1/",
    f"http://user:{SECRET}\u00e4@127.0.0.1/",
    f"http://user:{SECRET}\\@127.0.0.1/",
    f"http://user:pa/{SECRET}@127.0.0.1/",  # unescaped '/' in the password: the port would read 'pa'
    f"http://user:pa?{SECRET}@10.0.0.1/",
    f"http://user:{SECRET}@/",
    f"user:{SECRET}@127.0.0.1",
    f"http://user:{SECRET}@127.0.0.1/" + "x" * 3000,  # past the schema's max_length
]


def assert_not_echoed(reply: httpx.Response) -> None:
    assert reply.status_code in (400, 422), reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert SECRET not in reply.text and SECRET[:6] not in reply.text, reply.text


@pytest.mark.parametrize("url", URLS_WITH_CREDENTIALS)
def test_policy_messages_never_quote_credentials(url: str) -> None:
    with pytest.raises(UnsafeDestinationError) as info:
        DestinationPolicy(["127.0.0.0/8"]).validate_url(url)
    assert SECRET[:6] not in str(info.value)


def test_redaction_covers_everything_up_to_the_last_at() -> None:
    assert redact_url(f"http://user:{SECRET}@host:8080/x?y=1") == "http://***@host:8080/x?y=1"
    assert redact_url(f"http://user:a/{SECRET}@host/") == "http://***@host/"
    assert redact_url(f"user:{SECRET}@host") == "***@host"
    assert redact_url("https://host/path") == "https://host/path"
    text = f"URL 'http://u:{SECRET}@h/' and \"https://u:{SECRET}@h2\" mail me@example.com"
    assert scrub_urls(text) == "URL 'http://***@h/' and \"https://***@h2\" mail me@example.com"


@pytest.mark.slow
def test_post_and_patch_never_echo_url_credentials(models_dir: Path, server_factory: Any) -> None:
    server = server_factory(models_dir, **server_env())
    with server.client() as client:
        client.headers.update(AUTH)
        events = ["anomaly.opened"]
        created = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": events})
        assert created.status_code == 201, created.text
        endpoint = f"/v1/webhooks/{created.json()['id']}"

        plain = client.post("/v1/webhooks", json={"url": URLS_WITH_CREDENTIALS[0], "events": events})
        assert_not_echoed(plain)
        assert plain.status_code == 422 and "credentials" in plain.json()["detail"]
        assert "http://***@127.0.0.1/" in plain.json()["detail"]

        for url in URLS_WITH_CREDENTIALS:
            assert_not_echoed(client.post("/v1/webhooks", json={"url": url, "events": events}))
            assert_not_echoed(client.patch(endpoint, json={"url": url}))
            # refused by the schema before the URL check: other invalid members, a URL in the wrong place
            assert_not_echoed(client.post("/v1/webhooks", json={"url": url, "events": ["nope"]}))
            assert_not_echoed(client.patch(endpoint, json={"url": url, "enabled": "maybe"}))
            assert_not_echoed(client.post("/v1/webhooks", json={"url": [url], "events": events}))
            assert_not_echoed(client.patch(endpoint, json={"url": {"href": url}}))
            assert_not_echoed(client.post("/v1/webhooks", json={"url": url, "events": events, "x": url}))
            assert_not_echoed(client.patch(endpoint, content=f'{{"url": "{url}",', headers=JSON))

        assert client.get(endpoint).json()["url"] == "http://127.0.0.1:9/hook"  # nothing was changed
