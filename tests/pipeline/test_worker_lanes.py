"""Workers kept to some lanes, and the pacer rows they lock."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from dispatcher import tables
from dispatcher.outbox import LANES, SendRequest, admit
from dispatcher.providers.simulator import SimulatorProvider
from dispatcher.store import transaction
from dispatcher.worker import Worker, WorkerSettings

from .conftest import AFTERNOON, CUSTOMER, Shop


def _admit(shop: Shop, message_type: str, body: str) -> int:
    request = SendRequest(
        business=shop.business_id, to=CUSTOMER, message_type=message_type, body=body
    )
    return admit(shop.db.engine, shop.engine, request, now=AFTERNOON).message_id


def _worker(shop: Shop, provider: SimulatorProvider, lanes: tuple[int, ...]) -> Worker:
    settings = WorkerSettings(provider_timeout=dt.timedelta(seconds=1), lanes=lanes)
    return Worker(
        shop.db.engine, shop.engine, provider, settings, clock=lambda: AFTERNOON
    )


def _states(shop: Shop) -> dict[int, str]:
    with transaction(shop.db.engine, write=False) as session:
        rows = session.execute(select(tables.Message.id, tables.Message.state)).all()
    return {int(message_id): state for message_id, state in rows}


def test_worker_kept_to_priority_lanes_leaves_marketing_queued(shop: Shop) -> None:
    shop.opt_in(CUSTOMER)
    promotion = _admit(shop, "promotion", "20% off this week. Reply STOP to opt out.")
    update = _admit(shop, "order_status", "Your order is ready for pickup.")
    lanes = (LANES["otp"], LANES["transactional"])

    assert _worker(shop, SimulatorProvider(), lanes).step() == 1

    assert _states(shop) == {promotion: "queued", update: "sent"}


def test_first_sends_create_the_pacer_row_of_their_number(shop: Shop) -> None:
    _admit(shop, "order_status", "Your order is ready for pickup.")
    _admit(shop, "order_status", "Your order is out for delivery.")

    assert _worker(shop, SimulatorProvider(), (LANES["transactional"],)).step() == 2

    with transaction(shop.db.engine, write=False) as session:
        pacers = session.execute(select(tables.Pacer.number_id)).all()
    assert len(pacers) == 1
