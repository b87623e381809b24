"""The demo behind ``make run``: a business with its two numbers, the platform's global
number, a customer who opted in to offers, and a check that drives the running service
through HTTP as a client and Twilio would.

:func:`seed` is idempotent. :func:`check` sends an order update and a promotion, has the
customer reply STOP to the marketing number (a webhook signed as Twilio signs it), sends
the promotion and the order update again, and reports each outcome: the promotion is now
suppressed by ``opted-out-of-scope`` while the order update is not.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine as DbEngine
from sqlalchemy import select
from sqlmodel import Session, col

from .. import businesses, consent, numbers, tables
from ..consent import ConsentSource
from ..errors import NotFound
from ..numbers import NumberKind, RegistrationStatus
from ..phone import Phone
from ..policy import Policy
from ..providers.credentials import Secret
from ..store import transaction
from . import auth

NAME = "Demo Laundry"
MARKETING = Phone.parse("+12015550100")
TRANSACTIONAL = Phone.parse("+12015550101")
GLOBAL = Phone.parse("+18002345678")
CUSTOMER = Phone.parse("+12015550142")
ACTOR = "demo"


@dataclass(frozen=True, slots=True)
class Demo:
    business_id: int
    key: str


def seed(db: DbEngine, policy: Policy) -> Demo:
    """The demo business, numbers and customer, made once; a new business key each call
    (keys are shown only when made)."""
    with transaction(db) as session:
        try:
            business_id = businesses.get_business(session, NAME).id
        except NotFound:
            business_id = businesses.add_business(
                session, NAME, stores=["Main Street"], assist=True
            ).id
        for phone, role, owner, kind in (
            (MARKETING, "marketing", business_id, NumberKind.LONG_CODE),
            (TRANSACTIONAL, "transactional", business_id, NumberKind.LONG_CODE),
            (GLOBAL, "global", None, NumberKind.TOLL_FREE),
        ):
            if _has_role(session, role, owner):
                continue
            numbers.add_number(
                session,
                policy,
                phone,
                role=role,
                business=owner,
                actor=ACTOR,
                kind=kind,
                status=RegistrationStatus.REGISTERED,
            )
        state = consent.current_state(
            session, policy, CUSTOMER, "marketing", business_id
        )
        if state.value == "none":
            consent.record(
                session,
                policy,
                phone=CUSTOMER,
                scope="marketing",
                business=business_id,
                opt_in=True,
                source=ConsentSource.WEB_FORM,
                source_ref="https://demo.invalid/signup",
                consent_text="Yes, text me offers from Demo Laundry.",
                consent_text_version="demo-1",
                recorded_by=ACTOR,
            )
        _, key = auth.create_key(session, business_id, label="demo", created_by=ACTOR)
    return Demo(business_id, key)


def _has_role(session: Session, role: str, owner: int | None) -> bool:
    number = tables.Number
    whose = (
        col(number.business_id).is_(None)
        if owner is None
        else col(number.business_id) == owner
    )
    found = session.execute(
        select(col(number.id)).where(
            col(number.role) == role, whose, col(number.retired_at).is_(None)
        )
    ).first()
    return found is not None


def curl_line(base_url: str, demo: Demo) -> str:
    return (
        f"curl -s -X POST {base_url}/v1/businesses/{demo.business_id}/messages "
        f"-H 'Authorization: Bearer {demo.key}' -H 'Content-Type: application/json' "
        f'-d \'{{"to": "{CUSTOMER.e164}", "type": "order_status", '
        f'"body": "Your order is ready for pickup."}}\''
    )


def check(
    base_url: str,
    demo: Demo,
    token: Secret,
    *,
    echo: Callable[[str], None] = print,
    wait: float = 5.0,
) -> bool:
    """Drive the service at ``base_url``; True when every step behaved as the policy
    says it must (the promotion after STOP suppressed, the order update not)."""
    from ..providers.twilio_provider import signature_for

    headers = {"Authorization": f"Bearer {demo.key}"}
    path = f"/v1/businesses/{demo.business_id}"
    ok = True
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:

        def send(kind: str, body: str) -> dict[str, object]:
            answer = client.post(
                f"{path}/messages",
                json={"to": CUSTOMER.e164, "type": kind, "body": body},
            )
            answer.raise_for_status()
            result: dict[str, object] = answer.json()
            echo(
                f"  {kind:<14} -> {result['outcome']:<8} "
                f"role={result['role']} rule={result['rule']}"
            )
            return result

        echo(f"1. {NAME} sends to {CUSTOMER.masked}:")
        sent = [send("order_status", "Your order is ready for pickup.")]
        sent.append(send("promotion", "20% off wash & fold this week."))
        echo("2. The customer replies STOP to the marketing number (signed webhook):")
        form = {
            "MessageSid": "SM" + secrets.token_hex(16),
            "AccountSid": "AC" + "0" * 32,
            "From": CUSTOMER.e164,
            "To": MARKETING.e164,
            "Body": "STOP",
        }
        url = base_url + "/webhooks/twilio/sms"
        signature = signature_for(token, url, form)
        answer = client.post(
            "/webhooks/twilio/sms",
            data=form,
            headers={"X-Twilio-Signature": signature},
        )
        echo(f"  webhook -> HTTP {answer.status_code}")
        ok &= answer.status_code == 200
        scopes = client.get(f"{path}/customers/{CUSTOMER.e164}/consent").json()
        echo(f"  consent now: {scopes['scopes']}")
        echo("3. The same two messages again:")
        again = send("order_status", "Your order is out for delivery.")
        promo = send("promotion", "Last day: 20% off wash & fold.")
        ok &= promo["rule"] == "opted-out-of-scope"
        ok &= again["rule"] != "opted-out-of-scope"
        ok &= scopes["scopes"].get("marketing") == "opted_out"
        ok &= scopes["scopes"].get("transactional") != "opted_out"
        echo("4. What happened to each message (workers, simulator):")
        deadline = time.monotonic() + wait
        ids = [m["message_id"] for m in (*sent, again, promo)]
        while time.monotonic() < deadline:
            states = [client.get(f"{path}/messages/{i}").json() for i in ids]
            if all(s["state"] != "queued" or s["provider_status"] for s in states):
                break
            time.sleep(0.2)
        history = client.get(f"{path}/customers/{CUSTOMER.e164}/history").json()
        for entry in history["entries"][-8:]:
            echo(
                f"  {entry['at'][11:19]} {entry['direction']:<8} role={entry['role']} "
                f"{entry.get('type') or entry.get('keyword_kind') or ''} "
                f"{entry.get('state') or ''} {entry.get('provider_status') or ''}"
            )
    return bool(ok)


def demo_token() -> Secret:
    """A webhook token for a demo run without TWILIO_AUTH_TOKEN in the environment."""
    return Secret(secrets.token_hex(16))
