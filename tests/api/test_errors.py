"""Every client error of a real server is an RFC 9457 problem (application/problem+json) in strict JSON."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

PROBLEM = "application/problem+json"
FORECAST = "/v1/models/tiny/forecast"
DETECT = "/v1/models/tiny/detect"
SELF_DETECT = "/v1/detect"
NON_FINITE_TOKENS = re.compile(r"NaN|Infinity|1e309|\binf\b", re.IGNORECASE)


def hourly(n: int, series_id: str = "a") -> dict:
    stamps = pd.date_range("2024-03-01", periods=n, freq="h")
    values = 10.0 + 3.0 * np.sin(2 * np.pi * np.arange(n) / 24)
    return {
        "id": series_id,
        "values": values.round(3).tolist(),
        "timestamps": [s.isoformat() for s in stamps],
    }


def raw_body(token: str, where: str = "values") -> bytes:
    """A request whose JSON text carries `token` (NaN, Infinity, 1e309...) that json.dumps would never write."""
    series = hourly(30)
    text = json.dumps({"series": [series], **({"levels": [80.0]} if where == "levels" else {})})
    if where == "values":
        text = text.replace(f"[{series['values'][0]}, ", f"[{series['values'][0]}, {token}, ", 1)
        text = text.replace(series["timestamps"][-1], series["timestamps"][-1] + '", "2024-03-09T00:00:00', 1)
    else:
        text = text.replace('"levels": [80.0]', f'"levels": [80.0, {token}]')
    return text.encode()


DEEP = 1_000
LONG_INTEGER = "1" * 5_000  # beyond Python's int-from-string digit limit (4,300)
BODY_ROUTES = [  # every route that parses a JSON body, with a body it accepts
    (FORECAST, "series"),
    (DETECT, "series"),
    (SELF_DETECT, "series"),
    ("/v1/streams/s1/points", "points"),
    ("/v1/hooks/points", "points"),
    ("/v1/webhooks", "events"),
]


def unparsable_cases() -> list[Case]:
    """JSON too deeply nested or with an integer too long for the parser: a 400 on every body route."""
    cases = []
    for path, member in BODY_ROUTES:
        for label, text in (
            ("array nested 1,000 deep", "[" * DEEP + "]" * DEEP),
            ("member nested 1,000 deep", f'{{"{member}": ' + "[" * DEEP + "]" * DEEP + "}"),
            ("5,000-digit integer", f'{{"{member}": [{LONG_INTEGER}]}}'),
            ("5,000-digit integer in a value", f'{{"{member}": [{{"values": [{LONG_INTEGER}]}}]}}'),
        ):
            cases.append(raw_case(label, path, text.encode(), 400, "invalid-json"))
    return cases


def strict_number_cases() -> list[Case]:
    """Numbers are JSON numbers: a string or a boolean is a 422 naming the field, on every body."""
    series = hourly(30)
    point = {"timestamp": "2024-03-01T00:00:00", "value": 1.0}
    cases = []
    for label, bad in (("string number", "1.5"), ("boolean", True)):
        cases += [
            json_case(
                f"{label} in values",
                path,
                {"series": [{**series, "values": [bad, *series["values"][1:]]}]},
                422,
                "validation-error",
                "series.0.values.0",
            )
            for path in (FORECAST, DETECT)
        ]
        cases += [
            json_case(
                f"{label} level",
                FORECAST,
                {"series": [series], "levels": [bad]},
                422,
                "validation-error",
                "levels.0",
            ),
            json_case(
                f"{label} horizon",
                FORECAST,
                {"series": [series], "horizon": bad},
                422,
                "validation-error",
                "horizon",
            ),
            json_case(
                f"{label} sensitivity",
                DETECT,
                {"series": [series], "sensitivity": bad},
                422,
                "validation-error",
                "sensitivity",
            ),
            json_case(
                f"{label} stream point value",
                "/v1/streams/s1/points",
                {"points": [{**point, "value": bad}]},
                422,
                "validation-error",
                "points.0.value",
            ),
            json_case(
                f"{label} hook point value",
                "/v1/hooks/points",
                {"points": [{**point, "stream": "s1", "value": bad}]},
                422,
                "validation-error",
                "points.0.value",
            ),
            json_case(
                f"{label} stream sensitivity",
                "/v1/streams/s1",
                {"model": "tiny", "sensitivity": bad},
                422,
                "validation-error",
                "sensitivity",
                method="PUT",
            ),
            json_case(
                f"{label} stream version",
                "/v1/streams/s1",
                {"model": "tiny", "version": "1" if bad == "1.5" else bad},
                422,
                "validation-error",
                "version",
                method="PUT",
            ),
            json_case(
                f"{label} alias version",
                "/v1/models/tiny/aliases/staging",
                {"version": "1" if bad == "1.5" else bad},
                422,
                "validation-error",
                "version",
                method="PUT",
            ),
        ]
    return cases


def reject_constant(token: str) -> None:
    raise AssertionError(f"non-strict JSON constant {token} in a problem body")


@dataclass
class Case:
    label: str
    method: str
    path: str
    status: int
    slug: str
    kwargs: dict = field(default_factory=dict)
    error_field: str | None = None  # for validation errors: a field that must be listed in `errors`


def json_case(label, path, body, status, slug, error_field=None, method="POST") -> Case:
    return Case(label, method, path, status, slug, {"json": body}, error_field)


def raw_case(
    label, path, content: bytes, status, slug, error_field=None, content_type="application/json"
) -> Case:
    return Case(
        label,
        "POST",
        path,
        status,
        slug,
        {"content": content, "headers": {"content-type": content_type}},
        error_field,
    )


def check_problem(response, case: Case) -> list[str]:
    """Problems with one response, as messages (empty when it is right)."""
    where = f"{case.label}: {case.method} {case.path} -> {response.status_code}"
    errors = []
    if response.status_code != case.status:
        return [f"{where}: expected {case.status}; body {response.text[:300]}"]
    if response.headers.get("content-type") != PROBLEM:
        errors.append(f"{where}: content-type {response.headers.get('content-type')!r}")
    if NON_FINITE_TOKENS.search(response.text):
        errors.append(f"{where}: body echoes a non-finite number: {response.text[:300]}")
    try:
        body = json.loads(response.text, parse_constant=reject_constant)
    except (ValueError, AssertionError) as error:
        return [*errors, f"{where}: body is not strict JSON ({error})"]
    if body.get("type") != f"urn:tswatch:problem:{case.slug}":
        errors.append(f"{where}: type {body.get('type')!r}, expected slug {case.slug!r}")
    if body.get("status") != case.status:
        errors.append(f"{where}: status member {body.get('status')!r}")
    for member in ("title", "detail"):
        if not isinstance(body.get(member), str) or not body[member].strip():
            errors.append(f"{where}: missing or empty {member!r}")
    if case.slug == "validation-error":
        listed = body.get("errors")
        if not isinstance(listed, list) or not listed:
            errors.append(f"{where}: validation problem without `errors`")
        else:
            for item in listed:
                if set(item) != {"field", "message", "type"}:
                    errors.append(f"{where}: error entry {item!r} is not field/message/type")
            if case.error_field is not None and case.error_field not in {
                item.get("field") for item in listed
            }:
                errors.append(
                    f"{where}: {case.error_field!r} not among {[item.get('field') for item in listed]}"
                )
            if any("input" in item for item in listed):
                errors.append(f"{where}: validation errors echo the input")
    return errors


def error_cases() -> list[Case]:
    series = hourly(30)
    stamps = series["timestamps"]
    unsorted = [*stamps[:10], stamps[11], stamps[10], *stamps[12:]]
    duplicated = [*stamps[:10], stamps[9], *stamps[11:]]
    short = hourly(23)
    huge = {**series, "values": [1e300 * (1 + k % 2) for k in range(30)]}
    long = hourly(130)  # more readings than the detector's learning period (100)
    huge_long = {**long, "values": [1e300 * (1 + k % 2) for k in range(130)]}
    cases = []
    for token in ("NaN", "Infinity", "-Infinity", "1e309", "-1e309"):
        for path in (FORECAST, DETECT):
            cases.append(
                raw_case(
                    f"{token} in values", path, raw_body(token), 422, "validation-error", "series.0.values.1"
                )
            )
    cases += [
        raw_case("NaN level", FORECAST, raw_body("NaN", "levels"), 422, "validation-error", "levels.1"),
        raw_case(
            "Infinity level", FORECAST, raw_body("Infinity", "levels"), 422, "validation-error", "levels.1"
        ),
        raw_case(
            "NaN sensitivity",
            DETECT,
            json.dumps({"series": [series]}).replace("}]", '}], "sensitivity": NaN', 1).encode(),
            422,
            "validation-error",
            "sensitivity",
        ),
        json_case("empty series list", FORECAST, {"series": []}, 422, "validation-error", "series"),
        json_case("empty series list", DETECT, {"series": []}, 422, "validation-error", "series"),
        json_case("no body members", FORECAST, {}, 422, "validation-error", "series"),
        json_case(
            "empty values",
            FORECAST,
            {"series": [{"id": "a", "values": [], "timestamps": []}]},
            422,
            "validation-error",
            "series.0.values",
        ),
        json_case("shorter than the window", FORECAST, {"series": [short]}, 422, "invalid-input"),
        json_case("no point after the learning", DETECT, {"series": [hourly(24)]}, 422, "invalid-input"),
        json_case(
            "no point after the learning", SELF_DETECT, {"series": [hourly(100)]}, 422, "invalid-input"
        ),
        json_case(
            "learning_points below 20",
            SELF_DETECT,
            {"series": [long], "learning_points": 19},
            422,
            "validation-error",
            "learning_points",
        ),
        json_case(
            "learning_points not an integer",
            DETECT,
            {"series": [long], "learning_points": "50"},
            422,
            "validation-error",
            "learning_points",
        ),
        json_case(
            "horizon above 10x the model's (recursion's limit)",
            FORECAST,
            {"series": [series], "horizon": 61},
            422,
            "invalid-input",
        ),
        json_case(
            "horizon zero", FORECAST, {"series": [series], "horizon": 0}, 422, "validation-error", "horizon"
        ),
        json_case(
            "horizon not an integer",
            FORECAST,
            {"series": [series], "horizon": 2.5},
            422,
            "validation-error",
            "horizon",
        ),
        json_case(
            "more values than timestamps",
            FORECAST,
            {"series": [{**series, "timestamps": stamps[:-1]}]},
            422,
            "validation-error",
            "series.0",
        ),
        json_case(
            "more timestamps than values",
            DETECT,
            {"series": [{**series, "values": series["values"][:-1]}]},
            422,
            "validation-error",
            "series.0",
        ),
        json_case(
            "unsorted timestamps",
            FORECAST,
            {"series": [{**series, "timestamps": unsorted}]},
            422,
            "validation-error",
            "series.0.timestamps",
        ),
        json_case(
            "duplicate timestamps",
            FORECAST,
            {"series": [{**series, "timestamps": duplicated}]},
            422,
            "validation-error",
            "series.0.timestamps",
        ),
        json_case(
            "unparsable timestamp",
            FORECAST,
            {"series": [{**series, "timestamps": ["soon", *stamps[1:]]}]},
            422,
            "validation-error",
            "series.0.timestamps.0",
        ),
        json_case(
            "timestamp out of range",
            FORECAST,
            {"series": [{**series, "timestamps": ["0001-01-01T00:00:00", *stamps[1:]]}]},
            422,
            "validation-error",
            "series.0.timestamps",
        ),
        json_case(
            "offset moves a timestamp before year 1",
            FORECAST,
            {"series": [{**series, "timestamps": ["0001-01-01T00:00:00+05:00", *stamps[1:]]}]},
            422,
            "validation-error",
            "series.0.timestamps",
        ),
        json_case(
            "offset moves a timestamp past year 9999",
            DETECT,
            {"series": [{**series, "timestamps": [*stamps[:-1], "9999-12-31T23:59:59-05:00"]}]},
            422,
            "validation-error",
            "series.0.timestamps",
        ),
        json_case(
            "duplicate series ids", FORECAST, {"series": [series, series]}, 422, "validation-error", "series"
        ),
        json_case(
            "missing timestamps",
            FORECAST,
            {"series": [{"id": "a", "values": series["values"]}]},
            422,
            "invalid-input",
        ),
        json_case(
            "missing timestamps",
            DETECT,
            {"series": [{"id": "a", "values": long["values"]}]},
            422,
            "invalid-input",
        ),
        json_case(
            "level 99 above the widest",
            FORECAST,
            {"series": [series], "levels": [80, 99]},
            422,
            "invalid-input",
        ),
        json_case(
            "level 100", FORECAST, {"series": [series], "levels": [100]}, 422, "validation-error", "levels.0"
        ),
        json_case(
            "level 0", FORECAST, {"series": [series], "levels": [0]}, 422, "validation-error", "levels.0"
        ),
        json_case(
            "sensitivity above 1",
            DETECT,
            {"series": [series], "sensitivity": 1.5},
            422,
            "validation-error",
            "sensitivity",
        ),
        json_case(
            "unknown member", FORECAST, {"series": [series], "horizn": 3}, 422, "validation-error", "horizn"
        ),
        json_case(
            "values not numbers",
            FORECAST,
            {"series": [{**series, "values": ["x"] * 30}]},
            422,
            "validation-error",
            "series.0.values.0",
        ),
        json_case("values too large for the model", FORECAST, {"series": [huge]}, 422, "invalid-input"),
        json_case("values too large for the model", DETECT, {"series": [huge_long]}, 422, "invalid-input"),
        json_case("unknown model", "/v1/models/nope/forecast", {"series": [series]}, 404, "model-not-found"),
        json_case("unknown model", "/v1/models/nope/detect", {"series": [series]}, 404, "model-not-found"),
        json_case("unknown version", FORECAST + "?version=9", {"series": [series]}, 404, "version-not-found"),
        json_case("unknown version", DETECT + "?version=9", {"series": [series]}, 404, "version-not-found"),
        json_case("unknown alias", FORECAST + "?alias=staging", {"series": [series]}, 404, "alias-not-found"),
        json_case("unknown alias", DETECT + "?alias=staging", {"series": [series]}, 404, "alias-not-found"),
        json_case(
            "version and alias",
            FORECAST + "?version=1&alias=production",
            {"series": [series]},
            422,
            "invalid-input",
        ),
        json_case(
            "version and alias",
            DETECT + "?version=1&alias=production",
            {"series": [series]},
            422,
            "invalid-input",
        ),
        json_case(
            "version zero",
            FORECAST + "?version=0",
            {"series": [series]},
            422,
            "validation-error",
            "query.version",
        ),
        json_case(
            "version beyond any integer column",
            FORECAST + "?version=99999999999999999999",
            {"series": [series]},
            422,
            "validation-error",
            "query.version",
        ),
        json_case(
            "version not a number",
            FORECAST + "?version=one",
            {"series": [series]},
            422,
            "validation-error",
            "query.version",
        ),
        raw_case("invalid JSON", FORECAST, b'{"series": [', 400, "invalid-json"),
        raw_case("invalid JSON", DETECT, b"\x00\xff", 400, "invalid-json"),
        raw_case("invalid JSON", SELF_DETECT, b'{"series": [', 400, "invalid-json"),
        raw_case("JSON but not an object", FORECAST, b"[1, 2, 3]", 422, "validation-error", "body"),
        raw_case(
            "wrong content type",
            FORECAST,
            json.dumps({"series": [series]}).encode(),
            415,
            "unsupported-media-type",
            content_type="text/plain",
        ),
        raw_case(
            "form content type",
            DETECT,
            b"series=1",
            415,
            "unsupported-media-type",
            content_type="application/x-www-form-urlencoded",
        ),
        Case(
            "no content type",
            "POST",
            FORECAST,
            415,
            "unsupported-media-type",
            {"content": json.dumps({"series": [series]}).encode()},
        ),
        Case("no body", "POST", FORECAST, 422, "validation-error", {}, "body"),
        Case("unknown model", "GET", "/v1/models/nope", 404, "model-not-found"),
        Case("unknown model", "GET", "/v1/models/nope/versions/1", 404, "model-not-found"),
        Case("unknown version", "GET", "/v1/models/tiny/versions/9", 404, "version-not-found"),
        Case(
            "version beyond any integer column",
            "GET",
            "/v1/models/tiny/versions/99999999999999999999",
            422,
            "validation-error",
            {},
            "path.version",
        ),
        Case("unknown alias", "DELETE", "/v1/models/tiny/aliases/staging", 404, "alias-not-found"),
        Case("unknown route", "GET", "/v2/models", 404, "not-found"),
        Case("unknown route", "POST", "/v1/models/tiny/predict", 404, "not-found"),
        Case("wrong method", "GET", FORECAST, 405, "method-not-allowed"),
        Case("wrong method", "DELETE", "/v1/models", 405, "method-not-allowed"),
        Case("wrong method", "POST", "/healthz", 405, "method-not-allowed"),
    ]
    return cases + unparsable_cases() + strict_number_cases()


def test_client_errors_are_problem_documents(tiny_registry_dir, server_factory):
    server = server_factory(tiny_registry_dir)
    failures = []
    with server.client() as client:
        for case in error_cases():
            response = client.request(case.method, case.path, **case.kwargs)
            failures += check_problem(response, case)
            if case.status == 405 and not response.headers.get("allow"):
                failures.append(f"{case.label}: 405 without an Allow header")
        # The server is unharmed by all of that.
        assert client.post(FORECAST, json={"series": [hourly(30)]}).status_code == 200
    assert "Traceback" not in server.log()
    assert not failures, "\n".join(failures)


def test_bodies_over_the_limit_are_413_with_or_without_content_length(tiny_registry_dir, server_factory):
    limit = 2048
    server = server_factory(tiny_registry_dir, TSWATCH_MAX_BODY_BYTES=str(limit))
    big = json.dumps({"series": [hourly(200)]}).encode()
    assert len(big) > 2 * limit
    small = json.dumps({"series": [hourly(24)]}).encode()
    assert len(small) <= limit

    def chunks(data: bytes, size: int = 512):
        for start in range(0, len(data), size):
            yield data[start : start + size]

    case = Case("body over the limit", "POST", FORECAST, 413, "body-too-large")
    headers = {"content-type": "application/json"}
    failures = []
    for path in (FORECAST, DETECT):
        # Declared length: refused before reading.  Chunked (no Content-Length): refused while reading.
        for label, content in (("with Content-Length", big), ("chunked", chunks(big))):
            with server.client() as client:
                response = client.post(path, content=content, headers=headers)
                if label == "chunked":
                    assert "content-length" not in response.request.headers
                    assert response.request.headers.get("transfer-encoding") == "chunked"
                else:
                    assert response.request.headers["content-length"] == str(len(big))
                failures += check_problem(
                    response, Case(f"{case.label} {label}", "POST", path, 413, case.slug)
                )
                if response.status_code == 413:
                    assert response.json()["max_body_bytes"] == limit
                    assert response.headers.get("connection") == "close"
    # Bodies within the limit still pass, both ways.
    with server.client() as client:
        assert client.post(FORECAST, content=small, headers=headers).status_code == 200
        assert client.post(FORECAST, content=chunks(small), headers=headers).status_code == 200
        assert client.get("/healthz").status_code == 200
    assert not failures, "\n".join(failures)
