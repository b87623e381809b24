"""What the ledger bills, once, through the worker and the status callbacks."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text

from dispatcher import billing, tables
from dispatcher.calls import CallReport
from dispatcher.errors import ConstraintViolation
from dispatcher.outbox import SendRequest, admit
from dispatcher.providers.simulator import FaultPlan
from dispatcher.store import transaction

from ..pipeline.conftest import (
    AFTERNOON,
    CUSTOMER,
    GLOBAL,
    MARKETING,
    TRANSACTIONAL,
    Shop,
)
from .conftest import Clock, simulator, worker

LONG = "Your order #1234 is folded and ready. " * 5  # 190 GSM-7 characters: 2 segments


def send(
    shop: Shop,
    message_type: str = "order_status",
    body: str = LONG,
    faults: FaultPlan | None = None,
    **changes: object,
) -> int:
    """Admit one message, run the worker, deliver every callback; the message id."""
    values: dict[str, object] = {
        "business": "Sudsy",
        "to": CUSTOMER,
        "message_type": message_type,
        "body": body,
    }
    values.update(changes)
    admitted = admit(
        shop.db.engine,
        shop.engine,
        SendRequest(**values),
        now=AFTERNOON,  # type: ignore[arg-type]
    )
    clock = Clock(AFTERNOON)
    provider = simulator(shop.db, shop.policy, clock, faults)
    worker(shop.db, shop.engine, provider, clock).step()
    provider.drain()
    return admitted.message_id


def usage(shop: Shop) -> list[tuple[str, str, str, int, str]]:
    with transaction(shop.db.engine, write=False) as session:
        rows = session.execute(
            select(tables.UsageEvent).order_by(tables.UsageEvent.id)  # type: ignore[arg-type]
        ).scalars()
        return [(u.role, u.direction, u.kind, u.units, u.entry) for u in rows]


def state_of(shop: Shop, message_id: int) -> tuple[str, str | None]:
    with transaction(shop.db.engine, write=False) as session:
        row = session.get(tables.Message, message_id)
        assert row is not None
        return row.state, row.provider_status


def test_an_accepted_sms_is_billed_once_per_segment(shop: Shop) -> None:
    message_id = send(shop)
    assert state_of(shop, message_id) == ("sent", "delivered")
    assert usage(shop) == [("transactional", "outbound", "sms", 2, "charge")]


def test_a_suppressed_send_is_not_billed(shop: Shop) -> None:
    message_id = send(shop, "promotion")
    assert state_of(shop, message_id) == ("suppressed", None)
    assert usage(shop) == []


def test_a_send_refused_with_21610_is_not_billed(shop: Shop) -> None:
    message_id = send(shop, faults=FaultPlan(send_errors={CUSTOMER.e164: 21610}))
    assert state_of(shop, message_id) == ("suppressed", None)
    assert usage(shop) == []


def test_a_send_that_fails_after_acceptance_is_billed(shop: Shop) -> None:
    message_id = send(shop, faults=FaultPlan(delivery_errors={CUSTOMER.e164: 30003}))
    assert state_of(shop, message_id) == ("sent", "undelivered")
    assert usage(shop) == [("transactional", "outbound", "sms", 2, "charge")]


def test_a_21610_reported_after_acceptance_is_credited(shop: Shop) -> None:
    message_id = send(shop, faults=FaultPlan(delivery_errors={CUSTOMER.e164: 21610}))
    assert state_of(shop, message_id) == ("sent", "failed")
    assert usage(shop) == [
        ("transactional", "outbound", "sms", 2, "charge"),
        ("transactional", "outbound", "sms", -2, "credit"),
    ]
    with transaction(shop.db.engine, write=False) as session:
        report = billing.usage_report(session, "Sudsy", "2026-12")
    assert [(line.count, line.units) for line in report.lines] == [(0, 0)]


def test_an_mms_is_one_message_whatever_its_text(shop: Shop) -> None:
    shop.opt_in(CUSTOMER)
    send(shop, "promotion", media=("https://example.com/coupon.png",))
    assert usage(shop) == [("marketing", "outbound", "mms", 1, "charge")]


def test_an_otp_is_billed_to_the_business_on_the_global_number(shop: Shop) -> None:
    send(shop, "otp_code", body="Your code is 123456")
    with transaction(shop.db.engine, write=False) as session:
        (row,) = session.execute(select(tables.UsageEvent)).scalars()
    assert (row.business_id, row.role, row.units) == (shop.business_id, "global", 1)


def test_an_unknown_outcome_is_billed_once_when_a_callback_reveals_it(
    shop: Shop,
) -> None:
    message_id = send(shop, faults=FaultPlan(unknown_outcome_rate=1.0))
    # The callbacks proved the provider had it: apply_status billed it.
    assert state_of(shop, message_id) == ("sent", "delivered")
    assert usage(shop) == [("transactional", "outbound", "sms", 2, "charge")]


def test_an_unknown_outcome_reconciled_by_the_worker_is_billed_once(
    shop: Shop,
) -> None:
    admitted = admit(
        shop.db.engine,
        shop.engine,
        SendRequest("Sudsy", CUSTOMER, "order_status", LONG),
        now=AFTERNOON,
    )
    clock = Clock(AFTERNOON)
    provider = simulator(
        shop.db, shop.policy, clock, FaultPlan(unknown_outcome_rate=1.0)
    )
    run = worker(shop.db, shop.engine, provider, clock)
    run.step()
    assert state_of(shop, admitted.message_id)[0] == "unknown"
    clock.now += dt.timedelta(seconds=5)
    run.step()
    assert state_of(shop, admitted.message_id)[0] == "sent"
    provider.drain()
    assert usage(shop) == [("transactional", "outbound", "sms", 2, "charge")]


def test_billing_a_message_again_changes_nothing(shop: Shop) -> None:
    message_id = send(shop)
    with transaction(shop.db.engine) as session:
        billing.bill_message(session, message_id, AFTERNOON)
        billing.bill_message(session, message_id, AFTERNOON)
    assert len(usage(shop)) == 1


def test_the_ledger_is_append_only(shop: Shop) -> None:
    send(shop)
    with (
        pytest.raises(ConstraintViolation),
        transaction(shop.db.engine) as session,
    ):
        session.execute(text("UPDATE usage_events SET units = 0"))


# --- inbound --------------------------------------------------------------------------


def inbound(shop: Shop, sid: str, to: object, body: str, **extra: object) -> object:
    with transaction(shop.db.engine) as session:
        return billing.record_inbound(
            session,
            message_sid=sid,
            to=to,  # type: ignore[arg-type]
            body=body,
            at=AFTERNOON,
            **extra,  # type: ignore[arg-type]
        )


def test_inbound_sms_is_billed_per_segment_to_the_number_written_to(
    shop: Shop,
) -> None:
    assert inbound(shop, "SM1", MARKETING, "STOP") is not None
    assert inbound(shop, "SM2", TRANSACTIONAL, "Is it ready? " * 13) is not None
    assert inbound(shop, "SM3", TRANSACTIONAL, "Merci 🙏", media=0) is not None
    assert usage(shop) == [
        ("marketing", "inbound", "sms", 1, "charge"),
        ("transactional", "inbound", "sms", 2, "charge"),
        ("transactional", "inbound", "sms", 1, "charge"),
    ]


def test_inbound_mms_is_one_message_and_a_replay_is_not_billed(shop: Shop) -> None:
    assert inbound(shop, "MM1", TRANSACTIONAL, "", media=2) is not None
    assert inbound(shop, "MM1", TRANSACTIONAL, "", media=2) is None
    assert usage(shop) == [("transactional", "inbound", "mms", 1, "charge")]


def test_inbound_to_a_number_not_ours_is_not_billed(shop: Shop) -> None:
    from dispatcher.phone import Phone

    assert inbound(shop, "SM9", Phone.parse("+12015550777"), "hi") is None
    assert usage(shop) == []


def test_inbound_to_the_global_number_goes_to_the_business_named(shop: Shop) -> None:
    inbound(shop, "SM4", GLOBAL, "STOP", business=shop.business_id)
    inbound(shop, "SM5", GLOBAL, "STOP")
    with transaction(shop.db.engine, write=False) as session:
        rows = session.execute(select(tables.UsageEvent)).scalars().all()
    assert [(r.business_id, r.role) for r in rows] == [
        (shop.business_id, "global"),
        (None, "global"),
    ]


# --- calls ----------------------------------------------------------------------------


def call(
    sid: str,
    status: str,
    seconds: str | None,
    direction: str = "inbound",
    customer: str = CUSTOMER.e164,
    ours: str = TRANSACTIONAL.e164,
) -> CallReport:
    outbound = direction != "inbound"
    form = {
        "CallSid": sid,
        "CallStatus": status,
        "From": ours if outbound else customer,
        "To": customer if outbound else ours,
        "Direction": direction,
    }
    if seconds is not None:
        form["CallDuration"] = seconds
    return CallReport.from_callback(form)


def record(shop: Shop, report: CallReport) -> tables.UsageEvent | None:
    with transaction(shop.db.engine) as session:
        return billing.record_call(session, report, AFTERNOON)


def test_a_completed_call_is_billed_in_started_minutes(shop: Shop) -> None:
    assert record(shop, call("CA1", "completed", "61")) is not None
    assert record(shop, call("CA1", "completed", "61")) is None  # replayed
    outbound = call("CA2", "completed", "60", "outbound-api", ours=MARKETING.e164)
    assert record(shop, outbound) is not None
    assert usage(shop) == [
        ("transactional", "inbound", "call", 2, "charge"),
        ("marketing", "outbound", "call", 1, "charge"),
    ]


@pytest.mark.parametrize(
    ("status", "seconds"),
    [("busy", None), ("no-answer", None), ("ringing", None), ("completed", "0")],
)
def test_a_call_that_did_not_connect_is_not_billed(
    shop: Shop, status: str, seconds: str | None
) -> None:
    assert record(shop, call("CA3", status, seconds)) is None
    assert usage(shop) == []
