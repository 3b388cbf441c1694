"""Alarm episodes: one alarm per anomalous stretch instead of one per flagged point.

`EpisodeTracker` consumes scored points one at a time. An episode *opens* at a flagged point (or, when a trigger
rule is used, at the point where the rule fires) and stays open while points keep being flagged; it *resolves*
at the `resolve_after`-th consecutive unflagged point (default 3). Each step returns the `AlarmEvent`s it caused:
`opened` when an episode starts and `resolved` when it ends. Events carry an immutable `Episode` snapshot, so
later steps never change an event already handed out.

Timestamps are opaque to the tracker (never compared or subtracted); they must be `int`, `float` or `str`
(epoch seconds or ISO-8601 strings) so that the state is JSON-serialisable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, Self

import numpy as np

from app.anomaly._validation import check_kind, positive_int, short, state_field

Timestamp = int | float | str
EventKind = Literal["opened", "resolved"]


@dataclass(frozen=True)
class PointRecord:
    """The scored point an episode reports as its peak."""

    timestamp: Timestamp
    score: float  # NaN when the point had no forecast
    direction: str | None
    value: float
    expected: float
    lower: float
    upper: float


@dataclass(frozen=True)
class Episode:
    """One anomalous stretch, from the first flagged point to resolution.

    The product's one episode type: the tracker's events, a stream's open alarm, the stored episodes the API
    lists and the webhook payloads all use it. A stream's episodes carry naive-UTC ISO strings (`to_state_iso`)
    as timestamps.
    """

    started_at: Timestamp  # first flagged point of the run that opened the episode
    opened_at: Timestamp  # point at which the alarm was raised
    last_flagged_at: Timestamp
    peak: PointRecord  # highest-scoring flagged point so far
    n_points: int  # points since started_at (inclusive)
    n_flagged: int
    resolved_at: Timestamp | None = None

    @property
    def peak_timestamp(self) -> Timestamp:
        return self.peak.timestamp

    @property
    def peak_score(self) -> float:
        return self.peak.score

    @property
    def peak_value(self) -> float:
        return self.peak.value

    @property
    def peak_expected(self) -> float | None:
        """The peak's forecast median; None when the point had no forecast."""
        return None if math.isnan(self.peak.expected) else self.peak.expected

    @property
    def direction(self) -> str | None:
        """Direction of the residual at the peak ("up" / "down")."""
        return self.peak.direction

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable representation (NaN scores become None)."""
        data = asdict(self)
        data["peak"] = _record_to_dict(self.peak)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        fields = {key: state_field(data, key, "Episode") for key in cls.__dataclass_fields__}
        fields["peak"] = _record_from_dict(fields["peak"])
        return cls(**fields)


@dataclass(frozen=True)
class AlarmEvent:
    """Emitted by `EpisodeTracker.step`: an episode opened or resolved."""

    kind: EventKind
    episode: Episode


class EpisodeTracker:
    """Groups flagged points into episodes; O(1) per point (see module docstring).

    Args:
        resolve_after: consecutive unflagged points that close an open episode.
    """

    def __init__(self, resolve_after: int = 3) -> None:
        self.resolve_after = positive_int("resolve_after", resolve_after)
        self._episode: Episode | None = None
        self._unflagged_run = 0  # consecutive unflagged points (while an episode is open)
        self._run_start: Timestamp | None = None  # first point of the current flagged run
        self._run_length = 0
        self._run_peak: PointRecord | None = None  # peak of the current flagged run

    @property
    def open_episode(self) -> Episode | None:
        return self._episode

    def step(
        self,
        timestamp: Timestamp,
        flagged: bool,
        score: float,
        direction: str | None,
        value: float,
        expected: float,
        lower: float,
        upper: float,
        trigger: bool | None = None,
    ) -> list[AlarmEvent]:
        """Consume one point; returns the events it caused (empty, opened, or resolved).

        `trigger` decides whether an episode may open at this point (default: `flagged`). Alarm policies pass
        the output of their trigger rule here; raw `flagged` still extends and resolves open episodes.
        """
        record = validate_point(timestamp, score, direction, value, expected, lower, upper)
        is_flagged = _as_bool("flagged", flagged)
        opens = is_flagged if trigger is None else _as_bool("trigger", trigger)
        return self._step_core(record, is_flagged, opens)

    def _step_core(self, record: PointRecord, flagged: bool, trigger: bool) -> list[AlarmEvent]:
        self._track_run(record, flagged)
        if self._episode is None:
            return self._maybe_open(record, trigger)
        return self._extend_or_resolve(record, flagged)

    def _track_run(self, record: PointRecord, flagged: bool) -> None:
        if not flagged:
            self._run_start, self._run_length, self._run_peak = None, 0, None
            return
        if self._run_start is None:
            self._run_start = record.timestamp
        self._run_length += 1
        self._run_peak = _higher(self._run_peak, record)

    def _maybe_open(self, record: PointRecord, trigger: bool) -> list[AlarmEvent]:
        if not trigger:
            return []
        run_start, run_peak = self._run_start, self._run_peak
        if run_start is not None and run_peak is not None:  # the trigger fired inside a flagged run
            started_at, peak, n_points, self._unflagged_run = run_start, run_peak, self._run_length, 0
        else:
            started_at, peak, n_points, self._unflagged_run = record.timestamp, record, 1, 1
        self._episode = Episode(
            started_at=started_at,
            opened_at=record.timestamp,
            last_flagged_at=record.timestamp,
            peak=peak,
            n_points=n_points,
            n_flagged=self._run_length,
        )
        return [AlarmEvent("opened", self._episode)]

    def _extend_or_resolve(self, record: PointRecord, flagged: bool) -> list[AlarmEvent]:
        episode = self._episode
        assert episode is not None
        if flagged:
            self._unflagged_run = 0
            self._episode = replace(
                episode,
                last_flagged_at=record.timestamp,
                peak=_higher(episode.peak, record),
                n_points=episode.n_points + 1,
                n_flagged=episode.n_flagged + 1,
            )
            return []
        self._unflagged_run += 1
        self._episode = replace(episode, n_points=episode.n_points + 1)
        if self._unflagged_run < self.resolve_after:
            return []
        resolved = replace(self._episode, resolved_at=record.timestamp)
        self._episode, self._unflagged_run = None, 0
        return [AlarmEvent("resolved", resolved)]

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "EpisodeTracker",
            "resolve_after": self.resolve_after,
            "episode": None if self._episode is None else self._episode.to_dict(),
            "unflagged_run": self._unflagged_run,
            "run_start": self._run_start,
            "run_length": self._run_length,
            "run_peak": None if self._run_peak is None else _record_to_dict(self._run_peak),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_kind(state, "EpisodeTracker", cls.__name__)
        name = cls.__name__
        tracker = cls(resolve_after=state_field(state, "resolve_after", name))
        episode = state_field(state, "episode", name)
        run_peak = state_field(state, "run_peak", name)
        tracker._episode = None if episode is None else Episode.from_dict(episode)
        tracker._unflagged_run = int(state_field(state, "unflagged_run", name))
        tracker._run_start = state_field(state, "run_start", name)
        tracker._run_length = int(state_field(state, "run_length", name))
        tracker._run_peak = None if run_peak is None else _record_from_dict(run_peak)
        return tracker


def validate_point(
    timestamp: Any,
    score: Any,
    direction: Any,
    value: Any,
    expected: Any,
    lower: Any,
    upper: Any,
) -> PointRecord:
    """A `PointRecord` from one scored point; numbers may be NaN (no forecast), timestamps int/float/str."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float, str, np.integer, np.floating)):
        raise ValueError(
            f"timestamp must be an int, float or str; got {short(timestamp)} ({type(timestamp).__name__}). "
            "Pass epoch seconds or an ISO-8601 string (e.g. ts.isoformat()) so the state stays JSON-serialisable."
        )
    if direction not in ("up", "down", None):
        raise ValueError(
            f"direction must be 'up', 'down' or None; got {short(direction)}. Pass the residual side."
        )
    ts: Timestamp = timestamp.item() if isinstance(timestamp, (np.integer, np.floating)) else timestamp
    return PointRecord(
        timestamp=ts,
        score=_number("score", score),
        direction=direction,
        value=_number("value", value),
        expected=_number("expected", expected),
        lower=_number("lower", lower),
        upper=_number("upper", upper),
    )


def _higher(current: PointRecord | None, candidate: PointRecord) -> PointRecord:
    """The record with the higher score (NaN never wins; ties keep the earlier one)."""
    if current is None or (not math.isnan(candidate.score) and not candidate.score <= current.score):
        return candidate
    return current


def _record_to_dict(record: PointRecord) -> dict[str, Any]:
    data = asdict(record)
    for key in ("score", "value", "expected", "lower", "upper"):
        data[key] = None if math.isnan(data[key]) else data[key]
    return data


def _record_from_dict(data: dict[str, Any]) -> PointRecord:
    fields = {key: state_field(data, key, "PointRecord") for key in PointRecord.__dataclass_fields__}
    for key in ("score", "value", "expected", "lower", "upper"):
        fields[key] = math.nan if fields[key] is None else float(fields[key])
    return PointRecord(**fields)


def _number(name: str, value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(
            f"{name} must be a number (NaN/None when unknown); got {short(value)}. Pass a float."
        )
    return float(value)


def _as_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool; got {short(value)}. Pass True or False.")
    return bool(value)
