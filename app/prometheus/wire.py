"""A small protobuf wire-format decoder for Prometheus remote write 1.0 (`prometheus.WriteRequest`).

    WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; (exemplars = 3, histograms = 4) }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }   // timestamp: ms since the epoch

Only what tswatch uses is read; every other field (metadata, exemplars, native histograms, fields added later)
is skipped by its wire type, as protobuf prescribes. Anything that does not parse (a truncated field, a varint
longer than 10 bytes, a group or unknown wire type, a length past the end, invalid UTF-8) raises
`MalformedWriteError` (400), never an IndexError.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from app.errors import TswatchError

VARINT: Final = 0
FIXED64: Final = 1
LENGTH: Final = 2
FIXED32: Final = 5
_DOUBLE: Final = struct.Struct("<d")
_MAX_VARINT_BYTES: Final = 10


class MalformedWriteError(TswatchError):
    status = 400
    title = "Malformed remote write request"
    slug = "malformed-remote-write"


@dataclass(frozen=True)
class Series:
    """One time series of a write request: its labels and its samples (ms timestamp, value) as sent."""

    labels: dict[str, str]
    samples: list[tuple[int, float]]


def read_varint(data: bytes, offset: int) -> tuple[int, int]:
    """The unsigned varint at `offset` and the offset after it."""
    result = 0
    for index in range(_MAX_VARINT_BYTES):
        if offset + index >= len(data):
            raise MalformedWriteError("truncated varint")
        byte = data[offset + index]
        result |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            return result, offset + index + 1
    raise MalformedWriteError("varint longer than 10 bytes")


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """The (field number, wire type, value) of one message: an int for varint and fixed fields, the raw bytes
    for length-delimited ones."""
    fields: list[tuple[int, int, int | bytes]] = []
    offset = 0
    while offset < len(data):
        key, offset = read_varint(data, offset)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise MalformedWriteError("field number 0")
        value: int | bytes
        if wire_type == VARINT:
            value, offset = read_varint(data, offset)
        elif wire_type in (FIXED64, FIXED32):
            width = 8 if wire_type == FIXED64 else 4
            if offset + width > len(data):
                raise MalformedWriteError("truncated fixed-width field")
            value, offset = int.from_bytes(data[offset : offset + width], "little"), offset + width
        elif wire_type == LENGTH:
            length, offset = read_varint(data, offset)
            if offset + length > len(data):
                raise MalformedWriteError("length-delimited field runs past the end of its message")
            value, offset = data[offset : offset + length], offset + length
        else:
            raise MalformedWriteError(f"unsupported wire type {wire_type}")
        fields.append((number, wire_type, value))
    return fields


def _as_bytes(value: int | bytes, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedWriteError(f"{what} must be length-delimited")
    return value


def _as_text(value: int | bytes, what: str) -> str:
    try:
        return _as_bytes(value, what).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedWriteError(f"{what} is not valid UTF-8") from None


def _label(data: bytes) -> tuple[str, str]:
    name = value = ""
    for number, _, raw in _fields(data):
        if number == 1:
            name = _as_text(raw, "label name")
        elif number == 2:
            value = _as_text(raw, "label value")
    return name, value


def _sample(data: bytes) -> tuple[int, float]:
    value, timestamp = 0.0, 0
    for number, wire_type, raw in _fields(data):
        if number == 1:
            if wire_type != FIXED64 or not isinstance(raw, int):
                raise MalformedWriteError("sample value must be a double")
            value = _DOUBLE.unpack(raw.to_bytes(8, "little"))[0]
        elif number == 2:
            if wire_type != VARINT or not isinstance(raw, int):
                raise MalformedWriteError("sample timestamp must be a varint")
            timestamp = raw - (1 << 64) if raw >= 1 << 63 else raw  # int64: two's complement
    return timestamp, value


def _series(data: bytes) -> Series:
    labels: dict[str, str] = {}
    samples: list[tuple[int, float]] = []
    for number, _, raw in _fields(data):
        if number == 1:
            name, value = _label(_as_bytes(raw, "label"))
            labels[name] = value
        elif number == 2:
            samples.append(_sample(_as_bytes(raw, "sample")))
    return Series(labels, samples)


def decode_write_request(data: bytes) -> list[Series]:
    """The time series of a serialized WriteRequest (uncompressed)."""
    return [_series(_as_bytes(raw, "timeseries")) for number, _, raw in _fields(data) if number == 1]


STALE_MARKER: Final = (
    0x7FF0000000000002  # the NaN Prometheus writes when a series disappears (value.StaleNaN)
)


def is_stale_marker(value: float) -> bool:
    """Whether `value` is Prometheus's staleness marker (a NaN with this exact bit pattern), not a reading."""
    return value != value and int.from_bytes(_DOUBLE.pack(value), "little") == STALE_MARKER
