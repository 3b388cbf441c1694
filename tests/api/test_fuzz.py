"""Property-based fuzzing of a real server from its own OpenAPI document (schemathesis 4 + hypothesis).

Whatever is sent, the server must never answer 5xx; errors are problem documents in strict JSON and
successful answers match the documented response schemas.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

pytestmark = pytest.mark.slow

ADMIN_KEY = "fuzzing-admin-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
PROBLEM = "application/problem+json"
EXAMPLES_PER_OPERATION = 25
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=(Phase.explicit, Phase.generate),  # no shrinking: a failure is reported as found, and fast
    print_blob=True,
)


@schemathesis.serializer("application/x-protobuf")
def protobuf_bytes(ctx: object, value: object) -> bytes:
    """Remote write bodies as the fuzzer draws them (binary strings): bytes the endpoint must refuse with a 4xx."""
    return value if isinstance(value, bytes) else str(value).encode()


def reject_constant(token: str) -> None:
    raise ValueError(f"non-strict JSON constant {token}")


def check_response(case, response) -> None:
    """The server's own contract, on top of schemathesis' checks."""
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:500]}"
    content_type = response.headers.get("content-type", "")
    if isinstance(content_type, list):  # schemathesis keeps every value of a header
        content_type = content_type[0] if content_type else ""
    azure = case.path.startswith("/anomalydetector/")  # Azure's error body there: {code, message}
    if status >= 400:
        expected_type = "application/json" if azure else PROBLEM
        assert content_type == expected_type, f"{status} with content-type {content_type!r}"
    if "json" in content_type and response.content:
        body = json.loads(response.text, parse_constant=reject_constant)  # strict JSON: no NaN or Infinity
        if status >= 400 and azure:
            assert set(body) == {"code", "message"} and body["code"] and body["message"], body
        elif status >= 400:
            assert body["status"] == status and body["type"].startswith("urn:tswatch:problem:")
            assert isinstance(body["title"], str) and isinstance(body["detail"], str) and body["detail"]
            for error in body.get("errors", []):  # validation errors never echo the offending input
                assert set(error) == {"field", "message", "type"}, error
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


def run_property(label: str, test, failures: list[str]) -> None:
    try:
        test()
    except Unsatisfiable:
        pass  # nothing to negate (an operation without parameters, say)
    except (Exception, BaseExceptionGroup) as error:  # schemathesis reports check failures as a group
        failures.append(f"{label}: {type(error).__name__}: {str(error)[:2000]}")


def valid_series(draw, index: int) -> dict:
    """A series the tiny model accepts: >= 25 points, strictly increasing timestamps, any finite values."""
    n = draw(st.integers(25, 60))
    start = draw(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)))
    step = timedelta(minutes=draw(st.sampled_from([1, 15, 60, 60, 60, 1440])))
    offset = draw(
        st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))])
    )
    stamps = [start + k * step for k in range(n)]
    stamps = [
        s.isoformat() if offset is None else s.replace(tzinfo=UTC).astimezone(offset).isoformat()
        for s in stamps
    ]
    magnitude = draw(st.sampled_from([1.0, 1e-6, 1e6, 1e15, 1e30, 1e300]))
    element = st.floats(-magnitude, magnitude, allow_nan=False, allow_infinity=False)
    values = draw(st.one_of(st.lists(element, min_size=n, max_size=n), st.just([draw(element)] * n)))
    return {"id": f"s{index}", "values": values, "timestamps": stamps}


@st.composite
def forecast_bodies(draw) -> dict:
    series = [valid_series(draw, i) for i in range(draw(st.integers(1, 3)))]
    body: dict = {"series": series}
    if draw(st.booleans()):
        body["horizon"] = draw(st.integers(1, 6))
    if draw(st.booleans()):
        body["levels"] = draw(st.lists(st.floats(0.5, 95.0), min_size=1, max_size=4))
    return body


@st.composite
def detect_bodies(draw) -> dict:
    """Valid detect bodies: a learning period shorter than every series, some missing, repeated or late
    readings (input, not errors)."""
    series = [valid_series(draw, i) for i in range(draw(st.integers(1, 2)))]
    for item in series:
        for _ in range(draw(st.integers(0, 3))):
            k = draw(st.integers(1, len(item["values"]) - 1))
            if draw(st.booleans()):
                item["values"][k] = None
            else:
                item["timestamps"][k] = item["timestamps"][k - 1]  # a duplicate; earlier ones make it late
    readings = min(sum(v is not None for v in item["values"]) for item in series)
    body: dict = {"series": series, "learning_points": draw(st.integers(20, readings - 1))}
    if draw(st.booleans()):
        body["sensitivity"] = draw(st.floats(0.0, 1.0))
    return body


def test_openapi_fuzz_never_yields_server_errors(models_dir, server_factory):
    # A keyed server (so authentication is exercised, not bypassed), on a private registry: aliases may move.
    server = server_factory(models_dir, TSWATCH_ADMIN_KEY=ADMIN_KEY)
    base_url = server.base_url
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json", headers=AUTH, timeout=30)
    session = requests.Session()
    failures: list[str] = []
    labels = []

    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)
        pins: list[dict | None] = [None]
        if any(parameter.name == "name" for parameter in operation.path_parameters):
            pins.append({"name": "tiny"})  # reach past the 404 for unknown models
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for pin in pins:

                @FUZZ_SETTINGS
                @given(case=operation.as_strategy(generation_mode=mode, path_parameters=pin))
                def fuzz(case) -> None:
                    response = case.call(base_url=base_url, session=session, headers=AUTH, timeout=60)
                    check_response(case, response)

                run_property(f"{operation.label} [{mode.value}{', tiny' if pin else ''}]", fuzz, failures)

    assert {
        "POST /v1/models/{name}/forecast",
        "POST /v1/models/{name}/detect",
        "POST /v1/detect",
        "GET /v1/models",
    } <= set(labels)

    # Random generation almost never builds a series the model accepts; these strategies do, so the success
    # paths (and the huge-magnitude and far-date corners) are fuzzed as well.
    forecast = schema["/v1/models/{name}/forecast"]["POST"]
    detect = schema["/v1/models/{name}/detect"]["POST"]
    self_detect = schema["/v1/detect"]["POST"]
    outcomes: dict[str, set[int]] = {"forecast": set(), "detect": set(), "self-detect": set()}

    def send(operation, kind: str, body: dict, query: dict) -> None:
        path = {} if kind == "self-detect" else {"name": "tiny"}
        case = operation.Case(path_parameters=path, body=body, query=query, media_type="application/json")
        response = case.call(base_url=base_url, session=session, headers=AUTH, timeout=60)
        check_response(case, response)
        assert response.status_code in (200, 422), response.text[:500]
        outcomes[kind].add(response.status_code)
        if response.status_code == 200:
            payload = response.json()
            if kind == "forecast":
                assert [f["id"] for f in payload["forecasts"]] == [s["id"] for s in body["series"]]
                assert all(len(f["mean"]) == body.get("horizon", 6) for f in payload["forecasts"])
            else:
                assert [len(r["points"]) for r in payload["results"]] == [
                    len(s["values"]) for s in body["series"]
                ]
                scores = [
                    p["score"] for r in payload["results"] for p in r["points"] if p["score"] is not None
                ]
                assert all(0.0 <= score <= 1.0 for score in scores)

    # The generic pass may have deleted version 2 (DELETE /v1/models/tiny/versions/2 is a valid request).
    existing = session.get(f"{base_url}/v1/models/tiny", headers=AUTH, timeout=30).json()["versions"]
    pinned = [{"version": version} for version in (1, 2) if version in existing]
    versions = st.sampled_from([{}, *pinned, {"alias": "production"}])

    @FUZZ_SETTINGS
    @given(body=forecast_bodies(), query=versions)
    def fuzz_forecasts(body, query) -> None:
        send(forecast, "forecast", body, query)

    @FUZZ_SETTINGS
    @given(body=detect_bodies(), query=versions)
    def fuzz_detection(body, query) -> None:
        send(detect, "detect", body, query)

    @FUZZ_SETTINGS
    @given(body=detect_bodies())
    def fuzz_self_detection(body) -> None:
        send(self_detect, "self-detect", body, {})

    run_property("valid forecast bodies", fuzz_forecasts, failures)
    run_property("valid detect bodies", fuzz_detection, failures)
    run_property("valid model-less detect bodies", fuzz_self_detection, failures)

    assert not failures, "\n\n".join(failures) + "\n\nserver log (tail):\n" + server.log()[-5000:]
    assert all(200 in statuses for statuses in outcomes.values()), outcomes
    with server.client() as client:
        assert client.get("/readyz").status_code == 200
    assert "Traceback" not in server.log(), server.log()[-5000:]
