"""A month of simulated traffic for several businesses: the usage report matches an
independent count of the message records, the inbound messages and the calls."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from sqlalchemy import select

from dispatcher import billing, businesses, consent, numbers, tables
from dispatcher.calls import CallReport
from dispatcher.consent import ConsentSource
from dispatcher.engine import Engine
from dispatcher.numbers import NumberKind, RegistrationStatus
from dispatcher.outbox import SendRequest, admit
from dispatcher.phone import Phone
from dispatcher.policy import Policy
from dispatcher.providers.simulator import FaultPlan
from dispatcher.store import transaction

from ..data.conftest import Database
from .conftest import Clock, simulator, worker

GLOBAL = Phone.parse("+18002345678")
NAMES = ("Sudsy", "Fold Co", "Press Club")
# 15:00 in New York, inside every quiet-hours window; the last day of November and the
# first of January are there to be left out of December.
DAYS = (
    [dt.datetime(2026, 11, 30, 20, tzinfo=dt.UTC)]
    + [dt.datetime(2026, 12, day, 20, tzinfo=dt.UTC) for day in range(1, 32)]
    + [dt.datetime(2027, 1, 1, 20, tzinfo=dt.UTC)]
)
RATES = billing.Rates.from_config(
    {"rates": {"sms_outbound": {"default": "0.0079", "marketing": "0.0100"}}}
)
BODIES = (
    "Your order is ready for pickup.",
    "It’s ready! Pick up before 7 pm.",  # curly quote: UCS-2
    "Your order #8812 is washed, folded and on its way. " * 4,  # 3 segments
    "Out for delivery 🚚 — see you soon. " * 3,  # UCS-2, 2 segments
    "Flash sale {today}: 20% off ~ everything ^^",  # extension characters
)
# Inbound texts and their segments, counted by hand: 1, 1, 2 (GSM-7, 191 characters),
# 1 (UCS-2, 10 units: the emoji is two) and 3 (UCS-2 for the emoji alone, 155 units;
# "ù" is GSM-7).
INBOUND = (
    ("STOP", 1),
    ("Thanks, see you at 5", 1),
    ("Can I pick it up tomorrow instead? " * 5 + "Thanks a lot, C.", 2),
    ("Merci 🙏 !", 1),
    ("Où est ma commande ? " * 7 + "Merci 🙏", 3),
)


@dataclass
class Tenant:
    id: int
    name: str
    marketing: Phone
    transactional: Phone
    customers: list[Phone]
    inbound: list[tuple[str, str, int, str, dt.datetime]] = field(default_factory=list)
    calls: list[tuple[CallReport, dt.datetime]] = field(default_factory=list)


def tenants(db: Database, policy: Policy) -> list[Tenant]:
    made = []
    with transaction(db.engine) as session:
        numbers.add_number(
            session,
            policy,
            GLOBAL,
            role="global",
            business=None,
            actor="test",
            kind=NumberKind.TOLL_FREE,
            status=RegistrationStatus.REGISTERED,
            segments_per_second=1000,
        )
        for n, name in enumerate(NAMES):
            business = businesses.add_business(session, name, assist=True)
            pair = [Phone.parse(f"+120155501{n}{i}") for i in (0, 1)]
            for phone, role in zip(pair, ("marketing", "transactional"), strict=True):
                numbers.add_number(
                    session,
                    policy,
                    phone,
                    role=role,
                    business=business.id,
                    actor="test",
                    kind=NumberKind.LONG_CODE,
                    status=RegistrationStatus.REGISTERED,
                    segments_per_second=1000,
                )
            customers = [Phone.parse(f"+1201556{n}{i:03d}") for i in range(10)]
            for phone in customers[:6]:
                consent.record(
                    session,
                    policy,
                    phone=phone,
                    scope="marketing",
                    business=business.id,
                    opt_in=True,
                    source=ConsentSource.WEB_FORM,
                    recorded_by="test",
                    consent_text="Yes, text me offers",
                    consent_text_version="v1",
                    at=DAYS[0] - dt.timedelta(days=1),
                )
            made.append(Tenant(business.id, name, pair[0], pair[1], customers))
    return made


def faults(world: list[Tenant]) -> FaultPlan:
    """Per business: customer 7 unsubscribed at the provider (21610 on send), customer 8
    unreachable after acceptance, customer 9 failing every attempt (dead, never sent),
    customer 6 a 21610 reported after acceptance; and some random losses."""
    return FaultPlan(
        send_errors={
            **{t.customers[7].e164: 21610 for t in world},
            **{t.customers[9].e164: 30003 for t in world},
        },
        delivery_errors={
            **{t.customers[8].e164: 30003 for t in world},
            **{t.customers[6].e164: 21610 for t in world},
        },
        failure_rate=0.05,
        unknown_outcome_rate=0.05,
        seed=7,
    )


def traffic(db: Database, policy: Policy, engine: Engine, world: list[Tenant]) -> None:
    rng = random.Random(2026)
    clock = Clock(DAYS[0])
    provider = simulator(db, policy, clock, faults(world))
    run = worker(db, engine, provider, clock)
    sid = 0
    for day in DAYS:
        clock.now = day
        for tenant in world:
            for _ in range(rng.randint(3, 6)):
                kind = rng.choice(
                    ["order_status"] * 4 + ["promotion"] * 3 + ["otp_code", "mms"]
                )
                media: tuple[str, ...] = ()
                message_type = kind
                if kind == "mms":
                    message_type = rng.choice(["promotion", "order_status", "otp_code"])
                    media = ("https://example.com/picture.jpg",)
                admit(
                    db.engine,
                    engine,
                    SendRequest(
                        tenant.id,
                        rng.choice(tenant.customers),
                        message_type,
                        rng.choice(BODIES),
                        media=media,
                    ),
                    now=day,
                )
            for _ in range(rng.randint(0, 3)):
                sid += 1
                text, _ = rng.choice(INBOUND)
                to = rng.choice([tenant.marketing, tenant.transactional])
                media_count = 1 if rng.random() < 0.2 else 0
                tenant.inbound.append(
                    (f"SM{sid:032d}", to.e164, media_count, text, day)
                )
                with transaction(db.engine) as session:
                    billing.record_inbound(
                        session,
                        message_sid=f"SM{sid:032d}",
                        to=to,
                        body=text,
                        media=media_count,
                        at=day,
                    )
            if rng.random() < 0.6:
                sid += 1
                status = rng.choice(["completed"] * 3 + ["busy", "no-answer"])
                direction = rng.choice(["inbound", "outbound-api"])
                ours = rng.choice([tenant.marketing, tenant.transactional]).e164
                them = rng.choice(tenant.customers).e164
                outbound = direction != "inbound"
                form = {
                    "CallSid": f"CA{sid:032d}",
                    "CallStatus": status,
                    "From": ours if outbound else them,
                    "To": them if outbound else ours,
                    "Direction": direction,
                }
                if status == "completed":
                    form["CallDuration"] = str(rng.randint(0, 900))
                report = CallReport.from_callback(form)
                tenant.calls.append((report, day))
                with transaction(db.engine) as session:
                    billing.record_call(session, report, day)
        # Retries back off for seconds to minutes; unknown outcomes wait for the
        # provider's timeout. An hour apart, four rounds settle everything.
        for _ in range(4):
            while run.step():
                pass
            provider.drain()
            clock.now += dt.timedelta(hours=1)
    # Every message the provider created was created once: no blind resend.
    with transaction(db.engine, write=False) as session:
        rows = session.execute(select(tables.Message)).scalars().all()
    for row in rows:
        assert provider.sends_for(row.correlation) == (row.provider_sid is not None)
        assert row.state in ("sent", "suppressed", "rejected", "dead"), row.state


Key = tuple[str, str, str]


def counted_from_records(
    db: Database, tenant: Tenant, month: billing.Month
) -> dict[Key, tuple[int, int]]:
    """The usage, counted plainly from the raw tables and the received traffic.

    An outbound message counts when the provider accepted it (it has a provider SID), in
    the month of its first 'accepted' or 'status' event; SMS by its stored segments, MMS
    as one; a 21610 reported later cancels it. Inbound SMS by hand-counted segments,
    MMS as one; calls completed in started minutes.
    """
    counts: Counter[Key] = Counter()
    units: Counter[Key] = Counter()
    with transaction(db.engine, write=False) as session:
        messages = (
            session.execute(
                select(tables.Message).where(tables.Message.business_id == tenant.id)  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
        accepted_at: dict[int, dt.datetime] = {}
        for event in session.execute(
            select(tables.MessageEvent).order_by(tables.MessageEvent.id)  # type: ignore[arg-type]
        ).scalars():
            if event.kind in ("accepted", "status"):
                accepted_at.setdefault(event.message_id, event.at)
        roles = {
            row.e164: row.role
            for row in session.execute(select(tables.Number)).scalars()
        }
    for message in messages:
        if message.provider_sid is None:
            continue
        assert message.id is not None
        assert message.role is not None
        if not month.start <= accepted_at[message.id] < month.end:
            continue
        kind = "mms" if message.channel == "mms" else "sms"
        key = (message.role, "outbound", kind)
        size = 1 if kind == "mms" else message.segments
        cancelled = message.error_code == 21610
        counts[key] += 0 if cancelled else 1
        units[key] += 0 if cancelled else size
    texts = dict(INBOUND)
    for _sid, to, media_count, text, at in tenant.inbound:
        if not month.start <= at < month.end:
            continue
        key = (roles[to], "inbound", "mms" if media_count else "sms")
        counts[key] += 1
        units[key] += 1 if media_count else texts[text]
    for report, at in tenant.calls:
        if report.status.value != "completed" or not report.duration:
            continue
        if not month.start <= at < month.end:
            continue
        ours = report.to if report.direction.value == "inbound" else report.from_
        direction = "inbound" if report.direction.value == "inbound" else "outbound"
        key = (roles[ours], direction, "call")
        counts[key] += 1
        units[key] += (report.duration + 59) // 60
    return {key: (counts[key], units[key]) for key in counts | units}


@pytest.mark.slow
def test_a_month_of_traffic_reconciles_with_the_records(
    db: Database, policy: Policy
) -> None:
    world = tenants(db, policy)
    traffic(db, policy, Engine(policy), world)
    december = billing.Month(2026, 12)
    for tenant in world:
        for month in (billing.Month(2026, 11), december, billing.Month(2027, 1)):
            with transaction(db.engine, write=False) as session:
                report = billing.usage_report(session, tenant.name, month, RATES)
            reported = {
                (line.role, line.direction.value, line.kind.value): (
                    line.count,
                    line.units,
                )
                for line in report.lines
                if (line.count, line.units) != (0, 0)
            }
            expected = counted_from_records(db, tenant, month)
            assert reported == {k: v for k, v in expected.items() if v != (0, 0)}
            money = sum(
                Decimal(units)
                * Decimal(
                    {"sms_outbound": "0.0100" if role == "marketing" else "0.0079"}.get(
                        f"{kind}_{direction}",
                        billing.DEFAULT_RATES[f"{kind}_{direction}"],
                    )
                )
                for (role, direction, kind), (_, units) in expected.items()
            )
            assert Decimal(report.to_mapping()["total"]) == money  # type: ignore[arg-type]
