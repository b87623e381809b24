"""Segment counting speed: dispatcher.segments.count against a naive per-character count.

    .venv/bin/python bench/segments_bench.py [--texts 20000] [--rounds 7]

Both count the same mixed corpus (OTP codes, order updates, marketing copy with curly quotes
and emoji, long texts with extension characters) and are checked to agree on every text
first. Rounds alternate between the two so that noise on a shared machine hits both alike;
the best round of each gives the rate. Writes bench/results/segments.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dispatcher.segments import GSM7_BASIC, GSM7_EXTENSION, count  # noqa: E402

WORDS = (
    "your",
    "order",
    "wash",
    "fold",
    "ready",
    "pickup",
    "store",
    "today",
    "delivery",
    "driver",
    "tomorrow",
    "thanks",
    "receipt",
    "total",
    "due",
    "sale",
    "off",
    "week",
    "code",
    "reply",
    "stop",
    "help",
    "opt",
    "out",
    "laundry",
    "shirts",
    "pressed",
    "bag",
    "customer",
    "service",
    "hours",
    "open",
    "close",
)
ACCENTS = ["’", "“", "”", "—", "…", "é", "ñ", "😀", "🎉", "🧺", "👕"]


def corpus(size: int, seed: int = 20261203) -> list[str]:
    """A day's traffic: mostly short GSM-7 texts, some UCS-2, a few long ones."""
    rng = random.Random(seed)
    out = []
    for _ in range(size):
        kind = rng.random()
        if kind < 0.25:
            out.append(
                f"Your code is {rng.randrange(10**6):06d}. It expires in 10 minutes."
            )
            continue
        length = (
            rng.choice([6, 12, 20, 30, 45, 60]) if kind > 0.85 else rng.randrange(4, 25)
        )
        words = [rng.choice(WORDS) for _ in range(length)]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(ACCENTS))
        if rng.random() < 0.15:
            words.insert(rng.randrange(len(words)), rng.choice(GSM7_EXTENSION))
        text = " ".join(words).capitalize() + ". Reply STOP to opt out."
        out.append(text)
    return out


def naive(text: str) -> tuple[str, int, int]:
    """Per-character costs, then a greedy packing: the obvious implementation."""
    gsm = all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)
    if gsm:
        costs = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        single, size, encoding = 160, 153, "gsm-7"
    else:
        costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, size, encoding = 70, 67, "ucs-2"
    units = sum(costs)
    if not text:
        return encoding, 0, 0
    if units <= single:
        return encoding, 1, units
    segments, used = 1, 0
    for cost in costs:
        if used + cost > size:
            segments, used = segments + 1, 0
        used += cost
    return encoding, segments, units


def rate(fn: Callable[[str], object], texts: list[str]) -> float:
    start = time.perf_counter()
    for text in texts:
        fn(text)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "segments.json"
    )
    args = parser.parse_args()

    texts = corpus(args.texts)
    for text in texts:
        fast = count(text)
        if (fast.encoding.value, fast.segments, fast.units) != naive(text):
            raise SystemExit(f"the two disagree on {text!r}")
    ucs2 = sum(count(t).encoding.value == "ucs-2" for t in texts)
    multi = sum(count(t).segments > 1 for t in texts)

    contenders: dict[str, Callable[[str], object]] = {
        "segments.count": count,
        "naive per-character": naive,
    }
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            rates[name].append(rate(fn, texts))

    baseline = max(rates["naive per-character"])
    results = {}
    print(
        f"{len(texts)} texts ({ucs2} UCS-2, {multi} multi-segment) x {args.rounds} rounds,"
        f" Python {platform.python_version()}"
    )
    print(f"{'contender':<24}{'texts/s':>12}{'vs naive':>10}")
    for name in contenders:
        best = max(rates[name])
        results[name] = {
            "texts_per_second": round(best),
            "median_round_per_second": round(statistics.median(rates[name])),
            "ratio_to_naive": round(best / baseline, 2),
        }
        print(f"{name:<24}{round(best):>12,}{best / baseline:>9.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": "python bench/segments_bench.py",
                "date": dt.date.today().isoformat(),
                "python": platform.python_version(),
                "texts": len(texts),
                "ucs2_texts": ucs2,
                "multi_segment_texts": multi,
                "rounds": args.rounds,
                "results": results,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
