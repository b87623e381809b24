"""The API's request and response bodies. Validation errors name the field (422)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..errors import FieldError
from ..phone import Phone
from ..providers.base import MAX_BODY_CHARS, MAX_MEDIA


def _clean(value: str) -> str:
    # Every database stores UTF-8 text; PostgreSQL refuses NUL in it.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def _phone(value: str) -> str:
    try:
        return Phone.parse(_clean(value), field="to").e164
    except FieldError as error:
        raise ValueError(error.reason) from None


def _url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or len(value) > 2000:
        raise ValueError("expected an http(s) URL of at most 2000 characters")
    return _clean(value)


Text = Annotated[str, AfterValidator(_clean)]
PhoneNumber = Annotated[
    str,
    Field(description="E.164, like +12015550123", max_length=32),
    AfterValidator(_phone),
]
Body = Annotated[
    str, Field(min_length=1, max_length=MAX_BODY_CHARS), AfterValidator(_clean)
]
Name = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_clean)]
Key = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_clean)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SendBody(_Strict):
    """One message. ``type`` is a message type of the rules (``order_status``, ...)."""

    to: PhoneNumber
    type: Name
    body: Body
    media: list[Annotated[str, AfterValidator(_url)]] = Field(
        default_factory=list, max_length=MAX_MEDIA
    )
    idempotency_key: Key | None = None
    reply_role: Name | None = Field(
        default=None, description="Role of the number the customer wrote to (replies)."
    )
    jurisdiction: (
        Annotated[str, Field(max_length=16), AfterValidator(_clean)] | None
    ) = None
    zone: Annotated[str, Field(max_length=64), AfterValidator(_clean)] | None = None


class Recipient(_Strict):
    to: PhoneNumber
    body: Body | None = None
    idempotency_key: Key | None = None


class CampaignBody(_Strict):
    """One message type to many recipients; ``body`` is used where a recipient has none.

    With ``campaign_id``, each recipient's idempotency key defaults to
    ``<campaign_id>:<phone>``, so sending the campaign again admits only the rest.
    """

    type: Name
    body: Body | None = None
    campaign_id: (
        Annotated[str, Field(min_length=1, max_length=150), AfterValidator(_clean)]
        | None
    ) = None
    recipients: list[Recipient] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _bodies(self) -> CampaignBody:
        if self.body is None:
            for i, recipient in enumerate(self.recipients):
                if recipient.body is None:
                    raise ValueError(
                        f"recipients[{i}].body: missing (give it, or a campaign body)"
                    )
        return self


class RuleRef(BaseModel):
    id: str
    file: str
    line: int


class AdmittedOut(BaseModel):
    message_id: int
    state: str
    outcome: str
    role: str | None
    rule: str
    reason: str
    not_before: dt.datetime
    segments: int
    repeated: bool


class CampaignOut(BaseModel):
    admitted: int
    repeated: int
    by_outcome: dict[str, int]
    by_rule: dict[str, int]


class DecisionOut(BaseModel):
    at: dt.datetime
    stage: str
    outcome: str
    role: str | None
    rule: RuleRef
    reason: str
    policy_hash: str


class StatusOut(BaseModel):
    at: dt.datetime
    kind: str
    status: str | None
    error_code: int | None
    detail: str | None


class MessageOut(BaseModel):
    id: int
    business_id: int
    to: str
    type: str
    category: str
    channel: str
    body: str | None = Field(description="Null for OTP codes, which are never shown.")
    state: str
    segments: int
    created_at: dt.datetime
    not_before: dt.datetime
    decision: DecisionOut
    decisions: list[DecisionOut]
    provider_sid: str | None
    provider_status: str | None
    error_code: int | None
    statuses: list[StatusOut]


class ConsentRecordOut(BaseModel):
    at: dt.datetime
    scope: str
    action: str
    source: str
    source_ref: str | None
    platform_wide: bool


class ConsentOut(BaseModel):
    phone: str
    business_id: int
    scopes: dict[str, str]
    records: list[ConsentRecordOut]


class ChatEntry(BaseModel):
    at: dt.datetime
    direction: Literal["outbound", "inbound"]
    body: str | None = Field(description="Null for OTP codes, which are never shown.")
    role: str | None = Field(description="The role of our number in the exchange.")
    number: str | None = Field(
        default=None, description="Our number, masked; null when none was used."
    )
    message_id: int | None = None
    type: str | None = None
    rule: str | None = None
    state: str | None = None
    provider_status: str | None = None
    segments: int | None = None
    message_sid: str | None = None
    keyword: str | None = None
    keyword_kind: str | None = Field(
        default=None, description="opt_out, opt_in, help, revocation; null for chat."
    )


class ChatOut(BaseModel):
    phone: str
    business_id: int
    entries: list[ChatEntry]


class UsageBusiness(BaseModel):
    id: int
    name: str


class UsageLineOut(BaseModel):
    role: str
    direction: Literal["outbound", "inbound"]
    kind: Literal["sms", "mms", "call"]
    unit: Literal["segment", "message", "minute"]
    count: int = Field(description="Messages or calls (a credited one counts out).")
    units: int
    rate: str = Field(description="Price per unit, a decimal string.")
    amount: str
    amount_micros: int


class UsageOut(BaseModel):
    """The billing report of one month (UTC), as ``dispatcher usage --format json``."""

    business: UsageBusiness
    month: str = Field(description="YYYY-MM")
    currency: str
    lines: list[UsageLineOut]
    totals: dict[str, int] = Field(description="Units per rate key: sms_outbound, ...")
    by_role: dict[str, str]
    total: str
    total_micros: int


class BusinessOut(BaseModel):
    id: int
    name: str
    assist: bool
    accelerate: bool


class KeyBody(_Strict):
    label: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_clean)]


class KeyOut(BaseModel):
    id: int
    business_id: int | None
    prefix: str
    key: str = Field(description="Shown once; only its digest is stored.")


class ReloadOut(BaseModel):
    applied: bool
    policy_hash: str
    problems: list[str]
