"""The provider interface the send pipeline calls, and the values that cross it.

Every method of a :class:`Provider` does network I/O (or pretends to): call it outside any
database transaction. Phone numbers cross this boundary as E.164 strings; every repr and
log line here shows them masked (:func:`mask_phone`), and message bodies never.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import InvalidSendRequest, InvalidStatusCallback
from .classification import ErrorClass

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
SHORT_CODE = re.compile(r"[0-9]{5,6}")
CORRELATION_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

# The query parameter of the status callback URL that carries our correlation id back.
CORRELATION_PARAM = "dispatcher_ref"

MAX_BODY_CHARS = 1600
MAX_MEDIA = 10
MAX_VALIDITY_SECONDS = 36_000

_DIGIT_RUN = re.compile(r"\+?[0-9][0-9 ().-]{5,}[0-9]")


def mask_phone(number: str) -> str:
    """The number with all but its last two digits hidden.

    >>> mask_phone("+15551234567")
    '+•••••••••67'
    """
    digits = sum(ch.isdigit() for ch in number)
    if digits <= 4:
        return "•" * len(number)
    return ("+" if number.startswith("+") else "") + "•" * (digits - 2) + number[-2:]


def scrub(text: str) -> str:
    """``text`` (a provider's error message, say) with every phone-like digit run masked."""
    return _DIGIT_RUN.sub(lambda m: mask_phone(re.sub(r"[^0-9+]", "", m.group())), text)


class MessageStatus(StrEnum):
    """Twilio's message statuses, which the simulator reports too.

    Callbacks arrive out of order; :meth:`advances` says whether a reported status may
    replace the stored one, so that the stored status never moves backwards.
    """

    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELED = "canceled"
    READ = "read"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_final(self) -> bool:
        """No further status except ``read`` follows this one."""
        return self.rank >= _RANK[MessageStatus.DELIVERED]

    @property
    def is_failure(self) -> bool:
        return self in (MessageStatus.UNDELIVERED, MessageStatus.FAILED)

    def advances(self, current: MessageStatus | None) -> bool:
        """Whether this status, reported now, moves a message on from ``current``.

        >>> MessageStatus.SENDING.advances(MessageStatus.DELIVERED)
        False
        """
        return current is None or self.rank > current.rank


_RANK = {
    MessageStatus.ACCEPTED: 0,
    MessageStatus.SCHEDULED: 1,
    MessageStatus.QUEUED: 2,
    MessageStatus.SENDING: 3,
    MessageStatus.SENT: 4,
    MessageStatus.DELIVERED: 5,
    MessageStatus.UNDELIVERED: 5,
    MessageStatus.FAILED: 5,
    MessageStatus.CANCELED: 5,
    MessageStatus.READ: 6,
}


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One message to hand to a provider.

    ``correlation_id`` is ours (the outbox row's id, say): the provider puts it in the status
    callback URL (as ``dispatcher_ref``) and uses it to find the message again after an
    unknown outcome. ``validity_period`` (seconds, 1-36000) lets an OTP expire in the
    provider's queue instead of arriving late.

    Raises :class:`~dispatcher.errors.InvalidSendRequest` listing every problem.
    """

    correlation_id: str
    to: str
    from_: str
    body: str = field(default="", repr=False)
    media_urls: tuple[str, ...] = ()
    status_callback: str | None = None
    validity_period: int | None = None

    def __post_init__(self) -> None:
        problems = _request_problems(self)
        if problems:
            raise InvalidSendRequest(problems)

    def __repr__(self) -> str:
        return (
            f"SendRequest(correlation_id={self.correlation_id!r}, "
            f"to={mask_phone(self.to)!r}, from_={mask_phone(self.from_)!r}, "
            f"body=<{len(self.body)} chars>, media={len(self.media_urls)})"
        )

    @property
    def callback_url(self) -> str | None:
        """The status callback URL with our correlation id in its query string."""
        if self.status_callback is None:
            return None
        return with_correlation(self.status_callback, self.correlation_id)


def _request_problems(r: SendRequest) -> list[str]:
    problems = []
    if not CORRELATION_ID.fullmatch(r.correlation_id):
        problems.append(
            f"correlation_id: expected 1-64 of A-Z a-z 0-9 . _ -, got {r.correlation_id!r}"
        )
    if not E164.fullmatch(r.to):
        problems.append(f"to: expected an E.164 number, got {mask_phone(r.to)!r}")
    if not (E164.fullmatch(r.from_) or SHORT_CODE.fullmatch(r.from_)):
        problems.append(
            f"from_: expected an E.164 number or a short code, got {mask_phone(r.from_)!r}"
        )
    if not r.body and not r.media_urls:
        problems.append("body: a message needs a body or at least one media URL")
    if len(r.body) > MAX_BODY_CHARS:
        problems.append(f"body: at most {MAX_BODY_CHARS} characters, got {len(r.body)}")
    if len(r.media_urls) > MAX_MEDIA:
        problems.append(f"media_urls: at most {MAX_MEDIA}, got {len(r.media_urls)}")
    problems.extend(
        f"media_urls[{i}]: expected an http(s) URL, got {url!r}"
        for i, url in enumerate(r.media_urls)
        if not _is_http_url(url)
    )
    if r.status_callback is not None and not _is_http_url(r.status_callback):
        problems.append(
            f"status_callback: expected an http(s) URL, got {r.status_callback!r}"
        )
    if r.validity_period is not None and not (
        1 <= r.validity_period <= MAX_VALIDITY_SECONDS
    ):
        problems.append(
            f"validity_period: expected 1-{MAX_VALIDITY_SECONDS} seconds, "
            f"got {r.validity_period}"
        )
    return problems


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def with_correlation(url: str, correlation_id: str) -> str:
    """``url`` with ``dispatcher_ref=<correlation_id>`` added to its query string."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != CORRELATION_PARAM]
    query.append((CORRELATION_PARAM, correlation_id))
    return urlunsplit(parts._replace(query=urlencode(query)))


def correlation_of(url: str) -> str | None:
    """The correlation id in a status callback URL, if it carries one."""
    for key, value in parse_qsl(urlsplit(url).query):
        if key == CORRELATION_PARAM:
            return value
    return None


@dataclass(frozen=True, slots=True)
class Accepted:
    """The provider created the message: ``sid`` is its id, ``status`` the first status."""

    sid: str
    status: MessageStatus
    segments: int | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The send failed; ``error`` says what to do. ``detail`` is safe to log and store."""

    error: ErrorClass
    detail: str


SendResult = Accepted | Failed


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """A message as the provider knows it (``fetch``, ``find``)."""

    sid: str
    status: MessageStatus
    to: str
    from_: str
    body: str
    date_created: dt.datetime
    error_code: int | None = None
    segments: int | None = None

    def __repr__(self) -> str:
        return (
            f"MessageInfo(sid={self.sid!r}, status={self.status.value!r}, "
            f"to={mask_phone(self.to)!r}, from_={mask_phone(self.from_)!r}, "
            f"date_created={self.date_created.isoformat()!r}, "
            f"error_code={self.error_code!r})"
        )


class Match(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What the provider knows about a send whose outcome was unknown.

    ``FOUND``: exactly one message matches; settle with ``message.sid``, do not resend.
    ``NOT_FOUND``: none matches; a resend is safe once the search was made after the
    settle delay (see docs/providers.md). ``AMBIGUOUS``: several match (``candidates``
    holds their SIDs); a person decides, never a blind resend.
    """

    match: Match
    message: MessageInfo | None = None
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A status callback, parsed: the same type whether Twilio or the simulator sent it."""

    sid: str
    status: MessageStatus
    account_sid: str | None
    correlation_id: str | None
    error_code: int | None
    to: str | None
    from_: str | None
    segments: int | None

    def __repr__(self) -> str:
        return (
            f"StatusReport(sid={self.sid!r}, status={self.status.value!r}, "
            f"correlation_id={self.correlation_id!r}, error_code={self.error_code!r})"
        )

    @classmethod
    def from_callback(cls, url: str, form: Mapping[str, str]) -> StatusReport:
        """Parse the URL Twilio called and its POST form fields.

        Raises :class:`~dispatcher.errors.InvalidStatusCallback` naming the bad field.
        Signature checks are the webhook's business, before this is called.
        """
        sid = form.get("MessageSid") or form.get("SmsSid")
        if not sid:
            raise InvalidStatusCallback("status callback: MessageSid is missing")
        raw_status = form.get("MessageStatus") or form.get("SmsStatus") or ""
        try:
            status = MessageStatus(raw_status)
        except ValueError:
            raise InvalidStatusCallback(
                f"status callback: MessageStatus {raw_status!r} is not one of "
                + ", ".join(s.value for s in MessageStatus)
            ) from None
        return cls(
            sid=sid,
            status=status,
            account_sid=form.get("AccountSid"),
            correlation_id=correlation_of(url),
            error_code=_int_field(form, "ErrorCode"),
            to=form.get("To"),
            from_=form.get("From"),
            segments=_int_field(form, "NumSegments"),
        )


def _int_field(form: Mapping[str, str], name: str) -> int | None:
    value = form.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidStatusCallback(
            f"status callback: {name} must be an integer, got {value!r}"
        ) from None


StatusHook = Callable[[str, Mapping[str, str]], None]
"""Receives a status callback: the URL called (with its query) and the form fields."""


class Provider(Protocol):
    """What the send pipeline calls. Every method does I/O: never inside a transaction.

    ``send`` never raises for a provider-side failure: it returns :class:`Failed` with a
    classified error. ``fetch`` and ``find`` raise
    :class:`~dispatcher.errors.ProviderUnavailable` when the provider cannot be asked.
    """

    name: str

    def send(self, request: SendRequest) -> SendResult:
        """Ask the provider to send ``request``; one attempt, no retries inside."""
        ...

    def fetch(self, sid: str) -> MessageInfo:
        """The message with ``sid``; raises :class:`~dispatcher.errors.MessageNotFound`."""
        ...

    def find(
        self,
        request: SendRequest,
        *,
        attempted_at: dt.datetime,
        exclude_sids: Collection[str] = (),
    ) -> Reconciliation:
        """Look for the message ``request`` may have created at or after ``attempted_at``
        (UTC), ignoring ``exclude_sids`` (messages already settled to other rows)."""
        ...

    def close(self) -> None:
        """Release connections and threads; the provider is not used afterwards."""
        ...
