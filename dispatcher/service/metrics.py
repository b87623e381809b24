"""Prometheus metrics of one service process, in a registry of its own (no globals).

Counted in the process: admissions by decision outcome and sending role, inbound replies
by role and keyword kind, webhook rejections by endpoint and reason, and how long a
decision and a webhook take. Read from the database at scrape time, so that they hold
for every process sharing it: messages by state and role (what the workers did) and the
queue depth per lane.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine as DbEngine
from sqlalchemy import func, select
from sqlmodel import col

from .. import tables
from ..outbox import LANES, OTHER_LANE
from ..store import transaction

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def lane_names() -> dict[int, str]:
    names: dict[int, list[str]] = {}
    for category, lane in LANES.items():
        names.setdefault(lane, []).append(category)
    result = {lane: "+".join(sorted(cats)) for lane, cats in names.items()}
    result[OTHER_LANE] = "other"
    return result


class Metrics:
    """The service's metrics. :meth:`render` produces the text exposition format."""

    def __init__(self, db: DbEngine | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sends = Counter(
            "dispatcher_sends",
            "Messages admitted through the API, by decision outcome and sending role.",
            ["outcome", "role"],
            registry=self.registry,
        )
        self.inbound = Counter(
            "dispatcher_inbound",
            "Inbound SMS received, by the role of the number and the keyword kind.",
            ["role", "kind"],
            registry=self.registry,
        )
        self.webhook_rejections = Counter(
            "dispatcher_webhook_rejections",
            "Webhook requests refused, by endpoint and reason.",
            ["endpoint", "reason"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "dispatcher_decision_seconds",
            "Time to decide and record one message (admission), in seconds.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.webhook_seconds = Histogram(
            "dispatcher_webhook_seconds",
            "Time to handle one webhook, in seconds.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        if db is not None:
            self.registry.register(_StoredCollector(db))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoredCollector(Collector):
    """Gauges read from the messages table when Prometheus scrapes."""

    def __init__(self, db: DbEngine) -> None:
        self.db = db
        self.lanes = lane_names()

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        message = tables.Message
        with transaction(self.db, write=False) as session:
            queued = session.execute(
                select(col(message.lane), func.count())
                .where(col(message.state) == "queued")
                .group_by(col(message.lane))
            ).all()
            by_state = session.execute(
                select(col(message.state), col(message.role), func.count()).group_by(
                    col(message.state), col(message.role)
                )
            ).all()
        depth = GaugeMetricFamily(
            "dispatcher_queue_depth",
            "Messages queued for a worker, per lane.",
            labels=["lane"],
        )
        counts = dict.fromkeys(self.lanes.values(), 0)
        for lane, count in queued:
            name = self.lanes.get(lane, "other")
            counts[name] = counts.get(name, 0) + count
        for name, count in sorted(counts.items()):
            depth.add_metric([name], count)
        yield depth
        stored = GaugeMetricFamily(
            "dispatcher_messages",
            "Messages in the database by state and sending role (all processes).",
            labels=["state", "role"],
        )
        for state, role, count in by_state:
            stored.add_metric([state, role or "none"], count)
        yield stored
