"""`app.timestamps`: the stamp forms of training-data checks (int64 nanoseconds), their message wording, and
the ISO forms of API answers, CLI listings and manifests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from app.timestamps import (
    datetime64_to_iso,
    ns_to_pd_timestamp,
    parse_pd_timestamp,
    to_aware_utc,
    to_iso_z,
    to_iso_z_seconds,
    to_message_text,
)


def test_ns_to_pd_timestamp_is_naive() -> None:
    stamp = pd.Timestamp("2020-01-05 13:30")
    assert ns_to_pd_timestamp(np.int64(stamp.value)) == stamp and ns_to_pd_timestamp(stamp.value).tz is None


def test_to_message_text_shows_only_what_is_set() -> None:
    assert to_message_text(None) == "-"
    assert to_message_text(pd.Timestamp("2020-01-05")) == "2020-01-05"
    assert to_message_text(pd.Timestamp("2020-01-05 13:30").value) == "2020-01-05 13:30"
    assert to_message_text(np.int64(pd.Timestamp("2020-01-05 13:30:15").value)) == "2020-01-05 13:30:15"


def test_iso_z_forms_of_a_naive_utc_stamp() -> None:
    stamp = datetime(2024, 3, 1, 12, 30, 5, 250000)
    assert to_iso_z(stamp) == "2024-03-01T12:30:05.250000Z"
    assert to_iso_z("2024-03-01T12:30:05+01:00") == "2024-03-01T11:30:05Z"
    assert to_iso_z(None) is None
    assert to_iso_z_seconds(stamp) == "2024-03-01T12:30:05Z"
    assert to_iso_z_seconds(None) is None


def test_to_aware_utc_takes_naive_as_utc_and_converts_aware() -> None:
    assert to_aware_utc(datetime(2024, 3, 1, 12)) == datetime(2024, 3, 1, 12, tzinfo=UTC)
    plus_two = datetime(2024, 3, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert to_aware_utc(plus_two).tzinfo is UTC and to_aware_utc(plus_two).hour == 10


def test_datetime64_to_iso_is_numpys_form_and_parses_back() -> None:
    stamp = np.datetime64("2024-01-17T15:00:00.5", "ns")
    assert datetime64_to_iso(stamp) == str(stamp) == "2024-01-17T15:00:00.500000000"
    assert datetime64_to_iso(stamp, "s") == "2024-01-17T15:00:00"
    assert parse_pd_timestamp(datetime64_to_iso(stamp)) == pd.Timestamp(stamp)
    assert parse_pd_timestamp("2024-01-05 04:00:00") == pd.Timestamp(2024, 1, 5, 4)


def test_from_epoch_millis_is_exact_and_refuses_stamps_out_of_range() -> None:
    from app.timestamps import from_epoch_millis

    assert from_epoch_millis(1_700_000_000_123) == datetime(2023, 11, 14, 22, 13, 20, 123000)
    assert from_epoch_millis(-1) == datetime(1969, 12, 31, 23, 59, 59, 999000)
    for millis in (-(2**63), 2**63 - 1, 10**13):  # 10**13 ms: the year 2286
        with pytest.raises(ValueError):
            from_epoch_millis(millis)
