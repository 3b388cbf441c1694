"""Shared by the tests of `app.training.data`: small frames, `prepare` with test defaults, real data paths."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.training.data.errors import DataValidationError
from app.training.data.prepared import PreparedData, prepare

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
STOCKS = SHARED / "stocks" / "stocks_daily.csv"
TAXI = SHARED / "nab" / "data" / "realKnownCause" / "nyc_taxi.csv"


def hourly(n=48, start="2020-01-01", values=None, freq="h"):
    stamps = pd.date_range(start, periods=n, freq=freq)
    if values is None:
        values = np.sin(np.arange(n) / 3.0) + np.arange(n) * 0.01
    return pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": values})


def run(frame, **kwargs) -> PreparedData:
    kwargs.setdefault("min_length", 2)
    kwargs.setdefault("source", "data.csv")
    return prepare(frame, **kwargs)


def refused(frame, *fragments, **kwargs):
    with pytest.raises(DataValidationError) as info:
        run(frame, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message
