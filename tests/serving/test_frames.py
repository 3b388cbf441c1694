import io

import numpy as np
import pytest

from app.serving.frames import PREFIX, FrameError, decode_frame, encode_frame, read_frame


def split(frame: bytes) -> tuple[bytes, bytes]:
    head_size, _ = PREFIX.unpack(frame[: PREFIX.size])
    return frame[PREFIX.size : PREFIX.size + head_size], frame[PREFIX.size + head_size :]


def test_round_trip_keeps_header_dtypes_and_shapes() -> None:
    windows = np.arange(12, dtype=np.float32).reshape(3, 4)
    calendar = np.linspace(0, 1, 24).reshape(3, 4, 2)
    weights = np.frombuffer(b"\x00\x01safetensors", dtype=np.uint8)
    frame = decode_frame(*split(encode_frame({"op": "answer", "id": 7}, [windows, calendar, weights])))
    assert frame.header == {"op": "answer", "id": 7}
    for sent, received in zip([windows, calendar, weights], frame.arrays, strict=True):
        assert received.dtype == sent.dtype and received.shape == sent.shape
        np.testing.assert_array_equal(received, sent)


def test_non_contiguous_arrays_are_sent_by_value() -> None:
    base = np.arange(20, dtype=np.float32).reshape(4, 5)
    frame = decode_frame(*split(encode_frame({}, [base[:, ::2]])))
    np.testing.assert_array_equal(frame.arrays[0], base[:, ::2])


def test_frames_follow_each_other_on_a_stream() -> None:
    stream = io.BytesIO(encode_frame({"n": 1}) + encode_frame({"n": 2}, [np.ones(3, dtype=np.float32)]))
    first, second = read_frame(stream), read_frame(stream)
    assert first is not None and second is not None
    assert (first.header["n"], second.header["n"], second.arrays[0].tolist()) == (1, 2, [1.0, 1.0, 1.0])
    assert read_frame(stream) is None


@pytest.mark.parametrize("cut", [3, PREFIX.size + 2, -1])
def test_a_truncated_stream_is_an_error_not_a_partial_frame(cut: int) -> None:
    frame = encode_frame({"op": "x"}, [np.ones(4, dtype=np.float32)])
    with pytest.raises(FrameError, match="ended"):
        read_frame(io.BytesIO(frame[:cut]))


def test_only_plain_numeric_dtypes_are_accepted() -> None:
    with pytest.raises(FrameError, match="dtype"):
        decode_frame(b'{"arrays": [{"dtype": "|O", "shape": [1]}]}', b"\x00" * 8)


def test_payload_must_match_the_described_arrays() -> None:
    with pytest.raises(FrameError, match="describes"):
        decode_frame(b'{"arrays": [{"dtype": "<f4", "shape": [2]}]}', b"\x00" * 12)
    with pytest.raises(FrameError, match="describes more"):
        decode_frame(b'{"arrays": [{"dtype": "<f4", "shape": [4]}]}', b"\x00" * 12)
    with pytest.raises(FrameError, match="header"):
        decode_frame(b"not json", b"")
