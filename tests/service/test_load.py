"""A bounded load test on loopback (bench/inbound_load.py): inbound STOP webhooks at a
fixed rate, every one answered and every opt-out present.

TODO: the issue's target is 200/s with p99 under 20 ms. Today the service handles about
30 inbound STOPs per second on the 2-core machine, and on SQLite some requests wait past
the 5 s busy timeout and get 503 even at 20/s (docs/service.md has the figures). Until
that is fixed this test is an expected failure, kept so the fix can be seen to work.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from inbound_load import run


@pytest.mark.slow
@pytest.mark.xfail(
    reason="SQLite lock waits past busy_timeout under load", strict=False
)
def test_inbound_stops_under_load_all_land() -> None:
    result = run(rate=20, seconds=10, workers=2, threads=16)
    print(result)
    assert result["statuses"] == {200: 200}
    assert result["opt_outs_present"] == 200
