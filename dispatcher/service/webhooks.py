"""Twilio's webhooks: inbound SMS, message status callbacks and voice status callbacks.

Every request is checked first: ``X-Twilio-Signature`` must sign the public URL Twilio
called (the configured ``public_base_url`` plus the path and query, so the check holds
behind a TLS-terminating proxy) and the POST parameters, with the account's auth token,
by Twilio's own validator. A missing or wrong signature gets 403 and changes nothing.
Twilio signs no timestamp, so a replay is stopped by the message id: an inbound
``MessageSid`` is stored once, a status report once per (message, status), a call
billed once per ``CallSid``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from ..inbound import InboundSms, receive
from ..phone import Phone
from ..store import writer_idle
from .app_state import service_of

log = structlog.get_logger("dispatcher.service.webhooks")

router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"])

SIGNATURE_HEADER = "X-Twilio-Signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_SIGNED = {
    "description": "Form fields as Twilio posts them, signed with X-Twilio-Signature.",
    "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}},
}


def public_url(request: Request, base: str | None) -> str:
    """The URL Twilio called: ``base`` (scheme, host, maybe a path prefix) with the
    request's path and query; without ``base``, the URL as the app received it."""
    root = base.rstrip("/") if base else f"{request.url.scheme}://{request.url.netloc}"
    query = request.url.query
    return root + request.url.path + (f"?{query}" if query else "")


async def _verified(request: Request, endpoint: str) -> dict[str, str] | None:
    """The form fields when the signature holds; None (and a counted rejection) else."""
    service = service_of(request)
    body = await request.body()
    reason = None
    signature = request.headers.get(SIGNATURE_HEADER)
    if service.webhook_token is None:
        reason = "no_auth_token_configured"
    elif not signature:
        reason = "missing_signature"
    try:
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        form, reason = {}, reason or "unreadable_body"
    if reason is None and service.webhook_token is not None and signature:
        from ..providers.twilio_provider import signature_is_valid

        url = public_url(request, service.public_base_url)
        if not signature_is_valid(service.webhook_token, url, form, signature):
            reason = "bad_signature"
    if reason is not None:
        service.metrics.webhook_rejections.labels(endpoint, reason).inc()
        log.warning("webhook_rejected", endpoint=endpoint, reason=reason)
        return None
    return form


@router.post(
    "/sms",
    summary="Inbound SMS (Twilio's messaging webhook).",
    response_class=Response,
    responses={
        200: {"description": "Empty TwiML: replies go out through the send pipeline."},
        403: {"description": "Missing or wrong X-Twilio-Signature."},
        404: {"description": "The number written to is not an active number."},
        422: {"description": "A form field is missing or malformed."},
    },
    openapi_extra={"requestBody": _SIGNED},
)
async def inbound_sms(request: Request) -> Response:
    started = time.perf_counter()
    form = await _verified(request, "sms")
    if form is None:
        return Response("forbidden", status_code=403, media_type="text/plain")
    service = service_of(request)
    sms = InboundSms(
        sid=form.get("MessageSid") or form.get("SmsSid") or "",
        sender=Phone.parse(form.get("From", ""), field="From"),
        number=Phone.parse(form.get("To", ""), field="To"),
        body=form.get("Body", ""),
    )
    loaded = service.policies.current()
    args = (service.db, loaded.engine, loaded.classifier, sms, service.inbound)
    if writer_idle(service.db):
        # SQLite writes one transaction at a time, and none of this process's is
        # under way: write here. In a pool thread the same work hands the GIL back
        # and forth with this loop at every SQLite call, which under load cost more
        # than the work itself (docs/service.md, "Tests and figures").
        received = receive(*args, now=service.clock())
    else:
        received = await run_in_threadpool(receive, *args, now=service.clock())
    kind = received.kind.value if received.kind else "none"
    service.metrics.inbound.labels(received.role, kind).inc()
    service.metrics.webhook_seconds.labels("sms").observe(time.perf_counter() - started)
    return Response(EMPTY_TWIML, media_type="text/xml")


_CALLBACK_RESPONSES: dict[int | str, dict[str, object]] = {
    403: {"description": "Missing or wrong X-Twilio-Signature."},
    422: {"description": "A form field is missing or malformed."},
}


@router.post(
    "/status",
    summary="Message status callback (the StatusCallback of each send).",
    status_code=204,
    response_class=Response,
    responses=_CALLBACK_RESPONSES,
    openapi_extra={"requestBody": _SIGNED},
)
async def status_callback(request: Request) -> Response:
    service = service_of(request)
    url = public_url(request, service.public_base_url)
    return await _callback(
        request, "status", lambda form: service.apply_callback(url, form)
    )


@router.post(
    "/voice",
    summary="Voice status callback of a business's number: completed calls are billed.",
    status_code=204,
    response_class=Response,
    responses=_CALLBACK_RESPONSES,
    openapi_extra={"requestBody": _SIGNED},
)
async def voice_callback(request: Request) -> Response:
    return await _callback(request, "voice", service_of(request).record_call)


async def _callback(
    request: Request, kind: str, record: Callable[[dict[str, str]], object]
) -> Response:
    """A signed callback: refused with 403 when the signature is wrong, else recorded
    on a pool thread and answered with 204, its time in the webhook histogram."""
    started = time.perf_counter()
    form = await _verified(request, kind)
    if form is None:
        return Response("forbidden", status_code=403, media_type="text/plain")
    await run_in_threadpool(record, form)
    service_of(request).metrics.webhook_seconds.labels(kind).observe(
        time.perf_counter() - started
    )
    return Response(status_code=204)
