"""Per-stream metrics on /metrics (opt-in: `stream_metrics`), so Grafana panels and Alertmanager rules can use
what tswatch found:

- `tswatch_stream_score{stream}`: the score of the stream's newest stored point (absent while the stream
  learns, or when its newest reading was missing);
- `tswatch_stream_alarm_open{stream}`: 1 while the stream has an open alarm, else 0;
- `tswatch_stream_metrics_omitted`: streams left out because of the bound.

Cardinality is bounded by `stream_metrics_max`: the first streams by id are exported, the others are left out
(and counted in `tswatch_stream_metrics_omitted`); raise the bound or delete unused streams to see them. The
values are read from the database at each scrape (every replica exports the same), off the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.concurrency import run_blocking
from app.storage.database import Database
from app.streams.queries import StreamHealth, stream_health


class _Snapshot(Collector):
    """The stream metrics of one scrape."""

    def __init__(self, health: list[StreamHealth], total: int) -> None:
        self.health = health
        self.total = total

    def collect(self) -> Iterator[GaugeMetricFamily]:
        score = GaugeMetricFamily(
            "tswatch_stream_score", "Score of the stream's newest stored point.", labels=["stream"]
        )
        alarm = GaugeMetricFamily(
            "tswatch_stream_alarm_open", "1 while the stream has an open alarm, else 0.", labels=["stream"]
        )
        for item in self.health:
            if item.score is not None:
                score.add_metric([item.id], item.score)
            alarm.add_metric([item.id], 1.0 if item.alarm_open else 0.0)
        omitted = GaugeMetricFamily(
            "tswatch_stream_metrics_omitted",
            "Streams not exported because of stream_metrics_max (the first streams by id are exported).",
            value=float(self.total - len(self.health)),
        )
        yield from (score, alarm, omitted)


class StreamMetrics:
    def __init__(self, database: Database, max_streams: int) -> None:
        self.database = database
        self.max_streams = max_streams

    async def render(self) -> bytes:
        """The stream metrics in the text exposition format (to append to the server's own)."""
        health, total = await run_blocking(stream_health, self.database, self.max_streams)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(health, total))
        return generate_latest(registry)
