"""What to do about a provider error: Twilio's error codes mapped to actions.

The table is DOMAIN.md's. Synchronous errors (the create call answered 4xx or 5xx) and
asynchronous ones (a status callback with ``ErrorCode``) go through the same
:func:`classify`, so the pipeline has one decision for both. A code that is not in the
table is :attr:`ErrorAction.UNCLASSIFIED`: never retried blindly, dead-lettered for a person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum


class ErrorAction(StrEnum):
    """What the pipeline does with a message whose send failed."""

    RETRY_WITH_BACKOFF = "retry_with_backoff"
    """Not processed (429), or a transient failure: retry with capped backoff and jitter."""
    SLOW_DOWN_SENDER = "slow_down_sender"
    """The sender's queue at the provider is full: lower that number's pace, retry later."""
    BOUNDED_RETRY = "bounded_retry"
    """The handset was unreachable: retry a few times (``max_attempts``), then give up."""
    RETRY_AFTER_DELAY = "retry_after_delay"
    """Held by the provider's fraud protection: retry once ``retry_after`` has passed."""
    RECORD_OPT_OUT = "record_opt_out"
    """The recipient unsubscribed from this sender: write the opt-out for the number's
    scope, never retry."""
    NOT_SMS_CAPABLE = "not_sms_capable"
    """Landline or unknown handset: mark the phone as not SMS-capable and suppress."""
    REJECT = "reject"
    """The request itself is wrong (an invalid To number): never retry."""
    ALERT = "alert"
    """Carrier filtering: alert a person, do not retry blindly."""
    CONFIGURATION_BLOCK = "configuration_block"
    """The sending number is not registered or verified: block the number's sends until
    its configuration is fixed."""
    OUTCOME_UNKNOWN = "outcome_unknown"
    """The request may have reached the provider (a timeout after sending, a dropped
    connection): reconcile with the provider before anything else, never resend blindly."""
    UNCLASSIFIED = "unclassified"
    """A code this table does not know: dead-letter for a person, never retry blindly."""

    @property
    def may_retry(self) -> bool:
        """Whether a resend is ever allowed (after reconciling when the send may have
        gone out)."""
        return self in _RETRYING


_RETRYING = frozenset(
    {
        ErrorAction.RETRY_WITH_BACKOFF,
        ErrorAction.SLOW_DOWN_SENDER,
        ErrorAction.BOUNDED_RETRY,
        ErrorAction.RETRY_AFTER_DELAY,
    }
)

BOUNDED_RETRY_ATTEMPTS = 3
PUMPING_HOLD = dt.timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class ErrorClass:
    """A classified provider error.

    ``may_have_been_sent`` is true when the provider may have created the message although
    the call failed (timeouts after sending, dropped connections, 5xx answers: only a 429
    proves that nothing was processed). Such a message is reconciled before any resend.
    """

    action: ErrorAction
    meaning: str
    code: int | None = None
    http_status: int | None = None
    may_have_been_sent: bool = False
    retry_after: dt.timedelta | None = None
    max_attempts: int | None = None


# code: (action, meaning), as DOMAIN.md's table has them.
TWILIO_ERRORS: dict[int, tuple[ErrorAction, str]] = {
    20429: (ErrorAction.RETRY_WITH_BACKOFF, "too many requests"),
    21211: (ErrorAction.REJECT, "invalid To number"),
    21610: (ErrorAction.RECORD_OPT_OUT, "recipient unsubscribed from this sender"),
    21611: (ErrorAction.SLOW_DOWN_SENDER, "sender queue overflow"),
    21614: (ErrorAction.NOT_SMS_CAPABLE, "not a mobile number"),
    21635: (ErrorAction.NOT_SMS_CAPABLE, "landline"),
    30001: (ErrorAction.SLOW_DOWN_SENDER, "sender queue overflow"),
    30003: (ErrorAction.BOUNDED_RETRY, "unreachable handset"),
    30005: (ErrorAction.NOT_SMS_CAPABLE, "unknown handset"),
    30006: (ErrorAction.NOT_SMS_CAPABLE, "landline or unreachable carrier"),
    30007: (ErrorAction.ALERT, "carrier filtering"),
    30032: (ErrorAction.CONFIGURATION_BLOCK, "toll-free number not verified"),
    30034: (ErrorAction.CONFIGURATION_BLOCK, "10DLC number not registered"),
    30450: (ErrorAction.RETRY_AFTER_DELAY, "SMS pumping protection"),
}


def classify(code: int | None, http_status: int | None = None) -> ErrorClass:
    """Classify a provider error by its code and, for synchronous errors, HTTP status.

    >>> classify(21610, 400).action
    <ErrorAction.RECORD_OPT_OUT: 'record_opt_out'>
    >>> classify(None, 503).may_have_been_sent
    True
    """
    entry = TWILIO_ERRORS.get(code) if code is not None else None
    if entry is not None:
        action, meaning = entry
        return ErrorClass(
            action,
            meaning,
            code,
            http_status,
            retry_after=PUMPING_HOLD
            if action is ErrorAction.RETRY_AFTER_DELAY
            else None,
            max_attempts=(
                BOUNDED_RETRY_ATTEMPTS if action is ErrorAction.BOUNDED_RETRY else None
            ),
        )
    if http_status == 429:
        return ErrorClass(
            ErrorAction.RETRY_WITH_BACKOFF, "too many requests", code, http_status
        )
    if http_status is not None and http_status >= 500:
        return ErrorClass(
            ErrorAction.RETRY_WITH_BACKOFF,
            f"provider server error (HTTP {http_status})",
            code,
            http_status,
            may_have_been_sent=True,
        )
    return ErrorClass(
        ErrorAction.UNCLASSIFIED, "error code not in the table", code, http_status
    )


def outcome_unknown(meaning: str) -> ErrorClass:
    """The request may have reached the provider, and its answer was lost."""
    return ErrorClass(ErrorAction.OUTCOME_UNKNOWN, meaning, may_have_been_sent=True)


def not_sent(meaning: str) -> ErrorClass:
    """The request provably never reached the provider (the connection was refused)."""
    return ErrorClass(ErrorAction.RETRY_WITH_BACKOFF, meaning)
