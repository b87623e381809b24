"""The consent ledger, its current state, the snapshot for the send pipeline and the
evidence bundle, on both databases."""

from __future__ import annotations

# The nested `with pytest.raises` / `with transaction` (noqa: SIM117) is on
# purpose: the refusal must come out of the whole transaction, rollback included.
import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session

from dispatcher import Engine, businesses, consent, evidence, numbers
from dispatcher.consent import ConsentAction, ConsentSource, LedgerEntry
from dispatcher.errors import ConstraintViolation, FieldError
from dispatcher.facts import Channel, ConsentState, Facts, NumberStatus
from dispatcher.numbers import NumberKind, RegistrationStatus
from dispatcher.policy import Policy
from dispatcher.snapshot import take_snapshot
from dispatcher.store import transaction

from .conftest import Database
from .helpers import CUSTOMER, GLOBAL, TRANSACTIONAL, business_with_number

T0 = dt.datetime(2026, 1, 5, 15, 0, tzinfo=dt.UTC)
OPT_IN = {
    "source": ConsentSource.WEB_FORM,
    "source_ref": "https://sudsy.example/join",
    "consent_text": "Yes, text me offers. Msg & data rates may apply. STOP to end.",
    "consent_text_version": "2026-01",
}


def _opt_in(
    session: Session,
    policy: Policy,
    scope: str = "marketing",
    business: int | None = 1,
    at: dt.datetime = T0,
    **extra: Any,
) -> LedgerEntry:
    fields = {**OPT_IN, **extra}
    return consent.record(
        session,
        policy,
        phone=CUSTOMER,
        scope=scope,
        business=business,
        opt_in=True,
        recorded_by="web",
        at=at,
        **fields,
    )


def _opt_out(
    session: Session,
    policy: Policy,
    scope: str = "marketing",
    business: int | None = 1,
    at: dt.datetime = T0,
    **extra: Any,
) -> LedgerEntry:
    fields = {"source": ConsentSource.KEYWORD, "source_ref": "SM0001", **extra}
    return consent.record(
        session,
        policy,
        phone=CUSTOMER,
        scope=scope,
        business=business,
        opt_in=False,
        recorded_by="inbound",
        at=at,
        **fields,
    )


def test_opt_in_out_and_re_opt_in(db: Database, policy: Policy) -> None:
    with transaction(db.engine) as session:
        businesses.add_business(session, "Sudsy")
        first = _opt_in(session, policy)
        out = _opt_out(session, policy, at=T0 + dt.timedelta(days=1))
        back = _opt_in(session, policy, at=T0 + dt.timedelta(days=2))
    assert [e.action for e in (first, out, back)] == [
        ConsentAction.OPT_IN,
        ConsentAction.OPT_OUT,
        ConsentAction.RE_OPT_IN,
    ]
    with transaction(db.engine, write=False) as session:
        entries = consent.history(session, CUSTOMER)
        state = consent.current_state(session, policy, CUSTOMER, "marketing", 1)
    assert state is ConsentState.OPTED_IN
    assert entries[0].at == T0
    assert entries[0].at.tzinfo is dt.UTC
    assert entries[0].consent_text == OPT_IN["consent_text"]


def test_scopes_are_separate(db: Database, policy: Policy) -> None:
    with transaction(db.engine) as session:
        businesses.add_business(session, "Sudsy")
        _opt_in(session, policy, scope="transactional")
        _opt_out(session, policy, scope="marketing")
        got = {
            s: consent.current_state(session, policy, CUSTOMER, s, 1)
            for s in ("marketing", "transactional")
        }
    assert got == {
        "marketing": ConsentState.OPTED_OUT,
        "transactional": ConsentState.OPTED_IN,
    }


def test_otp_scope_is_platform_wide(db: Database, policy: Policy) -> None:
    with transaction(db.engine) as session:
        one = businesses.add_business(session, "Sudsy").id
        two = businesses.add_business(session, "Fresh").id
        _opt_out(session, policy, scope="otp", business=None)
        with pytest.raises(
            FieldError, match=r"^business: scope 'otp' is platform-wide"
        ):
            _opt_out(session, policy, scope="otp", business=one)
        for bid in (one, two):
            assert consent.states(session, policy, CUSTOMER, bid)["otp"] is (
                ConsentState.OPTED_OUT
            )


def test_backdated_import_does_not_undo_a_later_stop(
    db: Database, policy: Policy
) -> None:
    with transaction(db.engine) as session:
        businesses.add_business(session, "Sudsy")
        _opt_out(session, policy, at=T0)
        old = _opt_in(
            session, policy, at=T0 - dt.timedelta(days=300), source=ConsentSource.IMPORT
        )
        state = consent.current_state(session, policy, CUSTOMER, "marketing", 1)
    assert old.action is ConsentAction.OPT_IN
    assert state is ConsentState.OPTED_OUT


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"source": None},
            "source: an opt-in needs its source (one of web_form, keyword, agent, "
            "provider_error_21610, import)",
        ),
        (
            {"consent_text": " "},
            "consent_text: an opt-in needs the exact consent text shown",
        ),
        (
            {"consent_text_version": None},
            "consent_text_version: an opt-in needs its version",
        ),
        (
            {"source": ConsentSource.KEYWORD, "source_ref": None},
            "source_ref: a keyword needs the inbound message id",
        ),
        (
            {"source": ConsentSource.PROVIDER_ERROR_21610},
            "source: provider error 21610 records an opt-out only",
        ),
        (
            {"scope": "promotions"},
            "scope: unknown scope 'promotions'; expected one of marketing, "
            "transactional, otp",
        ),
        (
            {"business": None},
            "business: scope 'marketing' is kept per business; name one",
        ),
        (
            {"at": dt.datetime(2026, 1, 1, 12, 0)},
            "at: a time without zone; give it with its UTC offset",
        ),
    ],
)
def test_bad_opt_in_is_refused_and_nothing_written(
    db: Database, policy: Policy, change: dict[str, object], message: str
) -> None:
    with transaction(db.engine) as session:
        businesses.add_business(session, "Sudsy")
    with pytest.raises(FieldError) as caught, transaction(db.engine) as session:
        _opt_in(session, policy, **change)
    assert str(caught.value) == message
    with transaction(db.engine, write=False) as session:
        assert consent.history(session) == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE consent_events SET scope = 'transactional'",
        "UPDATE consent_events SET consent_text = 'something else'",
        "DELETE FROM consent_events",
    ],
)
def test_ledger_rows_cannot_be_changed(
    db: Database, policy: Policy, statement: str
) -> None:
    with transaction(db.engine) as session:
        businesses.add_business(session, "Sudsy")
        _opt_in(session, policy)
    with pytest.raises(ConstraintViolation) as caught:  # noqa: SIM117
        with transaction(db.engine) as session:
            session.execute(text(statement))
    assert str(caught.value) == (
        "ledger: records are append-only: they cannot be updated or deleted"
    )
    with transaction(db.engine, write=False) as session:
        (entry,) = consent.history(session)
    assert entry.scope == "marketing"


def test_database_refuses_an_opt_in_without_evidence(db: Database) -> None:
    with transaction(db.engine) as session:
        businesses.add_business(session, "Sudsy")
    with pytest.raises(ConstraintViolation) as caught:  # noqa: SIM117
        with transaction(db.engine) as session:
            session.execute(
                text(
                    "INSERT INTO consent_events (business_id, phone, scope, action, "
                    "at, source, recorded_by) VALUES (1, '+12015550199', 'marketing', "
                    "'opt_in', CURRENT_TIMESTAMP, 'web_form', 'sql')"
                )
            )
    assert caught.value.field == "consent_events_opt_in_evidence"


def test_snapshot_feeds_facts(db: Database, policy: Policy) -> None:
    with transaction(db.engine) as session:
        bid = business_with_number(session, policy)
        numbers.migrate_second_number(session, policy, bid, TRANSACTIONAL, actor="t")
        numbers.add_number(
            session,
            policy,
            GLOBAL,
            role="global",
            business=None,
            actor="t",
            kind=NumberKind.TOLL_FREE,
            status=RegistrationStatus.REGISTERED,
        )
        _opt_in(session, policy, business=bid)
        _opt_out(session, policy, scope="otp", business=None)
    with transaction(db.engine, write=False) as session:
        snap = take_snapshot(session, policy, bid, CUSTOMER)
    assert snap.assist
    assert not snap.accelerate
    assert dict(snap.numbers) == {
        "marketing": NumberStatus.REGISTERED,
        "transactional": NumberStatus.PENDING,
        "global": NumberStatus.REGISTERED,
    }
    assert dict(snap.consent) == {
        "marketing": ConsentState.OPTED_IN,
        "transactional": ConsentState.NONE,
        "otp": ConsentState.OPTED_OUT,
    }
    facts = Facts(
        message_type="order_status",
        channel=Channel.SMS,
        jurisdiction="US-TX",
        local_date=dt.date(2026, 1, 5),
        local_time=dt.time(14, 0),
        **snap.fact_fields(),
    )
    assert facts.numbers["transactional"] is NumberStatus.PENDING
    # In the policy's order, so the compiled engine reads them by position.
    assert facts.shape is Engine(policy).shape


def test_snapshot_of_a_business_without_numbers(db: Database, policy: Policy) -> None:
    with transaction(db.engine) as session:
        bid = businesses.add_business(session, "Sudsy").id
        snap = take_snapshot(session, policy, bid, CUSTOMER)
    assert set(snap.numbers.values()) == {NumberStatus.ABSENT}
    assert set(snap.consent.values()) == {ConsentState.NONE}


def test_evidence_bundle(db: Database, policy: Policy, tmp_path: Path) -> None:
    with transaction(db.engine) as session:
        businesses.add_business(session, "Sudsy")
        _opt_in(session, policy)
        _opt_out(session, policy, at=T0 + dt.timedelta(hours=1))
        _opt_out(session, policy, scope="otp", business=None)
    with transaction(db.engine, write=False) as session:
        bundle = evidence.export_bundle(session, tmp_path, business="Sudsy")
    with bundle.csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    document = json.loads(bundle.json_path.read_text())
    assert bundle.records == 3
    assert [r["action"] for r in rows] == ["opt_in", "opt_out", "opt_out"]
    assert rows[0]["consent_text"] == OPT_IN["consent_text"]
    assert rows[0]["phone"] == CUSTOMER.e164
    assert {(s["scope"], s["state"]) for s in document["current_state"]} == {
        ("marketing", "opted_out"),
        ("otp", "opted_out"),
    }
