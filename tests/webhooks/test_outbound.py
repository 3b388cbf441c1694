"""Outbound webhooks through a real `tswatch serve` process and real receivers on 127.0.0.1 (the server's
allow-list is 127.0.0.0/8; nothing leaves loopback). Receivers verify signatures with app.webhooks.signing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.settings import Settings

from .helpers import AUTH, TINY_STREAM, Receiver, server_env, spiked_points, wait_until

pytestmark = pytest.mark.slow


def register(client, url: str, **extra) -> dict:
    body = {"url": url, "events": ["anomaly.opened", "anomaly.resolved"], **extra}
    reply = client.post("/v1/webhooks", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()


def deliveries(client, endpoint_id: str) -> list[dict]:
    reply = client.get(f"/v1/webhooks/{endpoint_id}/deliveries")
    assert reply.status_code == 200, reply.text
    return reply.json()


def settled(client, endpoint_id: str, count: int = 1) -> list[dict]:
    """Deliveries once `count` of them are no longer pending."""

    def check() -> list[dict] | None:
        log = deliveries(client, endpoint_id)
        done = [item for item in log if item["status"] != "pending"]
        return log if len(done) >= count else None

    return wait_until(check, timeout=20)


def ping(client, endpoint_id: str) -> dict:
    reply = client.post(f"/v1/webhooks/{endpoint_id}/test")
    assert reply.status_code == 202, reply.text
    return reply.json()


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def make(behaviour=None) -> Receiver:
        receiver = Receiver() if behaviour is None else Receiver(behaviour=behaviour)
        started.append(receiver.start())
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


def test_alarm_event_ping_log_and_redeliver(models_dir: Path, server_factory, receivers) -> None:
    server = server_factory(models_dir, **server_env())
    receiver = receivers()
    with server.client() as client:
        client.headers.update(AUTH)
        endpoint = register(client, receiver.url, streams=["s1"], description="ops")
        assert endpoint["secret"].startswith("whsec_") and endpoint["enabled"] is True
        receiver.secret = endpoint["secret"]
        assert "secret" not in client.get(f"/v1/webhooks/{endpoint['id']}").json()
        assert [item["id"] for item in client.get("/v1/webhooks").json()] == [endpoint["id"]]

        # An alarm opened by appended points is delivered, signed, with the point, band, score and model.
        assert client.put("/v1/streams/s1", json=TINY_STREAM).status_code == 201
        assert client.put("/v1/streams/other", json=TINY_STREAM).status_code == 201
        appended = client.post("/v1/streams/s1/points", json={"points": spiked_points()})
        assert appended.status_code == 200, appended.text
        assert client.post("/v1/streams/other/points", json={"points": spiked_points()}).status_code == 200
        opened = [e for e in appended.json()["events"] if e["kind"] == "opened"]
        got = receiver.wait_for(lambda seen: len(seen) >= len(appended.json()["events"]))
        first = next(item for item in got if item.payload["type"] == "anomaly.opened")  # sent concurrently
        assert first.verified_id is not None and first.verified_id.startswith("msg_")
        assert len(first.body) < 20_000
        event = first.payload
        assert event["type"] == "anomaly.opened"
        data = event["data"]
        assert data["stream"] == "s1" and data["model"] == {"name": "tiny", "version": 1}
        point = data["point"]
        assert point["timestamp"] == opened[0]["episode"]["opened_at"].replace("+00:00", "Z")
        assert (
            point["is_anomaly"]
            and point["score"] > 0.9
            and point["lower"] < point["expected"] < point["upper"]
        )
        assert data["episode"]["opened_at"] == point["timestamp"]
        time.sleep(1.0)
        assert all(item.payload["data"]["stream"] == "s1" for item in receiver.snapshot())  # filter

        # A ping, then the delivery log and a redelivery: same webhook-id, fresh timestamp and signature.
        queued = ping(client, endpoint["id"])
        got = receiver.wait_for(lambda seen: any(item.payload["type"] == "ping" for item in seen))
        ping_request = next(item for item in got if item.payload["type"] == "ping")
        assert ping_request.verified_id == queued["message_id"]
        log = settled(client, endpoint["id"], count=len(got))
        entry = next(item for item in log if item["id"] == queued["delivery_id"])
        assert entry["status"] == "succeeded" and entry["event_type"] == "ping"
        [attempt] = entry["attempts"]
        assert attempt["status_code"] == 200 and attempt["success"] and attempt["latency_ms"] >= 0
        assert attempt["error"] is None and attempt["attempted_at"]

        time.sleep(1.1)  # a new second: a new webhook-timestamp
        again = client.post(f"/v1/webhooks/{endpoint['id']}/deliveries/{queued['delivery_id']}/redeliver")
        assert again.status_code == 202 and again.json()["message_id"] == queued["message_id"]
        got = receiver.wait_for(lambda seen: sum(item.payload["type"] == "ping" for item in seen) == 2)
        second = [item for item in got if item.payload["type"] == "ping"][1]
        assert second.verified_id == queued["message_id"] and second.body == ping_request.body
        assert second.headers["webhook-timestamp"] != ping_request.headers["webhook-timestamp"]
        assert second.headers["webhook-signature"] != ping_request.headers["webhook-signature"]
        entry = wait_until(
            lambda: next(
                (
                    i
                    for i in deliveries(client, endpoint["id"])
                    if i["id"] == queued["delivery_id"] and len(i["attempts"]) == 2
                ),
                None,
            )
        )
        assert entry["status"] == "succeeded"

        assert client.post(f"/v1/webhooks/{endpoint['id']}/deliveries/dlv_nope/redeliver").status_code == 404
        assert client.delete(f"/v1/webhooks/{endpoint['id']}").status_code == 204
        assert client.get(f"/v1/webhooks/{endpoint['id']}").status_code == 404
    assert "Traceback" not in server.log()


def test_retries_redirects_retry_after_and_gone(models_dir: Path, server_factory, receivers) -> None:
    server = server_factory(models_dir, **server_env())
    flaky = receivers(lambda n, path: (500, {}) if n < 2 else (200, {}))
    redirect = receivers(lambda n, path: (302, {"Location": "/elsewhere"}))
    throttled = receivers(lambda n, path: (429, {"Retry-After": "2"}) if n == 0 else (200, {}))
    gone = receivers(lambda n, path: (410, {}))
    watcher = receivers()
    with server.client() as client:
        client.headers.update(AUTH)
        hooks = {}
        for name, receiver in (
            ("flaky", flaky),
            ("redirect", redirect),
            ("throttled", throttled),
            ("gone", gone),
        ):
            hooks[name] = register(client, receiver.url)
            receiver.secret = hooks[name]["secret"]
        notified = register(client, watcher.url, events=["endpoint.disabled"])
        watcher.secret = notified["secret"]
        queued = {name: ping(client, hook["id"]) for name, hook in hooks.items()}

        # 500, 500, 200: retried along the schedule with the same webhook-id until it succeeds.
        [entry] = settled(client, hooks["flaky"]["id"])
        assert entry["status"] == "succeeded"
        assert [a["status_code"] for a in entry["attempts"]] == [500, 500, 200]
        ids = {item.verified_id for item in flaky.snapshot()}
        assert ids == {queued["flaky"]["message_id"]}

        # 302 is a failure and is never followed; the schedule (3 attempts) runs out.
        [entry] = settled(client, hooks["redirect"]["id"])
        assert entry["status"] == "failed" and [a["status_code"] for a in entry["attempts"]] == [302] * 3
        assert all("not followed" in a["error"] for a in entry["attempts"])
        assert all(item.path == "/hook" for item in redirect.snapshot()) and len(redirect.snapshot()) == 3

        # 429 with Retry-After: 2 -> the retry waits at least 2 s (the schedule alone says 0.2 s).
        [entry] = settled(client, hooks["throttled"]["id"])
        assert entry["status"] == "succeeded"
        first, second = throttled.snapshot()
        assert second.at - first.at >= 1.9

        # 410 Gone disables the endpoint at once and keeps an endpoint.disabled record (delivered to watchers).
        [entry] = settled(client, hooks["gone"]["id"])
        assert entry["status"] == "failed" and len(entry["attempts"]) == 1
        info = client.get(f"/v1/webhooks/{hooks['gone']['id']}").json()
        assert info["enabled"] is False and "410" in info["disabled_reason"] and info["disabled_at"]
        got = watcher.wait_for(lambda seen: len(seen) >= 1)
        assert got[0].verified_id and got[0].payload["type"] == "endpoint.disabled"
        assert got[0].payload["data"]["endpoint_id"] == hooks["gone"]["id"]
        assert got[0].payload["data"]["trigger"] == "gone"
        assert len(gone.snapshot()) == 1
    assert "Traceback" not in server.log()


def test_disabled_after_consecutive_failures_and_reenable_replays(
    models_dir: Path, server_factory, receivers
) -> None:
    server = server_factory(models_dir, **server_env(TSWATCH_WEBHOOK_DISABLE_AFTER="2"))
    healthy = {"ok": False}
    receiver = receivers(lambda n, path: (200, {}) if healthy["ok"] else (503, {}))
    with server.client() as client:
        client.headers.update(AUTH)
        endpoint = register(client, receiver.url)
        receiver.secret = endpoint["secret"]
        hook = endpoint["id"]
        failing = [ping(client, hook) for _ in range(2)]
        log = settled(client, hook, count=2)
        assert {item["status"] for item in log} == {"failed"}
        info = wait_until(lambda: (i := client.get(f"/v1/webhooks/{hook}").json()) and not i["enabled"] and i)
        assert "2 consecutive messages failed" in info["disabled_reason"]

        held = ping(client, hook)
        assert held["status"] == "held"
        time.sleep(0.5)
        before = len(receiver.snapshot())
        assert before == 6  # 2 messages x 3 attempts, nothing while disabled

        healthy["ok"] = True
        reply = client.patch(f"/v1/webhooks/{hook}", json={"enabled": True})
        assert reply.status_code == 200 and reply.json()["enabled"] is True
        assert reply.json()["disabled_reason"] is None and reply.json()["consecutive_failures"] == 0
        got = receiver.wait_for(lambda seen: len(seen) == before + 1)
        assert got[-1].verified_id == held["message_id"] and got[-1].status == 200
        entry = wait_until(
            lambda: next(
                (
                    i
                    for i in deliveries(client, hook)
                    if i["id"] == held["delivery_id"] and i["status"] == "succeeded"
                ),
                None,
            )
        )
        assert len(entry["attempts"]) == 1
        assert {
            i["status"]
            for i in deliveries(client, hook)
            if i["message_id"] in {f["message_id"] for f in failing}
        } == {"failed"}
    assert "Traceback" not in server.log()


REFUSED = [
    "http://127.0.0.1:8080/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook",
    "http://localhost:9000/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://[::ffff:10.0.0.1]/",
    "ftp://example.com/hook",
    "http://user:pw@example.com/hook",
]


def test_registration_refuses_non_public_urls_without_allow_list(
    models_dir: Path, make_settings: Callable[..., Settings]
) -> None:
    """Classification only: nothing is sent (no events exist and refused URLs are never stored)."""
    application = create_app(make_settings(models_dir=models_dir))
    with TestClient(application) as client:
        for url in REFUSED:
            reply = client.post("/v1/webhooks", json={"url": url, "events": ["anomaly.opened"]})
            assert reply.status_code == 422, (url, reply.text)
            body = reply.json()
            assert body["type"] == "urn:tswatch:problem:invalid-input" and body["field"] == "url"
            assert body["detail"], url
        assert (
            "loopback"
            in client.post("/v1/webhooks", json={"url": REFUSED[0], "events": ["anomaly.opened"]}).json()[
                "detail"
            ]
        )
        assert client.get("/v1/webhooks").json() == []
        bad_event = client.post(
            "/v1/webhooks", json={"url": "https://hooks.example.com/x", "events": ["nope"]}
        )
        assert bad_event.status_code == 422
        assert client.patch("/v1/webhooks/wh_missing", json={"enabled": True}).status_code == 404
