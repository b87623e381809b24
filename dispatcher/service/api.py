"""The business API, under ``/v1``. Every route needs ``Authorization: Bearer <key>``.

A business key reaches only ``/v1/businesses/{its id}/...``: another business's id gets
403, and a message id of another business under its own id gets 404. A platform key
reaches every business and the administrative routes.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .. import businesses, consent, outbox
from ..billing import Month
from ..errors import FieldError
from ..history import DEFAULT_LIMIT, MAX_LIMIT
from ..phone import Phone
from ..store import transaction
from . import auth, reads, schemas
from .app_state import service_of

router = APIRouter(prefix="/v1", tags=["api"])
bearer = HTTPBearer(auto_error=False, description="An API key: `dk_...`.")

MAX_ID = 2**31 - 1
BusinessId = Annotated[int, Path(ge=1, le=MAX_ID, description="The business's id.")]
_AUTH_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "No API key, or an unknown or revoked one."},
    403: {
        "description": "The key belongs to another business, or is not a platform key."
    },
}


def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> auth.Principal:
    if credentials is None:
        raise HTTPException(
            401, "missing API key", headers={"WWW-Authenticate": "Bearer"}
        )
    with transaction(service_of(request).db, write=False) as session:
        found = auth.authenticate(session, credentials.credentials)
    if found is None:
        raise HTTPException(
            401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return found


Caller = Annotated[auth.Principal, Depends(principal)]


def platform(caller: Caller) -> auth.Principal:
    if not caller.is_platform:
        raise HTTPException(403, "this route needs a platform key")
    return caller


def business(request: Request, business_id: BusinessId, caller: Caller) -> int:
    """The business of the path, when the caller may reach it."""
    if not caller.may_reach(business_id):
        raise HTTPException(403, "this key belongs to another business")
    with transaction(service_of(request).db, write=False) as session:
        businesses.get_business(session, business_id)  # NotFound: 404
    return business_id


Business = Annotated[int, Depends(business)]


def _phone(value: str) -> Phone:
    try:
        return Phone.parse(value, field="phone")
    except FieldError as error:
        raise HTTPException(
            422,
            [{"loc": ["path", "phone"], "msg": error.reason, "type": "value_error"}],
        ) from None


def _check_names(request: Request, message_type: str, reply_role: str | None) -> None:
    policy = service_of(request).policies.current().policy
    if message_type not in policy.message_types:
        raise FieldError(
            "type",
            f"unknown message type {message_type!r}; expected one of "
            + ", ".join(sorted(policy.message_types)),
        )
    if reply_role is not None and reply_role not in policy.roles:
        raise FieldError(
            "reply_role",
            f"unknown role {reply_role!r}; expected one of "
            + ", ".join(sorted(policy.roles)),
        )


def _admitted(result: outbox.Admitted) -> schemas.AdmittedOut:
    return schemas.AdmittedOut(
        message_id=result.message_id,
        state=result.state,
        outcome=result.outcome.value,
        role=result.role,
        rule=result.rule_id,
        reason=result.reason,
        not_before=result.not_before,
        segments=result.segments,
        repeated=result.repeated,
    )


@router.post(
    "/businesses/{business_id}/messages",
    summary="Decide one message and queue it, or record why it may not leave.",
    responses={**_AUTH_ERRORS, 409: {"description": "Idempotency key reused."}},
)
def send_message(
    request: Request, business_id: Business, payload: schemas.SendBody
) -> schemas.AdmittedOut:
    _check_names(request, payload.type, payload.reply_role)
    service = service_of(request)
    engine = service.policies.current().engine
    started = time.perf_counter()
    result = outbox.admit(
        service.db,
        engine,
        outbox.SendRequest(
            business=business_id,
            to=Phone.parse(payload.to, field="to"),
            message_type=payload.type,
            body=payload.body,
            media=tuple(payload.media),
            idempotency_key=payload.idempotency_key,
            reply_role=payload.reply_role,
            jurisdiction=payload.jurisdiction,
            zone=payload.zone,
        ),
        now=service.clock(),
    )
    service.metrics.decision_seconds.observe(time.perf_counter() - started)
    if not result.repeated:
        service.metrics.sends.labels(result.outcome.value, result.role or "none").inc()
    return _admitted(result)


@router.post(
    "/businesses/{business_id}/campaigns",
    summary="Decide and queue one message type for many recipients.",
    responses=_AUTH_ERRORS,
)
def queue_campaign(
    request: Request, business_id: Business, payload: schemas.CampaignBody
) -> schemas.CampaignOut:
    _check_names(request, payload.type, None)
    service = service_of(request)
    requests = []
    for recipient in payload.recipients:
        key = recipient.idempotency_key or (
            f"{payload.campaign_id}:{recipient.to}" if payload.campaign_id else None
        )
        requests.append(
            outbox.SendRequest(
                business=business_id,
                to=Phone.parse(recipient.to, field="to"),
                message_type=payload.type,
                body=recipient.body or payload.body or "",
                idempotency_key=key,
            )
        )
    started = time.perf_counter()
    summary = outbox.admit_many(
        service.db, service.policies.current().engine, requests, now=service.clock()
    )
    if requests:
        service.metrics.decision_seconds.observe(
            (time.perf_counter() - started) / len(requests)
        )
    return schemas.CampaignOut(
        admitted=summary.admitted,
        repeated=summary.repeated,
        by_outcome=summary.by_outcome,
        by_rule=summary.by_rule,
    )


@router.get(
    "/businesses/{business_id}/messages/{message_id}",
    summary="A message: its decision, the rule that made it, and its status history.",
    responses={**_AUTH_ERRORS, 404: {"description": "No such message here."}},
)
def get_message(
    request: Request,
    business_id: Business,
    message_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
) -> schemas.MessageOut:
    with transaction(service_of(request).db, write=False) as session:
        return reads.message_detail(session, business_id, message_id)


@router.get(
    "/businesses/{business_id}/customers/{phone}/consent",
    summary="A customer's consent per scope, with the ledger records behind it.",
    responses=_AUTH_ERRORS,
)
def get_consent(
    request: Request, business_id: Business, phone: str
) -> schemas.ConsentOut:
    customer = _phone(phone)
    service = service_of(request)
    policy = service.policies.current().policy
    with transaction(service.db, write=False) as session:
        states = consent.states(session, policy, customer, business_id)
        records = consent.history(session, customer, business_id)
    return schemas.ConsentOut(
        phone=customer.e164,
        business_id=business_id,
        scopes={scope: state.value for scope, state in states.items()},
        records=[
            schemas.ConsentRecordOut(
                at=r.at,
                scope=r.scope,
                action=r.action.value,
                source=r.source.value,
                source_ref=r.source_ref,
                platform_wide=r.business_id is None,
            )
            for r in records
        ],
    )


@router.get(
    "/businesses/{business_id}/customers/{phone}/history",
    summary="A customer's chat history with the business, oldest first.",
    responses=_AUTH_ERRORS,
)
def get_history(
    request: Request,
    business_id: Business,
    phone: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> schemas.ChatOut:
    customer = _phone(phone)
    with transaction(service_of(request).db, write=False) as session:
        return reads.chat_history(session, business_id, customer, limit)


@router.get(
    "/businesses/{business_id}/usage",
    summary="The month's usage report: by number role and kind, priced.",
    responses=_AUTH_ERRORS,
)
def get_usage(
    request: Request,
    business_id: Business,
    month: Annotated[
        str | None,
        Query(
            description="YYYY-MM (UTC); the current month when omitted.",
            max_length=7,
        ),
    ] = None,
) -> schemas.UsageOut:
    service = service_of(request)
    period = Month.parse(month) if month is not None else _this_month(service.clock())
    with transaction(service.db, write=False) as session:
        return reads.usage(session, business_id, period, service.rates)


def _this_month(now: dt.datetime) -> Month:
    utc = now.astimezone(dt.UTC)
    return Month(utc.year, utc.month)


@router.get(
    "/businesses",
    summary="The businesses this key reaches (all of them for a platform key).",
    responses=_AUTH_ERRORS,
)
def list_businesses(request: Request, caller: Caller) -> list[schemas.BusinessOut]:
    with transaction(service_of(request).db, write=False) as session:
        found = businesses.list_businesses(session)
    return [
        schemas.BusinessOut(
            id=b.id, name=b.name, assist=b.assist, accelerate=b.accelerate
        )
        for b in found
        if caller.may_reach(b.id)
    ]


@router.post(
    "/businesses/{business_id}/keys",
    summary="Make an API key for a business (platform key only). Shown once.",
    responses=_AUTH_ERRORS,
    status_code=201,
)
def create_key(
    request: Request,
    business_id: BusinessId,
    payload: schemas.KeyBody,
    caller: Annotated[auth.Principal, Depends(platform)],
) -> schemas.KeyOut:
    with transaction(service_of(request).db) as session:
        info, key = auth.create_key(
            session,
            business_id,
            label=payload.label,
            created_by=f"api key {caller.key_id}",
        )
    return schemas.KeyOut(
        id=info.id, business_id=info.business_id, prefix=info.prefix, key=key
    )


@router.post(
    "/policy/reload",
    summary="Load the rules again; a version that fails validation is refused.",
    responses=_AUTH_ERRORS,
)
def reload_policy(
    request: Request, caller: Annotated[auth.Principal, Depends(platform)]
) -> schemas.ReloadOut:
    outcome = service_of(request).policies.reload()
    return schemas.ReloadOut(
        applied=outcome.applied,
        policy_hash=outcome.policy_hash,
        problems=list(outcome.problems),
    )
