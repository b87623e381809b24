"""Workers: claim due messages, re-decide, pace, send through the provider, settle.

Any number of worker processes, on any number of machines, may share one database. A
worker never holds a transaction open while it talks to the provider:

1. **Claim** (one write transaction): pick due messages in lane and fair-rank order
   (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer at a time), decide
   each again with the consent and numbers committed now (an opt-out committed before the
   claim always wins), take a slot from the sending number's pacer, and mark the message
   ``sending`` under a lease with a new fence.
2. **Send**, outside any transaction, only while the lease holds.
3. **Settle** with an update fenced on the claim: a worker whose lease was taken over
   changes nothing.

A message whose send may have reached the provider but whose answer never came (the
process died, the request timed out) is reconciled: after the lease and the provider's
own timeout have run out, a worker asks the provider whether the message exists and
settles it, and only resends when the provider has no trace of it. Never blindly.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog
from sqlalchemy import Engine as DbEngine
from sqlalchemy import select, text, update
from sqlmodel import Session, col

from . import billing, consent, tables
from .consent import ConsentSource
from .decision import Decision
from .engine import Engine
from .errors import InternalError, ProviderError
from .facts import Channel, Facts, NumberStatus
from .outbox import decide, facts_for, from_number, marketing_sent_24h
from .pacing import take_pace
from .phone import Phone
from .policy import Outcome
from .providers.base import (
    Accepted,
    Failed,
    Match,
    Provider,
    SendRequest,
)
from .providers.classification import ErrorAction
from .recipients import Candidate, Location
from .snapshot import Snapshot, number_statuses
from .store import rowcount, transaction, utc_now

log = structlog.get_logger("dispatcher.worker")

# How many times one claim looks again past the numbers whose pacer refused.
CLAIM_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How a worker paces itself. The defaults suit production; tests shorten them."""

    batch: int = 20
    lease: dt.timedelta = dt.timedelta(seconds=30)
    provider_timeout: dt.timedelta = dt.timedelta(seconds=10)
    max_attempts: int = 8
    backoff_base: dt.timedelta = dt.timedelta(seconds=2)
    backoff_cap: dt.timedelta = dt.timedelta(minutes=15)
    burst: dt.timedelta = dt.timedelta(milliseconds=200)
    idle_sleep: float = 0.05
    otp_validity_seconds: int = 600
    status_callback: str | None = None
    reconcile: bool = True
    """Off only in the crash tests' control run: unknown outcomes are then resent blindly."""
    lanes: tuple[int, ...] | None = None
    """Claim only from these lanes (``None``: all). A worker kept to the OTP and
    transactional lanes is never busy with a campaign when a code comes in."""
    concurrency: int = 1
    """Sends of one batch in flight at once. The provider's answer time, not CPU,
    bounds one worker that sends one message at a time (Twilio answers in 100s of ms);
    one recipient's messages are still sent one after the other, in claim order."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A message this worker may send, under ``fence`` until ``lease_expires``."""

    message_id: int
    fence: int
    lease_expires: dt.datetime
    request: SendRequest
    attempts: int
    category: str
    scope: str | None
    business_id: int
    from_number_id: int
    segments: int


def _default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 10_000}"


def backoff(
    settings: WorkerSettings, attempts: int, rng: random.Random
) -> dt.timedelta:
    """Capped exponential backoff with full jitter."""
    ceiling = min(
        settings.backoff_cap.total_seconds(),
        settings.backoff_base.total_seconds() * 2 ** max(0, attempts - 1),
    )
    return dt.timedelta(seconds=rng.uniform(ceiling / 2, ceiling))


class Worker:
    """One worker loop. ``step()`` does one claim-send-settle round; ``run()`` loops."""

    def __init__(
        self,
        db: DbEngine,
        engine: Engine | Callable[[], Engine],
        provider: Provider,
        settings: WorkerSettings | None = None,
        *,
        name: str | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.db = db
        self._engine = engine
        self.provider = provider
        self.settings = settings or WorkerSettings()
        self.name = name or _default_name()
        self.clock = clock
        self.rng = random.Random()
        self._senders: ThreadPoolExecutor | None = None

    @property
    def engine(self) -> Engine:
        """The policy in force now (a callable lets a reload swap it between rounds)."""
        return self._engine if isinstance(self._engine, Engine) else self._engine()

    # --- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, until_idle: bool = False) -> None:
        """Work until ``stop`` is set (or, with ``until_idle``, until nothing is due)."""
        try:
            while not stop.is_set():
                done = self.step()
                if done == 0:
                    if until_idle and not self.has_work():
                        return
                    stop.wait(self.settings.idle_sleep)
        finally:
            self.close()

    def close(self) -> None:
        """Let the sending threads finish what they hold, and end them."""
        if self._senders is not None:
            self._senders.shutdown(wait=True)
            self._senders = None

    def step(self) -> int:
        """Reconcile what is overdue, then claim, send and settle one batch."""
        handled = self.recover()
        claims = self.claim()
        if self.settings.concurrency > 1 and len(claims) > 1:
            by_recipient: dict[str, list[Claim]] = {}
            for claim in claims:
                by_recipient.setdefault(claim.request.to, []).append(claim)
            if self._senders is None:
                self._senders = ThreadPoolExecutor(
                    self.settings.concurrency, thread_name_prefix="send"
                )
            # list() waits for every send and raises the first error, as the loop does.
            list(self._senders.map(self._deliver_all, by_recipient.values()))
        else:
            self._deliver_all(claims)
        return handled + len(claims)

    def _deliver_all(self, claims: Sequence[Claim]) -> None:
        for claim in claims:
            self.deliver(claim)

    def has_work(self) -> bool:
        with transaction(self.db, write=False) as session:
            found = session.execute(
                select(col(tables.Message.id))
                .where(col(tables.Message.state).in_(("queued", "sending", "unknown")))
                .limit(1)
            ).first()
        return found is not None

    # --- claim ---------------------------------------------------------------------------

    def claim(self) -> list[Claim]:
        """Claim up to ``batch`` due messages (see the module docstring)."""
        now = self.clock()
        engine = self.engine
        claims: list[Claim] = []
        with transaction(self.db) as session:
            message = tables.Message
            # Numbers whose pacer is full are left out, and a number whose pacer
            # refuses during this claim is left out of the next round, so that a
            # backlog on one number does not hide the other numbers' messages.
            paced_out = select(col(tables.Pacer.number_id)).where(
                col(tables.Pacer.ready_at) > now + self.settings.burst
            )
            refused: set[int] = set()
            seen: set[int] = set()
            snapshots: dict[int, tuple[bool, bool, dict[str, NumberStatus]]] = {}
            for rounds in range(CLAIM_ROUNDS):
                query = select(message).where(
                    col(message.state) == "queued",
                    col(message.not_before) <= now,
                    col(message.from_number_id).is_(None)
                    | col(message.from_number_id).not_in(paced_out),
                )
                if refused:
                    query = query.where(
                        col(message.from_number_id).is_(None)
                        | col(message.from_number_id).not_in(refused)
                    )
                if seen:
                    query = query.where(col(message.id).not_in(seen))
                if self.settings.lanes is not None:
                    query = query.where(col(message.lane).in_(self.settings.lanes))
                query = (
                    query.order_by(
                        col(message.lane), col(message.rank), col(message.id)
                    )
                    .limit(self.settings.batch * 3)
                    .with_for_update(skip_locked=True)
                )
                rows = list(session.execute(query).scalars())
                if not rows:
                    break
                seen.update(_message_id(row) for row in rows)
                _share_consent_locks(session, engine, rows)
                refusals = len(refused)
                ready: list[tuple[tables.Message, Decision, int]] = []
                for row in rows:
                    if len(claims) + len(ready) >= self.settings.batch:
                        break
                    sendable = self._redecide(
                        session, engine, row, now, snapshots, refused
                    )
                    if sendable is not None:
                        ready.append((row, *sendable))
                # Pacers last, in number order: held briefly, never crosswise. A later
                # round skips pacers other claims hold rather than wait while holding
                # its own.
                for row, decision, number_id in sorted(ready, key=lambda r: r[2]):
                    if number_id in refused:
                        continue
                    if not take_pace(
                        session,
                        number_id,
                        row.segments,
                        self.clock,
                        self.settings.burst,
                        wait=rounds == 0,
                    ):
                        refused.add(number_id)
                        continue
                    claims.append(
                        self._mark_claimed(session, row, decision, number_id, now)
                    )
                if len(claims) >= self.settings.batch or len(refused) == refusals:
                    break
        for claim in claims:
            log.info(
                "send_claimed",
                message_id=claim.message_id,
                fence=claim.fence,
                to=Phone.from_stored(claim.request.to).masked,
                category=claim.category,
            )
        return claims

    def _redecide(
        self,
        session: Session,
        engine: Engine,
        row: tables.Message,
        now: dt.datetime,
        snapshots: dict[int, tuple[bool, bool, dict[str, NumberStatus]]],
        refused: set[int],
    ) -> tuple[Decision, int] | None:
        """Decide ``row`` again with what is committed now; its number when it sends.

        A message that no longer sends is settled here (suppressed, rejected, deferred or
        held) with the new decision recorded.
        """
        if row.from_number_id in refused:
            return None  # its number is paced out for this claim; it waits, unchanged
        policy = engine.policy
        phone = Phone.from_stored(row.phone)
        if row.business_id not in snapshots:
            snapshots[row.business_id] = number_statuses(
                session, policy, row.business_id
            )
        assist, accelerate, numbers = snapshots[row.business_id]
        states = consent.states(session, policy, phone, row.business_id)
        snapshot = Snapshot(row.business_id, assist, accelerate, numbers, states)
        sent = marketing_sent_24h(session, row.business_id, phone, now, exclude=row.id)
        zones = tuple(zone for zone in row.zones.split(",") if zone)
        location = Location(jurisdiction=row.jurisdiction, zones=zones)
        channel = Channel(row.channel)

        def build(candidate: Candidate) -> Facts:
            return facts_for(
                row.message_type, channel, snapshot, row.reply_role, candidate, sent
            )

        decision, facts, not_before = decide(engine, build, location, now)
        changed = (decision.outcome, decision.role) != (Outcome(row.outcome), row.role)
        if changed or decision.outcome is not Outcome.SEND:
            _record_decision(session, row, decision, facts, now, stage="claim")
        if decision.outcome is not Outcome.SEND:
            row.outcome = decision.outcome.value
            row.reason = decision.reason
            row.rule_id = decision.rule.id
            if decision.outcome is Outcome.DEFER:
                row.state = "queued" if decision.not_before_local else "held"
                row.not_before = not_before
            else:
                row.state = (
                    "suppressed" if decision.outcome is Outcome.SUPPRESS else "rejected"
                )
            row.updated_at = now
            session.add(row)
            log.info(
                "send_redecided",
                message_id=row.id,
                outcome=decision.outcome.value,
                rule=decision.rule.id,
            )
            return None
        number_id = from_number(session, policy, row.business_id, decision.role or "")
        if number_id is None or number_id in refused:
            return None
        return decision, number_id

    def _mark_claimed(
        self,
        session: Session,
        row: tables.Message,
        decision: Decision,
        number_id: int,
        now: dt.datetime,
    ) -> Claim:
        number = session.get(tables.Number, number_id)
        if number is None:  # pragma: no cover - from_number just read it
            raise InternalError(f"number {number_id} vanished during a claim")
        row.role = decision.role
        row.from_number_id = number_id
        row.state = "sending"
        row.fence += 1
        row.attempts += 1
        row.lease_owner = self.name
        row.lease_expires = now + self.settings.lease
        row.updated_at = now
        session.add(row)
        session.add(
            tables.MessageEvent(
                message_id=_message_id(row),
                at=now,
                kind="attempt",
                detail=f"attempt {row.attempts}",
            )
        )
        return Claim(
            message_id=_message_id(row),
            fence=row.fence,
            lease_expires=row.lease_expires,
            request=self._request(row, number.e164, decision.category or ""),
            attempts=row.attempts,
            category=decision.category or "",
            scope=decision.scope,
            business_id=row.business_id,
            from_number_id=number_id,
            segments=row.segments,
        )

    def _request(self, row: tables.Message, sender: str, category: str) -> SendRequest:
        return SendRequest(
            correlation_id=row.correlation,
            to=row.phone,
            from_=sender,
            body=row.body,
            media_urls=tuple(json.loads(row.media)),
            status_callback=self.settings.status_callback,
            validity_period=self.settings.otp_validity_seconds
            if category == "otp"
            else None,
        )

    # --- send and settle -----------------------------------------------------------------

    def deliver(self, claim: Claim) -> None:
        """Send one claimed message, unless its lease ran out, and settle the answer."""
        if self.clock() >= claim.lease_expires:
            log.warning("send_lease_expired", message_id=claim.message_id)
            return
        result = self.provider.send(claim.request)
        self.settle(claim, result)

    def settle(self, claim: Claim, result: Accepted | Failed) -> bool:
        """Record the provider's answer; False when the claim was lost meanwhile."""
        now = self.clock()
        values: dict[str, object] = {"lease_owner": None, "updated_at": now}
        event_kind, status, code, detail = "accepted", None, None, None
        if isinstance(result, Accepted):
            values.update(
                state="sent",
                provider_sid=result.sid,
                provider_status=result.status.value,
            )
            status = result.status.value
        else:
            error = result.error
            code = error.code
            detail = result.detail
            event_kind = error.action.value
            values.update(error_code=code, error=result.detail)
            values.update(
                self._after_failure(
                    claim,
                    error.action,
                    error.retry_after,
                    error.max_attempts,
                    error.may_have_been_sent,
                    now,
                )
            )
        with transaction(self.db) as session:
            message = tables.Message
            done = rowcount(
                session.execute(
                    update(message)
                    .where(
                        col(message.id) == claim.message_id,
                        col(message.fence) == claim.fence,
                        col(message.state).in_(("sending", "unknown")),
                    )
                    .values(**values)
                )
            )
            if not done:
                log.warning(
                    "send_settle_lost", message_id=claim.message_id, fence=claim.fence
                )
                return False
            session.add(
                tables.MessageEvent(
                    message_id=claim.message_id,
                    at=now,
                    kind=event_kind,
                    status=status,
                    error_code=code,
                    detail=detail,
                )
            )
            if (
                isinstance(result, Failed)
                and result.error.action is ErrorAction.RECORD_OPT_OUT
            ):
                self._record_provider_opt_out(session, claim, now)
            billing.bill_message(session, claim.message_id, now)
        outcome = values.get("state", "sent")
        event = "send_settled" if outcome == "sent" else "send_failed"
        level = (
            log.error
            if outcome == "dead"
            else (log.warning if outcome == "queued" else log.info)
        )
        level(event, message_id=claim.message_id, state=outcome, error_code=code)
        return True

    def _after_failure(
        self,
        claim: Claim,
        action: ErrorAction,
        retry_after: dt.timedelta | None,
        max_attempts: int | None,
        may_have_been_sent: bool,
        now: dt.datetime,
    ) -> dict[str, object]:
        if action is ErrorAction.OUTCOME_UNKNOWN or (
            may_have_been_sent and action.may_retry
        ):
            # Reconcile once the provider's own timeout has surely run out.
            return {
                "state": "unknown",
                "lease_expires": now + self.settings.provider_timeout,
            }
        if action.may_retry:
            limit = min(
                max_attempts or self.settings.max_attempts, self.settings.max_attempts
            )
            if claim.attempts >= limit:
                return {"state": "dead"}
            wait = retry_after or backoff(self.settings, claim.attempts, self.rng)
            return {"state": "queued", "not_before": now + wait, "lease_expires": None}
        if action in (ErrorAction.RECORD_OPT_OUT, ErrorAction.NOT_SMS_CAPABLE):
            return {"state": "suppressed"}
        if action is ErrorAction.REJECT:
            return {"state": "rejected"}
        return {"state": "dead"}

    def _record_provider_opt_out(
        self, session: Session, claim: Claim, now: dt.datetime
    ) -> None:
        """Twilio's 21610: the recipient unsubscribed from this number; our ledger agrees."""
        if claim.scope is None:
            return
        policy = self.engine.policy
        owner = (
            None
            if policy.scopes[claim.scope].owner == "platform"
            else claim.business_id
        )
        consent.record(
            session,
            policy,
            phone=Phone.from_stored(claim.request.to),
            scope=claim.scope,
            business=owner,
            opt_in=False,
            source=ConsentSource.PROVIDER_ERROR_21610,
            recorded_by=f"worker {self.name}",
            source_ref=str(claim.message_id),
            number_id=claim.from_number_id,
            at=now,
        )

    # --- reconciliation ------------------------------------------------------------------

    def recover(self) -> int:
        """Settle messages whose outcome is unknown, asking the provider first."""
        now = self.clock()
        overdue = now - self.settings.provider_timeout
        with transaction(self.db) as session:
            message = tables.Message
            rows = list(
                session.execute(
                    select(message)
                    .where(
                        col(message.state).in_(("sending", "unknown")),
                        col(message.lease_expires) < overdue,
                    )
                    .order_by(col(message.lane), col(message.id))
                    .limit(self.settings.batch)
                    .with_for_update(skip_locked=True)
                ).scalars()
            )
            claims = []
            for row in rows:
                number = session.get(tables.Number, row.from_number_id)
                if number is None:
                    continue
                row.fence += 1
                row.state = "unknown"
                row.lease_owner = self.name
                row.lease_expires = now + self.settings.lease
                session.add(row)
                claims.append(
                    Claim(
                        message_id=row.id or 0,
                        fence=row.fence,
                        lease_expires=row.lease_expires,
                        request=self._request(row, number.e164, row.category),
                        attempts=row.attempts,
                        category=row.category,
                        scope=row.scope,
                        business_id=row.business_id,
                        from_number_id=row.from_number_id or 0,
                        segments=row.segments,
                    )
                )
        for claim in claims:
            self._reconcile(claim, since=now - self.settings.lease * 4)
        return len(claims)

    def _reconcile(self, claim: Claim, since: dt.datetime) -> None:
        if not self.settings.reconcile:
            self._requeue(claim, "blind resend (reconciliation off)")
            return
        try:
            found = self.provider.find(claim.request, attempted_at=since)
        except ProviderError as error:
            log.warning(
                "reconcile_unavailable", message_id=claim.message_id, error=str(error)
            )
            return
        if found.match is Match.FOUND and found.message is not None:
            log.info("reconcile_found", message_id=claim.message_id)
            self.settle(claim, Accepted(found.message.sid, found.message.status))
        elif found.match is Match.NOT_FOUND:
            log.warning("reconcile_not_found", message_id=claim.message_id)
            self._requeue(claim, "provider has no trace of it: resending")
        else:
            log.error(
                "reconcile_ambiguous",
                message_id=claim.message_id,
                candidates=len(found.candidates),
            )
            self._dead(claim, "several provider messages match; a person decides")

    def _requeue(self, claim: Claim, why: str) -> None:
        self._move(
            claim, {"state": "queued", "not_before": self.clock()}, "requeued", why
        )

    def _dead(self, claim: Claim, why: str) -> None:
        self._move(claim, {"state": "dead"}, "dead", why)

    def _move(
        self, claim: Claim, values: dict[str, object], kind: str, why: str
    ) -> None:
        now = self.clock()
        with transaction(self.db) as session:
            message = tables.Message
            done = rowcount(
                session.execute(
                    update(message)
                    .where(
                        col(message.id) == claim.message_id,
                        col(message.fence) == claim.fence,
                    )
                    .values(lease_owner=None, updated_at=now, **values)
                )
            )
            if done:
                session.add(
                    tables.MessageEvent(
                        message_id=claim.message_id, at=now, kind=kind, detail=why
                    )
                )


def _record_decision(
    session: Session,
    row: tables.Message,
    decision: Decision,
    facts: Facts,
    now: dt.datetime,
    stage: str,
) -> None:
    session.add(
        tables.DecisionEvent(
            message_id=_message_id(row),
            at=now,
            stage=stage,
            outcome=decision.outcome.value,
            role=decision.role,
            reason=decision.reason,
            rule_id=decision.rule.id,
            rule_file=decision.rule.file,
            rule_line=decision.rule.line,
            policy_hash=decision.policy_hash,
            facts=json.dumps(facts.to_mapping(), separators=(",", ":")),
        )
    )


def _share_consent_locks(
    session: Session, engine: Engine, rows: Sequence[tables.Message]
) -> None:
    """On PostgreSQL, wait for opt-outs being written for these recipients to commit.

    :func:`dispatcher.consent.record` holds an exclusive advisory lock per (owner, phone,
    scope) until its transaction ends; taking the shared form here means an opt-out
    either commits before this claim reads consent, or starts after the claim commits.
    """
    if session.get_bind().dialect.name != "postgresql" or not rows:
        return
    policy = engine.policy
    keys = set()
    for row in rows:
        for scope in policy.scopes.values():
            owner = None if scope.owner == "platform" else row.business_id
            keys.add(f"consent:{owner}:{row.phone}:{scope.name}")
    session.execute(
        text(
            "SELECT pg_advisory_xact_lock_shared(hashtextextended(k, 0)) FROM unnest(CAST(:keys AS text[])) AS k"
        ),
        {"keys": sorted(keys)},
    )


def _message_id(row: tables.Message) -> int:
    if row.id is None:  # pragma: no cover - rows read from the database have ids
        raise InternalError("message row without an id")
    return row.id
