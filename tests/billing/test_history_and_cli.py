"""Chat history, the usage and history commands, rates from the config, months."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from dispatcher import billing, consent, history
from dispatcher.cli import main
from dispatcher.config import load_config
from dispatcher.consent import ConsentSource
from dispatcher.errors import FieldError
from dispatcher.store import transaction

from ..data.conftest import Database
from ..pipeline.conftest import AFTERNOON, CUSTOMER, MARKETING, Shop
from .test_ledger import LONG, call, inbound, record, send


def test_history_from_the_ledger_shows_every_outbound_message_and_keyword_replies(
    shop: Shop,
) -> None:
    shop.opt_in(CUSTOMER)
    send(shop, "promotion", body="20% off today")
    with transaction(shop.db.engine) as session:
        consent.record(
            session,
            shop.policy,
            phone=CUSTOMER,
            scope="marketing",
            business=shop.business_id,
            opt_in=False,
            source=ConsentSource.KEYWORD,
            recorded_by="test",
            source_ref="SM" + "1" * 32,
            number_id=_number_id(shop, MARKETING.e164),
            at=AFTERNOON + dt.timedelta(minutes=1),
        )
    later = AFTERNOON + dt.timedelta(minutes=2)
    from dispatcher.outbox import SendRequest, admit

    admit(
        shop.db.engine,
        shop.engine,
        SendRequest("Sudsy", CUSTOMER, "promotion", "Last chance"),
        now=later,
    )
    admit(
        shop.db.engine,
        shop.engine,
        SendRequest("Sudsy", CUSTOMER, "order_status", LONG),
        now=later,
    )
    with transaction(shop.db.engine, write=False) as session:
        entries = history.conversation(
            session, "Sudsy", CUSTOMER, inbound=history.keyword_replies
        )
    assert [(e.direction, getattr(e, "state", None), e.role) for e in entries] == [
        ("outbound", "sent", "marketing"),
        ("inbound", None, "marketing"),
        ("outbound", "suppressed", None),
        ("outbound", "queued", "transactional"),
    ]
    first = entries[0]
    assert isinstance(first, history.Outbound)
    assert (first.rule, first.provider_status, first.number) == (
        "marketing-send",
        "delivered",
        "+1******0123",
    )
    reply = entries[1]
    assert isinstance(reply, history.Inbound)
    assert reply.keyword_kind == "opt_out"
    assert entries[2].to_mapping()["rule"] == "opted-out-of-scope"
    with transaction(shop.db.engine, write=False) as session:
        page = history.conversation(
            session, "Sudsy", CUSTOMER, 2, before=later, inbound=history.keyword_replies
        )
    assert [e.direction for e in page] == ["outbound", "inbound"]


def test_history_refuses_a_limit_out_of_range(shop: Shop) -> None:
    with (
        transaction(shop.db.engine, write=False) as session,
        pytest.raises(FieldError, match=r"limit: expected 1-500, got 0"),
    ):
        history.conversation(session, "Sudsy", CUSTOMER, 0)


def _number_id(shop: Shop, e164: str) -> int:
    from dispatcher import tables

    with transaction(shop.db.engine, write=False) as session:
        found = session.execute(
            select(tables.Number.id).where(tables.Number.e164 == e164)  # type: ignore[call-overload]
        ).scalar_one()
        return int(found)


def _run(db: Database, tmp_path: Path, *args: str, rates: str = "") -> str:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"format: 1\ndatabase_url: {db.url}\nrules: {Path('rules').resolve()}\n"
        + rates,
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_usage_command_as_table_csv_and_json(shop: Shop, tmp_path: Path) -> None:
    send(shop)  # 2 segments, transactional
    inbound(shop, "SM1", MARKETING, "STOP")
    record(shop, call("CA1", "completed", "125"))  # 3 minutes
    rates = 'billing:\n  rates:\n    call_inbound: {transactional: "0.0100"}\n'
    args = ("usage", "--business", "Sudsy", "--month", "2026-12")
    table = _run(shop.db, tmp_path, *args, rates=rates)
    assert "Usage of Sudsy (business 1) in 2026-12, USD" in table
    assert "transactional  inbound    call" in table
    assert table.splitlines()[-2].split()[-1] == "0.0549"  # 0.0083 + 0.0166 + 0.03
    csv_text = _run(shop.db, tmp_path, *args, "--format", "csv", rates=rates)
    assert csv_text.splitlines() == [
        "role,direction,kind,unit,count,units,rate,amount",
        "marketing,inbound,sms,segment,1,1,0.0083,0.0083",
        "transactional,outbound,sms,segment,1,2,0.0083,0.0166",
        "transactional,inbound,call,minute,1,3,0.01,0.03",
        "total,,,,,,,0.0549",
    ]
    payload = json.loads(_run(shop.db, tmp_path, *args, "--format", "json"))
    assert payload["total_micros"] == 8300 + 16600 + 3 * 8500
    assert payload["totals"]["call_inbound"] == 3


def test_usage_command_refuses_a_bad_month(shop: Shop, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"format: 1\ndatabase_url: {shop.db.url}\n", encoding="utf-8")
    result = CliRunner().invoke(
        main,
        ["--config", str(config), "usage", "--business", "Sudsy", "--month", "2026-13"],
    )
    assert result.exit_code == 2
    assert "month: expected YYYY-MM like 2026-12, got '2026-13'" in result.output


def test_history_command_masks_numbers(shop: Shop, tmp_path: Path) -> None:
    send(shop)
    output = _run(shop.db, tmp_path, "history", CUSTOMER.e164, "--business", "Sudsy")
    assert CUSTOMER.e164 not in output
    assert "transactional +1******0124" in output
    assert "[sent/delivered] rule transactional-send" in output
    entries = json.loads(
        _run(shop.db, tmp_path, "history", CUSTOMER.e164, "--business", "1", "--json")
    )
    assert entries[0]["segments"] == 2


def test_explain_shows_the_segments_of_a_body() -> None:
    result = CliRunner().invoke(
        main, ["explain", "--type", "order_status", "--body", "It’s ready"]
    )
    assert result.exit_code == 0, result.output
    assert "segments: 1 (ucs-2, 10 units, 10 characters)" in result.output
    assert "position 3: RIGHT SINGLE QUOTATION MARK '’' forces ucs-2, use \"'\"" in (
        result.output
    )


# --- rates and months -----------------------------------------------------------------


def test_rates_come_from_the_config_per_role_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        'format: 1\nbilling:\n  rates:\n    sms_outbound: {default: "0.0079", '
        'marketing: "0.01"}\n    call_inbound: "0.02"\n',
        encoding="utf-8",
    )
    rates = load_config(path).billing
    sms, call_in = billing.Kind.SMS, billing.Kind.CALL
    out, into = billing.Direction.OUTBOUND, billing.Direction.INBOUND
    assert rates.micros(out, sms, "marketing") == 10_000
    assert rates.micros(out, sms, "transactional") == 7_900
    assert rates.micros(into, call_in, "global") == 20_000
    assert rates.micros(into, sms, "marketing") == 8_300  # the built-in default


def test_a_rate_that_is_not_an_exact_decimal_is_refused() -> None:
    with pytest.raises(FieldError, match=r"billing.rates.sms_outbound: expected a "):
        billing.Rates.from_config({"rates": {"sms_outbound": "0.0000001"}})


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        (
            "2026-12",
            dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
            dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
        ),
        (
            "2027-02",
            dt.datetime(2027, 2, 1, tzinfo=dt.UTC),
            dt.datetime(2027, 3, 1, tzinfo=dt.UTC),
        ),
    ],
)
def test_a_month_is_a_half_open_utc_period(
    text: str, start: dt.datetime, end: dt.datetime
) -> None:
    month = billing.Month.parse(text)
    assert (month.start, month.end, str(month)) == (start, end, text)


def test_money_is_formatted_without_floats() -> None:
    assert billing.format_money(1) == "0.000001"
    assert billing.format_money(12_340_000) == "12.34"
    assert billing.to_micros("0.0083") == 8300


def test_a_voice_callback_lists_every_bad_field() -> None:
    from dispatcher.calls import CallReport
    from dispatcher.errors import InvalidStatusCallback

    with pytest.raises(InvalidStatusCallback) as caught:
        CallReport.from_callback(
            {
                "CallStatus": "done",
                "CallDuration": "1.5",
                "From": "12",
                "To": "+12015550124",
                "Direction": "inbound",
            }
        )
    assert str(caught.value) == (
        "voice status callback: CallSid is missing; CallStatus 'done' is not one of "
        "queued, initiated, ringing, in-progress, completed, busy, failed, no-answer, "
        "canceled; From: expected an E.164 number, got '+**'; CallDuration must be "
        "whole seconds, got '1.5'"
    )
