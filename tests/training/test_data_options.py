"""Training input as users have it: --sep, --decimal, day-first dates, and "too few points" that says what fits."""

import numpy as np
import pandas as pd
import pytest

from app.training.data.errors import DataValidationError
from app.training.data.prepared import load_training_data
from app.training.data.reading import ReadOptions, read_table
from app.training.data.split_sizes import fits, largest_horizon, largest_window, too_few_points

from .data_helpers import refused, run

DAYS = pd.date_range("2024-01-01", periods=40, freq="D")
VALUES = np.round(np.sin(np.arange(40) / 3.0) * 10 + 20, 2)


def write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_decimal_commas_with_semicolons_are_sniffed_and_read(tmp_path):
    lines = ["timestamp;value"] + [
        f"{d:%Y-%m-%d};{str(v).replace('.', ',')}" for d, v in zip(DAYS, VALUES, strict=True)
    ]
    path = write(tmp_path, "euro.csv", lines)
    data = load_training_data(path, min_length=2, read_options=ReadOptions(decimal=","))
    assert np.allclose(data.series[0].values, VALUES)


def test_separator_given_overrides_the_sniffed_one(tmp_path):
    # the header has more commas than pipes: sniffing picks ",", the user says "|"
    lines = ["timestamp|value|note,with,commas"] + [
        f"{d:%Y-%m-%d}|{v}|x" for d, v in zip(DAYS, VALUES, strict=True)
    ]
    path = write(tmp_path, "piped.csv", lines)
    assert list(read_table(path, ReadOptions(sep="|")).columns) == ["timestamp", "value", "note,with,commas"]
    tab = write(
        tmp_path,
        "tabbed.csv",
        ["timestamp\tvalue"] + [f"{d:%Y-%m-%d}\t{v}" for d, v in zip(DAYS, VALUES, strict=True)],
    )
    assert list(read_table(tab, ReadOptions(sep="tab")).columns) == ["timestamp", "value"]


def test_a_decimal_comma_in_a_comma_file_is_refused_with_the_fix(tmp_path):
    lines = ["timestamp,value"] + [f"{d:%Y-%m-%d},{v}" for d, v in zip(DAYS, VALUES, strict=True)]
    path = write(tmp_path, "plain.csv", lines)
    with pytest.raises(
        DataValidationError, match=r'separator \(",", sniffed .*\) is also the decimal mark.*--sep ";"'
    ):
        read_table(path, ReadOptions(decimal=","))
    with pytest.raises(DataValidationError, match="must be one character"):
        read_table(path, ReadOptions(sep=";;"))
    with pytest.raises(DataValidationError, match='decimal mark "x" is not supported'):
        read_table(path, ReadOptions(decimal="x"))


def test_a_decimal_comma_without_the_option_names_the_option(tmp_path):
    lines = ["timestamp;value"] + [
        f"{d:%Y-%m-%d};{str(v).replace('.', ',')}" for d, v in zip(DAYS, VALUES, strict=True)
    ]
    path = write(tmp_path, "euro.csv", lines)
    with pytest.raises(DataValidationError, match="for decimal commas pass --decimal ,"):
        load_training_data(path, min_length=2)


def test_day_first_dates_are_detected_and_noticed(tmp_path):
    lines = ["timestamp,value"] + [f"{d:%d/%m/%Y},{v}" for d, v in zip(DAYS, VALUES, strict=True)]
    data = load_training_data(write(tmp_path, "dmy.csv", lines), min_length=2)
    assert data.frequency == "D"
    assert str(data.series[0].timestamps[12])[:10] == "2024-01-13"
    assert data.notices == [f'{tmp_path / "dmy.csv"}: dates read day-first ("13/01/2024" has a day above 12)']


def test_month_first_dates_contradicting_dayfirst_are_refused():
    frame = pd.DataFrame({"timestamp": DAYS.strftime("%m/%d/%Y"), "value": VALUES})
    assert run(frame).frequency == "D"  # detected month-first, no option needed
    refused(frame, '--dayfirst was given but "01/13/2024" can only be read month-first', dayfirst=True)


def test_mixed_day_and_month_first_dates_are_refused():
    stamps = list(DAYS.strftime("%d/%m/%Y"))
    stamps[30] = "01/31/2024"
    frame = pd.DataFrame({"timestamp": stamps, "value": VALUES})
    refused(frame, 'mixes day-first dates ("13/01/2024") and month-first dates ("01/31/2024")')


def test_ambiguous_dates_follow_the_option_and_say_so():
    frame = pd.DataFrame({"timestamp": DAYS[:12].strftime("%d/%m/%Y"), "value": VALUES[:12]})
    default = run(frame)
    assert default.frequency == "MS"  # read month-first: 1 Jan, 1 Feb, ...
    assert any("read both ways and were read month-first" in n and "--dayfirst" in n for n in default.notices)
    chosen = run(frame, dayfirst=True)
    assert chosen.frequency == "D" and chosen.notices == []


def test_ambiguous_dates_that_break_the_series_name_the_format_not_the_symptom():
    months = pd.date_range("2020-01-01", periods=40, freq="MS")  # 01/01/2020, 01/02/2020, ...: day-first
    frame = pd.DataFrame({"timestamp": months.strftime("%d/%m/%Y"), "value": VALUES})
    message = refused(frame, 'timestamps look day-first ("01/01/2020")', "pass --dayfirst")
    assert "sorted" not in message.split(";")[0]
    assert run(frame, dayfirst=True).frequency == "MS"


def test_iso_dates_are_untouched_by_day_first_detection():
    frame = pd.DataFrame({"timestamp": DAYS.strftime("%Y-%m-%d"), "value": VALUES})
    data = run(frame, dayfirst=True)
    assert data.frequency == "D" and data.notices == []


def test_split_sizes_fit_exactly_at_the_suggested_limits():
    length, fractions = 100, (0.15, 0.15)
    window = largest_window(length, 10, *fractions)
    horizon = largest_horizon(length, 40, *fractions)
    assert window is not None and fits(length, window, 10, *fractions)
    assert not fits(length, window + 1, 10, *fractions)
    assert horizon is not None and fits(length, 40, horizon, *fractions)
    assert not fits(length, 40, horizon + 1, *fractions)
    assert largest_window(length, 10, *fractions, patch_len=8) == window // 8 * 8
    assert largest_horizon(10, 9, *fractions) is None


def test_too_few_points_names_a_window_and_a_horizon_that_fit():
    message = too_few_points("s", 100, "train", 96, 24, 0.15, 0.15)
    assert "series 's' has 100 points: too few for a train split with window=96 and horizon=24" in message
    # 15 validation and test rows: no window fits a horizon of 24, nor any horizon a window of 96
    assert "; use --horizon 15 with --window 55 (or less), or supply more data" in message
    assert fits(100, 55, 15, 0.15, 0.15) and not fits(100, 56, 15, 0.15, 0.15)
    message = too_few_points("s", 100, "train", 96, 12, 0.15, 0.15)
    assert "use --window 58 (or less) with --horizon 12, or supply more data" in message
    message = too_few_points("s", 100, "train", 60, 24, 0.15, 0.15)
    assert "use --horizon 10 (or less) with --window 60, or supply more data" in message
    shortest = too_few_points("long", 1000, "val", 96, 24, 0.15, 0.15, shortest=100)
    assert "the shortest series has 100 points" in shortest
    assert "neither" in too_few_points("s", 4, "train", 96, 24, 0.15, 0.15)
