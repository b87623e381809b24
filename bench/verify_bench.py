"""Benchmark: verify the example policy's whole fact space with both engines at once.

    .venv/bin/python bench/verify_bench.py [RULES]

Prints and writes bench/results/verify.json: the number of points, the time to enumerate
them, each engine's time on the same points, the compiled/durable_rules speed ratio and
the whole verification's wall time (target: under 2 seconds).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from dispatcher import load_policy
from dispatcher.verify import COMPILED, DURABLE, verify

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    rules = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "rules"
    policy = load_policy(rules)
    verify(policy)  # warm up: imports, first ruleset
    started = time.perf_counter()
    result = verify(policy)
    wall = time.perf_counter() - started
    compiled, durable = result.seconds[COMPILED], result.seconds[DURABLE]
    figures = {
        "policy": policy.short_hash,
        "points": result.points,
        "ok": result.ok,
        "enumerate_s": round(result.seconds["enumerate"], 4),
        "compiled_s": round(compiled, 4),
        "durable_rules_s": round(durable, 4),
        "compiled_per_point_us": round(compiled / result.points * 1e6, 2),
        "durable_rules_per_point_us": round(durable / result.points * 1e6, 2),
        "compiled_speed_over_durable_rules": round(durable / compiled, 1),
        "verify_wall_s": round(wall, 3),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    out = ROOT / "bench" / "results" / "verify.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        print(f"{key:<34} {value}")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
