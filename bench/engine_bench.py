"""Engine speed: the compiled policy against a hand-written function, side by side.

    .venv/bin/python bench/engine_bench.py [--facts 20000] [--rounds 7]

Both decide the same corpus of valid facts for the example policy (checked to agree on every
one of them first). Rounds alternate between the two so that noise on a shared machine hits
both alike; the best round of each gives the rate, all per-call timings the percentiles
(they include the ~50 ns cost of reading the clock). Writes bench/results/engine.json.
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

from dispatcher import Engine, Facts, load_policy  # noqa: E402
from dispatcher.errors import MissingDependencyError  # noqa: E402
from dispatcher.facts import Channel, ConsentState, NumberStatus  # noqa: E402

FL_OK_MD = {"US-FL", "US-OK", "US-MD"}
EIGHT_TO_EIGHT = FL_OK_MD | {"US-WA", "US-LA", "US-MA", "US-MS", "US-AL"}
NINE_TO_NINE = {"US-CA", "US-IL", "US-MI", "US-MN"}
REVOKE_ALL = dt.date(2027, 1, 31)
MARKETING = {"promotion": "core", "accelerate_campaign": "accelerate"}
TRANSACTIONAL = {
    "order_status": "core",
    "ready_for_pickup": "core",
    "delivery_notification": "core",
    "assist_escalation": "assist",
}
REPLIES = {"help_reply", "opt_out_confirmation", "opt_in_confirmation"}
SCOPE_OF_ROLE = {
    "marketing": "marketing",
    "transactional": "transactional",
    "global": "otp",
}
REG, ABSENT = NumberStatus.REGISTERED, NumberStatus.ABSENT
OUT, IN = ConsentState.OPTED_OUT, ConsentState.OPTED_IN


def allowed_window(jurisdiction: str, weekday: int) -> tuple[int, int]:
    if jurisdiction == "unknown":
        return (720, 1200) if weekday == 6 else (600, 1200)
    if jurisdiction in EIGHT_TO_EIGHT:
        return 480, 1200
    if jurisdiction == "US-CT":
        return 540, 1200
    if jurisdiction == "US-TX":
        return (720, 1260) if weekday == 6 else (540, 1260)
    if jurisdiction in NINE_TO_NINE:
        return 540, 1260
    if jurisdiction == "US-KY":
        return 600, 1260
    return 480, 1260


def next_allowed(f: Facts) -> dt.datetime:
    """The first allowed minute at or after the recipient's local time (every day has one)."""
    midnight = dt.datetime.combine(f.local_date, dt.time(0, 0))
    weekday = f.local_date.weekday()
    start, _end = allowed_window(f.jurisdiction, weekday)
    if f.minute < start:
        return midnight + dt.timedelta(minutes=start)
    tomorrow_start, _ = allowed_window(f.jurisdiction, (weekday + 1) % 7)
    return midnight + dt.timedelta(days=1, minutes=tomorrow_start)


Written = tuple[str, str | None, str, dt.datetime | None]


def hand_written(f: Facts) -> Written:
    """The example policy written out by hand: (outcome, role, rule id, not before)."""
    t = f.message_type
    mms = f.channel is Channel.MMS
    if t == "otp_code":
        if mms:
            return "reject", None, "sms-only-for-otp-and-compliance", None
        if f.consent["otp"] is OUT:
            return "suppress", None, "otp-opted-out", None
        if f.numbers["global"] is not REG:
            return "suppress", None, "otp-global-number-not-registered", None
        return "send", "global", "otp-from-global", None
    if t in REPLIES:
        if mms:
            return "reject", None, "sms-only-for-otp-and-compliance", None
        if f.reply_role is None:
            return "reject", None, "compliance-needs-inbound-message", None
        if f.numbers[f.reply_role] is not REG:
            return "suppress", None, "compliance-reply-number-not-registered", None
        return "send", f.reply_role, "compliance-reply", None
    marketing = t in MARKETING
    product = MARKETING[t] if marketing else TRANSACTIONAL[t]
    if product == "accelerate" and not f.accelerate:
        return "reject", None, "accelerate-needs-enrolment", None
    if product == "assist" and not f.assist:
        return "reject", None, "assist-needs-enrolment", None
    role = "marketing" if marketing else "transactional"
    if f.consent[role] is OUT:
        return "suppress", None, "opted-out-of-scope", None
    if f.local_date >= REVOKE_ALL:
        if f.consent["marketing"] is OUT:
            return "suppress", None, "revoke-all-from-marketing-stop", None
        if f.consent["transactional"] is OUT:
            return "suppress", None, "revoke-all-from-transactional-stop", None
    if marketing and f.consent["marketing"] is not IN:
        return "suppress", None, "marketing-needs-opt-in", None
    status = f.numbers[role]
    if not marketing and status is ABSENT:
        if f.numbers["marketing"] is REG and not f.assist and not f.accelerate:
            start, end = allowed_window(f.jurisdiction, f.local_date.weekday())
            if not start <= f.minute < end:
                return (
                    "defer",
                    None,
                    "transactional-fallback-waits-for-quiet-hours",
                    next_allowed(f),
                )
            return "send", "marketing", "transactional-falls-back-to-only-number", None
        if f.assist:
            return "defer", None, "transactional-held-for-second-number-assist", None
        if f.accelerate:
            return (
                "defer",
                None,
                "transactional-held-for-second-number-accelerate",
                None,
            )
    if status is NumberStatus.PENDING:
        return "defer", None, "number-registration-pending", None
    if status is NumberStatus.UNREGISTERED:
        return "suppress", None, "number-not-registered", None
    if status is ABSENT:
        return "suppress", None, "number-missing", None
    start, end = allowed_window(f.jurisdiction, f.local_date.weekday())
    if not start <= f.minute < end:
        return "defer", None, "quiet-hours", next_allowed(f)
    if (
        marketing
        and f.jurisdiction in FL_OK_MD | {"unknown"}
        and f.marketing_sent_24h >= 3
    ):
        return "suppress", None, "marketing-cap", None
    return "send", role, "marketing-send" if marketing else "transactional-send", None


def corpus(policy: object, size: int, seed: int = 20261203) -> list[Facts]:
    rng = random.Random(seed)
    types = sorted(policy.message_types)  # type: ignore[attr-defined]
    jurisdictions = [*sorted(policy.quiet_hours.jurisdictions), "US-NY", "unknown"]  # type: ignore[attr-defined]
    out = []
    for _ in range(size):
        out.append(
            Facts(
                message_type=rng.choice(types),
                channel=rng.choice([Channel.SMS] * 9 + [Channel.MMS]),
                assist=rng.random() < 0.5,
                accelerate=rng.random() < 0.5,
                numbers={
                    r: rng.choice([REG] * 6 + list(NumberStatus))
                    for r in ("marketing", "transactional", "global")
                },
                consent={
                    s: rng.choice([IN] * 4 + list(ConsentState))
                    for s in ("marketing", "transactional", "otp")
                },
                jurisdiction=rng.choice(jurisdictions),
                local_date=dt.date(2026, 12, 1) + dt.timedelta(days=rng.randrange(90)),
                local_time=dt.time(rng.randrange(24), rng.randrange(60)),
                marketing_sent_24h=rng.randrange(5),
                reply_role=rng.choice([None, "marketing", "transactional", "global"]),
            )
        )
    return out


def rate(fn: Callable[[Facts], object], facts: list[Facts]) -> float:
    start = time.perf_counter()
    for f in facts:
        fn(f)
    return len(facts) / (time.perf_counter() - start)


def latencies(fn: Callable[[Facts], object], facts: list[Facts]) -> list[int]:
    clock = time.perf_counter_ns
    out = []
    for f in facts:
        t0 = clock()
        fn(f)
        out.append(clock() - t0)
    return out


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--facts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "engine.json"
    )
    args = parser.parse_args()

    policy = load_policy(REPO / "rules")
    engine = Engine(policy)
    facts = corpus(policy, args.facts)
    for f in facts:
        d = engine.decide(f)
        expected = hand_written(f)
        if (d.outcome.value, d.role, d.rule.id, d.not_before_local) != expected:
            raise SystemExit(
                f"hand-written function disagrees on {f}: {expected} vs {d}"
            )

    contenders: dict[str, Callable[[Facts], object]] = {
        "compiled engine": engine.decide,
        "hand-written function": hand_written,
        "tracing interpreter (explain)": engine.explain,
    }
    durable = None
    try:
        from dispatcher.durable_engine import DurableEngine

        durable = DurableEngine(policy)
        sample = facts[:2000]
        for f in sample:
            if durable.decide(f) != engine.decide(f):
                raise SystemExit(f"durable_rules disagrees on {f}")
        contenders["durable_rules (same policy)"] = durable.decide
    except MissingDependencyError as exc:  # builds on CPython 3.11 and 3.12 only
        print(f"durable_rules skipped: {exc}")
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    timings: dict[str, list[int]] = {name: [] for name in contenders}
    # durable_rules is about 100 times slower: it gets a tenth of the corpus per round.
    slow = {"durable_rules (same policy)"}
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            corpus_now = facts[: len(facts) // 10] if name in slow else facts
            rates[name].append(rate(fn, corpus_now))
            timings[name].extend(latencies(fn, corpus_now))

    baseline = max(rates["hand-written function"])
    results = {}
    print(
        f"policy {policy.short_hash}, {len(facts)} facts x {args.rounds} rounds, Python {platform.python_version()}"
    )
    print(
        f"{'contender':<32}{'decisions/s':>14}{'vs hand-written':>17}{'p50 us':>9}{'p99 us':>9}"
    )
    for name in contenders:
        best = max(rates[name])
        row = {
            "decisions_per_second": round(best),
            "median_round_per_second": round(statistics.median(rates[name])),
            "ratio_to_hand_written": round(best / baseline, 3),
            "p50_us": round(percentile(timings[name], 0.50), 2),
            "p99_us": round(percentile(timings[name], 0.99), 2),
        }
        results[name] = row
        print(
            f"{name:<32}{row['decisions_per_second']:>14,}{row['ratio_to_hand_written']:>16.2f}x"
            f"{row['p50_us']:>9.2f}{row['p99_us']:>9.2f}"
        )
    if "durable_rules (same policy)" in results:
        ratio = (
            results["compiled engine"]["decisions_per_second"]
            / results["durable_rules (same policy)"]["decisions_per_second"]
        )
        results["compiled engine"]["ratio_to_durable_rules"] = round(ratio, 1)
        print(f"compiled engine / durable_rules: {ratio:.0f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": "python bench/engine_bench.py",
                "date": dt.date.today().isoformat(),
                "python": platform.python_version(),
                "policy_hash": policy.hash,
                "facts": len(facts),
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
