"""Businesses, the number registry and the second-number flow, on both databases."""

from __future__ import annotations

# The nested `with pytest.raises` / `with transaction` (noqa: SIM117) is on
# purpose: the refusal must come out of the whole transaction, rollback included.
import json

import pytest
from sqlalchemy import text
from sqlmodel import select

from dispatcher import businesses, numbers, tables
from dispatcher.errors import ConstraintViolation, FieldError, NotFound
from dispatcher.numbers import NumberKind, RegistrationStatus
from dispatcher.policy import Policy
from dispatcher.store import transaction

from .conftest import Database
from .helpers import GLOBAL, MARKETING, TRANSACTIONAL, business_with_number, phone


def test_business_with_stores_and_enrolment(db: Database) -> None:
    with transaction(db.engine) as session:
        made = businesses.add_business(session, "Sudsy", stores=["North", "Main"])
    with transaction(db.engine) as session:
        changed = businesses.enrol(session, "Sudsy", accelerate=True)
    assert made.stores == ("Main", "North")
    assert changed.enrolments == ("accelerate",)
    with transaction(db.engine) as session:
        assert businesses.get_business(session, made.id).accelerate


def test_duplicate_business_name_is_refused(db: Database) -> None:
    with transaction(db.engine) as session:
        businesses.add_business(session, "Sudsy")
    with pytest.raises(ConstraintViolation, match=r"^name: a business named 'Sudsy'"):  # noqa: SIM117
        with transaction(db.engine) as session:
            businesses.add_business(session, "Sudsy")


def test_unknown_business_is_named(db: Database, policy: Policy) -> None:
    with pytest.raises(NotFound) as caught:  # noqa: SIM117
        with transaction(db.engine) as session:
            numbers.add_number(
                session,
                policy,
                MARKETING,
                role="marketing",
                business="Nobody",
                actor="t",
            )
    assert (
        str(caught.value)
        == "business: no business 'Nobody' (give its id or exact name)"
    )


def test_second_transactional_number_is_refused(db: Database, policy: Policy) -> None:
    with transaction(db.engine) as session:
        bid = business_with_number(session, policy)
        numbers.add_number(
            session,
            policy,
            TRANSACTIONAL,
            role="transactional",
            business=bid,
            actor="t",
        )
    with pytest.raises(ConstraintViolation) as caught:  # noqa: SIM117
        with transaction(db.engine) as session:
            numbers.add_number(
                session, policy, phone(7), role="transactional", business=bid, actor="t"
            )
    assert caught.value.field == "role"
    assert "one number per role" in str(caught.value)
    assert "2015550124" not in str(caught.value)


def test_platform_role_takes_no_business_and_one_global(
    db: Database, policy: Policy
) -> None:
    with transaction(db.engine) as session:
        bid = businesses.add_business(session, "Sudsy").id
        with pytest.raises(FieldError, match=r"^business: role 'global' belongs to"):
            numbers.add_number(
                session,
                policy,
                GLOBAL,
                role="global",
                business=bid,
                actor="t",
                kind=NumberKind.TOLL_FREE,
            )
        numbers.add_number(
            session,
            policy,
            GLOBAL,
            role="global",
            business=None,
            actor="t",
            kind=NumberKind.TOLL_FREE,
        )
        with pytest.raises(ConstraintViolation, match=r"^role: the platform already"):
            numbers.add_number(
                session, policy, phone(5), role="global", business=None, actor="t"
            )
        with pytest.raises(ConstraintViolation, match="must keep its global number"):
            numbers.retire_number(session, policy, GLOBAL, actor="t")
        replaced = numbers.add_number(
            session,
            policy,
            phone(5),
            role="global",
            business=None,
            actor="t",
            replace=True,
        )
        assert [n.phone for n in numbers.list_numbers(session)] == [replaced.phone]


def test_kind_must_match_the_number(db: Database, policy: Policy) -> None:
    with transaction(db.engine) as session:
        bid = businesses.add_business(session, "Sudsy").id
        for kind, number in (
            (NumberKind.TOLL_FREE, MARKETING),
            (NumberKind.LONG_CODE, GLOBAL),
            (NumberKind.SHORT_CODE, MARKETING),
        ):
            with pytest.raises(FieldError) as caught:
                numbers.add_number(
                    session,
                    policy,
                    number,
                    role="marketing",
                    business=bid,
                    actor="t",
                    kind=kind,
                )
            assert caught.value.field == "kind"


def test_a_number_belongs_to_one_business(db: Database, policy: Policy) -> None:
    with transaction(db.engine) as session:
        business_with_number(session, policy, "Sudsy")
        other = businesses.add_business(session, "Fresh").id
        with pytest.raises(ConstraintViolation) as caught:
            numbers.add_number(
                session, policy, MARKETING, role="marketing", business=other, actor="t"
            )
    assert caught.value.field == "number"
    assert str(caught.value).startswith("number: +1******0123 is already the marketing")


def test_second_number_flow_is_recorded_and_idempotent(
    db: Database, policy: Policy
) -> None:
    with transaction(db.engine) as session:
        bid = business_with_number(session, policy)
    with transaction(db.engine) as session:
        first = numbers.migrate_second_number(
            session, policy, bid, TRANSACTIONAL, actor="csm:ana"
        )
    with transaction(db.engine) as session:
        again = numbers.migrate_second_number(
            session, policy, bid, TRANSACTIONAL, actor="csm:bob"
        )
        changes = session.exec(
            select(tables.NumberChange).where(
                tables.NumberChange.action == "second_number"
            )
        ).all()
    assert first.changed
    assert not again.changed
    assert first.change_id == again.change_id
    assert (first.marketing.phone, first.transactional.phone) == (
        MARKETING,
        TRANSACTIONAL,
    )
    assert first.transactional.status is RegistrationStatus.PENDING
    (change,) = changes
    assert change.actor == "csm:ana"
    assert [n["role"] for n in json.loads(change.before)["numbers"]] == ["marketing"]
    after = json.loads(change.after)["numbers"]
    assert sorted((n["role"], n["e164"]) for n in after) == [
        ("marketing", MARKETING.e164),
        ("transactional", TRANSACTIONAL.e164),
    ]
    with pytest.raises(ConstraintViolation) as caught:  # noqa: SIM117
        with transaction(db.engine) as session:
            numbers.migrate_second_number(session, policy, bid, phone(9), actor="t")
    assert caught.value.field == "number"
    assert "already has a transactional number" in str(caught.value)


def test_second_number_needs_an_enrolled_business(db: Database, policy: Policy) -> None:
    with transaction(db.engine) as session:
        bid = business_with_number(session, policy, assist=False)
    with pytest.raises(ConstraintViolation, match="uses neither Assist nor Accelerate"):  # noqa: SIM117
        with transaction(db.engine) as session:
            numbers.migrate_second_number(
                session, policy, bid, TRANSACTIONAL, actor="t"
            )
    with transaction(db.engine) as session:
        assert [n.role for n in numbers.list_numbers(session, bid)] == ["marketing"]


def test_single_transactional_number_becomes_the_marketing_one(
    db: Database, policy: Policy
) -> None:
    with transaction(db.engine) as session:
        bid = businesses.add_business(session, "Sudsy", accelerate=True).id
        numbers.add_number(
            session, policy, MARKETING, role="transactional", business=bid, actor="t"
        )
        done = numbers.migrate_second_number(
            session, policy, bid, TRANSACTIONAL, actor="t"
        )
    assert done.marketing.phone == MARKETING
    assert done.transactional.phone == TRANSACTIONAL


def test_refused_request_leaves_nothing_half_written(
    db: Database, policy: Policy
) -> None:
    with pytest.raises(ConstraintViolation):  # noqa: SIM117, PT012
        with transaction(db.engine) as session:
            businesses.add_business(session, "Sudsy")
            numbers.add_number(
                session,
                policy,
                MARKETING,
                role="marketing",
                business="Sudsy",
                actor="t",
            )
            numbers.add_number(
                session,
                policy,
                MARKETING,
                role="transactional",
                business="Sudsy",
                actor="t",
            )
    with transaction(db.engine) as session:
        assert businesses.list_businesses(session) == []
        assert numbers.list_numbers(session, include_retired=True) == []


@pytest.mark.parametrize(
    ("statement", "field"),
    [
        # A second active number in one role of one business.
        (
            "INSERT INTO numbers (e164, business_id, role, kind, status, "
            "segments_per_second, added_by, created_at, updated_at) VALUES "
            "('+12015550177', 1, 'marketing', 'long_code', 'pending', 1, 'sql', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            "role",
        ),
        # The same number active twice.
        (
            "INSERT INTO numbers (e164, business_id, role, kind, status, "
            "segments_per_second, added_by, created_at, updated_at) VALUES "
            "('+12015550123', 1, 'transactional', 'long_code', 'pending', 1, 'sql', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            "number",
        ),
        # A second global number.
        (
            "INSERT INTO numbers (e164, business_id, role, kind, status, "
            "segments_per_second, added_by, created_at, updated_at) VALUES "
            "('+12015550178', NULL, 'global', 'long_code', 'pending', 1, 'sql', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            "role",
        ),
        ("UPDATE number_changes SET actor = 'someone else'", "ledger"),
        ("DELETE FROM number_changes", "ledger"),
    ],
)
def test_database_enforces_the_number_rules(
    db: Database, policy: Policy, statement: str, field: str
) -> None:
    with transaction(db.engine) as session:
        bid = business_with_number(session, policy)
        numbers.add_number(
            session,
            policy,
            GLOBAL,
            role="global",
            business=None,
            actor="t",
            kind=NumberKind.TOLL_FREE,
        )
    assert bid == 1
    with pytest.raises(ConstraintViolation) as caught:  # noqa: SIM117
        with transaction(db.engine) as session:
            session.execute(text(statement))
    assert caught.value.field == field


def test_second_number_flow_is_not_replayed_with_another_number(
    db: Database, policy: Policy
) -> None:
    with transaction(db.engine) as session:
        bid = business_with_number(session, policy)
        numbers.migrate_second_number(session, policy, bid, TRANSACTIONAL, actor="t")
        numbers.retire_number(session, policy, TRANSACTIONAL, actor="t")
    with pytest.raises(ConstraintViolation) as caught:  # noqa: SIM117
        with transaction(db.engine) as session:
            numbers.migrate_second_number(session, policy, bid, phone(9), actor="t")
    assert caught.value.field == "business"
    assert "went through the second-number flow already" in str(caught.value)
