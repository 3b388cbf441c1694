"""Frames between the server and its inference worker: a JSON header plus raw arrays, never pickle.

A frame is ``u32 header length | u32 payload length | header JSON | payload``; the header lists each array's
dtype and shape, so the receiver rebuilds arrays with ``np.frombuffer`` and nothing it reads can run code.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final

import numpy as np

PREFIX: Final = struct.Struct("!II")
DTYPES: Final = frozenset({"<f4", "<f8", "|u1"})


class FrameError(ValueError):
    """A frame that does not follow the format (a bug or a foreign writer on the socket)."""


@dataclass(frozen=True)
class Frame:
    header: dict[str, Any]
    arrays: list[np.ndarray] = field(default_factory=list)


def encode_frame(header: dict[str, Any], arrays: tuple[np.ndarray, ...] | list[np.ndarray] = ()) -> bytes:
    blobs = [np.ascontiguousarray(array) for array in arrays]
    described = {**header, "arrays": [{"dtype": blob.dtype.str, "shape": list(blob.shape)} for blob in blobs]}
    head = json.dumps(described, separators=(",", ":")).encode()
    payload = b"".join(blob.tobytes() for blob in blobs)
    return PREFIX.pack(len(head), len(payload)) + head + payload


def decode_frame(head: bytes, payload: bytes | memoryview) -> Frame:
    try:
        header = json.loads(head)
        specs = header.pop("arrays")
    except (ValueError, KeyError, TypeError) as error:
        raise FrameError(f"unreadable frame header: {error}") from error
    arrays, offset = [], 0
    for spec in specs:
        if spec["dtype"] not in DTYPES:
            raise FrameError(f"unsupported array dtype {spec['dtype']!r}")
        dtype, shape = np.dtype(spec["dtype"]), tuple(int(n) for n in spec["shape"])
        size = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        if offset + size > len(payload):
            raise FrameError(f"frame payload holds {len(payload)} bytes; its header describes more")
        arrays.append(
            np.frombuffer(payload, dtype=dtype, count=size // dtype.itemsize, offset=offset).reshape(shape)
        )
        offset += size
    if offset != len(payload):
        raise FrameError(f"frame payload holds {len(payload)} bytes; its header describes {offset}")
    return Frame(header, arrays)


def read_frame(stream: BinaryIO) -> Frame | None:
    """The next frame from a blocking binary stream; None at a clean end of stream."""
    prefix = stream.read(PREFIX.size)
    if not prefix:
        return None
    if len(prefix) < PREFIX.size:
        raise FrameError("stream ended inside a frame prefix")
    head_size, payload_size = PREFIX.unpack(prefix)
    head, payload = stream.read(head_size), stream.read(payload_size)
    if len(head) < head_size or len(payload) < payload_size:
        raise FrameError("stream ended inside a frame")
    return decode_frame(head, payload)
