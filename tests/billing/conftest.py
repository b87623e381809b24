"""Billing tests run on the pipeline's fixtures: both databases, a shop with its numbers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from dispatcher.engine import Engine
from dispatcher.policy import Policy
from dispatcher.providers.base import StatusReport
from dispatcher.providers.simulator import FaultPlan, SimulatorProvider
from dispatcher.statuses import apply_status
from dispatcher.worker import Worker, WorkerSettings

from ..data.conftest import Database
from ..pipeline.conftest import (
    _postgres_database,
    _sqlite_database,
    db,
    policy,
    shop,
)

__all__ = ["_postgres_database", "_sqlite_database", "db", "policy", "shop"]


class Clock:
    """A settable clock shared by the worker, the simulator and the status hook."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def simulator(
    db: Database, policy: Policy, clock: Clock, faults: FaultPlan | None = None
) -> SimulatorProvider:
    """A simulator whose status callbacks go through ``apply_status`` at ``clock``."""

    def hook(url: str, form: Mapping[str, str]) -> None:
        apply_status(
            db.engine, policy, StatusReport.from_callback(url, form), now=clock()
        )

    return SimulatorProvider(hook, faults=faults, step=0.0, wall_clock=clock)


def worker(
    db: Database, engine: Engine, provider: SimulatorProvider, clock: Clock
) -> Worker:
    settings = WorkerSettings(provider_timeout=dt.timedelta(seconds=1), batch=50)
    return Worker(db.engine, engine, provider, settings, name="w1", clock=clock)
