"""The child-process parser of /detect bodies gives exactly the in-process parse's results and errors."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError

from app.api.body_process import DetectBodyParser
from app.api.detect_wire import parse_detect_body

pytestmark = pytest.mark.slow  # spawns a child interpreter

BODY = json.dumps(
    {"series": [{"id": "a", "values": [1.0, 2.5, 3.0], "timestamps": [0, 3600, 7200]}], "sensitivity": 0.3}
).encode()
INVALID = json.dumps({"series": [{"id": "a", "values": ["1.5", True]}]}).encode()


@pytest.fixture
def parser():
    parser = DetectBodyParser()
    yield parser
    parser.close()


def test_child_parse_equals_in_process_parse(parser):
    options, series = asyncio.run(parser.parse("application/json", BODY))
    expected_options, expected = parse_detect_body("application/json", BODY)
    assert options == expected_options and options.sensitivity == 0.3
    assert [s.id for s in series] == [s.id for s in expected]
    np.testing.assert_array_equal(series[0].values, expected[0].values)
    np.testing.assert_array_equal(series[0].timestamps, expected[0].timestamps)


def test_child_refusal_equals_in_process_refusal(parser):
    with pytest.raises(RequestValidationError) as child:
        asyncio.run(parser.parse("application/json", INVALID))
    with pytest.raises(RequestValidationError) as local:
        parse_detect_body("application/json", INVALID)
    assert list(child.value.errors()) == list(local.value.errors())


def test_a_dead_child_falls_back_to_a_thread_then_is_replaced(parser):
    asyncio.run(parser.parse("application/json", BODY))  # the child is running now
    for pid in list(parser._executor._processes):
        os.kill(pid, signal.SIGKILL)
    options, _ = asyncio.run(parser.parse("application/json", BODY))
    assert options.sensitivity == 0.3
    options, _ = asyncio.run(parser.parse("application/json", BODY))  # a new child answers
    assert options.sensitivity == 0.3
