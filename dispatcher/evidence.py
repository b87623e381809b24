"""The consent evidence bundle: the ledger as CSV and JSON, for a reviewer or counsel.

The bundle is the one place that writes full phone numbers out of the database: it is
evidence, and evidence must name the phone. It goes to a directory the operator chose,
never to a log. ``consent_events.csv`` holds one row per ledger record;
``consent_evidence.json`` holds the same records plus the current state per scope and
what the export covered (when, which filter, how many records).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from . import consent
from .businesses import list_businesses
from .phone import Phone
from .store import utc_now

CSV_NAME = "consent_events.csv"
JSON_NAME = "consent_evidence.json"
COLUMNS = (
    "id",
    "at",
    "business_id",
    "business",
    "phone",
    "scope",
    "action",
    "source",
    "source_ref",
    "number_id",
    "consent_text",
    "consent_text_version",
    "recorded_by",
)


@dataclass(frozen=True, slots=True)
class Bundle:
    csv_path: Path
    json_path: Path
    records: int


def _row(entry: consent.LedgerEntry, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "business_id": entry.business_id,
        "business": names.get(entry.business_id, "") if entry.business_id else "",
        "phone": entry.phone.e164,
        "scope": entry.scope,
        "action": entry.action.value,
        "source": entry.source.value,
        "source_ref": entry.source_ref,
        "number_id": entry.number_id,
        "consent_text": entry.consent_text,
        "consent_text_version": entry.consent_text_version,
        "recorded_by": entry.recorded_by,
    }


def _current(entries: list[consent.LedgerEntry]) -> list[dict[str, Any]]:
    # Latest by time, ties by id: the same rule the ledger applies to its state table.
    latest: dict[tuple[int | None, str, str], consent.LedgerEntry] = {}
    for entry in entries:
        key = (entry.business_id, entry.phone.e164, entry.scope)
        seen = latest.get(key)
        if seen is None or (entry.at, entry.id) >= (seen.at, seen.id):
            latest[key] = entry
    return [
        {
            "business_id": business_id,
            "phone": phone,
            "scope": scope,
            "state": entry.state.value,
            "since": entry.at.isoformat(),
            "event_id": entry.id,
        }
        for (business_id, phone, scope), entry in sorted(
            latest.items(), key=lambda item: (item[0][0] or 0, item[0][1], item[0][2])
        )
    ]


def export_bundle(
    session: Session,
    directory: Path,
    *,
    business: int | str | None = None,
    phone: Phone | None = None,
    now: dt.datetime | None = None,
) -> Bundle:
    """Write the bundle for the records that match into ``directory`` (created).

    With a business, its records and the platform-wide ones are included, since both
    decide what that business may send.
    """
    entries = consent.history(session, phone, business)
    names = {b.id: b.name for b in list_businesses(session)}
    rows = [_row(entry, names) for entry in entries]
    directory.mkdir(parents=True, exist_ok=True)
    csv_path = directory / CSV_NAME
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    document = {
        "format": 1,
        "exported_at": (now or utc_now()).isoformat(),
        "filter": {
            "business": business,
            "phone": phone.e164 if phone is not None else None,
        },
        "records": rows,
        "current_state": _current(entries),
        "record_count": len(rows),
    }
    json_path = directory / JSON_NAME
    json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return Bundle(csv_path, json_path, len(rows))
