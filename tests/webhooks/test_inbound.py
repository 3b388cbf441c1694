"""Inbound `POST /v1/hooks/points` on a real `tswatch serve`: Standard Webhooks signatures (with rotation),
401 with nothing stored on any failure, idempotency by (signer, webhook-id) (also concurrent) with stored
answers pruned after the retention, API-key auth, and all-or-nothing batches across streams."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from app.settings import Settings
from app.storage.database import Database
from app.storage.tables.webhooks import InboundMessageRow
from app.timestamps import utc_now
from app.webhooks.inbound import RETENTION
from app.webhooks.signing import generate_secret, signed_headers

from .helpers import AUTH, TINY_STREAM, server_env, spiked_points

pytestmark = pytest.mark.slow


def cli_json(run_cli, models_dir: Path, *args: str) -> dict:
    result = run_cli(models_dir, *args, "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def hook_body(streams: dict[str, list[dict]]) -> bytes:
    """Points of several streams, interleaved (request order is kept per stream)."""
    points = []
    longest = max(len(items) for items in streams.values())
    for index in range(longest):
        for stream, items in streams.items():
            if index < len(items):
                points.append({"stream": stream, **items[index]})
    return json.dumps({"points": points}).encode()


def signed(secret: str, msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json", **signed_headers(secret, msg_id, body, now=now)}


def point_counts(client: httpx.Client, *streams: str) -> list[int]:
    return [client.get(f"/v1/streams/{stream}", headers=AUTH).json()["point_count"] for stream in streams]


@pytest.fixture
def setup(models_dir: Path, server_factory, run_cli):
    with ThreadPoolExecutor(2) as pool:  # two active secrets (rotation); each CLI process pays the imports
        secret, second = pool.map(
            lambda name: cli_json(run_cli, models_dir, "hooks", "secret", "create", "--name", name),
            ("sender", "next"),
        )
    assert secret["secret"].startswith("whsec_") and secret["active"] is True
    secret["next"] = second
    server = server_factory(models_dir, **server_env())
    with server.client() as client:
        for stream in ("a", "b"):
            reply = client.put(f"/v1/streams/{stream}", json=TINY_STREAM, headers=AUTH)
            assert reply.status_code == 201, reply.text
        yield server, client, secret
    assert "Traceback" not in server.log()


def test_signed_batch_is_scored_in_order_and_bad_signatures_store_nothing(setup, run_cli, models_dir) -> None:
    _server, client, created = setup
    secret = created["secret"]
    body = hook_body({"a": spiked_points(30, spike_at=-1), "b": spiked_points(30, spike_at=-1, seed=1)})

    # Every failure answers 401 (problem+json) and stores nothing.
    other = generate_secret()
    old = time.time() - 6 * 60
    tampered = body.replace(b'"value": 1', b'"value": 2', 1)
    assert tampered != body
    cases = {
        "no headers, no key": {"Content-Type": "application/json"},
        "missing signature": {
            k: v for k, v in signed(secret, "msg_1", body).items() if k != "webhook-signature"
        },
        "wrong secret": signed(other, "msg_2", body),
        "timestamp 6 min old": signed(secret, "msg_3", body, now=old),
        "timestamp 6 min ahead": signed(secret, "msg_4", body, now=time.time() + 6 * 60),
        "garbage signature": {**signed(secret, "msg_5", body), "webhook-signature": "v1,AAAA"},
    }
    for label, headers in cases.items():
        reply = client.post("/v1/hooks/points", content=body, headers=headers)
        assert reply.status_code == 401, (label, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"
    # A changed byte, in the body or in a header covered by the signature.
    headers = signed(secret, "msg_6", body)
    assert client.post("/v1/hooks/points", content=tampered, headers=headers).status_code == 401
    assert client.post("/v1/hooks/points", content=body + b" ", headers=headers).status_code == 401
    bad_id = {**headers, "webhook-id": "msg_7"}
    assert client.post("/v1/hooks/points", content=body, headers=bad_id).status_code == 401
    assert point_counts(client, "a", "b") == [0, 0]

    # Correctly signed: 200, one scored entry per point in request order, both streams stored.
    reply = client.post("/v1/hooks/points", content=body, headers=signed(secret, "msg_ok", body))
    assert reply.status_code == 200, reply.text
    data = reply.json()
    sent = json.loads(body)["points"]
    assert [(p["stream"], p["value"]) for p in data["points"]] == [(p["stream"], p["value"]) for p in sent]
    assert [p["index"] for p in data["points"] if p["stream"] == "a"] == list(range(30))
    assert data["points"][-1]["score"] is not None
    assert [s["stream"] for s in data["streams"]] == ["a", "b"]
    assert data["streams"][0]["model"] == {"name": "tiny", "version": 1}
    assert point_counts(client, "a", "b") == [30, 30]

    # Rotation: a second active secret works too; a revoked one is refused at once.
    second = created["next"]
    more = hook_body({"a": spiked_points(2, spike_at=-1, offset=30)})
    ok = client.post("/v1/hooks/points", content=more, headers=signed(second["secret"], "msg_rot", more))
    assert ok.status_code == 200, ok.text
    revoked = cli_json(run_cli, models_dir, "hooks", "secret", "revoke", created["id"])
    assert revoked["active"] is False and revoked["revoked_at"]
    listed = cli_json(run_cli, models_dir, "hooks", "secret", "list")
    assert [item["id"] for item in listed] == [second["id"]] and "secret" not in listed[0]
    later = hook_body({"a": spiked_points(1, spike_at=-1, offset=32)})
    assert (
        client.post("/v1/hooks/points", content=later, headers=signed(secret, "msg_r2", later)).status_code
        == 401
    )
    assert point_counts(client, "a", "b") == [32, 30]


def test_duplicate_ids_are_processed_once_even_concurrently(setup) -> None:
    server, client, created = setup
    secret = created["secret"]
    body = hook_body({"a": spiked_points(50, spike_at=40)})
    headers = signed(secret, "msg_dup", body)
    first = client.post("/v1/hooks/points", content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert [e["kind"] for e in first.json()["streams"][0]["events"]][:1] == ["opened"]
    # Delivered again later (fresh timestamp and signature, same id): same answer, nothing processed.
    time.sleep(1.1)
    again = client.post("/v1/hooks/points", content=body, headers=signed(secret, "msg_dup", body))
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers.get("webhook-replayed") == "true"
    assert point_counts(client, "a") == [50]
    assert len(client.get("/v1/streams/a/anomalies", headers=AUTH).json()) == 1

    # Eight concurrent deliveries of a new id: all 2xx with the same body, processed once (one alarm).
    body = hook_body({"b": spiked_points(50, spike_at=40, seed=3)})
    headers = signed(secret, "msg_race", body)

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.base_url, timeout=60) as racer:
            return racer.post("/v1/hooks/points", content=body, headers=headers)

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(send, range(8)))
    assert [r.status_code for r in replies] == [200] * 8, [r.text for r in replies]
    assert len({r.text for r in replies}) == 1
    assert sum(r.headers.get("webhook-replayed") == "true" for r in replies) == 7
    assert point_counts(client, "b") == [50]
    assert len(client.get("/v1/streams/b/anomalies", headers=AUTH).json()) == 1


def test_the_same_webhook_id_from_two_signers_is_two_messages(setup) -> None:
    _server, client, created = setup
    first, second = created["secret"], created["next"]["secret"]
    body_a = hook_body({"a": spiked_points(30, spike_at=-1)})
    body_b = hook_body({"b": spiked_points(20, spike_at=-1, seed=1)})
    reply_a = client.post("/v1/hooks/points", content=body_a, headers=signed(first, "msg_shared", body_a))
    reply_b = client.post("/v1/hooks/points", content=body_b, headers=signed(second, "msg_shared", body_b))
    assert [reply_a.status_code, reply_b.status_code] == [200, 200], [reply_a.text, reply_b.text]
    assert "webhook-replayed" not in reply_a.headers and "webhook-replayed" not in reply_b.headers
    assert [s["stream"] for s in reply_b.json()["streams"]] == ["b"]
    assert point_counts(client, "a", "b") == [30, 20]

    # The same signer and id again: the stored answer, nothing processed (as before).
    for secret, body, reply in ((first, body_a, reply_a), (second, body_b, reply_b)):
        again = client.post("/v1/hooks/points", content=body, headers=signed(secret, "msg_shared", body))
        assert again.status_code == 200 and again.json() == reply.json()
        assert again.headers.get("webhook-replayed") == "true"
    assert point_counts(client, "a", "b") == [30, 20]


@contextmanager
def registry_database(settings: Settings) -> Iterator[Database]:
    """The server's database, opened beside it (SQLite file or PostgreSQL)."""
    database = Database(settings.resolved_database_url)
    try:
        yield database
    finally:
        database.dispose()


def stored_ids(settings: Settings) -> set[str]:
    with registry_database(settings) as database, database.session() as session:
        return set(session.scalars(select(InboundMessageRow.msg_id)))


def test_stored_answers_are_pruned_after_the_retention(
    setup, server_factory, models_dir: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(models_dir=models_dir)
    server, client, created = setup
    secret = created["secret"]
    sent = {}
    for offset, msg_id in enumerate(("msg_old", "msg_fresh")):
        body = hook_body({"a": spiked_points(1, spike_at=-1, offset=offset)})
        reply = client.post("/v1/hooks/points", content=body, headers=signed(secret, msg_id, body))
        assert reply.status_code == 200, reply.text
        sent[msg_id] = (body, reply.json())
    assert stored_ids(settings) == {"msg_old", "msg_fresh"}

    # Age the stored answers (the server prunes at most once a minute, so the next claim is a new process's).
    server.stop()
    ages = {"msg_old": RETENTION + timedelta(minutes=1), "msg_fresh": RETENTION - timedelta(minutes=5)}
    with registry_database(settings) as database, database.session() as session:
        for msg_id, age in ages.items():
            aged = update(InboundMessageRow).where(InboundMessageRow.msg_id == msg_id)
            assert session.execute(aged.values(created_at=utc_now() - age)).rowcount == 1

    restarted = server_factory(models_dir, **server_env())
    with restarted.client() as client:
        body = hook_body({"a": spiked_points(1, spike_at=-1, offset=2)})
        reply = client.post("/v1/hooks/points", content=body, headers=signed(secret, "msg_next", body))
        assert reply.status_code == 200, reply.text
        assert stored_ids(settings) == {"msg_fresh", "msg_next"}
        body, answer = sent["msg_fresh"]
        again = client.post("/v1/hooks/points", content=body, headers=signed(secret, "msg_fresh", body))
        assert again.headers.get("webhook-replayed") == "true" and again.json() == answer
        assert point_counts(client, "a") == [3]
    assert "Traceback" not in restarted.log()


def test_api_key_auth_and_all_or_nothing_batches(setup, run_cli, models_dir) -> None:
    _server, client, _ = setup
    with ThreadPoolExecutor(2) as pool:
        write, read = (
            created["key"]
            for created in pool.map(
                lambda role: cli_json(run_cli, models_dir, "keys", "create", "--role", role),
                ("write", "read"),
            )
        )
    body = hook_body({"a": spiked_points(30, spike_at=-1), "b": spiked_points(30, spike_at=-1)})
    json_type = {"Content-Type": "application/json"}
    denied = client.post(
        "/v1/hooks/points", content=body, headers={**json_type, "Authorization": f"Bearer {read}"}
    )
    assert denied.status_code == 403
    unknown = client.post(
        "/v1/hooks/points", content=body, headers={**json_type, "Authorization": "Bearer tsw_x_y"}
    )
    assert unknown.status_code == 401
    assert point_counts(client, "a", "b") == [0, 0]
    key = {**json_type, "Authorization": f"Bearer {write}"}
    ok = client.post("/v1/hooks/points", content=body, headers=key)
    assert ok.status_code == 200, ok.text
    assert point_counts(client, "a", "b") == [30, 30]

    # An unknown stream anywhere in the batch: 404, nothing stored.
    batch = hook_body({"a": spiked_points(5, spike_at=-1, offset=30), "zz": spiked_points(5, spike_at=-1)})
    assert client.post("/v1/hooks/points", content=batch, headers=key).status_code == 404
    # A value that is not a number: 422, nothing stored.
    points = spiked_points(5, spike_at=-1, offset=30)
    batch = hook_body({"b": spiked_points(5, spike_at=-1, offset=30), "a": [{**points[0], "value": "1"}]})
    assert client.post("/v1/hooks/points", content=batch, headers=key).status_code == 422
    assert point_counts(client, "a", "b") == [30, 30]
    # Late and repeated readings are input (answered unscored), not refusals.
    batch = hook_body({"a": [points[0], points[0]], "b": spiked_points(1, spike_at=-1, offset=20)})
    late = client.post("/v1/hooks/points", content=batch, headers=key)
    assert late.status_code == 200, late.text
    assert sorted(p["sampling"] for p in late.json()["points"]) == ["duplicate", "late", "regular"]
    assert point_counts(client, "a", "b") == [32, 31]
    # Malformed bodies are 4xx problems; a large two-stream batch is stored whole.
    assert client.post("/v1/hooks/points", content=b"{", headers=key).status_code in (400, 422)
    assert client.post("/v1/hooks/points", json={"points": []}, headers=key).status_code == 422
    big = hook_body(
        {"a": spiked_points(2000, spike_at=-1, offset=30), "b": spiked_points(2000, spike_at=-1, offset=30)}
    )
    reply = client.post("/v1/hooks/points", content=big, headers=key)
    assert reply.status_code == 200 and len(reply.json()["points"]) == 4000
    assert point_counts(client, "a", "b") == [2032, 2031]
