"""A worker with several sends in flight, through the real twilio client to the fake API
answering slowly, as Twilio's does."""

from __future__ import annotations

from sqlalchemy import select

from dispatcher import tables
from dispatcher.outbox import SendRequest, admit_many
from dispatcher.providers.twilio_provider import TwilioProvider
from dispatcher.store import transaction
from dispatcher.worker import Worker, WorkerSettings
from tests.fake_twilio import FakeTwilio

from .conftest import AFTERNOON, Shop, customer

ANSWER = 0.2  # seconds the fake API takes to answer a send


def test_one_batch_is_sent_at_once_and_each_recipients_messages_in_order(
    shop: Shop,
) -> None:
    requests = [
        SendRequest(
            business="Sudsy",
            to=customer(n % 4),
            message_type="order_status",
            body=f"Order {n} is ready for pickup.",
        )
        for n in range(12)
    ]
    admit_many(shop.db.engine, shop.engine, requests, now=AFTERNOON)
    with FakeTwilio(latency=ANSWER) as fake:
        provider = TwilioProvider(fake.credentials, base_url=fake.base_url, timeout=5)
        settings = WorkerSettings(batch=12, concurrency=4)
        worker = Worker(
            shop.db.engine, shop.engine, provider, settings, clock=lambda: AFTERNOON
        )
        try:
            assert worker.step() == 12
        finally:
            worker.close()
            provider.close()
        arrived = sorted(fake.messages, key=lambda m: m.order)
    # Four recipients: up to four sends at once (the fake counts them while it waits
    # to answer; exactly four unless a thread started a whole answer time late).
    assert 1 < fake.most_in_flight <= 4
    assert sorted(m.body for m in arrived) == sorted(r.body for r in requests)
    for n in range(4):
        to_one = [m.body for m in arrived if m.to == customer(n).e164]
        assert to_one == [f"Order {i} is ready for pickup." for i in range(n, 12, 4)]
    with transaction(shop.db.engine, write=False) as session:
        states = session.execute(select(tables.Message.state)).scalars().all()
    assert set(states) == {"sent"}
