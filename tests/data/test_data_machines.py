"""Stateful tests: random sequences of commands against the real database.

* The consent ledger and a plain in-memory model agree after every event.
* No sequence of registry commands breaks the number rules, and a refused command
  leaves nothing written.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from dispatcher import businesses, consent, numbers
from dispatcher.consent import ConsentAction, ConsentSource
from dispatcher.errors import InputError
from dispatcher.facts import ConsentState
from dispatcher.numbers import RegistrationStatus
from dispatcher.phone import Phone
from dispatcher.policy import Policy
from dispatcher.store import transaction

from .conftest import Database
from .helpers import phone

CI = os.environ.get("HYPOTHESIS_PROFILE") == "ci"
SETTINGS = settings(
    max_examples=40 if CI else 12,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
PHONES = [phone(n) for n in range(1, 4)]
SCOPES = ["marketing", "transactional", "otp"]


def _no_full_number(message: str, phones: list[Phone]) -> None:
    for item in phones:
        assert item.e164 not in message, "a full phone number leaked into a message"


def run_consent_machine(db: Database, policy: Policy) -> None:
    class ConsentLedger(RuleBasedStateMachine):
        """The ledger against a dict of (business, phone, scope) -> (time, state)."""

        @initialize()
        def start(self) -> None:
            db.reset()
            with transaction(db.engine) as session:
                self.business_ids = [
                    businesses.add_business(session, name).id for name in ("A", "B")
                ]
            self.model: dict[tuple[int | None, str, str], tuple[dt.datetime, str]] = {}
            self.count = 0

        @rule(
            opt_in=st.booleans(),
            who=st.sampled_from(PHONES),
            business=st.integers(0, 1),
            scope=st.sampled_from(SCOPES),
            hours=st.integers(0, 4),
            source=st.sampled_from([*ConsentSource, None]),
            with_ref=st.booleans(),
        )
        def record(
            self,
            opt_in: bool,
            who: Phone,
            business: int,
            scope: str,
            hours: int,
            source: ConsentSource | None,
            with_ref: bool,
        ) -> None:
            owner = None if scope == "otp" else self.business_ids[business]
            at = T0 + dt.timedelta(hours=hours)
            refused = (
                source is None
                or (opt_in and source is ConsentSource.PROVIDER_ERROR_21610)
                or (source is ConsentSource.KEYWORD and not with_ref)
            )
            try:
                with transaction(db.engine) as session:
                    entry = consent.record(
                        session,
                        policy,
                        phone=who,
                        scope=scope,
                        business=owner,
                        opt_in=opt_in,
                        source=source,
                        recorded_by="machine",
                        source_ref="SM1" if with_ref else None,
                        consent_text="Yes" if opt_in else None,
                        consent_text_version="v1" if opt_in else None,
                        at=at,
                    )
            except InputError as exc:
                # The model decides whether a refusal was right.
                assert refused, f"refused unexpectedly: {exc}"  # noqa: PT017
                _no_full_number(str(exc), PHONES)
                return
            assert not refused, "accepted a record that must be refused"
            self.count += 1
            key = (owner, who.e164, scope)
            seen = self.model.get(key)
            newer = seen is None or at >= seen[0]
            if opt_in:
                reopen = newer and seen is not None and seen[1] == "opted_out"
                expected = ConsentAction.RE_OPT_IN if reopen else ConsentAction.OPT_IN
            else:
                expected = ConsentAction.OPT_OUT
            assert entry.action is expected
            if newer:
                self.model[key] = (at, "opted_in" if opt_in else "opted_out")

        @invariant()
        def states_agree(self) -> None:
            if not hasattr(self, "model"):
                return
            with transaction(db.engine, write=False) as session:
                for bid in self.business_ids:
                    for who in PHONES:
                        stored = consent.states(session, policy, who, bid)
                        for scope in SCOPES:
                            owner = None if scope == "otp" else bid
                            seen = self.model.get((owner, who.e164, scope))
                            want = ConsentState(seen[1]) if seen else ConsentState.NONE
                            assert stored[scope] is want, (bid, who, scope)
                assert len(consent.history(session)) == self.count

    run_state_machine_as_test(ConsentLedger, settings=SETTINGS)


def test_ledger_agrees_with_a_model(db: Database, policy: Policy) -> None:
    run_consent_machine(db, policy)


_ROW_COUNTS = (
    "SELECT (SELECT COUNT(*) FROM businesses), (SELECT COUNT(*) FROM numbers), "
    "(SELECT COUNT(*) FROM number_changes)"
)
_BROKEN_RULES = {
    "two active numbers in one role of a business": (
        "SELECT business_id, role FROM numbers WHERE retired_at IS NULL AND "
        "business_id IS NOT NULL GROUP BY business_id, role HAVING COUNT(*) > 1"
    ),
    "a number active twice": (
        "SELECT e164 FROM numbers WHERE retired_at IS NULL GROUP BY e164 "
        "HAVING COUNT(*) > 1"
    ),
    "more than one global number": (
        "SELECT role FROM numbers WHERE retired_at IS NULL AND business_id IS NULL "
        "GROUP BY role HAVING COUNT(*) > 1"
    ),
    "a platform role on a business or a business role on the platform": (
        "SELECT id FROM numbers WHERE retired_at IS NULL AND ("
        "(business_id IS NULL AND role <> 'global') OR "
        "(business_id IS NOT NULL AND role = 'global'))"
    ),
    "the second-number change recorded twice": (
        "SELECT business_id FROM number_changes WHERE action = 'second_number' "
        "GROUP BY business_id HAVING COUNT(*) > 1"
    ),
}
NUMBER_POOL = [phone(n) for n in range(10, 18)]
ROLES = ["marketing", "transactional", "global"]


def run_registry_machine(db: Database, policy: Policy) -> None:
    class Registry(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            db.reset()
            self.had_global = False

        def attempt(self, command: Callable[[Any], object]) -> None:
            with db.engine.connect() as connection:
                before = connection.execute(text(_ROW_COUNTS)).one()
            try:
                with transaction(db.engine) as session:
                    command(session)
            except InputError as exc:
                _no_full_number(str(exc), NUMBER_POOL)
                with db.engine.connect() as connection:
                    after = connection.execute(text(_ROW_COUNTS)).one()
                assert tuple(after) == tuple(before), "a refused command wrote rows"

        @rule(name=st.sampled_from(["A", "B", "C"]), assist=st.booleans())
        def add_business(self, name: str, assist: bool) -> None:
            self.attempt(lambda s: businesses.add_business(s, name, assist=assist))

        @rule(name=st.sampled_from(["A", "B", "C"]), on=st.booleans())
        def enrol(self, name: str, on: bool) -> None:
            self.attempt(lambda s: businesses.enrol(s, name, accelerate=on))

        @rule(
            number=st.sampled_from(NUMBER_POOL),
            role=st.sampled_from(ROLES),
            owner=st.sampled_from(["A", "B", "C", None]),
            replace=st.booleans(),
            status=st.sampled_from(RegistrationStatus),
        )
        def add_number(
            self,
            number: Phone,
            role: str,
            owner: str | None,
            replace: bool,
            status: RegistrationStatus,
        ) -> None:
            self.attempt(
                lambda s: numbers.add_number(
                    s,
                    policy,
                    number,
                    role=role,
                    business=owner,
                    actor="m",
                    replace=replace,
                    status=status,
                )
            )

        @rule(number=st.sampled_from(NUMBER_POOL))
        def retire(self, number: Phone) -> None:
            self.attempt(lambda s: numbers.retire_number(s, policy, number, actor="m"))

        @rule(
            number=st.sampled_from(NUMBER_POOL),
            status=st.sampled_from(RegistrationStatus),
        )
        def set_status(self, number: Phone, status: RegistrationStatus) -> None:
            self.attempt(lambda s: numbers.set_status(s, number, status, actor="m"))

        @rule(
            owner=st.sampled_from(["A", "B", "C"]), number=st.sampled_from(NUMBER_POOL)
        )
        def migrate(self, owner: str, number: Phone) -> None:
            self.attempt(
                lambda s: numbers.migrate_second_number(
                    s, policy, owner, number, actor="m"
                )
            )

        @invariant()
        def rules_hold(self) -> None:
            with db.engine.connect() as connection:
                for rule_name, query in _BROKEN_RULES.items():
                    assert connection.execute(text(query)).all() == [], rule_name
                globals_ = connection.execute(
                    text(
                        "SELECT COUNT(*) FROM numbers WHERE retired_at IS NULL AND "
                        "business_id IS NULL"
                    )
                ).scalar_one()
            # Once the platform has its global number, it always has exactly one.
            if getattr(self, "had_global", False):
                assert globals_ == 1, "the platform lost its global number"
            self.had_global = globals_ == 1 or getattr(self, "had_global", False)

    run_state_machine_as_test(Registry, settings=SETTINGS)


def test_registry_commands_cannot_break_the_number_rules(
    db: Database, policy: Policy
) -> None:
    run_registry_machine(db, policy)
