"""schemathesis against the served OpenAPI document: no input makes a server error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dispatcher import store
from dispatcher.inbound import Settings
from dispatcher.providers.credentials import Secret
from dispatcher.service import Service, auth, demo
from dispatcher.service.reload import PolicyHolder

from .conftest import RULES, TOKEN, serving

ST = Path(sys.executable).parent / "st"


@pytest.mark.slow
@pytest.mark.parametrize("who", ["platform", "business"])
def test_schemathesis_finds_no_server_error(tmp_path: Path, who: str) -> None:
    db = store.open_engine(f"sqlite:///{tmp_path / 'fuzz.sqlite3'}")
    store.upgrade(db)
    policies = PolicyHolder(RULES)
    seeded = demo.seed(db, policies.current().policy)
    with store.transaction(db) as session:
        _, platform_key = auth.create_key(session, None, label="fuzz", created_by="t")
    key = platform_key if who == "platform" else seeded.key
    service = Service(
        db=db,
        policies=policies,
        inbound=Settings("Cents", "help.example.com"),
        webhook_token=Secret(TOKEN),
    )
    with serving(service) as base_url:
        run = subprocess.run(
            [
                str(ST),
                "run",
                f"{base_url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--header",
                f"Authorization: Bearer {key}",
                "--max-examples",
                "40",
                "--seed",
                "1",
                "--generation-database",
                "none",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=tmp_path,
        )
    db.dispose()
    print(run.stdout[-1500:])  # the summary, shown with -s or on failure
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
