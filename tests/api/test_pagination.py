"""Cursor pagination against a real server: `GET /v1/streams` over 1,000+ streams, a stream's anomaly listing
(with `since=`) and an endpoint's delivery log; `next_cursor` and the `Link: rel="next"` header lead through
every item once, in order; a bad cursor or limit is a 422 naming it."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from app.settings import Settings
from app.storage.database import Database
from app.storage.tables.streams import StreamEpisodeRow

ADMIN_KEY = "pagination-tests-admin-key-0123456789"
STREAMS = 1005
EPISODES = 250
START = datetime(2024, 1, 1)
PROBLEM = "application/problem+json"


def next_link(reply: httpx.Response) -> str | None:
    header = reply.headers.get("link")
    if header is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', header)
    assert match is not None, header
    return match.group(1)


def follow(client: httpx.Client, url: str) -> tuple[list[Any], int]:
    """Every item of a listing, following the `Link` headers; also the number of pages."""
    items: list[Any] = []
    pages = 0
    next_url: str | None = url
    while next_url is not None:
        reply = client.get(next_url)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        items.extend(body["streams"] if isinstance(body, dict) else body)
        pages += 1
        next_url = next_link(reply)
    return items, pages


def assert_invalid(reply: httpx.Response, field: str) -> None:
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"].startswith(PROBLEM)
    assert field in reply.text


def create_streams(client: httpx.Client, ids: list[str]) -> None:
    def create(stream_id: str) -> int:
        return client.put(f"/v1/streams/{stream_id}", json={}).status_code

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(create, ids)) == {201}


def add_episodes(database_url: str | None, models_dir: Path, stream_id: str) -> None:
    """Stored alarm episodes (every 10 hours; every other one resolved), written as the service stores them."""
    database = Database(Settings(models_dir=models_dir, database_url=database_url).resolved_database_url)
    try:
        with database.session() as session:
            for i in range(EPISODES):
                opened = START + timedelta(hours=10 * i)
                session.add(
                    StreamEpisodeRow(
                        stream_id=stream_id,
                        started_at=opened,
                        opened_at=opened,
                        last_flagged_at=opened,
                        resolved_at=opened + timedelta(hours=1) if i % 2 else None,
                        peak_timestamp=opened,
                        peak_score=0.9,
                        peak_value=float(i),
                        peak_expected=0.0,
                        direction="up",
                        n_points=2,
                        n_flagged=1,
                    )
                )
    finally:
        database.dispose()


def test_listings_page_with_cursors(
    models_dir: Path, database_url: str | None, server_factory: Callable[..., Any]
) -> None:
    server = server_factory(
        models_dir, TSWATCH_ADMIN_KEY=ADMIN_KEY, TSWATCH_WEBHOOK_ALLOW_CIDRS="127.0.0.0/8"
    )
    ids = [f"stream-{i:04d}" for i in range(STREAMS)]
    with server.client(ADMIN_KEY) as client:
        create_streams(client, ids)

        # GET /v1/streams: the default page is 100; the largest 1,000; every stream once, in id order.
        first = client.get("/v1/streams")
        assert first.status_code == 200
        assert [s["id"] for s in first.json()["streams"]] == ids[:100]
        assert first.json()["next_cursor"] is not None
        assert next_link(first) == f"{server.base_url}/v1/streams?cursor={first.json()['next_cursor']}"
        listed, pages = follow(client, "/v1/streams")
        assert [s["id"] for s in listed] == ids and pages == 11
        big = client.get("/v1/streams", params={"limit": 1000})
        assert len(big.json()["streams"]) == 1000
        rest = client.get("/v1/streams", params={"limit": 1000, "cursor": big.json()["next_cursor"]})
        assert [s["id"] for s in rest.json()["streams"]] == ids[1000:]
        assert rest.json()["next_cursor"] is None and "link" not in rest.headers
        assert listed[0] | {"updated_at": None} == {
            "id": "stream-0000",
            "model": None,
            "alias": None,
            "version": None,
            "sensitivity": 0.5,
            "point_count": 0,
            "last_timestamp": None,
            "updated_at": None,
            "state_model_version": None,
            "open_alarms": 0,
            "episodes": 0,
        }

        # Keyset pages: a stream created before the cursor does not shift the next page.
        cursor = client.get("/v1/streams", params={"limit": 10}).json()["next_cursor"]
        assert client.put("/v1/streams/stream-0000a", json={}).status_code == 201
        after = client.get("/v1/streams", params={"limit": 10, "cursor": cursor}).json()["streams"]
        assert [s["id"] for s in after] == ids[10:20]

        assert_invalid(client.get("/v1/streams", params={"limit": 1001}), "limit")
        assert_invalid(client.get("/v1/streams", params={"limit": 0}), "limit")
        for bad in ("nonsense", "e30", "eyJsIjoic3RyZWFtcyIsImsiOlsxXX0", "!!"):
            assert_invalid(client.get("/v1/streams", params={"cursor": bad}), "cursor")

        # Anomalies of one stream, oldest first, with and without since=.
        add_episodes(database_url, models_dir, "stream-0001")
        episodes, pages = follow(client, "/v1/streams/stream-0001/anomalies")
        opened = [episode["opened_at"] for episode in episodes]
        assert len(opened) == EPISODES and opened == sorted(opened) and len(set(opened)) == EPISODES
        assert pages == 3
        since = f"{(START + timedelta(hours=10 * 200)).isoformat()}Z"
        recent, pages = follow(client, f"/v1/streams/stream-0001/anomalies?since={since}&limit=30")
        expected = [e for i, e in enumerate(episodes) if i >= 200 or i % 2 == 0]
        assert recent == expected and pages == -(-len(expected) // 30)
        wrong = client.get("/v1/streams", params={"limit": 1}).json()["next_cursor"]
        assert_invalid(client.get("/v1/streams/stream-0001/anomalies", params={"cursor": wrong}), "cursor")
        assert client.get("/v1/streams/nope/anomalies").status_code == 404

        # The delivery log of an endpoint, newest first (held deliveries of a disabled endpoint).
        created = client.post(
            "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["anomaly.opened"]}
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()["id"]
        assert client.patch(f"/v1/webhooks/{endpoint}", json={"enabled": False}).status_code == 200
        queued = [client.post(f"/v1/webhooks/{endpoint}/test").json()["delivery_id"] for _ in range(7)]
        log, pages = follow(client, f"/v1/webhooks/{endpoint}/deliveries?limit=3")
        assert pages == 3
        assert [item["id"] for item in log] == [
            item["id"] for item in client.get(f"/v1/webhooks/{endpoint}/deliveries").json()
        ]
        assert sorted(item["id"] for item in log) == sorted(queued)
        assert_invalid(client.get(f"/v1/webhooks/{endpoint}/deliveries", params={"cursor": wrong}), "cursor")
