"""The simulator provider: SIDs, statuses through the hook, injected faults, reconciliation."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping

import pytest

from dispatcher.config import default_config
from dispatcher.errors import MessageNotFound
from dispatcher.providers import (
    Accepted,
    ErrorAction,
    Failed,
    FaultPlan,
    Match,
    MessageStatus,
    SendRequest,
    SimulatorProvider,
    StatusReport,
    from_config,
)

TO = "+15551234567"
FROM = "+15557654321"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Hook:
    def __init__(self) -> None:
        self.reports: list[StatusReport] = []
        self.calls: list[tuple[str, dict[str, str]]] = []

    def __call__(self, url: str, form: Mapping[str, str]) -> None:
        self.calls.append((url, dict(form)))
        self.reports.append(StatusReport.from_callback(url, form))


def request(ref: str = "row-1", to: str = TO, **changes: object) -> SendRequest:
    return SendRequest(ref, to, FROM, "Your order is ready", **changes)  # type: ignore[arg-type]


def test_statuses_arrive_in_order_through_the_hook() -> None:
    clock, hook = Clock(), Hook()
    sim = SimulatorProvider(hook, clock=clock, step=1.0)
    sent = sim.send(request(status_callback="https://dispatcher.example/status"))
    assert isinstance(sent, Accepted)
    assert sent.status is MessageStatus.QUEUED
    assert len(sent.sid) == 34
    assert sent.sid.startswith("SM")

    assert sim.pump() == 0  # no callback for the initial status
    clock.now = 1.0
    assert sim.pump() == 1
    clock.now = 5.0
    assert sim.pump() == 1
    assert [r.status for r in hook.reports] == [
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
    ]
    url, form = hook.calls[-1]
    assert url == "https://dispatcher.example/status?dispatcher_ref=row-1"
    assert set(form) == {
        "AccountSid",
        "ApiVersion",
        "From",
        "MessageSid",
        "MessageStatus",
        "SmsSid",
        "SmsStatus",
        "To",
    }
    assert hook.reports[-1].correlation_id == "row-1"
    assert sim.fetch(sent.sid).status is MessageStatus.DELIVERED
    assert sim.fetch(sent.sid).segments == 1


def test_without_a_callback_url_statuses_still_carry_the_correlation_id() -> None:
    hook = Hook()
    sim = SimulatorProvider(hook)
    sim.send(request("row-9"))
    assert sim.drain() == 2
    assert [r.correlation_id for r in hook.reports] == ["row-9", "row-9"]


def test_send_errors_per_number() -> None:
    sim = SimulatorProvider(faults=FaultPlan(send_errors={TO: 21610}))
    result = sim.send(request())
    assert isinstance(result, Failed)
    assert result.error.action is ErrorAction.RECORD_OPT_OUT
    assert sim.sends_for("row-1") == 0


@pytest.mark.parametrize(
    ("code", "statuses"),
    [
        (30003, [MessageStatus.SENT, MessageStatus.UNDELIVERED]),
        (30007, [MessageStatus.SENT, MessageStatus.UNDELIVERED]),
        (30034, [MessageStatus.FAILED]),
    ],
)
def test_delivery_errors_arrive_as_callbacks(
    code: int, statuses: list[MessageStatus]
) -> None:
    hook = Hook()
    sim = SimulatorProvider(hook, faults=FaultPlan(delivery_errors={TO: code}))
    assert isinstance(sim.send(request()), Accepted)
    sim.drain()
    assert [r.status for r in hook.reports] == statuses
    assert hook.reports[-1].error_code == code


def test_random_failures_are_seeded() -> None:
    def outcomes() -> list[MessageStatus]:
        hook = Hook()
        sim = SimulatorProvider(hook, faults=FaultPlan(failure_rate=0.3, seed=7))
        for i in range(50):
            sim.send(request(f"r{i}"))
        sim.drain()
        return [r.status for r in hook.reports if r.status.is_final]

    first = outcomes()
    assert first == outcomes()
    assert 5 < first.count(MessageStatus.UNDELIVERED) < 30


def test_unknown_outcome_is_found_by_reconciliation() -> None:
    sim = SimulatorProvider(faults=FaultPlan(unknown_outcome_rate=1.0))
    attempted = dt.datetime.now(dt.UTC)
    result = sim.send(request())
    assert isinstance(result, Failed)
    assert result.error.action is ErrorAction.OUTCOME_UNKNOWN
    found = sim.find(request(), attempted_at=attempted)
    assert found.match is Match.FOUND
    assert found.message is not None
    assert sim.sends_for("row-1") == 1
    assert (
        sim.find(
            request(), attempted_at=attempted, exclude_sids={found.message.sid}
        ).match
        is Match.NOT_FOUND
    )
    assert sim.find(request("other"), attempted_at=attempted).match is Match.NOT_FOUND
    sim.send(request())
    assert sim.find(request(), attempted_at=attempted).match is Match.AMBIGUOUS


def test_fetch_unknown_sid() -> None:
    with pytest.raises(MessageNotFound):
        SimulatorProvider().fetch("SM" + "0" * 32)


def test_background_thread_delivers() -> None:
    done = threading.Event()

    def hook(url: str, form: Mapping[str, str]) -> None:
        if form["MessageStatus"] == "delivered":
            done.set()

    sim = SimulatorProvider(hook, step=0.01)
    sim.start()
    sim.start()  # a second start is harmless
    sim.send(request())
    assert done.wait(5)
    sim.close()


def test_default_config_builds_the_simulator() -> None:
    assert isinstance(from_config(default_config()), SimulatorProvider)
