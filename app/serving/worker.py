"""The inference worker's frame loop: a child process that runs batched forecasts for the server.

The server's event loop and torch would otherwise share one GIL; every torch call hands it back and forth with
the loop. In a child process the model computes on another core while the loop only parses and answers HTTP.
The worker reads frames from an inherited socket (`app.serving.frames`), rebuilds each model from its spec and
safetensors weights (strict loading, no pickle), and answers `load`, `unload` and `answer` frames (raw forecast
request bodies, see `app.serving.bodies`) in order. It exits when the server's end of the socket closes, so it
never outlives the server (even after `kill -9`).

The loop knows no wire format: `answer` frames go to the `AnswerBodies` function its program passes to `run`.
The program is the API's (`python -m app.api.inference_worker --fd N [--threads T]`).
"""

from __future__ import annotations

import argparse
import itertools
import signal
import socket
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors

from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.registry.loading import build_forecaster
from app.serving.bodies import AnswerBodies
from app.serving.frames import Frame, encode_frame, read_frame


def load_model(frame: Frame) -> Forecaster:
    spec = ForecasterSpec.from_dict(frame.header["spec"])
    forecaster = build_forecaster(spec, load_safetensors(frame.arrays[0].tobytes()))
    calendar = np.zeros((1, spec.window, 2 * len(spec.calendar_features)), dtype=np.float32)
    forecaster.predict(
        np.ones((1, spec.window), dtype=np.float32), calendar if spec.calendar_features else None
    )
    return forecaster


def answer(models: dict[str, Forecaster], frame: Frame, answer_bodies: AnswerBodies) -> bytes:
    """Answer raw request bodies: [sizes] of concatenated bytes -> per body a reply (+ concatenated ok bodies)."""
    blob = frame.arrays[0].tobytes()
    offsets = itertools.accumulate(frame.header["sizes"], initial=0)
    bodies = [blob[start:end] for start, end in itertools.pairwise(offsets)]
    replies = answer_bodies(models[frame.header["model"]], frame.header["ref"], bodies)
    described = [
        {"kind": r.kind, "size": len(r.body), "series": r.series, "detail": r.detail, "fields": r.fields}
        for r in replies
    ]
    payload = np.frombuffer(b"".join(r.body for r in replies), dtype=np.uint8)
    return encode_frame({"id": frame.header.get("id"), "replies": described}, [payload])


def handle(models: dict[str, Forecaster], frame: Frame, answer_bodies: AnswerBodies) -> bytes:
    header: dict[str, Any] = {"id": frame.header.get("id")}
    op = frame.header.get("op")
    try:
        if op == "answer":
            return answer(models, frame, answer_bodies)
        if op == "load":
            models[frame.header["model"]] = load_model(frame)
        elif op == "unload":
            models.pop(frame.header["model"], None)
        else:
            raise ValueError(f"unknown operation {op!r}")
    except Exception as error:  # reported to the server, which owns the request
        header["error"] = f"{type(error).__name__}: {error}"
    return encode_frame(header)


def serve(answer_bodies: AnswerBodies, sock: socket.socket) -> None:
    """Answer the frames read from `sock` in order until the server closes its end."""
    models: dict[str, Forecaster] = {}
    with sock, sock.makefile("rb") as reader, sock.makefile("wb") as writer:
        while (frame := read_frame(reader)) is not None:
            writer.write(handle(models, frame, answer_bodies))
            writer.flush()


def run(answer_bodies: AnswerBodies, argv: list[str] | None = None) -> None:
    """The worker process: read `--fd` / `--threads` from `argv`, then serve `answer_bodies` on that socket."""
    parser = argparse.ArgumentParser(description="tswatch inference worker (started by `tswatch serve`)")
    parser.add_argument("--fd", type=int, required=True, help="file descriptor of the socket to the server")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server drains on Ctrl-C and still needs its worker
    torch.set_num_threads(args.threads)
    serve(answer_bodies, socket.socket(fileno=args.fd))
