"""Which window and horizon a series is long enough for, and the "too few points" message that says so.

A series fits a (window, horizon) when each chronological part (train, validation, test; `SplitBounds`) has at
least one forecast origin. The message for one that does not fit names the largest window for the requested
horizon and the largest horizon for the requested window, computed over the shortest series (every series of
a global model has to fit).
"""

from __future__ import annotations

from app.forecasting.windows import SplitBounds

MIN_WINDOW = 2  # TrainingConfig's lower bound
PARTS = ("train", "val", "test")


def fits(length: int, window: int, horizon: int, val_fraction: float, test_fraction: float) -> bool:
    """Every part of a series of `length` points has a forecast origin for this window and horizon."""
    split = SplitBounds.from_fractions(length, val_fraction, test_fraction)
    return all(len(split.origins(part, window, horizon)) for part in PARTS)


def largest_window(
    length: int, horizon: int, val_fraction: float, test_fraction: float, patch_len: int = 1
) -> int | None:
    """The largest window (a multiple of `patch_len`, at least 2) that fits with `horizon`; None if none."""
    split = SplitBounds.from_fractions(length, val_fraction, test_fraction)
    window = (split.train_end - horizon) // patch_len * patch_len  # train needs window + horizon rows
    while window >= MIN_WINDOW:
        if fits(length, window, horizon, val_fraction, test_fraction):
            return window
        window -= patch_len
    return None


def largest_horizon(length: int, window: int, val_fraction: float, test_fraction: float) -> int | None:
    """The largest horizon that fits with `window`; None if none does."""
    split = SplitBounds.from_fractions(length, val_fraction, test_fraction)
    horizon = min(split.val_end - split.train_end, split.length - split.val_end, split.train_end - window)
    while horizon >= 1:
        if fits(length, window, horizon, val_fraction, test_fraction):
            return horizon
        horizon -= 1
    return None


def too_few_points(
    series_id: str,
    length: int,
    part: str,
    window: int,
    horizon: int,
    val_fraction: float,
    test_fraction: float,
    *,
    patch_len: int = 1,
    shortest: int | None = None,
) -> str:
    """Why a series is too short for a split, and which --window / --horizon would fit."""
    shortest = length if shortest is None else min(shortest, length)
    message = (
        f"series {series_id!r} has {length} points: too few for a {part} split with "
        f"window={window} and horizon={horizon}"
    )
    options = []
    best_window = largest_window(shortest, horizon, val_fraction, test_fraction, patch_len)
    if best_window is not None:
        options.append(f"--window {best_window} (or less) with --horizon {horizon}")
    best_horizon = largest_horizon(shortest, window, val_fraction, test_fraction)
    if best_horizon is not None:
        options.append(f"--horizon {best_horizon} (or less) with --window {window}")
    if not options:  # both must shrink: the longest horizon any window allows, with its longest window
        short_horizon = largest_horizon(shortest, MIN_WINDOW, val_fraction, test_fraction)
        if short_horizon is not None:
            short_window = largest_window(shortest, short_horizon, val_fraction, test_fraction, patch_len)
            if short_window is not None:
                options.append(f"--horizon {short_horizon} with --window {short_window} (or less)")
    if options:
        where = "" if shortest == length else f" (the shortest series has {shortest} points)"
        return f"{message}; use {' or '.join(options)}{where}, or supply more data"
    return f"{message}; neither a smaller window nor a smaller horizon fits, supply more data"
