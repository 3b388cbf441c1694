"""kill -9 with webhook events pending (the receiver is down, so they queue and retry), then a restart on the
same registry with the receiver up: every event is delivered at least once, with its original webhook-id."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .helpers import AUTH, TINY_STREAM, Receiver, server_env, spiked_points, wait_until

pytestmark = pytest.mark.slow

LONG_SCHEDULE = ",".join(["0"] + ["0.3"] * 60)  # keeps retrying (~20 s) while the receiver is down


def test_pending_events_survive_kill_9(models_dir: Path, server_factory, tmp_path: Path) -> None:
    probe = Receiver().start()  # reserve a loopback port, then free it: connections to it are refused
    port = probe.port
    probe.stop()
    env = server_env(TSWATCH_WEBHOOK_RETRY_SCHEDULE=LONG_SCHEDULE)
    server = server_factory(models_dir, **env)
    with server.client() as client:
        client.headers.update(AUTH)
        reply = client.post(
            "/v1/webhooks", json={"url": f"http://127.0.0.1:{port}/hook", "events": ["anomaly.opened"]}
        )
        assert reply.status_code == 201, reply.text
        endpoint = reply.json()
        pings = [client.post(f"/v1/webhooks/{endpoint['id']}/test").json()["message_id"] for _ in range(3)]
        for stream in ("k1", "k2"):
            assert client.put(f"/v1/streams/{stream}", json=TINY_STREAM).status_code == 201
            appended = client.post(f"/v1/streams/{stream}/points", json={"points": spiked_points()})
            assert appended.status_code == 200 and appended.json()["events"][0]["kind"] == "opened"
        # Attempts are failing (connection refused) and being rescheduled when the server dies.
        log = wait_until(
            lambda: (
                (items := client.get(f"/v1/webhooks/{endpoint['id']}/deliveries").json())
                and all(item["attempts"] for item in items)
                and items
            )
        )
        assert len(log) == 5 and {item["status"] for item in log} == {"pending"}
        assert all(attempt["error"] for item in log for attempt in item["attempts"])
        expected = {item["message_id"] for item in log}
    assert set(pings) <= expected
    server.stop(signal.SIGKILL)

    receiver = Receiver().start(port)
    receiver.secret = endpoint["secret"]
    try:
        restarted = server_factory(models_dir, **env)
        got = receiver.wait_for(lambda seen: {item.verified_id for item in seen} >= expected, timeout=30)
        assert all(item.verified_id in expected for item in got)
        kinds = sorted(item.payload["type"] for item in got if item.verified_id in expected)
        assert kinds.count("ping") >= 3 and kinds.count("anomaly.opened") >= 2
        with restarted.client() as client:
            client.headers.update(AUTH)
            done = wait_until(
                lambda: (
                    {i["status"] for i in client.get(f"/v1/webhooks/{endpoint['id']}/deliveries").json()}
                    == {"succeeded"}
                )
            )
            assert done
    finally:
        receiver.stop()
