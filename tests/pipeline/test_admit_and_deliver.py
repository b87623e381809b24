"""Admit, claim, send and settle on both databases, with the simulator as provider."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from dispatcher import tables
from dispatcher.outbox import IdempotencyConflict, SendRequest, admit, admit_many
from dispatcher.phone import Phone
from dispatcher.policy import Outcome
from dispatcher.providers.simulator import FaultPlan, SimulatorProvider
from dispatcher.store import transaction
from dispatcher.worker import Worker, WorkerSettings

from .conftest import AFTERNOON, CUSTOMER, Shop


def request(message_type: str = "order_status", **changes: object) -> SendRequest:
    values: dict[str, object] = {
        "business": "Sudsy",
        "to": CUSTOMER,
        "message_type": message_type,
        "body": "Your order is ready for pickup.",
    }
    values.update(changes)
    return SendRequest(**values)  # type: ignore[arg-type]


def worker(
    shop: Shop, provider: SimulatorProvider, now: dt.datetime = AFTERNOON
) -> Worker:
    settings = WorkerSettings(provider_timeout=dt.timedelta(seconds=1))
    return Worker(
        shop.db.engine, shop.engine, provider, settings, name="w1", clock=lambda: now
    )


def row(shop: Shop, message_id: int) -> tables.Message:
    with transaction(shop.db.engine, write=False) as session:
        found = session.get(tables.Message, message_id)
        assert found is not None
        return found


def test_order_update_is_queued_then_sent_from_the_transactional_number(
    shop: Shop,
) -> None:
    admitted = admit(shop.db.engine, shop.engine, request(), now=AFTERNOON)
    assert (admitted.state, admitted.outcome, admitted.role) == (
        "queued",
        Outcome.SEND,
        "transactional",
    )
    provider = SimulatorProvider()
    assert worker(shop, provider).step() == 1
    stored = row(shop, admitted.message_id)
    assert stored.state == "sent"
    assert stored.provider_sid is not None
    assert provider.sends_for(stored.correlation) == 1


def test_promotion_without_opt_in_is_suppressed_and_kept(shop: Shop) -> None:
    admitted = admit(shop.db.engine, shop.engine, request("promotion"), now=AFTERNOON)
    assert (admitted.state, admitted.rule_id) == (
        "suppressed",
        "marketing-needs-opt-in",
    )
    assert row(shop, admitted.message_id).reason.startswith(
        "The recipient has not opted"
    )


def test_repeated_idempotency_key_returns_the_first_result(shop: Shop) -> None:
    first = admit(
        shop.db.engine, shop.engine, request(idempotency_key="k1"), now=AFTERNOON
    )
    again = admit(
        shop.db.engine, shop.engine, request(idempotency_key="k1"), now=AFTERNOON
    )
    assert again.message_id == first.message_id
    assert again.repeated
    with pytest.raises(IdempotencyConflict, match="idempotency_key: already used"):
        admit(
            shop.db.engine,
            shop.engine,
            request(idempotency_key="k1", body="other"),
            now=AFTERNOON,
        )


def message_count(shop: Shop) -> int:
    with transaction(shop.db.engine, write=False) as session:
        return int(session.execute(select(func.count(tables.Message.id))).scalar_one())


def test_a_campaign_run_again_admits_only_what_it_had_not(shop: Shop) -> None:
    shop.opt_in(CUSTOMER)
    others = ("+13055550142", "+13055550143")
    customers = [CUSTOMER, *(Phone.parse(p, field="to") for p in others)]
    campaign = [
        request(
            "promotion", to=phone, body="20% off", idempotency_key=f"c:{phone.e164}"
        )
        for phone in customers
    ]
    first = admit_many(shop.db.engine, shop.engine, campaign[:2], now=AFTERNOON)
    assert (first.admitted, first.repeated) == (2, 0)
    assert first.by_rule == {"marketing-send": 1, "marketing-needs-opt-in": 1}
    # The whole list again, with one recipient twice: only the new one is written.
    again = admit_many(
        shop.db.engine, shop.engine, [*campaign, campaign[2]], now=AFTERNOON
    )
    assert (again.admitted, again.repeated) == (4, 3)
    assert again.by_rule == {"marketing-send": 1, "marketing-needs-opt-in": 3}
    assert message_count(shop) == 3


def test_a_campaign_reusing_a_key_for_another_text_writes_nothing(shop: Shop) -> None:
    admit_many(
        shop.db.engine, shop.engine, [request(idempotency_key="k1")], now=AFTERNOON
    )
    changed = [request(idempotency_key="k2"), request(idempotency_key="k1", body="x")]
    with pytest.raises(IdempotencyConflict, match="idempotency_key: already used"):
        admit_many(shop.db.engine, shop.engine, changed, now=AFTERNOON)
    twice = [request(idempotency_key="k3"), request(idempotency_key="k3", body="y")]
    with pytest.raises(IdempotencyConflict):
        admit_many(shop.db.engine, shop.engine, twice, now=AFTERNOON)
    assert message_count(shop) == 1


def test_opt_out_committed_after_queueing_wins_at_claim(shop: Shop) -> None:
    shop.opt_in(CUSTOMER)
    admitted = admit(shop.db.engine, shop.engine, request("promotion"), now=AFTERNOON)
    assert admitted.state == "queued"
    shop.opt_out(CUSTOMER)
    provider = SimulatorProvider()
    worker(shop, provider).step()
    stored = row(shop, admitted.message_id)
    assert (stored.state, stored.rule_id) == ("suppressed", "opted-out-of-scope")
    assert provider.sends_for(stored.correlation) == 0
    with transaction(shop.db.engine, write=False) as session:
        events = session.execute(select(tables.DecisionEvent)).scalars().all()
    assert [e.rule_id for e in events] == ["opted-out-of-scope"]


def test_quiet_hours_defer_to_the_next_allowed_minute(shop: Shop) -> None:
    night = dt.datetime(2026, 12, 4, 3, 0, tzinfo=dt.UTC)  # 22:00 in New York
    admitted = admit(shop.db.engine, shop.engine, request(), now=night)
    assert (admitted.state, admitted.outcome) == ("queued", Outcome.DEFER)
    assert admitted.not_before == dt.datetime(2026, 12, 4, 13, 0, tzinfo=dt.UTC)
    provider = SimulatorProvider()
    assert worker(shop, provider, night).step() == 0
    morning = dt.datetime(2026, 12, 4, 13, 0, tzinfo=dt.UTC)
    assert worker(shop, provider, morning).step() == 1
    assert row(shop, admitted.message_id).state == "sent"


def test_provider_21610_writes_the_opt_out_for_that_numbers_scope(shop: Shop) -> None:
    from dispatcher import consent
    from dispatcher.facts import ConsentState

    admitted = admit(shop.db.engine, shop.engine, request(), now=AFTERNOON)
    provider = SimulatorProvider(faults=FaultPlan(send_errors={CUSTOMER.e164: 21610}))
    worker(shop, provider).step()
    assert row(shop, admitted.message_id).state == "suppressed"
    with transaction(shop.db.engine, write=False) as session:
        states = consent.states(session, shop.policy, CUSTOMER, shop.business_id)
    assert states["transactional"] is ConsentState.OPTED_OUT
    assert states["marketing"] is ConsentState.NONE


def test_unknown_outcome_is_reconciled_not_resent(shop: Shop) -> None:
    admitted = admit(shop.db.engine, shop.engine, request(), now=AFTERNOON)
    provider = SimulatorProvider(
        faults=FaultPlan(unknown_outcome_rate=1.0), wall_clock=lambda: AFTERNOON
    )
    worker(shop, provider).step()
    stored = row(shop, admitted.message_id)
    assert stored.state == "unknown"
    later = AFTERNOON + dt.timedelta(seconds=5)
    worker(shop, provider, later).step()
    stored = row(shop, admitted.message_id)
    assert stored.state == "sent"
    assert provider.sends_for(stored.correlation) == 1


def test_retryable_error_backs_off_then_dead_letters(shop: Shop) -> None:
    admitted = admit(shop.db.engine, shop.engine, request(), now=AFTERNOON)
    provider = SimulatorProvider(faults=FaultPlan(send_errors={CUSTOMER.e164: 30003}))
    now = AFTERNOON
    for _ in range(5):
        worker(shop, provider, now).step()
        now += dt.timedelta(hours=1)
    stored = row(shop, admitted.message_id)
    assert stored.state == "dead"
    assert stored.attempts == 3
    assert stored.error_code == 30003
