"""Webhook signatures, replays, tenant isolation, payload errors, logs."""

from __future__ import annotations

import io
import secrets

import pytest

from dispatcher import tables
from dispatcher.logging import configure

from .conftest import CUSTOMER, MARKETING, PUBLIC, Api, sign


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"X-Twilio-Signature": "Zm9yZ2Vk"}, id="forged"),
        pytest.param({"X-Twilio-Signature": ""}, id="empty"),
    ],
)
def test_unsigned_or_forged_inbound_is_refused_and_changes_nothing(
    api: Api, headers: dict[str, str]
) -> None:
    assert api.reply("STOP", to=MARKETING, headers=headers) == 403
    assert api.count(tables.InboundMessage) == 0
    assert api.count(tables.ConsentEvent) == 0
    metrics = api.client.get("/metrics").text
    assert "dispatcher_webhook_rejections_total" in metrics


def test_a_signature_over_the_proxys_url_or_with_another_token_is_refused(
    api: Api,
) -> None:
    form = {"MessageSid": "SM1", "From": CUSTOMER.e164, "To": MARKETING.e164}
    inside = str(api.client.base_url) + "/webhooks/twilio/sms"
    for signature in (
        sign(inside, form),
        sign(PUBLIC + "/webhooks/twilio/sms", form, token="another-token"),
        sign(PUBLIC + "/webhooks/twilio/sms", {**form, "Body": "START"}),
    ):
        answer = api.client.post(
            "/webhooks/twilio/sms",
            data={**form, "Body": "STOP"},
            headers={"X-Twilio-Signature": signature},
        )
        assert answer.status_code == 403
    assert api.consent()["marketing"] == "none"


def test_a_replayed_inbound_webhook_changes_nothing(api: Api) -> None:
    sid = "SM" + secrets.token_hex(16)
    assert api.reply("STOP", to=MARKETING, sid=sid) == 200
    before = (
        api.count(tables.InboundMessage),
        api.count(tables.ConsentEvent),
        api.count(tables.Message),
    )
    for _ in range(3):
        assert api.reply("STOP", to=MARKETING, sid=sid) == 200
    assert before == (1, 1, 1)
    assert (
        api.count(tables.InboundMessage),
        api.count(tables.ConsentEvent),
        api.count(tables.Message),
    ) == before


def _status(api: Api, url_query: str, form: dict[str, str]) -> int:
    path = "/webhooks/twilio/status" + url_query
    return api.client.post(
        path, data=form, headers={"X-Twilio-Signature": sign(PUBLIC + path, form)}
    ).status_code


def test_status_callbacks_are_signed_idempotent_and_never_move_backwards(
    api: Api,
) -> None:
    admitted = api.send("order_status")
    api.deliver()
    message = api.client.get(
        f"/v1/businesses/{api.shop.business_id}/messages/{admitted['message_id']}",
        headers=api.auth(),
    ).json()
    sid = message["provider_sid"]
    form = {"MessageSid": sid, "MessageStatus": "sending", "AccountSid": "AC1"}
    assert _status(api, "?dispatcher_ref=x", form) == 204
    unsigned = api.client.post("/webhooks/twilio/status", data=form)
    assert unsigned.status_code == 403
    again = api.client.get(
        f"/v1/businesses/{api.shop.business_id}/messages/{admitted['message_id']}",
        headers=api.auth(),
    ).json()
    assert again["provider_status"] == "delivered"
    events = api.count(tables.MessageEvent)
    assert _status(api, "?dispatcher_ref=x", form) == 204
    assert api.count(tables.MessageEvent) == events


def test_error_21610_in_a_status_callback_opts_out_the_numbers_scope(api: Api) -> None:
    api.shop.opt_in(CUSTOMER, "marketing")
    admitted = api.send("promotion")
    api.deliver()
    sid = api.client.get(
        f"/v1/businesses/{api.shop.business_id}/messages/{admitted['message_id']}",
        headers=api.auth(),
    ).json()["provider_sid"]
    form = {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "21610"}
    assert _status(api, "", form) == 204
    assert api.consent()["marketing"] == "opted_out"
    assert api.consent()["transactional"] == "none"


def test_one_business_key_cannot_read_or_send_for_another(api: Api) -> None:
    theirs = api.send("order_status", business=api.other_id, key=api.other_key)
    mine = f"/v1/businesses/{api.shop.business_id}"
    other = f"/v1/businesses/{api.other_id}"
    body = {"to": CUSTOMER.e164, "type": "order_status", "body": "x"}

    assert (
        api.client.post(f"{other}/messages", json=body, headers=api.auth()).status_code
        == 403
    )
    for path in (
        f"{other}/messages/{theirs['message_id']}",
        f"{other}/customers/{CUSTOMER.e164}/consent",
        f"{other}/customers/{CUSTOMER.e164}/history",
        f"{other}/usage",
    ):
        assert api.client.get(path, headers=api.auth()).status_code == 403, path
    answer = api.client.get(
        f"{mine}/messages/{theirs['message_id']}", headers=api.auth()
    )
    assert answer.status_code == 404
    listed = api.client.get("/v1/businesses", headers=api.auth()).json()
    assert [b["id"] for b in listed] == [api.shop.business_id]
    assert api.client.post("/v1/policy/reload", headers=api.auth()).status_code == 403
    # The platform key reaches both.
    platform = api.auth(api.platform_key)
    assert (
        api.client.get(
            f"{other}/messages/{theirs['message_id']}", headers=platform
        ).status_code
        == 200
    )
    assert len(api.client.get("/v1/businesses", headers=platform).json()) == 2


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer dk_not-a-key"}, {"Authorization": "Basic eDp5"}],
)
def test_no_key_or_an_unknown_key_gets_401(api: Api, headers: dict[str, str]) -> None:
    answer = api.client.get(
        f"/v1/businesses/{api.shop.business_id}/usage", headers=headers
    )
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"to": "2015550199"}, "to"),
        ({"type": "newsletter"}, "type"),
        ({"body": ""}, "body"),
        ({"reply_role": "fax"}, "reply_role"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_payload_errors_are_422_naming_the_field(
    api: Api, change: dict[str, str], field: str
) -> None:
    body = {"to": CUSTOMER.e164, "type": "order_status", "body": "Hi", **change}
    answer = api.client.post(
        f"/v1/businesses/{api.shop.business_id}/messages", json=body, headers=api.auth()
    )
    assert answer.status_code == 422
    assert field in [d["loc"][-1] for d in answer.json()["detail"]]


def test_logs_never_hold_a_full_phone_number_or_a_body(api: Api) -> None:
    stream = io.StringIO()
    configure("json", "debug", stream=stream)
    try:
        api.reply("please stop texting me", to=MARKETING)
        api.send("otp_code", body="Your code is 482913")
        api.deliver()
        api.client.get(
            f"/v1/businesses/{api.shop.business_id}/customers/{CUSTOMER.e164}/history",
            headers=api.auth(),
        )
    finally:
        configure("console", "info")
    logged = stream.getvalue()
    assert "inbound_received" in logged
    assert "http_request" in logged
    for secret in (
        CUSTOMER.e164,
        CUSTOMER.e164[1:],
        MARKETING.e164,
        "482913",
        "texting",
    ):
        assert secret not in logged


def test_health_readiness_and_metrics(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    api.send("order_status")
    metrics = api.client.get("/metrics").text
    for name in (
        'dispatcher_sends_total{outcome="send",role="transactional"} 1.0',
        'dispatcher_queue_depth{lane="transactional"} 1.0',
        "dispatcher_decision_seconds_bucket",
    ):
        assert name in metrics
    assert api.client.get("/openapi.json").json()["info"]["title"]
