"""Request bodies on a real `tswatch serve`: authentication before the body is read, strict numbers, and bodies
cut short by the client or the body deadline (a quiet log line, not a traceback).

Raw sockets play the stalling and trickling clients (every operation has a timeout; every socket is closed).
"""

from __future__ import annotations

import json
import select
import socket
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

PROBLEM = "application/problem+json"
ADMIN_KEY = "bootstrap-admin-key-for-body-tests-0123456789"
SOCKET_TIMEOUT = 5.0
PROMPT = 3.0  # an answer that does not wait for the body comes well within this (2 shared cores)
BODY_ROUTES = [  # (method, path) of every route that reads a body and needs a key
    ("POST", "/v1/models/tiny/forecast"),
    ("POST", "/v1/models/tiny/detect"),
    ("PUT", "/v1/models/tiny/aliases/staging"),
    ("PUT", "/v1/streams/s1"),
    ("POST", "/v1/streams/s1/points"),
    ("POST", "/v1/webhooks"),
    ("PATCH", "/v1/webhooks/wh_nope"),
]


def hourly(n: int = 30) -> dict[str, Any]:
    stamps = pd.date_range("2024-03-01", periods=n, freq="h")
    values = 10.0 + 3.0 * np.sin(2 * np.pi * np.arange(n) / 24)
    return {"id": "a", "values": values.round(3).tolist(), "timestamps": [s.isoformat() for s in stamps]}


def connect(stack: ExitStack, base_url: str) -> socket.socket:
    address = urlsplit(base_url)
    sock = socket.create_connection((address.hostname, address.port), timeout=SOCKET_TIMEOUT)
    return stack.enter_context(sock)


def head(method: str, path: str, length: int, key: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {length}\r\n\r\n"
    ).encode()


def status_within(sock: socket.socket, seconds: float) -> int:
    """The status of the first answer on `sock`, which must start arriving within `seconds`."""
    ready, _, _ = select.select([sock], [], [], seconds)
    assert ready, f"no answer within {seconds} s"
    raw = sock.recv(65536)
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return int(raw.split(b" ", 2)[1])


@pytest.fixture
def keyed_server(models_dir: Path, server_factory: Any) -> Any:
    # A long body deadline: an answer before it proves the server did not wait for the body.
    return server_factory(models_dir, TSWATCH_ADMIN_KEY=ADMIN_KEY, TSWATCH_BODY_TIMEOUT_SECONDS="60")


def test_callers_without_a_key_are_refused_before_their_body_is_read(keyed_server: Any) -> None:
    invalid = b'{"series": [' + b"[" * 500_000  # not JSON, and long: parsing it would be a 400
    with keyed_server.client() as client:
        for method, path in BODY_ROUTES:
            # A body that would be a 422 (or a 400), sent without a key or with a wrong one: 401 first.
            for body in (json.dumps({"nonsense": [1] * 10_000}).encode(), invalid):
                response = client.request(
                    method, path, content=body, headers={"content-type": "application/json"}
                )
                assert response.status_code == 401, (method, path, response.text[:300])
                assert response.headers["content-type"] == PROBLEM
                wrong = client.request(
                    method,
                    path,
                    content=body,
                    headers={"content-type": "application/json", "authorization": "Bearer tsw_wrong"},
                )
                assert wrong.status_code == 401, (method, path, wrong.text[:300])
                assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    with ExitStack() as stack:
        for method, path in BODY_ROUTES:
            # Headers, a few bytes of a long body, then nothing: answered at once, not after the body deadline.
            sock = connect(stack, keyed_server.base_url)
            sock.sendall(head(method, path, 1_000_000) + b'{"series": [')
            assert status_within(sock, PROMPT) == 401, (method, path)
    # With a key, the body is read and checked as before; the hook still takes a key instead of a signature.
    with keyed_server.client(key=ADMIN_KEY) as client:
        assert client.post("/v1/models/tiny/detect", json={"series": []}).status_code == 422
        assert client.post("/v1/models/tiny/forecast", json={"series": [hourly()]}).status_code == 200
        assert client.post("/v1/hooks/points", json={"points": []}).status_code == 422
    with keyed_server.client() as client:
        assert client.post("/v1/hooks/points", json={"points": []}).status_code == 401
        assert client.get("/healthz").status_code == 200
    assert "Traceback" not in keyed_server.log()


def test_integers_and_decimals_are_numbers(models_dir: Path, server_factory: Any) -> None:
    server = server_factory(models_dir)
    series = hourly()
    whole = {**series, "values": [int(value) for value in series["values"]]}
    stamp = "2024-03-01T00:00:00"
    with server.client() as client:
        for body in (
            {"series": [whole], "horizon": 3, "levels": [80, 90.5]},
            {"series": [series], "horizon": 3.0, "levels": [80.0]},
        ):
            response = client.post("/v1/models/tiny/forecast", json=body)
            assert response.status_code == 200, response.text
        detect_body = {"series": [whole], "sensitivity": 1, "learning_points": 20}  # 30 readings > 20
        detect = client.post("/v1/models/tiny/detect", json=detect_body)
        assert detect.status_code == 200, detect.text
        assert (
            client.put("/v1/streams/s1", json={"model": "tiny", "version": 1, "sensitivity": 1}).status_code
            == 201
        )
        points = [{"timestamp": stamp, "value": 1}, {"timestamp": "2024-03-01T01:00:00", "value": 1.5}]
        appended = client.post("/v1/streams/s1/points", json={"points": points})
        assert appended.status_code == 200, appended.text
        assert [point["value"] for point in appended.json()["points"]] == [1.0, 1.5]
        hooked = client.post(
            "/v1/hooks/points",
            json={"points": [{"stream": "s1", "timestamp": "2024-03-01T02:00:00", "value": 2}]},
        )
        assert hooked.status_code == 200, hooked.text
        assert client.put("/v1/models/tiny/aliases/staging", json={"version": 2}).status_code == 200


def test_bodies_cut_short_leave_no_traceback(tiny_registry_dir: Path, server_factory: Any) -> None:
    body_timeout = 1.0
    server = server_factory(tiny_registry_dir, TSWATCH_BODY_TIMEOUT_SECONDS=str(body_timeout))
    # Routes that read their body in the route (forecast), in a dependency (hook) and in FastAPI (detect).
    paths = ["/v1/models/tiny/forecast", "/v1/hooks/points", "/v1/models/tiny/detect"]
    with ExitStack() as stack:
        for path in paths:
            # Trickled until the body deadline cuts it: the protocol answers 408.
            sock = connect(stack, server.base_url)
            sock.sendall(head("POST", path, 1000))
            started = time.monotonic()
            while (
                not select.select([sock], [], [], 0.3)[0]
                and time.monotonic() - started < body_timeout + PROMPT
            ):
                sock.sendall(b" ")
            assert status_within(sock, 0) == 408, path
        for path in paths:
            # The client gives up half-way through its body.
            with ExitStack() as own:
                sock = connect(own, server.base_url)
                sock.sendall(head("POST", path, 1000) + b'{"series": [')
                time.sleep(0.2)
    time.sleep(1.0)  # let the server notice the disconnects and log them
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    assert "unhandled error" not in log
