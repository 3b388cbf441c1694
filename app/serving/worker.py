"""The inference worker: a child process that runs batched forecasts for the server.

The server's event loop and torch would otherwise share one GIL; every torch call hands it back and forth with
the loop. In a child process the model computes on another core while the loop only parses and answers HTTP.
The worker reads frames from an inherited socket (`app.serving.frames`), rebuilds each model from its spec and
safetensors weights (strict loading, no pickle), and answers `predict` frames in order. It exits when the
server's end of the socket closes, so it never outlives the server (even after `kill -9`).

    python -m app.serving.worker --fd N [--threads T]
"""

from __future__ import annotations

import argparse
import signal
import socket
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors

from app.forecasting.forecaster import Forecaster
from app.registry.loading import build_forecaster
from app.serving.frames import Frame, encode_frame, read_frame


def load_model(frame: Frame) -> Forecaster:
    forecaster = build_forecaster({"spec": frame.header["spec"]}, load_safetensors(frame.arrays[0].tobytes()))
    spec = forecaster.spec
    calendar = np.zeros((1, spec.window, 2 * len(spec.calendar_features)), dtype=np.float32)
    forecaster.predict(
        np.ones((1, spec.window), dtype=np.float32), calendar if spec.calendar_features else None
    )
    return forecaster


def predict(models: dict[str, Forecaster], frame: Frame) -> np.ndarray:
    windows = frame.arrays[0]  # [B, L]
    calendar = np.array(frame.arrays[1]) if len(frame.arrays) > 1 else None  # [B, L, C], writable for torch
    return models[frame.header["model"]].predict(windows, calendar).astype(np.float32)  # [B, H, Q]


def handle(models: dict[str, Forecaster], frame: Frame) -> bytes:
    header: dict[str, Any] = {"id": frame.header.get("id")}
    op = frame.header.get("op")
    try:
        if op == "predict":
            return encode_frame(header, [predict(models, frame)])
        if op == "load":
            models[frame.header["model"]] = load_model(frame)
        else:
            raise ValueError(f"unknown operation {op!r}")
    except Exception as error:  # reported to the server, which owns the request
        header["error"] = f"{type(error).__name__}: {error}"
    return encode_frame(header)


def serve(sock: socket.socket) -> None:
    models: dict[str, Forecaster] = {}
    with sock, sock.makefile("rb") as reader, sock.makefile("wb") as writer:
        while (frame := read_frame(reader)) is not None:
            writer.write(handle(models, frame))
            writer.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="tswatch inference worker (started by `tswatch serve`)")
    parser.add_argument("--fd", type=int, required=True, help="file descriptor of the socket to the server")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server drains on Ctrl-C and still needs its worker
    torch.set_num_threads(args.threads)
    serve(socket.socket(fileno=args.fd))


if __name__ == "__main__":
    main()
