"""Alarm rules on per-point flags, and `AlarmPolicy` which turns flags into alarm episodes.

Trigger rules decide when an alarm may open, from the stream of raw point flags:

* `ConsecutiveRule(min_points)`: at least `min_points` consecutive flagged points (ending at this point).
* `KOfNRule(k, n)`: at least `k` flagged points among the last `n` (including this one).

`CooldownRule(points)` blocks any new opening for `points` points after an episode resolves.

`AlarmPolicy` composes trigger + cooldown + `EpisodeTracker`. Default trigger: `ConsecutiveRule(1)`, i.e. the
first flagged point opens the alarm. Rationale: the flags are already calibrated to a false-alarm rate per
normal point (the sensitivity), so requiring 2+ consecutive flags would (a) delay every detection by at least one
point, which NAB-style scoring punishes (only the earliest detection in a window counts), and (b) miss isolated
spikes entirely, the most common anomaly type. Repeated alarms, which scoring charges for, are suppressed by the
episode tracker instead (one alarm per run of flagged points, kept open until `resolve_after` clean points), and
optionally by a cooldown. Use `ConsecutiveRule(2)` or `KOfNRule(3, 10)` for noisy series where single flagged
points are mostly false alarms.

All objects are O(1) per point and serialisable with `to_state()` / `from_state()`.
"""

from __future__ import annotations

from typing import Any, Protocol, Self

import numpy as np

from app.anomaly._validation import check_kind, positive_int, short, state_field
from app.anomaly.episodes import AlarmEvent, Episode, EpisodeTracker, Timestamp, validate_point

__all__ = [
    "AlarmEvent",
    "AlarmPolicy",
    "ConsecutiveRule",
    "CooldownRule",
    "Episode",
    "EpisodeTracker",
    "KOfNRule",
    "TriggerRule",
    "trigger_rule_from_state",
]


class TriggerRule(Protocol):
    """A rule that maps the stream of point flags to "an alarm may open now"."""

    def step(self, flagged: bool) -> bool: ...

    def to_state(self) -> dict[str, Any]: ...


class ConsecutiveRule:
    """Fires while at least `min_points` consecutive points (ending now) are flagged."""

    def __init__(self, min_points: int = 1) -> None:
        self.min_points = positive_int("min_points", min_points)
        self._run = 0

    def step(self, flagged: bool) -> bool:
        return self._step_core(_as_bool(flagged))

    def _step_core(self, flagged: bool) -> bool:
        self._run = self._run + 1 if flagged else 0
        return self._run >= self.min_points

    def to_state(self) -> dict[str, Any]:
        return {"kind": "ConsecutiveRule", "min_points": self.min_points, "run": self._run}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_kind(state, "ConsecutiveRule", cls.__name__)
        rule = cls(state_field(state, "min_points", cls.__name__))
        rule._run = int(state_field(state, "run", cls.__name__))
        return rule


class KOfNRule:
    """Fires while at least `k` of the last `n` points (including this one) are flagged.

    Before `n` points have been seen, the missing points count as unflagged.
    """

    def __init__(self, k: int, n: int) -> None:
        self.n = positive_int("n", n)
        self.k = positive_int("k", k)
        if self.k > self.n:
            raise ValueError(f"k must be <= n; got k={self.k}, n={self.n}. Lower k or widen the window n.")
        self._window = [0] * self.n  # ring buffer of flags
        self._position = 0
        self._count = 0

    def step(self, flagged: bool) -> bool:
        return self._step_core(_as_bool(flagged))

    def _step_core(self, flagged: bool) -> bool:
        self._count += int(flagged) - self._window[self._position]
        self._window[self._position] = int(flagged)
        self._position = (self._position + 1) % self.n
        return self._count >= self.k

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "KOfNRule",
            "k": self.k,
            "n": self.n,
            "window": list(self._window),
            "position": self._position,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_kind(state, "KOfNRule", cls.__name__)
        rule = cls(state_field(state, "k", cls.__name__), state_field(state, "n", cls.__name__))
        window = [int(bool(x)) for x in state_field(state, "window", cls.__name__)]
        if len(window) != rule.n:
            raise ValueError(
                f"state['window'] must hold n={rule.n} flags; got {len(window)}. "
                "Pass the state produced by KOfNRule.to_state()."
            )
        rule._window = window
        rule._position = int(state_field(state, "position", cls.__name__)) % rule.n
        rule._count = sum(window)
        return rule


class CooldownRule:
    """After an episode resolves, blocks new openings for the next `points` points (0 disables it)."""

    def __init__(self, points: int = 0) -> None:
        self.points = positive_int("points", points, minimum=0)
        self._remaining = 0

    @property
    def allows_open(self) -> bool:
        """Whether an alarm may open at the current point."""
        return self._remaining == 0

    def step(self, resolved: bool) -> None:
        """Advance one point; `resolved` says whether an episode resolved at this point."""
        if _as_bool(resolved, "resolved"):
            self._remaining = self.points
        elif self._remaining > 0:
            self._remaining -= 1

    def to_state(self) -> dict[str, Any]:
        return {"kind": "CooldownRule", "points": self.points, "remaining": self._remaining}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_kind(state, "CooldownRule", cls.__name__)
        rule = cls(state_field(state, "points", cls.__name__))
        rule._remaining = int(state_field(state, "remaining", cls.__name__))
        return rule


_TRIGGER_RULES: dict[str, Any] = {"ConsecutiveRule": ConsecutiveRule, "KOfNRule": KOfNRule}


def trigger_rule_from_state(state: dict[str, Any]) -> TriggerRule:
    """Restore a trigger rule of any registered kind."""
    kind = state_field(state, "kind", "TriggerRule")
    if kind not in _TRIGGER_RULES:
        raise ValueError(
            f"state['kind'] must be one of {sorted(_TRIGGER_RULES)}; got {short(kind)}. "
            "Pass the state produced by a trigger rule's to_state()."
        )
    rule: TriggerRule = _TRIGGER_RULES[kind].from_state(state)
    return rule


class AlarmPolicy:
    """Trigger rule + cooldown + episode tracker: per-point flags in, alarm events out.

    Args:
        trigger: when an alarm may open (default `ConsecutiveRule(1)`; see module docstring).
        cooldown: points after a resolution during which no alarm opens (int or `CooldownRule`; default 0).
        resolve_after: consecutive unflagged points that resolve an open episode (default 3).
    """

    def __init__(
        self, trigger: TriggerRule | None = None, cooldown: int | CooldownRule = 0, resolve_after: int = 3
    ) -> None:
        if trigger is not None and type(trigger).__name__ not in _TRIGGER_RULES:
            raise ValueError(
                f"trigger must be one of {sorted(_TRIGGER_RULES)}; got {short(trigger)}. "
                "Pass e.g. ConsecutiveRule(2) or KOfNRule(3, 10)."
            )
        self.trigger: TriggerRule = ConsecutiveRule(1) if trigger is None else trigger
        self.cooldown = cooldown if isinstance(cooldown, CooldownRule) else CooldownRule(cooldown)
        self.tracker = EpisodeTracker(resolve_after)

    @property
    def open_episode(self) -> Episode | None:
        return self.tracker.open_episode

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
    ) -> list[AlarmEvent]:
        """Consume one scored point; returns the alarm events it caused."""
        record = validate_point(timestamp, score, direction, value, expected, lower, upper)
        is_flagged = _as_bool(flagged)
        fires = self.trigger.step(is_flagged)
        events = self.tracker._step_core(record, is_flagged, fires and self.cooldown.allows_open)
        self.cooldown.step(any(event.kind == "resolved" for event in events))
        return events

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "AlarmPolicy",
            "trigger": self.trigger.to_state(),
            "cooldown": self.cooldown.to_state(),
            "tracker": self.tracker.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_kind(state, "AlarmPolicy", cls.__name__)
        policy = cls(
            trigger=trigger_rule_from_state(state_field(state, "trigger", cls.__name__)),
            cooldown=CooldownRule.from_state(state_field(state, "cooldown", cls.__name__)),
        )
        policy.tracker = EpisodeTracker.from_state(state_field(state, "tracker", cls.__name__))
        return policy


def _as_bool(value: Any, name: str = "flagged") -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool; got {short(value)}. Pass True or False.")
    return bool(value)
