"""The label rule: series -> stream ids (order, missing labels, unsafe characters, long ids)."""

from __future__ import annotations

import pytest

from app.prometheus.labels import LabelRule, safe_id
from app.settings import Settings
from app.streams.service import MAX_STREAM_ID, check_stream_id


def test_values_in_rule_order_joined_by_commas() -> None:
    rule = LabelRule.of(["__name__", "instance"])
    labels = {"instance": "db1:9100", "job": "node", "__name__": "node_load1"}
    assert rule.stream_id(labels) == "node_load1,db1:9100"
    assert LabelRule.of(["instance", "__name__"]).stream_id(labels) == "db1:9100,node_load1"


def test_missing_labels_count_as_empty_and_no_match_is_none() -> None:
    rule = LabelRule.of(["__name__", "instance"])
    assert rule.stream_id({"__name__": "up"}) == "up,"
    assert rule.stream_id({"job": "node"}) is None
    assert rule.stream_id({"__name__": "", "instance": ""}) is None


def test_unsafe_characters_become_underscores() -> None:
    rule = LabelRule.of(["__name__", "path"])
    stream = rule.stream_id({"__name__": "hits", "path": "/api/v1?x=1#a%20 b\tc\\d\u00e9"})
    assert stream == "hits,_api_v1_x=1_a_20_b_c_d_"
    assert stream is not None
    check_stream_id(stream)


def test_long_ids_are_cut_with_a_hash_that_keeps_them_distinct() -> None:
    first, second = safe_id("x" * 300 + "a"), safe_id("x" * 300 + "b")
    assert len(first) == len(second) == MAX_STREAM_ID
    assert first != second and first.startswith("x" * 150)
    check_stream_id(first)
    assert safe_id("x" * MAX_STREAM_ID) == "x" * MAX_STREAM_ID


@pytest.mark.parametrize("names", [[], ["", " "], ["a", "a"]])
def test_rules_need_distinct_label_names(names: list[str]) -> None:
    with pytest.raises(ValueError):
        LabelRule.of(names)


def test_the_rule_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSWATCH_REMOTE_WRITE_LABELS", "__name__, job ,instance")
    assert LabelRule.of(Settings().remote_write_labels).labels == ("__name__", "job", "instance")
    assert LabelRule.of(Settings(_env_file=None, remote_write_labels="a").remote_write_labels).labels == (
        "a",
    )
