"""A remote write body: snappy (block format) decompression within a size limit, then protobuf decoding.

The compressed size is bounded by the server's `max_body_bytes` (the body-size middleware, 413 before the
route runs). The decompressed size is read from the snappy preamble (a varint) BEFORE anything is decompressed,
so a small body that claims a huge payload is a 413 without allocating it.
"""

from __future__ import annotations

from typing import Final

import cramjam

from app.errors import PayloadTooLargeError, TswatchError
from app.prometheus.wire import MalformedWriteError, Series, decode_write_request, read_varint

SNAPPY: Final = "snappy"
PROTOBUF: Final = "application/x-protobuf"
WRITE_V1: Final = "prometheus.WriteRequest"  # the only message this endpoint reads (remote write 1.0)


class UnsupportedWriteFormatError(TswatchError):
    status = 415
    title = "Unsupported remote write format"
    slug = "unsupported-remote-write-format"


def check_format(content_type: str | None, content_encoding: str | None) -> None:
    """Accept remote write 1.0 as Prometheus sends it (a missing header is taken as that); 415 otherwise."""
    encoding = (content_encoding or SNAPPY).strip().lower()
    if encoding != SNAPPY:
        raise UnsupportedWriteFormatError(
            f"Content-Encoding must be {SNAPPY!r}; got {content_encoding!r}",
            fields={"content_encoding": content_encoding},
        )
    media, *params = [part.strip() for part in (content_type or PROTOBUF).split(";")]
    proto = next((value for key, _, value in (p.partition("=") for p in params) if key == "proto"), WRITE_V1)
    if media.lower() != PROTOBUF or proto != WRITE_V1:
        raise UnsupportedWriteFormatError(
            f"Content-Type must be {PROTOBUF!r} (remote write 1.0, {WRITE_V1}); got {content_type!r}",
            fields={"content_type": content_type},
        )


def decompressed_length(body: bytes) -> int:
    """The uncompressed length a snappy block declares in its preamble."""
    try:
        return read_varint(body, 0)[0]
    except MalformedWriteError:
        raise MalformedWriteError("the body is not snappy-compressed (no length preamble)") from None


def decode_body(body: bytes, max_decompressed_bytes: int) -> list[Series]:
    """The series of a snappy-compressed WriteRequest; 413 when it decompresses past the limit, 400 when it is
    not snappy or not a WriteRequest."""
    if not body:
        raise MalformedWriteError("empty body; expected a snappy-compressed WriteRequest")
    length = decompressed_length(body)
    if length > max_decompressed_bytes:
        raise PayloadTooLargeError(
            f"the body decompresses to {length} bytes; the limit is {max_decompressed_bytes} "
            "(lower max_samples_per_send in Prometheus's queue_config)",
            fields={"max_decompressed_bytes": max_decompressed_bytes},
        )
    try:
        data = bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as error:
        raise MalformedWriteError(f"the body is not valid snappy (block format): {error}") from None
    return decode_write_request(data)
