"""Opt-out wins: no send is claimed after the recipient's opt-out committed.

Proof by serialisation rather than by timestamps (a claim's ``at`` is read before it
waits for locks). ``consent.record`` takes an exclusive lock per (owner, phone, scope):
an advisory lock on PostgreSQL, the database's write lock on SQLite. A claim takes the
shared form of the same lock on PostgreSQL, and the write lock on SQLite, before it reads
consent. So in the opt-out's own transaction, right after ``consent.record``, every claim
of that recipient's message has either committed (its ``attempt`` event is visible) or
has not started reading consent yet (and will see the opt-out). At the end, each
opted-out message must have exactly the attempts its opt-out saw, and a message whose
opt-out saw none must never have reached the provider.
"""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from dispatcher import consent, tables
from dispatcher.consent import ConsentSource
from dispatcher.outbox import SendRequest, admit_many
from dispatcher.providers.simulator import SimulatorProvider
from dispatcher.store import transaction
from dispatcher.worker import Worker, WorkerSettings

from .conftest import Shop, customer
from .fleet import daytime_zone

pytestmark = pytest.mark.slow

MESSAGES = 1000
OPT_OUTS = 200
WORKERS = 4


def _attempts(session: Session, message_id: int) -> int:
    event = tables.MessageEvent
    query = (
        select(func.count())
        .select_from(event)
        .where(col(event.message_id) == message_id, col(event.kind) == "attempt")
    )
    return int(session.execute(query).scalar_one())


def test_no_send_is_claimed_after_its_opt_out_committed(shop: Shop) -> None:
    phones = [customer(n) for n in range(MESSAGES)]
    for phone in phones:
        shop.opt_in(phone)
    zone = daytime_zone()
    summary = admit_many(
        shop.db.engine,
        shop.engine,
        [
            SendRequest(
                "Sudsy",
                phone,
                "promotion",
                f"Offer {n}",
                zone=zone,
                jurisdiction="US-NY",
            )
            for n, phone in enumerate(phones)
        ],
    )
    assert summary.by_outcome == {"send": MESSAGES}
    with transaction(shop.db.engine, write=False) as session:
        ids = dict(
            session.execute(select(tables.Message.phone, tables.Message.id)).all()
        )

    provider = SimulatorProvider()
    stop = threading.Event()
    settings = WorkerSettings(batch=10, idle_sleep=0.01)
    workers = [
        threading.Thread(
            target=Worker(
                shop.db.engine, shop.engine, provider, settings, name=f"w{i}"
            ).run,
            args=(stop,),
            kwargs={"until_idle": True},
        )
        for i in range(WORKERS)
    ]
    chosen = random.Random(7).sample(phones, OPT_OUTS)
    seen: dict[int, int] = {}
    for thread in workers:
        thread.start()
    try:
        for phone in chosen:
            message_id = ids[phone.e164]
            with transaction(shop.db.engine) as session:
                consent.record(
                    session,
                    shop.policy,
                    phone=phone,
                    scope="marketing",
                    business=shop.business_id,
                    opt_in=False,
                    source=ConsentSource.AGENT,
                    recorded_by="race test",
                )
                seen[message_id] = _attempts(session, message_id)
    finally:
        for thread in workers:
            thread.join(timeout=120)
        stop.set()

    won = lost = 0
    with transaction(shop.db.engine, write=False) as session:
        for message_id, attempts_then in seen.items():
            row = session.get(tables.Message, message_id)
            assert row is not None
            assert _attempts(session, message_id) == attempts_then, row.id
            if attempts_then == 0:
                won += 1
                assert (row.state, row.rule_id) == ("suppressed", "opted-out-of-scope")
                assert provider.sends_for(row.correlation) == 0
            else:
                lost += 1
                assert row.state == "sent"
    # Both sides of the race happened, or the test proved nothing.
    assert won > 0
    assert lost > 0
