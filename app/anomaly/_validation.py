"""Input checks shared by the public methods of `app.anomaly`.

Every check raises `ValueError` whose message names the parameter, shows the offending value and says how to
fix it. Private `_..._core` methods never validate: they trust what the public method handed them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def short(value: Any, limit: int = 80) -> str:
    """A bounded repr for error messages (arrays are summarised, not dumped)."""
    if isinstance(value, np.ndarray):
        text = np.array2string(value, threshold=6, edgeitems=3, precision=4)
        text = f"array(shape={value.shape}, {text})"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def float_array(name: str, value: Any, ndim: int) -> FloatArray:
    """`value` as a float64 array with exactly `ndim` dimensions."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be numeric (array-like of floats); got {short(value)}. "
            f"Pass a {ndim}-D sequence or numpy array of numbers."
        ) from exc
    if arr.ndim != ndim:
        raise ValueError(
            f"{name} must be {ndim}-dimensional; got shape {arr.shape} ({short(value)}). "
            f"Reshape it to {ndim} dimension(s)."
        )
    return arr


def require_finite(name: str, arr: FloatArray, fix: str, ignore: npt.NDArray[np.bool_] | None = None) -> None:
    """Raise unless every element of `arr` is finite (elements where `ignore` is True are skipped)."""
    bad = ~np.isfinite(arr)
    if ignore is not None:
        bad &= ~ignore
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        where = first if len(first) > 1 else first[0]
        raise ValueError(
            f"{name} must be finite; got {float(arr[first])!r} at index {where} "
            f"({int(bad.sum())} non-finite value(s)). {fix}"
        )


def real_number(name: str, value: Any) -> float:
    """`value` as a finite float (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number; got {short(value)}. Pass an int or float.")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite; got {result!r}. Pass a finite number.")
    return result


def in_open_interval(name: str, value: Any, low: float, high: float, fix: str) -> float:
    """`value` as a float strictly between `low` and `high`."""
    result = real_number(name, value)
    if not low < result < high:
        raise ValueError(f"{name} must lie strictly between {low} and {high}; got {result!r}. {fix}")
    return result


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """`value` as an int >= `minimum` (bools and floats rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {short(value)}. Pass a whole number.")
    if value < minimum:
        raise ValueError(
            f"{name} must be an integer >= {minimum}; got {int(value)}. Pass at least {minimum}."
        )
    return int(value)


def state_field(state: Any, key: str, owner: str) -> Any:
    """`state[key]`, with a clear error when `state` is not a dict produced by `owner.to_state()`."""
    if not isinstance(state, dict):
        raise ValueError(
            f"state must be a dict produced by {owner}.to_state(); got {short(state)}. "
            f"Pass the dict that to_state() returned (after JSON round trip is fine)."
        )
    if key not in state:
        raise ValueError(
            f"state is missing key {key!r} (keys: {sorted(state)}); it was not produced by {owner}.to_state(). "
            f"Pass the dict that {owner}.to_state() returned."
        )
    return state[key]


def check_kind(state: Any, kind: str, owner: str) -> None:
    """Raise unless `state["kind"] == kind` (guards against restoring the wrong class)."""
    found = state_field(state, "kind", owner)
    if found != kind:
        raise ValueError(
            f"state['kind'] is {found!r} but {owner}.from_state expects {kind!r}. "
            f"Restore this state with the class that produced it."
        )
