"""`dispatcher campaign FILE` through Click, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from dispatcher import tables
from dispatcher.cli import main
from dispatcher.store import transaction

from .conftest import Shop, customer

RULES = Path(__file__).resolve().parents[2] / "rules"


def campaign(shop: Shop, tmp_path: Path, *args: str, code: int = 0) -> str:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"format: 1\ndatabase_url: {json.dumps(shop.db.url)}\nrules: {RULES}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["--config", str(config), "campaign", *args])
    assert result.exit_code == code, result.output
    return result.output


def queued(shop: Shop) -> int:
    with transaction(shop.db.engine, write=False) as session:
        count = select(func.count()).select_from(tables.Message)
        return int(session.execute(count).scalar_one())


def test_a_campaign_file_is_queued_once_and_a_rerun_admits_only_the_rest(
    shop: Shop, tmp_path: Path
) -> None:
    shop.opt_in(customer(1))
    recipients = tmp_path / "list.csv"
    recipients.write_text(
        "phone\n" + "".join(f"{customer(n).e164}\n" for n in (1, 2)), encoding="utf-8"
    )
    options = ("--business", "Sudsy", "--type", "promotion", "--body", "20% off")
    first = campaign(shop, tmp_path, str(recipients), *options, "--campaign-id", "dec")
    assert "2 recipients, 0 already admitted" in first
    assert "marketing-needs-opt-in" in first
    recipients.write_text(
        "phone\n" + "".join(f"{customer(n).e164}\n" for n in (1, 2, 3)),
        encoding="utf-8",
    )
    again = campaign(shop, tmp_path, str(recipients), *options, "--campaign-id", "dec")
    assert "3 recipients, 2 already admitted" in again
    assert queued(shop) == 3


def test_a_campaign_file_with_bad_rows_queues_nothing(
    shop: Shop, tmp_path: Path
) -> None:
    recipients = tmp_path / "list.jsonl"
    rows = [{"phone": customer(1).e164}, {"phone": "555"}, {"phone": customer(2).e164}]
    rows += [{"phone": customer(3).e164, "body": ""}]
    recipients.write_text(
        "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8"
    )
    refused = campaign(
        shop,
        tmp_path,
        str(recipients),
        *("--business", "Sudsy", "--type", "promotion"),
        code=1,
    )
    assert f"{recipients}:1: body: missing" in refused
    assert f"{recipients}:2: phone:" in refused
    assert "campaign refused: 4 bad row(s), nothing queued" in refused
    assert queued(shop) == 0
