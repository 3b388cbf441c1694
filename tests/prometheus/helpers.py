"""Remote write bodies built by hand: a minimal protobuf encoder for WriteRequest, snappy-compressed as
Prometheus sends them."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

import cramjam

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 as protobuf writes it: two's complement, 10 bytes when negative
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    return key(number, 2) + varint(len(payload)) + payload


def label(name: str, value: str) -> bytes:
    return length_delimited(1, name.encode()) + length_delimited(2, value.encode())


def sample(timestamp_ms: int, value: float) -> bytes:
    return key(1, 1) + struct.pack("<d", value) + key(2, 0) + varint(timestamp_ms)


def timeseries(labels: Mapping[str, str], samples: Sequence[tuple[int, float]], extra: bytes = b"") -> bytes:
    body = b"".join(length_delimited(1, label(name, value)) for name, value in labels.items())
    body += b"".join(length_delimited(2, sample(stamp, value)) for stamp, value in samples)
    return body + extra


def write_request(series: Sequence[tuple[Mapping[str, str], Sequence[tuple[int, float]]]]) -> bytes:
    return b"".join(length_delimited(1, timeseries(labels, samples)) for labels, samples in series)


def snappy(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))
