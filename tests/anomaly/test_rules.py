"""Alarm rules, episode tracking and AlarmPolicy on hand-made flag sequences."""

import json

import pytest

from app.anomaly import AlarmPolicy, ConsecutiveRule, CooldownRule, EpisodeTracker, KOfNRule


def as_flags(text: str) -> list[bool]:
    return [c == "1" for c in text]


def run_rule(rule, text: str) -> str:
    return "".join("1" if rule.step(flag) else "0" for flag in as_flags(text))


def feed(stepper, text: str, scores=None, start: int = 0) -> list[tuple[str, int]]:
    """Step points t = start.. with the given flags; returns (kind, timestamp of the step) per event."""
    events = []
    for offset, flag in enumerate(as_flags(text)):
        t = start + offset
        score = scores[offset] if scores else (0.999 if flag else 0.5)
        direction = "up" if t % 2 == 0 else "down"
        for event in stepper.step(t, flag, score, direction, float(t), 0.0, -1.0, 1.0):
            events.append((event.kind, t, event.episode))
    return events


def roundtrip(state: dict) -> dict:
    return json.loads(json.dumps(state, allow_nan=False))


# ---------------------------------------------------------------- trigger rules
def test_consecutive_rule():
    assert run_rule(ConsecutiveRule(1), "0110100") == "0110100"
    assert run_rule(ConsecutiveRule(3), "0111101110011") == "0001100010000"


def test_k_of_n_rule():
    assert run_rule(KOfNRule(2, 3), "10010100") == "00000100"
    assert run_rule(KOfNRule(1, 1), "0110") == "0110"
    assert run_rule(KOfNRule(3, 5), "1101100001") == "0001110000"


def test_cooldown_rule_counts_points_after_resolution():
    rule = CooldownRule(2)
    allowed = []
    for resolved in [False, True, False, False, False]:
        allowed.append(rule.allows_open)
        rule.step(resolved)
    assert allowed == [True, True, False, False, True]


# ---------------------------------------------------------------- episode tracker
def test_episode_opens_and_resolves_at_exact_times():
    tracker = EpisodeTracker(resolve_after=3)
    scores = [0.5, 0.99, 0.9995, 0.5, 0.999, 0.5, 0.5, 0.5, 0.999, 0.5, 0.5, 0.5]
    events = feed(tracker, "011010001000", scores)
    assert [(kind, t) for kind, t, _ in events] == [
        ("opened", 1),
        ("resolved", 7),
        ("opened", 8),
        ("resolved", 11),
    ]
    first = events[1][2]
    assert (first.started_at, first.opened_at, first.last_flagged_at, first.resolved_at) == (1, 1, 4, 7)
    assert first.peak_score == 0.9995 and first.peak.timestamp == 2 and first.direction == "up"
    assert (first.n_flagged, first.n_points) == (3, 7)
    opened = events[0][2]
    assert (
        opened.resolved_at is None and opened.peak_score == 0.99 and opened.direction == "down"
    )  # snapshot at opening
    assert tracker.open_episode is None


def test_episode_stays_open_while_gaps_are_shorter_than_resolve_after():
    tracker = EpisodeTracker(resolve_after=2)
    events = feed(tracker, "1010101000")
    assert [(kind, t) for kind, t, _ in events] == [("opened", 0), ("resolved", 8)]
    assert events[-1][2].n_flagged == 4


def test_open_episode_survives_state_round_trip():
    tracker = EpisodeTracker(resolve_after=3)
    feed(tracker, "0110", start=0)
    restored = EpisodeTracker.from_state(roundtrip(tracker.to_state()))
    assert feed(restored, "01000", start=4) == feed(tracker, "01000", start=4)
    assert restored.to_state() == tracker.to_state()


# ---------------------------------------------------------------- alarm policy
def test_policy_consecutive_trigger_reports_run_start_and_run_peak():
    policy = AlarmPolicy(trigger=ConsecutiveRule(2), resolve_after=3)
    scores = [0.999, 0.5, 0.9999, 0.999, 0.998, 0.5, 0.5, 0.5]
    events = feed(policy, "10111000", scores)
    assert [(kind, t) for kind, t, _ in events] == [("opened", 3), ("resolved", 7)]
    opened = events[0][2]
    assert (opened.started_at, opened.opened_at) == (2, 3)
    assert opened.peak.timestamp == 2 and opened.peak_score == 0.9999  # peak from before the trigger fired
    assert events[1][2].n_points == 6


def test_policy_k_of_n_trigger():
    policy = AlarmPolicy(trigger=KOfNRule(2, 4), resolve_after=2)
    events = feed(policy, "1000100100000")
    assert [(kind, t) for kind, t, _ in events] == [("opened", 7), ("resolved", 9)]


def test_policy_cooldown_blocks_openings_after_resolution():
    policy = AlarmPolicy(cooldown=2, resolve_after=1)
    events = feed(policy, "101101001")
    assert [(kind, t) for kind, t, _ in events] == [
        ("opened", 0),
        ("resolved", 1),
        ("opened", 5),
        ("resolved", 6),
    ]


def test_policy_opens_when_cooldown_expires_during_a_run():
    policy = AlarmPolicy(cooldown=2, resolve_after=1)
    events = feed(policy, "101111")
    assert [(kind, t) for kind, t, _ in events] == [("opened", 0), ("resolved", 1), ("opened", 4)]
    assert events[-1][2].started_at == 2


def test_policy_default_opens_on_first_flag():
    events = feed(AlarmPolicy(), "00100000")
    assert [(kind, t) for kind, t, _ in events] == [("opened", 2), ("resolved", 5)]


@pytest.mark.parametrize("split", [1, 3, 5, 8])
def test_policy_state_round_trip_gives_identical_events(split):
    flags = "1101100011110000101"
    original = AlarmPolicy(trigger=KOfNRule(2, 3), cooldown=2, resolve_after=2)
    feed(original, flags[:split])
    restored = AlarmPolicy.from_state(roundtrip(original.to_state()))
    assert feed(restored, flags[split:], start=split) == feed(original, flags[split:], start=split)


@pytest.mark.parametrize("rule", [ConsecutiveRule(3), KOfNRule(2, 4), CooldownRule(5)])
def test_rule_state_round_trip(rule):
    if isinstance(rule, CooldownRule):
        rule.step(True)
        rule.step(False)
    else:
        run_rule(rule, "10110")
    restored = type(rule).from_state(roundtrip(rule.to_state()))
    assert restored.to_state() == rule.to_state()
    if not isinstance(rule, CooldownRule):
        assert run_rule(restored, "0111001") == run_rule(rule, "0111001")


# ---------------------------------------------------------------- validation messages
@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: ConsecutiveRule(0), r"min_points must be an integer >= 1; got 0"),
        (lambda: KOfNRule(4, 3), r"k must be <= n; got k=4, n=3"),
        (lambda: KOfNRule(2.0, 3), r"k must be an integer >= 1; got 2\.0"),
        (lambda: CooldownRule(-1), r"points must be an integer >= 0; got -1"),
        (lambda: EpisodeTracker(resolve_after=0), r"resolve_after must be an integer >= 1; got 0"),
        (lambda: ConsecutiveRule().step(1), r"flagged must be a bool; got 1"),
        (lambda: AlarmPolicy(trigger="x"), r"trigger must be one of .*; got 'x'"),
        (
            lambda: AlarmPolicy().step(object(), True, 1.0, "up", 1.0, 0.0, -1.0, 1.0),
            r"timestamp must be an int, float or str; got <object",
        ),
        (
            lambda: AlarmPolicy().step(1, True, 1.0, "left", 1.0, 0.0, -1.0, 1.0),
            r"direction must be 'up', 'down' or None; got 'left'",
        ),
        (lambda: KOfNRule.from_state({"kind": "ConsecutiveRule"}), r"state\['kind'\] is 'ConsecutiveRule'"),
    ],
)
def test_validation_messages(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
