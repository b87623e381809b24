"""Small builders shared by the data-layer tests."""

from __future__ import annotations

from sqlmodel import Session

from dispatcher import businesses, numbers
from dispatcher.numbers import RegistrationStatus
from dispatcher.phone import Phone
from dispatcher.policy import Policy

GLOBAL = Phone.parse("+18002345678")
MARKETING = Phone.parse("+12015550123")
TRANSACTIONAL = Phone.parse("+12015550124")
CUSTOMER = Phone.parse("+12015550199")


def phone(n: int) -> Phone:
    """A distinct valid US number for each ``n`` below 100."""
    return Phone.parse(f"+1201555{n:04d}")


def business_with_number(
    session: Session, policy: Policy, name: str = "Sudsy", *, assist: bool = True
) -> int:
    """A business enrolled in Assist, with its one (marketing) number, registered."""
    created = businesses.add_business(session, name, stores=["Main"], assist=assist)
    numbers.add_number(
        session,
        policy,
        MARKETING,
        role="marketing",
        business=created.id,
        actor="test",
        status=RegistrationStatus.REGISTERED,
    )
    return created.id
