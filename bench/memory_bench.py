"""Memory: resident size before and after 1,000,000 decisions (no growth with volume).

    .venv/bin/python bench/memory_bench.py [--decisions 1000000]

Decides the seeded corpus of bench/engine_bench.py over and over, reading the process's
resident set size (``/proc/self/statm``) before, after the first 100,000 decisions (the
warm state) and at the end. Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from engine_bench import corpus  # noqa: E402

from dispatcher import Engine, load_policy  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * PAGE / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "memory.json"
    )
    args = parser.parse_args()

    policy = load_policy(REPO / "rules")
    engine = Engine(policy)
    facts = corpus(policy, 10_000)
    before = rss_mib()
    done = 0
    warm = None
    while done < args.decisions:
        for f in facts:
            engine.decide(f)
        done += len(facts)
        if warm is None and done >= 100_000:
            warm = rss_mib()
    after = rss_mib()
    result = {
        "command": "python bench/memory_bench.py",
        "date": dt.date.today().isoformat(),
        "decisions": done,
        "rss_mib_before": round(before, 1),
        "rss_mib_after_100k": round(warm or after, 1),
        "rss_mib_after": round(after, 1),
        "growth_after_warm_mib": round(after - (warm or after), 2),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
