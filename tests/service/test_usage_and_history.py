"""Through HTTP: inbound messages and calls billed once, the usage report, and chat
history with every inbound message."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from dispatcher import tables
from dispatcher.store import transaction

from .conftest import (
    AFTERNOON,
    CUSTOMER,
    GLOBAL,
    MARKETING,
    PUBLIC,
    TRANSACTIONAL,
    Api,
    sign,
)

MONTH = f"{AFTERNOON:%Y-%m}"
VOICE = "/webhooks/twilio/voice"


def _voice(api: Api, form: dict[str, str], signature: str | None = None) -> int:
    sent = signature if signature is not None else sign(PUBLIC + VOICE, form)
    return api.client.post(
        VOICE, data=form, headers={"X-Twilio-Signature": sent}
    ).status_code


def _call(status: str = "completed", seconds: str = "61") -> dict[str, str]:
    return {
        "CallSid": "CA" + secrets.token_hex(16),
        "AccountSid": "AC" + "1" * 32,
        "CallStatus": status,
        "CallDuration": seconds,
        "From": CUSTOMER.e164,
        "To": MARKETING.e164,
        "Direction": "inbound",
    }


def _usage(
    api: Api, business: int | None = None, key: str | None = None
) -> dict[str, Any]:
    answer = api.client.get(
        f"/v1/businesses/{business or api.shop.business_id}/usage",
        params={"month": MONTH},
        headers=api.auth(key),
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _lines(report: dict[str, Any]) -> list[tuple[str, str, str, int, int]]:
    return [
        (line["role"], line["direction"], line["kind"], line["count"], line["units"])
        for line in report["lines"]
    ]


def _history(
    api: Api, business: int | None = None, key: str | None = None
) -> list[dict[str, Any]]:
    answer = api.client.get(
        f"/v1/businesses/{business or api.shop.business_id}/customers/"
        f"{CUSTOMER.e164}/history",
        headers=api.auth(key),
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["entries"])


def _usage_rows(api: Api, source: str) -> list[tables.UsageEvent]:
    with transaction(api.shop.db.engine, write=False) as session:
        return list(
            session.execute(
                select(tables.UsageEvent).where(col(tables.UsageEvent.source) == source)
            ).scalars()
        )


def test_every_inbound_message_is_billed_once_keyword_or_not_even_replayed(
    api: Api,
) -> None:
    sid = "SM" + "7" * 32
    assert api.reply("STOP", to=MARKETING, sid=sid) == 200
    assert api.reply("STOP", to=MARKETING, sid=sid) == 200
    assert api.reply("Is my order ready?", to=TRANSACTIONAL) == 200

    report = _usage(api)
    assert ("marketing", "inbound", "sms", 1, 1) in _lines(report)
    assert ("transactional", "inbound", "sms", 1, 1) in _lines(report)
    assert report["totals"]["sms_inbound"] == 2
    assert report["month"] == MONTH
    assert report["business"]["id"] == api.shop.business_id
    assert len(_usage_rows(api, "inbound")) == 2


def test_a_completed_call_is_billed_in_started_minutes_once(api: Api) -> None:
    form = _call(seconds="61")
    assert _voice(api, form) == 204
    assert _voice(api, form) == 204  # Twilio retried: billed once

    report = _usage(api)
    assert ("marketing", "inbound", "call", 1, 2) in _lines(report)
    assert report["totals"]["call_inbound"] == 2
    assert [row.seconds for row in _usage_rows(api, "call")] == [61]


def test_a_busy_or_unanswered_call_bills_nothing(api: Api) -> None:
    assert _voice(api, _call(status="busy", seconds="")) == 204
    assert _voice(api, _call(status="no-answer", seconds="")) == 204
    assert _usage_rows(api, "call") == []


@pytest.mark.parametrize("signature", ["", "Zm9yZ2Vk"], ids=["missing", "forged"])
def test_an_unsigned_or_forged_voice_callback_is_refused_and_bills_nothing(
    api: Api, signature: str
) -> None:
    assert _voice(api, _call(), signature=signature) == 403
    assert _usage_rows(api, "call") == []
    metrics = api.client.get("/metrics").text
    assert 'dispatcher_webhook_rejections_total{endpoint="voice"' in metrics


def test_a_malformed_voice_callback_is_422_naming_the_field(api: Api) -> None:
    form = {**_call(), "CallStatus": "ringing-ish"}
    answer = api.client.post(
        VOICE, data=form, headers={"X-Twilio-Signature": sign(PUBLIC + VOICE, form)}
    )
    assert answer.status_code == 422
    assert "CallStatus" in answer.text
    assert _usage_rows(api, "call") == []


def test_the_usage_report_takes_a_month_and_refuses_a_malformed_one(
    api: Api,
) -> None:
    api.reply("HELP", to=TRANSACTIONAL)
    empty = api.client.get(
        f"/v1/businesses/{api.shop.business_id}/usage",
        params={"month": "2026-01"},
        headers=api.auth(),
    ).json()
    assert (empty["lines"], empty["total"]) == ([], "0.00")
    bad = api.client.get(
        f"/v1/businesses/{api.shop.business_id}/usage",
        params={"month": "2026-13"},
        headers=api.auth(),
    )
    assert bad.status_code == 422
    assert "month" in bad.text


def test_chat_history_has_every_inbound_message_with_its_body_and_number(
    api: Api,
) -> None:
    api.reply("Is my order ready?", to=TRANSACTIONAL)
    api.reply("STOP", to=MARKETING)

    inbound = [e for e in _history(api) if e["direction"] == "inbound"]
    assert [(e["body"], e["role"], e["keyword_kind"]) for e in inbound] == [
        ("Is my order ready?", "transactional", None),
        ("STOP", "marketing", "opt_out"),
    ]
    assert inbound[1]["keyword"] == "STOP"
    assert inbound[0]["number"] == TRANSACTIONAL.masked


def test_a_reply_to_the_global_number_shows_and_bills_only_for_the_codes_sender(
    api: Api,
) -> None:
    api.send("otp_code")
    api.deliver()
    api.reply("STOP", to=GLOBAL)

    mine = [e for e in _history(api) if e["direction"] == "inbound"]
    assert [(e["role"], e["keyword_kind"]) for e in mine] == [("global", "opt_out")]
    theirs = _history(api, api.other_id, api.other_key)
    assert [e for e in theirs if e["direction"] == "inbound"] == []
    assert ("global", "inbound", "sms", 1, 1) in _lines(_usage(api))
    assert _usage(api, api.other_id, api.other_key)["lines"] == []


def test_a_reply_to_the_global_number_nobody_sent_from_is_kept_but_shown_to_none(
    api: Api,
) -> None:
    assert api.reply("hello?", to=GLOBAL) == 200

    assert api.count(tables.InboundMessage) == 1
    assert [e for e in _history(api) if e["direction"] == "inbound"] == []
    (charge,) = _usage_rows(api, "inbound")
    assert (charge.business_id, charge.role) == (None, "global")
