"""Slowloris defence of a real `tswatch serve`: header and body deadlines, a connection limit, problem+json 400s.

Raw sockets play the slow clients (every operation has a timeout; every socket is closed by an ExitStack).
"""

from __future__ import annotations

import json
import select
import socket
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
MAX_CONNECTIONS = 20
LIMITS = {
    "TSWATCH_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    "TSWATCH_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
    "TSWATCH_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
}
SLACK = 1.5  # scheduling margin on top of a deadline (2 shared cores)
SOCKET_TIMEOUT = 5.0
PROBLEM = "application/problem+json"
PARTIAL_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"
FORECAST_BODY = json.dumps(
    {
        "series": [
            {
                "id": "a",
                "values": [10.0 + (i % 24) / 8 for i in range(30)],
                "timestamps": [f"2024-03-0{1 + i // 24}T{i % 24:02d}:00:00" for i in range(30)],
            }
        ]
    }
).encode()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, Any]:
        assert self.headers.get("content-type") == PROBLEM, self.headers
        document: dict[str, Any] = json.loads(self.body)
        assert document["status"] == self.status
        return document


@pytest.fixture
def server(tiny_registry_dir: Path, server_factory: Any) -> Any:
    return server_factory(tiny_registry_dir, **LIMITS)


def connect(stack: ExitStack, base_url: str) -> socket.socket:
    address = urlsplit(base_url)
    sock = socket.create_connection((address.hostname, address.port), timeout=SOCKET_TIMEOUT)
    return stack.enter_context(sock)


def parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)
    }
    return Answer(int(status_line.split()[1]), headers, body)


def read_to_close(sock: socket.socket, within: float) -> tuple[Answer, float]:
    """Everything the server sends until it closes the connection (which must happen `within` seconds)."""
    started = time.monotonic()
    chunks: list[bytes] = []
    while True:
        sock.settimeout(max(0.01, started + within - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"the connection was still open after {within} s, having sent {b''.join(chunks)!r}")
        if not chunk:
            return parse(b"".join(chunks)), time.monotonic() - started
        chunks.append(chunk)


def read_one_response(sock: socket.socket) -> Answer:
    """One response with a Content-Length, leaving a keep-alive connection open."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {raw!r}"
        raw += chunk
    answer = parse(raw)
    while len(answer.body) < int(answer.headers["content-length"]):
        answer.body += sock.recv(65536)
    return answer


def readable(sock: socket.socket, seconds: float) -> bool:
    return bool(select.select([sock], [], [], seconds)[0])


def test_partial_headers_get_408_and_are_closed_within_the_deadline(server: Any) -> None:
    with ExitStack() as stack:
        fresh = connect(stack, server.base_url)
        fresh.sendall(PARTIAL_HEADERS)
        answer, waited = read_to_close(fresh, HEADER_TIMEOUT + SLACK)
        assert answer.status == 408
        assert answer.problem()["type"] == "urn:tswatch:problem:request-timeout"
        assert answer.headers["connection"] == "close"
        assert waited >= HEADER_TIMEOUT - 0.2

        # On a keep-alive connection the clock restarts with each response.
        reused = connect(stack, server.base_url)
        reused.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_one_response(reused).status == 200
        reused.sendall(PARTIAL_HEADERS)
        answer, waited = read_to_close(reused, HEADER_TIMEOUT + SLACK)
        assert answer.status == 408
        answer.problem()


def test_a_trickled_body_gets_408_and_is_closed(server: Any) -> None:
    with ExitStack() as stack:
        sock = connect(stack, server.base_url)
        sock.sendall(
            b"POST /v1/models/tiny/forecast HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        started = time.monotonic()
        while not readable(sock, 0.5) and time.monotonic() - started < BODY_TIMEOUT + SLACK:
            sock.sendall(b" ")  # one byte every 0.5 s, far fewer than the 1000 announced
        answer, _ = read_to_close(sock, SLACK)
        waited = time.monotonic() - started
    assert answer.status == 408
    assert "body" in str(answer.problem()["detail"])
    assert BODY_TIMEOUT - 0.2 <= waited <= BODY_TIMEOUT + SLACK
    with server.client() as client:
        assert client.get("/healthz").status_code == 200


def test_connections_over_the_limit_get_503_and_service_resumes_when_idle_ones_are_cut(server: Any) -> None:
    extra = 5
    with ExitStack() as stack:
        idle = []
        for _ in range(MAX_CONNECTIONS + extra):
            sock = connect(stack, server.base_url)
            sock.sendall(PARTIAL_HEADERS)
            idle.append(sock)
        time.sleep(0.3)  # well inside the header deadline
        answered = set(select.select(idle, [], [], 0)[0])
        refused = [index for index, sock in enumerate(idle) if sock in answered]
        assert refused == list(range(MAX_CONNECTIONS, MAX_CONNECTIONS + extra))
        for index in refused:
            answer, _ = read_to_close(idle[index], SLACK)
            assert answer.status == 503
            assert answer.problem()["type"] == "urn:tswatch:problem:too-many-connections"
            assert answer.headers["retry-after"] == "1"
            idle[index].close()

        # A newcomer is refused while the limit is reached...
        newcomer = connect(stack, server.base_url)
        answer, _ = read_to_close(newcomer, SLACK)
        assert answer.status == 503

        # ...until the idle connections are cut at the header deadline.
        for sock in idle[:MAX_CONNECTIONS]:
            answer, _ = read_to_close(sock, HEADER_TIMEOUT + SLACK)
            assert answer.status == 408
            sock.close()
    with server.client(timeout=SOCKET_TIMEOUT) as client:
        assert client.get("/healthz").status_code == 200


def test_normal_requests_still_work_and_malformed_http_is_a_problem_document(server: Any) -> None:
    with server.client(timeout=SOCKET_TIMEOUT) as client:
        for _ in range(3):  # one keep-alive connection, several requests
            assert client.get("/healthz").status_code == 200
        response = client.post(
            "/v1/models/tiny/forecast", content=FORECAST_BODY, headers={"content-type": "application/json"}
        )
        assert response.status_code == 200, response.text
    with ExitStack() as stack:
        sock = connect(stack, server.base_url)
        sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        answer, _ = read_to_close(sock, SLACK)
    assert answer.status == 400
    assert answer.problem()["type"] == "urn:tswatch:problem:malformed-request"
    assert answer.headers["connection"] == "close"
