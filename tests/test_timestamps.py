"""`app.timestamps`: the stamp forms of training-data checks (int64 nanoseconds) and their message wording."""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.timestamps import ns_to_pd_timestamp, to_message_text


def test_ns_to_pd_timestamp_is_naive() -> None:
    stamp = pd.Timestamp("2020-01-05 13:30")
    assert ns_to_pd_timestamp(np.int64(stamp.value)) == stamp and ns_to_pd_timestamp(stamp.value).tz is None


def test_to_message_text_shows_only_what_is_set() -> None:
    assert to_message_text(None) == "-"
    assert to_message_text(pd.Timestamp("2020-01-05")) == "2020-01-05"
    assert to_message_text(pd.Timestamp("2020-01-05 13:30").value) == "2020-01-05 13:30"
    assert to_message_text(np.int64(pd.Timestamp("2020-01-05 13:30:15").value)) == "2020-01-05 13:30:15"
