"""`python -m bench oracle`: does anything a caller can see tell whether an account exists?

On a `ProcessStack` (real Temporal dev server, worker and API processes, an SMTP sink) whose
built-in directory holds `--people` accounts that look like a real organisation's
(`bench.people`):

1. **timing**: `POST /v1/recovery` for usernames that name an account and usernames that name
   nobody, interleaved at random, one at a time: the first request on each identifier, then its
   repeated ones (2nd to 5th, the rate limit's allowance); median and p90 of each, and Δ
   (known - unknown). Also, for the record, how long each case takes to say its code was
   `sent` (the worker's work differs there: a known account's code goes out by mail);
2. **decoys**: `--samples` requests for known identifiers and as many for unknown ones
   (usernames, emails, phone numbers; no channel, email, SMS), and the distributions of what
   their masked destinations show (channel, length, letters, top-level domain, country code),
   compared with a chi-square test of homogeneity;
3. **proof of work**: the challenge's `maxNumber` at each level over the rate limit (checked
   against the running API by hammering one identifier and solving each challenge), and the
   time to solve challenges of each level with the page's own solver (`api/pages/static/
   pow.js`, WebCrypto) in Chromium, at this machine's speed and slowed 4 times (Lighthouse's
   mid-range phone), and with Python's hashlib (what a scripted attacker uses at least).

The figures go to docs/security.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import random
import shutil
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from altcha import ChallengeOptionsV1, create_challenge_v1, solve_challenge_v1

from bench.code_latency import (
    log,
    machine,
    non_negative,
    percentile,
    positive,
    save_report,
    temporal_version,
)
from bench.people import Person, compare, distributions, fill, people, strangers
from bench.stack import OWASP_MINIMUM, ProcessStack, StackConfig, run_async
from reclaim.recovery.challenge import Challenges
from reclaim.security import Keys, Passwords
from reclaim.settings import Settings

NAME = "oracle"
HELP = "Known vs unknown identifiers: timings, decoy distributions, proof-of-work cost."
WARMUP = 20
CHANNELS = (None, "email", "sms")
POW_JS = Path(__file__).resolve().parent.parent / "api/pages/static/pow.js"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_EXECUTABLE = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
# Chromium's CPU slowdown for "a mid-range phone" (Lighthouse's mobile preset).
PHONE_SLOWDOWN = 4


@dataclass(frozen=True)
class Options:
    people: int = 500
    samples: int = 300
    requests: int = 100
    repeats: int = 4
    pow_samples: int = 5
    browser: bool = True
    output: Path | None = None
    keep_dir: bool = False


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "median": round(percentile(ordered, 50), 3),
        "p90": round(percentile(ordered, 90), 3),
        "mean": round(statistics.fmean(ordered), 3),
    }


def _delta(known: dict[str, float], unknown: dict[str, float]) -> dict[str, float]:
    return {k: round(known[k] - unknown[k], 3) for k in ("median", "p90", "mean")}


async def _open(http: httpx.AsyncClient, identifier: str, channel: str | None = None) -> Any:
    body = {"identifier": identifier} | ({"channel": channel} if channel else {})
    response = await http.post("/v1/recovery", json=body)
    if response.status_code != 202:
        raise RuntimeError(f"{identifier}: {response.status_code} {response.text[:200]}")
    return response.json()


async def _timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    mark = time.perf_counter()
    answer = await call()
    return (time.perf_counter() - mark) * 1000, answer


# -- 1. timing -----------------------------------------------------------------------------------


def _pairs(known: list[Person], unknown: list[Person], rng: random.Random) -> list[tuple[str, str]]:
    """(kind, username) with each known identifier next to an unknown one, in random order
    within each pair: a drift of the machine's load hits both alike."""
    order: list[tuple[str, str]] = []
    for mine, theirs in zip(known, unknown, strict=False):
        pair = [("known", mine.username), ("unknown", theirs.username)]
        rng.shuffle(pair)
        order += pair
    return order


def _compared(values: dict[str, list[float]]) -> dict[str, Any]:
    """Each kind's figures, Δ (known - unknown), and the paired comparison: in how many pairs
    the known identifier's request was the slower, with a sign test's z (|z| < 2: no
    difference to see)."""
    known, unknown = _stats(values["known"]), _stats(values["unknown"])
    paired = [k - u for k, u in zip(values["known"], values["unknown"], strict=False)]
    slower = sum(1 for d in paired if d > 0)
    n = len(paired)
    return {
        "known": known,
        "unknown": unknown,
        "delta_known_minus_unknown": _delta(known, unknown),
        "paired": {
            "pairs": n,
            "median_delta": round(statistics.median(paired), 3) if paired else None,
            "known_slower_share": round(slower / n, 3) if n else None,
            "sign_test_z": round((slower - n / 2) / (n / 4) ** 0.5, 2) if n else None,
        },
    }


async def timing(
    http: httpx.AsyncClient, known: list[Person], unknown: list[Person], options: Options
) -> dict[str, Any]:
    rng = random.Random(1)
    result: dict[str, Any] = {}
    rounds = {"first_ms": 1, "repeated_ms": options.repeats}
    for name, count in rounds.items():
        values: dict[str, list[float]] = {"known": [], "unknown": []}
        for _ in range(count):
            for kind, identifier in _pairs(known, unknown, rng):
                elapsed, _ = await _timed(functools.partial(_open, http, identifier))
                values[kind].append(elapsed)
        result[name] = _compared(values)
    return result


async def until_sent(
    http: httpx.AsyncClient, known: list[Person], unknown: list[Person]
) -> dict[str, Any]:
    """From the opening to `delivery: sent`, read by polling every 10 ms: the worker's work,
    which differs (a code mailed, or nothing to send for an unknown username)."""
    seen: dict[str, list[float]] = {"known": [], "unknown": []}
    for kind, identifier in _pairs(known, unknown, random.Random(2)):
        mark = time.perf_counter()
        case = await _open(http, identifier)
        deadline = mark + 30
        while True:
            state = (await http.get(f"/v1/recovery/{case['case_id']}")).json()
            if state["delivery"] == "sent" or time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.01)
        seen[kind].append((time.perf_counter() - mark) * 1000)
    return _compared(seen)


# -- 2. decoys -----------------------------------------------------------------------------------


def _identifier(person: Person, index: int) -> str:
    kind = index % 3
    if kind == 1:
        return person.email
    if kind == 2 and person.phone:
        return person.phone
    return person.username


async def decoys(
    http: httpx.AsyncClient, known: list[Person], unknown: list[Person]
) -> dict[str, Any]:
    answers: dict[str, list[tuple[str, str]]] = {"real": [], "decoy": []}
    for name, group in (("real", known), ("decoy", unknown)):
        for index, person in enumerate(group):
            case = await _open(http, _identifier(person, index), CHANNELS[(index // 3) % 3])
            answers[name].append((case["channel"], case["destination"]))
    real, decoy = distributions(answers["real"]), distributions(answers["decoy"])
    features = {}
    for feature in real:
        result = compare(real[feature], decoy.get(feature, type(real[feature])()), feature)
        features[feature] = {
            "real": dict(real[feature].most_common()),
            "decoy": dict(decoy[feature].most_common()),
            "chi_square": result.statistic,
            "dof": result.dof,
            "p_value": round(result.p_value, 4),
            "only_real": result.only_real,
            "only_decoy": result.only_decoy,
        }
    return {"samples": {k: len(v) for k, v in answers.items()}, "features": features}


# -- 3. proof of work ----------------------------------------------------------------------------


def _levels(challenges: Challenges) -> list[int]:
    """Every level up to the first at the cap, and one past it."""
    levels = [1]
    while challenges.max_number(levels[-1]) < challenges.max_number(levels[-1] + 1):
        levels.append(levels[-1] + 1)
    return [*levels, levels[-1] + 1]


async def curve_on_the_stack(
    http: httpx.AsyncClient, identifier: str, levels: int
) -> list[dict[str, Any]]:
    """Hammer one identifier past the limit, solving each challenge: what the API asks."""
    for _ in range(5):
        await _open(http, identifier)
    seen = []
    for _ in range(levels):
        refused = await http.post("/v1/recovery", json={"identifier": identifier})
        challenge = refused.json()["challenge"]
        mark = time.perf_counter()
        solution = solve_challenge_v1(
            challenge["challenge"],
            challenge["salt"],
            challenge["algorithm"],
            challenge["maxNumber"],
        )
        solved_s = time.perf_counter() - mark
        assert solution is not None
        payload = {k: v for k, v in challenge.items() if k != "maxNumber"} | {
            "number": solution.number
        }
        altcha = base64.b64encode(json.dumps(payload).encode()).decode()
        opened = await http.post("/v1/recovery", json={"identifier": identifier, "altcha": altcha})
        seen.append(
            {
                "status_before": refused.status_code,
                "max_number": challenge["maxNumber"],
                "python_solve_s": round(solved_s, 4),
                "status_with_solution": opened.status_code,
            }
        )
    return seen


def python_solves(challenges: Challenges, levels: list[int], samples: int) -> dict[str, Any]:
    """Seconds to solve with Python's hashlib (the altcha library's own solver)."""
    now = datetime.now(UTC)
    found: dict[str, Any] = {}
    for level in levels:
        times = []
        for n in range(samples):
            challenge = challenges.issue(f"bench:{level}:{n}", level, now)
            mark = time.perf_counter()
            solve_challenge_v1(
                challenge["challenge"],
                challenge["salt"],
                challenge["algorithm"],
                challenge["maxNumber"],
            )
            times.append(time.perf_counter() - mark)
        found[str(level)] = {"max_number": challenges.max_number(level), **_stats(times)}
    return found


async def browser_solves(
    base_url: str, challenges: Challenges, levels: list[int], samples: int
) -> dict[str, Any] | None:
    """Seconds to solve with pow.js in Chromium, at this machine's speed and slowed down."""
    executable = CHROMIUM_EXECUTABLE
    if not executable:
        return None
    from playwright.async_api import async_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
    found: dict[str, Any] = {}
    now = datetime.now(UTC)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(executable), args=flags)
        try:
            page = await browser.new_page()
            await page.goto(f"{base_url}/recover")
            await page.add_script_tag(url="/assets/pow.js")
            cdp = await page.context.new_cdp_session(page)
            for slowdown in (1, PHONE_SLOWDOWN):
                await cdp.send("Emulation.setCPUThrottlingRate", {"rate": slowdown})
                per_level: dict[str, Any] = {}
                for level in levels:
                    times = []
                    for n in range(samples):
                        challenge = challenges.issue(f"browser:{level}:{n}", level, now)
                        mark = time.perf_counter()
                        number = await page.evaluate(
                            "c => window.ReclaimProofOfWork.solve(c)", challenge
                        )
                        times.append(time.perf_counter() - mark)
                        assert number is not None
                    # The longest it can take: the number is the last one tried.
                    worst = create_challenge_v1(
                        ChallengeOptionsV1(
                            hmac_key="bench",
                            max_number=challenges.max_number(level),
                            number=challenges.max_number(level),
                        )
                    ).to_dict()
                    mark = time.perf_counter()
                    await page.evaluate("c => window.ReclaimProofOfWork.solve(c)", worst)
                    per_level[str(level)] = {
                        "max_number": challenges.max_number(level),
                        **_stats(times),
                        "whole_range": round(time.perf_counter() - mark, 3),
                    }
                found[f"cpu_x{slowdown}"] = per_level
        finally:
            await browser.close()
    return found


# -- the run -------------------------------------------------------------------------------------


async def measure(options: Options) -> dict[str, Any]:
    started_at = datetime.now(UTC)
    everyone = people(options.people)
    # Each identifier is used for one part only (the rate limit allows 5 requests on it).
    n_timing = min(options.requests, options.people // 4)
    n_sent = min(30, n_timing)
    n_samples = min(options.samples, options.people - n_timing - n_sent)
    outsiders = strangers(n_timing + n_sent + n_samples, everyone)
    parts = (n_timing, n_timing + n_sent, n_timing + n_sent + n_samples)
    log(f"starting the stack; {len(everyone)} accounts")
    config = StackConfig(argon2=OWASP_MINIMUM, log_level="WARNING", keep_dir=options.keep_dir)
    async with ProcessStack(config) as stack:
        engine = stack.engine()
        fill(engine, everyone, Passwords(2, 19_456, 1).hash("not anyone's password"))
        engine.dispose()
        settings: Settings = stack.settings()
        challenges = Challenges(Keys(settings.secret_bytes()), settings)
        report: dict[str, Any] = {
            "benchmark": NAME,
            "started_at": started_at.isoformat(),
            "machine": machine(),
            "temporal": temporal_version(),
            "config": {
                "people": len(everyone),
                "with_phone": sum(1 for p in everyone if p.phone),
                "timing_identifiers_per_kind": n_timing,
                "until_sent_identifiers_per_kind": n_sent,
                "repeats": options.repeats,
                "samples_per_kind": n_samples,
                "cases_per_hour": settings.cases_per_hour,
                "challenge_base": settings.challenge_base,
                "challenge_cap": settings.challenge_cap,
            },
        }
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
            for n in range(WARMUP):
                await _open(http, f"warmup{n:03d}")
            log("timing: first and repeated requests, known and unknown")
            report["timing"] = await timing(
                http, everyone[: parts[0]], outsiders[: parts[0]], options
            )
            log("timing: until the code is sent")
            report["until_sent_ms"] = await until_sent(
                http, everyone[parts[0] : parts[1]], outsiders[parts[0] : parts[1]]
            )
            log("decoys: distributions of the masked destinations")
            report["decoys"] = await decoys(
                http, everyone[parts[1] : parts[2]], outsiders[parts[1] : parts[2]]
            )
            levels = _levels(challenges)
            log("proof of work: the curve on the running API")
            report["pow_curve"] = await curve_on_the_stack(http, "hammered.identifier", len(levels))
            log("proof of work: solving times, Python")
            report["pow_python_s"] = python_solves(challenges, levels, options.pow_samples)
            if options.browser:
                log("proof of work: solving times, Chromium")
                report["pow_browser_s"] = await browser_solves(
                    stack.api_url, challenges, levels, options.pow_samples
                )
        report["finished_at"] = datetime.now(UTC).isoformat()
    return report


def summary(report: dict[str, Any]) -> str:
    lines = []
    rows = [*report["timing"].items(), ("until_sent_ms", report["until_sent_ms"])]
    for name, t in rows:
        paired = t["paired"]
        lines.append(
            f"{name:<13} known median {t['known']['median']:7.2f} p90 {t['known']['p90']:7.2f} | "
            f"unknown median {t['unknown']['median']:7.2f} p90 {t['unknown']['p90']:7.2f} | "
            f"Δ median {t['delta_known_minus_unknown']['median']:+.2f} "
            f"p90 {t['delta_known_minus_unknown']['p90']:+.2f} ms | paired: known slower in "
            f"{paired['known_slower_share']:.0%} of {paired['pairs']}, z {paired['sign_test_z']}"
        )
    lines.append("\ndecoys vs real destinations (chi-square test of homogeneity):")
    for feature, f in report["decoys"]["features"].items():
        lines.append(
            f"  {feature:<13} χ² {f['chi_square']:7.2f}  dof {f['dof']:>2}  p {f['p_value']:.3f}"
            f"  only real {f['only_real'][:6]}  only decoy {f['only_decoy'][:6]}"
        )
    lines.append("\nproof of work, seconds to solve (median / p90):")
    python = report["pow_python_s"]
    browser = report.get("pow_browser_s") or {}
    for level, p in python.items():
        line = f"  level {level} maxNumber {p['max_number']:>7}: "
        line += f"python {p['median']:.3f}/{p['p90']:.3f}"
        for name, per_level in browser.items():
            b = per_level[level]
            line += f"  chromium {name} {b['median']:.2f}/{b['p90']:.2f}"
            line += f" (at most {b['whole_range']:.2f})"
        lines.append(line)
    curve = [(c["max_number"], c["status_with_solution"]) for c in report["pow_curve"]]
    lines.append(f"  on the API: (maxNumber, status with the solution) {curve}")
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--people", type=positive, default=500, help="accounts in the directory (default: 500)"
    )
    parser.add_argument(
        "--samples",
        type=positive,
        default=300,
        help="requests for known and for unknown identifiers compared (default: 300)",
    )
    parser.add_argument(
        "--requests",
        type=positive,
        default=100,
        help="identifiers of each kind timed, each then repeated (default: 100)",
    )
    parser.add_argument(
        "--repeats",
        type=non_negative,
        default=4,
        help="repeated requests per identifier, at most 4 under the rate limit (default: 4)",
    )
    parser.add_argument(
        "--pow-samples",
        type=positive,
        default=5,
        help="challenges solved per level and solver (default: 5)",
    )
    parser.add_argument(
        "--no-browser", action="store_true", help="skip the solving times in Chromium"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON results file (default: bench/results/oracle-<UTC timestamp>.json)",
    )
    parser.add_argument(
        "--keep-dir", action="store_true", help="keep the stack's temporary directory"
    )


def main(args: argparse.Namespace) -> int:
    options = Options(
        people=args.people,
        samples=args.samples,
        requests=args.requests,
        repeats=min(args.repeats, 4),
        pow_samples=args.pow_samples,
        browser=not args.no_browser,
        output=args.output,
        keep_dir=args.keep_dir,
    )
    report = run_async(measure(options))
    output = save_report(NAME, report, options.output)
    print(summary(report))
    print(f"results: {output}")
    refused = [c for c in report["pow_curve"] if c["status_with_solution"] != 202]
    if refused:
        print(f"bench: solutions refused by the API: {refused}", file=sys.stderr)
        return 1
    return 0
