"""The service under test: the ASGI app on the data layer's databases, a clock from a fixed afternoon,
the simulator as provider, and requests signed as Twilio signs them."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from dispatcher import businesses, numbers
from dispatcher.inbound import Settings
from dispatcher.numbers import RegistrationStatus
from dispatcher.phone import Phone
from dispatcher.providers.credentials import Secret
from dispatcher.providers.simulator import SimulatorProvider
from dispatcher.service import Service, auth, create_app
from dispatcher.service.reload import PolicyHolder
from dispatcher.store import transaction
from dispatcher.worker import Worker, WorkerSettings

from ..pipeline.conftest import (
    AFTERNOON,
    CUSTOMER,
    GLOBAL,
    MARKETING,
    TRANSACTIONAL,
    Shop,
    _postgres_database,
    _sqlite_database,
    db,
    policy,
    shop,
)

__all__ = ["_postgres_database", "_sqlite_database", "db", "policy", "shop"]

RULES = Path(__file__).resolve().parents[2] / "rules"
PUBLIC = "https://dispatcher.example.com"
TOKEN = "test-auth-token-" + "0" * 16
OTHER_MARKETING = Phone.parse("+12015550133")
OTHER_TRANSACTIONAL = Phone.parse("+12015550134")


def sign(url: str, form: dict[str, str], token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, form))


@dataclass
class Api:
    """The app, a client, both businesses' keys and a platform key."""

    shop: Shop
    service: Service
    client: httpx.Client
    key: str
    other_key: str
    platform_key: str
    other_id: int

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def send(
        self,
        message_type: str,
        to: Phone = CUSTOMER,
        business: int | None = None,
        key: str | None = None,
        **extra: object,
    ) -> dict[str, object]:
        answer = self.client.post(
            f"/v1/businesses/{business or self.shop.business_id}/messages",
            json={"to": to.e164, "type": message_type, "body": "Hello", **extra},
            headers=self.auth(key),
        )
        assert answer.status_code == 200, answer.text
        result: dict[str, object] = answer.json()
        return result

    def reply(
        self,
        text: str,
        to: Phone,
        sender: Phone = CUSTOMER,
        sid: str | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> int:
        form = {
            "MessageSid": sid or "SM" + secrets.token_hex(16),
            "AccountSid": "AC" + "1" * 32,
            "From": sender.e164,
            "To": to.e164,
            "Body": text,
            "NumSegments": "1",
        }
        sent = (
            headers
            if headers is not None
            else {
                "X-Twilio-Signature": signature
                or sign(PUBLIC + "/webhooks/twilio/sms", form)
            }
        )
        return self.client.post(
            "/webhooks/twilio/sms", data=form, headers=sent
        ).status_code

    def consent(
        self, phone: Phone = CUSTOMER, business: int | None = None
    ) -> dict[str, str]:
        answer = self.client.get(
            f"/v1/businesses/{business or self.shop.business_id}/customers/{phone.e164}/consent",
            headers=self.auth(self.platform_key),
        )
        assert answer.status_code == 200, answer.text
        scopes: dict[str, str] = answer.json()["scopes"]
        return scopes

    def deliver(self) -> SimulatorProvider:
        """Run a worker until nothing is due, then report every status."""
        simulator = SimulatorProvider(self.service.apply_callback_quietly)
        worker = Worker(
            self.shop.db.engine,
            self.service.policies.engine,
            simulator,
            WorkerSettings(provider_timeout=dt.timedelta(seconds=1)),
            name="test",
            clock=self.service.clock,
        )
        while worker.step():
            pass
        simulator.drain()
        return simulator

    def count(self, table: type) -> int:
        with transaction(self.shop.db.engine, write=False) as session:
            return int(
                session.execute(select(func.count()).select_from(table)).scalar_one()
            )


@pytest.fixture
def api(shop: Shop) -> Iterator[Api]:
    with transaction(shop.db.engine) as session:
        other = businesses.add_business(session, "Rinse", assist=True)
        for phone, role in (
            (OTHER_MARKETING, "marketing"),
            (OTHER_TRANSACTIONAL, "transactional"),
        ):
            numbers.add_number(
                session,
                shop.policy,
                phone,
                role=role,
                business=other.id,
                actor="test",
                status=RegistrationStatus.REGISTERED,
                segments_per_second=1000,
            )
        _, key = auth.create_key(session, shop.business_id, label="t", created_by="t")
        _, other_key = auth.create_key(session, other.id, label="t", created_by="t")
        _, platform_key = auth.create_key(session, None, label="t", created_by="t")
    service = Service(
        db=shop.db.engine,
        policies=PolicyHolder(RULES),
        inbound=Settings("Cents", "help.example.com"),
        public_base_url=PUBLIC,
        webhook_token=Secret(TOKEN),
        clock=ticking(AFTERNOON),
    )
    with serving(service) as base_url, httpx.Client(base_url=base_url) as client:
        yield Api(shop, service, client, key, other_key, platform_key, other.id)


def ticking(start: dt.datetime) -> Callable[[], dt.datetime]:
    """A clock that starts at ``start`` and runs with real time."""
    origin = time.monotonic()
    return lambda: start + dt.timedelta(seconds=time.monotonic() - origin)


@contextmanager
def serving(service: Service) -> Iterator[str]:
    """The app on uvicorn on a free loopback port, for the length of the block."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service),
            host="127.0.0.1",
            port=0,
            access_log=False,
            log_config=None,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


__all__ += ["AFTERNOON", "CUSTOMER", "GLOBAL", "MARKETING", "TRANSACTIONAL"]
