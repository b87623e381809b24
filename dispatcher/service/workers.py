"""Workers inside the service process: threads running :class:`~dispatcher.worker.Worker`.

The embedded default (SQLite, the simulator) runs them here, so one command gives a
working dispatcher. Each thread has its own provider (the Twilio provider keeps one HTTP
session per thread); the simulator is shared, and its statuses go through the service's
status path, the same one Twilio's callbacks take.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable

import structlog
from sqlalchemy import Engine as DbEngine

from ..engine import Engine
from ..outbox import LANES
from ..providers.base import Provider
from ..store import utc_now
from ..worker import Worker, WorkerSettings

PRIORITY_LANES = (LANES["otp"], LANES["transactional"])

log = structlog.get_logger("dispatcher.service.workers")


class WorkerPool:
    """``size`` worker threads; :meth:`start` and :meth:`stop` are idempotent.

    ``provider_for(i)`` builds the provider of thread ``i``; ``engine`` returns the
    policy's engine in force, read again every round so a reload takes effect.
    """

    def __init__(
        self,
        db: DbEngine,
        engine: Callable[[], Engine],
        provider_for: Callable[[int], Provider],
        *,
        size: int = 2,
        settings: WorkerSettings | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.engine = engine
        self.provider_for = provider_for
        self.size = size
        self.settings = settings or WorkerSettings()
        self.clock = clock
        self.on_stop = on_stop
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        for i in range(self.size):
            settings = self.settings
            if self.size >= 2 and i == self.size - 1 and settings.lanes is None:
                # The last worker only claims codes, replies and order updates, so they
                # never wait behind a batch of campaign sends (bench/otp_delay_bench.py:
                # OTP p99 0.3 s with it, 2-3.5 s without).
                settings = dataclasses.replace(settings, lanes=PRIORITY_LANES)
            worker = Worker(
                self.db,
                self.engine,
                self.provider_for(i),
                settings,
                name=f"service-worker-{i}",
                clock=self.clock,
            )
            thread = threading.Thread(
                target=self._run, args=(worker,), name=f"worker-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _run(self, worker: Worker) -> None:
        try:
            while not self._stop.is_set():
                try:
                    worker.run(self._stop)
                except Exception:
                    # A round failed (the database went away, say): log it, wait, go on.
                    log.exception("worker_round_failed", worker=worker.name)
                    self._stop.wait(1.0)
        finally:
            worker.provider.close()

    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        if self.on_stop is not None:
            self.on_stop()
