"""The send pipeline's tests run on the data layer's databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from dispatcher import businesses, consent, numbers
from dispatcher.consent import ConsentSource
from dispatcher.engine import Engine
from dispatcher.numbers import NumberKind, RegistrationStatus
from dispatcher.phone import Phone
from dispatcher.policy import Policy
from dispatcher.store import transaction

from ..data.conftest import Database, _postgres_database, _sqlite_database, db, policy

__all__ = ["_postgres_database", "_sqlite_database", "db", "policy"]

GLOBAL = Phone.parse("+18002345678")
MARKETING = Phone.parse("+12015550123")
TRANSACTIONAL = Phone.parse("+12015550124")
# Recipients in New York (201 is New Jersey: America/New_York, federal window).
CUSTOMER = Phone.parse("+12015550199")
# A Thursday, 15:00 in New York.
AFTERNOON = dt.datetime(2026, 12, 3, 20, 0, tzinfo=dt.UTC)


def customer(n: int) -> Phone:
    return Phone.parse(f"+1201556{n:04d}")


@dataclass
class Shop:
    """A business with both numbers, the platform's global number, and the policy."""

    db: Database
    policy: Policy
    engine: Engine
    business_id: int

    def opt_in(self, phone: Phone, scope: str = "marketing") -> None:
        with transaction(self.db.engine) as session:
            consent.record(
                session,
                self.policy,
                phone=phone,
                scope=scope,
                business=None if scope == "otp" else self.business_id,
                opt_in=True,
                source=ConsentSource.WEB_FORM,
                recorded_by="test",
                consent_text="Yes, text me offers",
                consent_text_version="v1",
                at=AFTERNOON - dt.timedelta(days=1),
            )

    def opt_out(self, phone: Phone, scope: str = "marketing") -> None:
        with transaction(self.db.engine) as session:
            consent.record(
                session,
                self.policy,
                phone=phone,
                scope=scope,
                business=None if scope == "otp" else self.business_id,
                opt_in=False,
                source=ConsentSource.AGENT,
                recorded_by="test",
            )


@pytest.fixture
def shop(db: Database, policy: Policy) -> Shop:
    with transaction(db.engine) as session:
        created = businesses.add_business(session, "Sudsy", assist=True)
        for phone, role, owner, kind in (
            (MARKETING, "marketing", created.id, NumberKind.LONG_CODE),
            (TRANSACTIONAL, "transactional", created.id, NumberKind.LONG_CODE),
            (GLOBAL, "global", None, NumberKind.TOLL_FREE),
        ):
            numbers.add_number(
                session,
                policy,
                phone,
                role=role,
                business=owner,
                actor="test",
                kind=kind,
                status=RegistrationStatus.REGISTERED,
                segments_per_second=1000,
            )
    return Shop(db, policy, Engine(policy), created.id)
