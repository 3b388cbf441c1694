"""The remote write decoder: hand-built protobuf (unknown fields skipped) and malformed bodies (400, never a
crash), snappy and its size limit."""

from __future__ import annotations

import math
import struct

import pytest

from app.errors import PayloadTooLargeError
from app.prometheus.body import UnsupportedWriteFormatError, check_format, decode_body
from app.prometheus.wire import (
    STALE_MARKER,
    MalformedWriteError,
    Series,
    decode_write_request,
    is_stale_marker,
)

from .helpers import key, length_delimited, snappy, timeseries, varint, write_request

LABELS = {"__name__": "node_load1", "instance": "db1:9100", "job": "node"}


def test_decodes_series_labels_and_samples() -> None:
    data = write_request([(LABELS, [(1_700_000_000_000, 1.5), (1_700_000_001_000, -2.25)]), ({"a": "b"}, [])])
    assert decode_write_request(data) == [
        Series(LABELS, [(1_700_000_000_000, 1.5), (1_700_000_001_000, -2.25)]),
        Series({"a": "b"}, []),
    ]


def test_negative_timestamps_and_special_values() -> None:
    stale = struct.unpack("<d", STALE_MARKER.to_bytes(8, "little"))[0]
    [series] = decode_write_request(write_request([(LABELS, [(-5, math.inf), (0, stale), (7, math.nan)])]))
    assert [stamp for stamp, _ in series.samples] == [-5, 0, 7]
    values = [value for _, value in series.samples]
    assert values[0] == math.inf
    assert is_stale_marker(values[1]) and not is_stale_marker(values[2]) and math.isnan(values[2])


def test_unknown_fields_metadata_and_exemplars_are_skipped() -> None:
    exemplar = length_delimited(3, length_delimited(1, b"ignored"))
    fixed32 = key(9, 5) + b"\x01\x02\x03\x04"
    varint_field = key(10, 0) + varint(300)
    series = timeseries(LABELS, [(1000, 3.0)], extra=exemplar + fixed32 + varint_field)
    metadata = length_delimited(3, length_delimited(4, b"help text"))
    data = metadata + length_delimited(1, series) + key(99, 0) + varint(1)
    assert decode_write_request(data) == [Series(LABELS, [(1000, 3.0)])]


def test_a_sample_field_may_appear_in_any_order() -> None:
    reordered = key(2, 0) + varint(42) + key(1, 1) + struct.pack("<d", 9.5)
    data = length_delimited(1, length_delimited(1, b"\n\x01a\x12\x01b") + length_delimited(2, reordered))
    assert decode_write_request(data) == [Series({"a": "b"}, [(42, 9.5)])]


MALFORMED = {
    "truncated varint": b"\x0a\x80",
    "length past the end": b"\x0a\x05ab",
    "field number 0": b"\x00\x01",
    "group wire type": key(1, 3) + b"\x00",
    "eleven-byte varint": key(5, 0) + b"\xff" * 10 + b"\x01",
    "truncated double": length_delimited(1, length_delimited(2, key(1, 1) + b"\x00\x00")),
    "value as varint": length_delimited(1, length_delimited(2, key(1, 0) + varint(3))),
    "timestamp as double": length_delimited(1, length_delimited(2, key(2, 1) + b"\x00" * 8)),
    "timeseries as varint": key(1, 0) + varint(1),
    "label not UTF-8": length_delimited(1, length_delimited(1, length_delimited(1, b"\xff\xfe"))),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_protobuf_is_a_400(data: bytes) -> None:
    with pytest.raises(MalformedWriteError) as caught:
        decode_write_request(data)
    assert caught.value.status == 400


def test_snappy_body_round_trip() -> None:
    data = write_request([(LABELS, [(1000, 1.0)])])
    assert decode_body(snappy(data), 1024) == [Series(LABELS, [(1000, 1.0)])]


@pytest.mark.parametrize(
    "body",
    [b"", b"\x80", b"\x10not snappy at all", write_request([(LABELS, [(1000, 1.0)])])],
    ids=["empty", "no preamble", "corrupt", "uncompressed protobuf"],
)
def test_bodies_that_are_not_snappy_are_a_400(body: bytes) -> None:
    with pytest.raises(MalformedWriteError):
        decode_body(body, 1 << 20)


def test_snappy_of_garbage_is_a_400() -> None:
    with pytest.raises(MalformedWriteError):
        decode_body(snappy(b"\xff" * 64), 1 << 20)


def test_decompressed_size_is_checked_before_decompressing() -> None:
    big = snappy(b"\x00" * 5000)
    assert len(big) < 1024
    with pytest.raises(PayloadTooLargeError) as caught:
        decode_body(big, 4096)
    assert caught.value.status == 413
    claims_a_gigabyte = varint(1 << 30) + b"\x00"
    with pytest.raises(PayloadTooLargeError):
        decode_body(claims_a_gigabyte, 4096)


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [
        ("application/x-protobuf", "snappy"),
        ("application/x-protobuf;proto=prometheus.WriteRequest", "Snappy"),
        (None, None),
    ],
)
def test_remote_write_1_0_formats_are_accepted(content_type: str | None, encoding: str | None) -> None:
    check_format(content_type, encoding)


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [
        ("application/x-protobuf", "gzip"),
        ("application/json", "snappy"),
        ("application/x-protobuf;proto=io.prometheus.write.v2.Request", "snappy"),
    ],
)
def test_other_formats_are_a_415(content_type: str, encoding: str) -> None:
    with pytest.raises(UnsupportedWriteFormatError) as caught:
        check_format(content_type, encoding)
    assert caught.value.status == 415
