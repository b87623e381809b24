"""The embedded default provider: sends nothing, and reports statuses as Twilio would.

Each accepted send gets a Twilio-shaped SID (``SM`` + 32 hex digits) and the initial status
``queued``; later statuses (``sent``, then ``delivered``, or a failure with an
``ErrorCode``) reach the status hook as the URL and form fields Twilio would POST, so the
pipeline handles simulated and real statuses on one path. As with Twilio, no callback is
sent for the initial status.

Statuses become due ``step`` seconds apart and are delivered by :meth:`SimulatorProvider.pump`,
which a worker loop calls, or by a background thread (:meth:`SimulatorProvider.start`).
Faults are injected through a :class:`FaultPlan`.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace

import structlog

from .. import segments
from ..errors import MessageNotFound
from . import classification
from .base import (
    Accepted,
    Failed,
    Match,
    MessageInfo,
    MessageStatus,
    Reconciliation,
    SendRequest,
    SendResult,
    StatusHook,
    mask_phone,
    with_correlation,
)

log = structlog.get_logger("dispatcher.providers")

SIMULATOR_ACCOUNT_SID = "AC" + "5" * 32
# Where callbacks "come from" when a request names no status callback URL.
SIMULATOR_CALLBACK_URL = "http://simulator.invalid/status"

# Codes after which a message never left (failed); the others are sent, then undelivered.
_NEVER_SENT = frozenset({21610, 30032, 30034, 30450})


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Failures to inject, per recipient or at random (seeded, so runs repeat).

    ``send_errors`` maps a To number to a code the send itself fails with (as Twilio's
    create call answers 21211 or 21610); ``delivery_errors`` maps a To number to a code
    reported later in a ``failed`` or ``undelivered`` callback (30003, 30007, ...).
    ``failure_rate`` of the other sends end undelivered with ``random_error_code``.
    ``unknown_outcome_rate`` of accepted sends report OUTCOME_UNKNOWN although the message
    exists, as a timeout after acceptance would: reconciliation finds them.
    """

    send_errors: Mapping[str, int] = field(default_factory=dict)
    delivery_errors: Mapping[str, int] = field(default_factory=dict)
    failure_rate: float = 0.0
    random_error_code: int = 30003
    unknown_outcome_rate: float = 0.0
    seed: int = 0


@dataclass(slots=True)
class _Message:
    info: MessageInfo
    correlation_id: str
    callback_url: str


class SimulatorProvider:
    """In-process provider; thread-safe. See the module docstring."""

    name = "simulator"

    def __init__(
        self,
        hook: StatusHook | None = None,
        *,
        faults: FaultPlan | None = None,
        step: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] | None = None,
        account_sid: str = SIMULATOR_ACCOUNT_SID,
    ) -> None:
        self.hook = hook
        self.faults = faults or FaultPlan()
        self.step = step
        self.account_sid = account_sid
        self._clock = clock
        # When messages are "created": tests that run the pipeline on a fixed clock pass it.
        self._wall_clock = wall_clock or (lambda: dt.datetime.now(dt.UTC))
        self._random = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._messages: dict[str, _Message] = {}
        self._due: list[tuple[float, int, str, MessageStatus, int | None]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # The provider interface.

    def send(self, request: SendRequest) -> SendResult:
        code = self.faults.send_errors.get(request.to)
        if code is not None:
            error = classification.classify(code, 400)
            self._log(request, "failed", None, error.action.value, code)
            return Failed(error, f"simulator: error {code} ({error.meaning})")

        with self._lock:
            sid = "SM" + self._random.randbytes(16).hex()
            delivery_code = self.faults.delivery_errors.get(request.to)
            if (
                delivery_code is None
                and self._random.random() < self.faults.failure_rate
            ):
                delivery_code = self.faults.random_error_code
            unknown = self._random.random() < self.faults.unknown_outcome_rate
            info = MessageInfo(
                sid=sid,
                status=MessageStatus.QUEUED,
                to=request.to,
                from_=request.from_,
                body=request.body,
                date_created=self._wall_clock(),
                segments=segments.count(request.body).segments if request.body else 0,
            )
            url = request.callback_url or with_correlation(
                SIMULATOR_CALLBACK_URL, request.correlation_id
            )
            self._messages[sid] = _Message(info, request.correlation_id, url)
            self._schedule(sid, delivery_code)

        if unknown:
            error = classification.outcome_unknown(
                "simulator: answer lost after acceptance"
            )
            self._log(request, "unknown", sid, error.action.value, None)
            return Failed(error, "simulator: the answer to the create call was lost")
        self._log(request, "accepted", sid, None, None)
        return Accepted(sid, MessageStatus.QUEUED)

    def fetch(self, sid: str) -> MessageInfo:
        with self._lock:
            message = self._messages.get(sid)
        if message is None:
            raise MessageNotFound(sid)
        return message.info

    def find(
        self,
        request: SendRequest,
        *,
        attempted_at: dt.datetime,
        exclude_sids: Collection[str] = (),
    ) -> Reconciliation:
        with self._lock:
            found = [
                m.info
                for m in self._messages.values()
                if m.correlation_id == request.correlation_id
                and m.info.date_created >= attempted_at
                and m.info.sid not in exclude_sids
            ]
        if not found:
            return Reconciliation(Match.NOT_FOUND)
        if len(found) == 1:
            return Reconciliation(Match.FOUND, found[0])
        return Reconciliation(Match.AMBIGUOUS, candidates=tuple(m.sid for m in found))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # Status delivery.

    def pump(self) -> int:
        """Deliver every status that is due; returns how many were delivered."""
        delivered = 0
        while True:
            with self._lock:
                if not self._due or self._due[0][0] > self._clock():
                    return delivered
                _, _, sid, status, code = heapq.heappop(self._due)
                message = self._messages[sid]
                message.info = replace(message.info, status=status, error_code=code)
                url, form = message.callback_url, self._form(message.info)
            if self.hook is not None:
                self.hook(url, form)
            delivered += 1

    def drain(self) -> int:
        """Deliver every scheduled status now, due or not (for tests and ``make run``)."""
        with self._lock:
            self._due = [(0.0, o, sid, st, c) for _, o, sid, st, c in self._due]
            heapq.heapify(self._due)
        return self.pump()

    def start(self) -> None:
        """Deliver statuses from a daemon thread until :meth:`close`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="simulator-status", daemon=True
        )
        self._thread.start()

    def sends_for(self, correlation_id: str) -> int:
        """How many messages the simulator created for ``correlation_id``."""
        with self._lock:
            return sum(
                m.correlation_id == correlation_id for m in self._messages.values()
            )

    def _run(self) -> None:
        while not self._stop.wait(self.step / 2):
            self.pump()

    def _schedule(self, sid: str, code: int | None) -> None:
        now = self._clock()
        if code is None:
            steps: list[tuple[MessageStatus, int | None]] = [
                (MessageStatus.SENT, None),
                (MessageStatus.DELIVERED, None),
            ]
        elif code in _NEVER_SENT:
            steps = [(MessageStatus.FAILED, code)]
        else:
            steps = [(MessageStatus.SENT, None), (MessageStatus.UNDELIVERED, code)]
        for i, (status, error) in enumerate(steps, start=1):
            heapq.heappush(
                self._due, (now + i * self.step, next(self._order), sid, status, error)
            )

    def _form(self, info: MessageInfo) -> dict[str, str]:
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": info.from_,
            "MessageSid": info.sid,
            "MessageStatus": info.status.value,
            "SmsSid": info.sid,
            "SmsStatus": info.status.value,
            "To": info.to,
        }
        if info.error_code is not None:
            form["ErrorCode"] = str(info.error_code)
        return form

    def _log(
        self,
        request: SendRequest,
        outcome: str,
        sid: str | None,
        action: str | None,
        code: int | None,
    ) -> None:
        log.info(
            "provider_send",
            provider=self.name,
            correlation_id=request.correlation_id,
            to=mask_phone(request.to),
            outcome=outcome,
            sid=sid,
            action=action,
            code=code,
        )
