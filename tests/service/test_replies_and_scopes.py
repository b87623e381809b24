"""End to end through HTTP: replies to each number change only that number's scope."""

from __future__ import annotations

from dispatcher import tables

from .conftest import CUSTOMER, GLOBAL, MARKETING, TRANSACTIONAL, Api


def test_stop_to_marketing_suppresses_a_promotion_but_order_ready_is_delivered(
    api: Api,
) -> None:
    api.shop.opt_in(CUSTOMER, "marketing")
    assert api.reply("STOP", to=MARKETING) == 200

    promotion = api.send("promotion")
    ready = api.send("ready_for_pickup")
    assert (promotion["outcome"], promotion["rule"]) == (
        "suppress",
        "opted-out-of-scope",
    )
    assert (ready["outcome"], ready["role"]) == ("send", "transactional")

    api.deliver()
    detail = api.client.get(
        f"/v1/businesses/{api.shop.business_id}/messages/{ready['message_id']}",
        headers=api.auth(),
    ).json()
    assert detail["state"] == "sent"
    assert detail["provider_status"] == "delivered"
    assert detail["decision"]["rule"]["id"] == "transactional-send"
    assert [s["status"] for s in detail["statuses"] if s["kind"] == "status"] == [
        "sent",
        "delivered",
    ]
    assert api.consent() == {
        "marketing": "opted_out",
        "transactional": "none",
        "otp": "none",
    }


def test_stop_to_transactional_stops_order_updates_but_not_promotions(api: Api) -> None:
    api.shop.opt_in(CUSTOMER, "marketing")
    assert api.reply("stop", to=TRANSACTIONAL) == 200

    order = api.send("order_status")
    promotion = api.send("promotion")
    assert (order["outcome"], order["rule"]) == ("suppress", "opted-out-of-scope")
    assert (promotion["outcome"], promotion["role"]) == ("send", "marketing")
    assert api.consent()["marketing"] == "opted_in"
    assert api.consent()["transactional"] == "opted_out"


def test_stop_to_the_global_number_blocks_otp_for_every_business_and_nothing_else(
    api: Api,
) -> None:
    api.shop.opt_in(CUSTOMER, "marketing")
    first = api.send("otp_code")
    assert (first["outcome"], first["role"]) == ("send", "global")
    api.deliver()

    assert api.reply("STOP", to=GLOBAL) == 200

    for business, key in ((None, api.key), (api.other_id, api.other_key)):
        otp = api.send("otp_code", business=business, key=key)
        assert (otp["outcome"], otp["rule"]) == ("suppress", "otp-opted-out")
        order = api.send("order_status", business=business, key=key)
        assert order["outcome"] == "send"
    assert api.send("promotion")["outcome"] == "send"
    assert api.consent()["otp"] == "opted_out"
    assert api.consent(business=api.other_id)["otp"] == "opted_out"


def test_the_global_numbers_confirmation_goes_for_the_business_that_sent_the_code(
    api: Api,
) -> None:
    api.send("otp_code")
    api.deliver()
    api.reply("STOP", to=GLOBAL)
    history = api.client.get(
        f"/v1/businesses/{api.shop.business_id}/customers/{CUSTOMER.e164}/history",
        headers=api.auth(),
    ).json()["entries"]
    confirmation = [e for e in history if e["type"] == "opt_out_confirmation"]
    assert len(confirmation) == 1
    assert confirmation[0]["role"] == "global"


def test_start_restores_only_the_scope_of_the_number_it_was_sent_to(api: Api) -> None:
    api.reply("STOP", to=MARKETING)
    api.reply("STOP", to=TRANSACTIONAL)
    api.reply("START", to=MARKETING)

    assert api.consent()["marketing"] == "opted_in"
    assert api.consent()["transactional"] == "opted_out"
    assert api.send("promotion")["outcome"] == "send"
    assert api.send("order_status")["rule"] == "opted-out-of-scope"


def test_revocation_in_other_words_opts_out_and_confirms_once(api: Api) -> None:
    api.shop.opt_in(CUSTOMER, "marketing")
    api.reply("please stop texting me", to=MARKETING)
    api.reply("no más", to=MARKETING)

    assert api.consent()["marketing"] == "opted_out"
    history = api.client.get(
        f"/v1/businesses/{api.shop.business_id}/customers/{CUSTOMER.e164}/history",
        headers=api.auth(),
    ).json()["entries"]
    inbound = [e for e in history if e["direction"] == "inbound"]
    assert [e["keyword_kind"] for e in inbound] == ["revocation", "revocation"]
    confirmations = [e for e in history if e["type"] == "opt_out_confirmation"]
    assert len(confirmations) == 1
    assert (
        confirmations[0]["state"] == "queued"
    )  # compliance lane, exempt from quiet hours
    assert confirmations[0]["rule"] == "compliance-reply"


def test_help_gets_the_rules_reply_and_chat_lands_in_the_history(api: Api) -> None:
    api.reply("HELP", to=TRANSACTIONAL)
    api.reply("Is my order ready?", to=TRANSACTIONAL)
    api.deliver()

    history = api.client.get(
        f"/v1/businesses/{api.shop.business_id}/customers/{CUSTOMER.e164}/history",
        headers=api.auth(),
    ).json()["entries"]
    assert [(e["direction"], e["keyword_kind"] or e["type"]) for e in history] == [
        ("inbound", "help"),
        ("outbound", "help_reply"),
        ("inbound", None),
    ]
    reply = api.client.get(
        f"/v1/businesses/{api.shop.business_id}/messages/{history[1]['message_id']}",
        headers=api.auth(),
    ).json()
    assert reply["body"].startswith("Sudsy order updates.")
    assert reply["provider_status"] == "delivered"
    assert api.count(tables.InboundMessage) == 2
