"""`python -m bench overload`: a phishing wave past saturation, and whether Reclaim holds.

One `ProcessStack`. Clients do full recoveries over HTTP, like `compare`'s product case:
`POST /v1/recovery` → the code from the SMTP sink → `POST /code` → `POST /password` →
`POST /v1/sessions` with the new password; each client starts its next recovery (a fresh
account) as soon as its previous one is done. A client told 503 or 429 with `Retry-After`
waits that long (plus up to half of it again, as people do not all come back in the same
instant) and sends the same request again, as a browser user would; the refusals are counted.

1. **Saturation**: unless `--saturation C` is given, probe levels of concurrency (`--probe`,
   default 4, 8, 16, 32, 64) for `--probe-seconds` each; the saturation concurrency is the
   first level past which doubling the clients adds less than 10 % completed recoveries/s.
2. **Levels**: `--levels` (default 1, 2, 4) times that concurrency, for `--duration` seconds
   each. Then no new recovery starts and the ones under way finish (`--drain` seconds at most).

Per level: completed recoveries/s (within the level's window), HTTP 500s, refusals (503/429)
and the longest time until one was answered, p50/p95/p99 of each step's accepted requests, the
longest request, and the recoveries that were accepted (202) but did not finish.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import secrets
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

from bench.code_latency import (
    log,
    machine,
    percentile,
    positive,
    save_report,
    stack_options,
    temporal_version,
)
from bench.stack import (
    OWASP_MINIMUM,
    RECLAIM_DEFAULTS,
    Argon2Profile,
    ProcessStack,
    StackConfig,
    machine_cpu_seconds,
)
from bench.stack import run_async as run_stack
from reclaim.directory.tables import Account, PasswordHistory
from reclaim.security import Passwords
from reclaim.settings import Settings

NAME = "overload"
HELP = "Full recoveries at 1x, 2x and 4x the saturation concurrency: refusals, not collapse."
STEPS = ("create", "code_delivery", "code", "password", "login", "case")
# A Retry-After longer than this is not an overload refusal (a rate limit): a failure here.
LONGEST_RETRY_AFTER = 10
REFUSAL_LIMIT_S = 1.0


class CaseFailed(Exception):
    """A recovery that cannot go on (an unexpected answer): counted, shown."""


@dataclass
class Level:
    name: str
    concurrency: int
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    steps_ms: dict[str, list[float]] = field(default_factory=dict)
    refusals: Counter[str] = field(default_factory=Counter)
    refusal_ms: list[float] = field(default_factory=list)
    longest_ms: float = 0.0
    accepted: int = 0  # recoveries whose POST /v1/recovery was answered 202
    completed_in_window: int = 0
    completed_in_drain: int = 0
    failures: list[str] = field(default_factory=list)
    window_s: float = 0.0
    drain_s: float = 0.0
    # CPU seconds per second of the window used by programs outside the stack (a shared
    # machine), and the API's own view of its refusals (its request histogram).
    others_cpu_per_s: float | None = None
    cpu_ms_per_case: dict[str, float] = field(default_factory=dict)
    server_refusals: dict[str, float] = field(default_factory=dict)

    def summary(self, deadline_s: float) -> dict[str, Any]:
        unfinished = self.accepted - self.completed_in_window - self.completed_in_drain
        accepted_ms = [
            v for name, values in self.steps_ms.items() if name in REQUESTS for v in values
        ]
        return {
            "level": self.name,
            "concurrency": self.concurrency,
            "window_s": round(self.window_s, 1),
            "drain_s": round(self.drain_s, 1),
            "completed_per_s": round(self.completed_in_window / self.window_s, 2)
            if self.window_s
            else None,
            "completed_in_window": self.completed_in_window,
            "completed_in_drain": self.completed_in_drain,
            "accepted_cases": self.accepted,
            "unfinished_cases": unfinished,
            "every_accepted_case_completed": unfinished == 0,
            "http_500": sum(n for status, n in self.statuses.items() if status >= 500)
            - self.statuses.get(503, 0),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "refusals": dict(self.refusals),
            "refusals_total": sum(self.refusals.values()),
            "refusal_max_ms": round(max(self.refusal_ms), 1) if self.refusal_ms else None,
            "refusals_within_1s": all(v <= REFUSAL_LIMIT_S * 1000 for v in self.refusal_ms),
            "longest_request_ms": round(self.longest_ms, 1),
            "longest_accepted_request_ms": round(max(accepted_ms), 1) if accepted_ms else None,
            "no_request_past_deadline": self.longest_ms <= deadline_s * 1000,
            "steps_ms": {
                name: {
                    "count": len(values),
                    **{f"p{q}": round(percentile(sorted(values), q), 1) for q in (50, 95, 99)},
                    "max": round(max(values), 1),
                }
                for name, values in self.steps_ms.items()
                if values
            },
            "failures": len(self.failures),
            "failure_samples": self.failures[:10],
            "others_cpu_per_s": self.others_cpu_per_s,
            "cpu_ms_per_completed_case": self.cpu_ms_per_case,
            "server_refusals": self.server_refusals,
        }


REQUESTS = ("create", "code", "password", "login")


# -- accounts ---------------------------------------------------------------------------------


def create_accounts(stack: ProcessStack, count: int, argon2: Argon2Profile) -> Iterator[str]:
    """`ovl000001@example.com`…, written straight into the database with one argon2 hash."""
    engine = stack.engine()
    hashed = Passwords(argon2.time_cost, argon2.memory_cost, argon2.parallelism).hash(
        secrets.token_urlsafe(16)
    )
    try:
        with Session(engine) as db:
            accounts = [
                Account(
                    username=f"ovl{n:06d}", email=f"ovl{n:06d}@example.com", password_hash=hashed
                )
                for n in range(1, count + 1)
            ]
            db.add_all(accounts)
            db.flush()
            db.add_all(
                PasswordHistory(account_id=a.id or 0, password_hash=hashed) for a in accounts
            )
            db.commit()
            emails = [a.email for a in accounts]
    finally:
        engine.dispose()
    return iter(emails)


# -- one recovery -----------------------------------------------------------------------------


async def ask(
    http: httpx.AsyncClient, level: Level, step: str, url: str, body: dict[str, Any], expected: int
) -> dict[str, Any]:
    """POST until answered `expected`, honouring Retry-After on 503 and 429."""
    while True:
        started = time.perf_counter()
        try:
            response = await http.post(url, json=body)
        except httpx.HTTPError as err:
            raise CaseFailed(f"{step}: {type(err).__name__}") from err
        elapsed = (time.perf_counter() - started) * 1000
        level.statuses[response.status_code] += 1
        level.longest_ms = max(level.longest_ms, elapsed)
        if response.status_code == expected:
            level.steps_ms.setdefault(step, []).append(elapsed)
            answer: dict[str, Any] = response.json()
            return answer
        retry_after = response.headers.get("retry-after", "")
        if response.status_code in (503, 429) and retry_after.isdigit():
            wait = int(retry_after)
            if wait <= LONGEST_RETRY_AFTER:
                error = _error_of(response)
                level.refusals[f"{response.status_code} {error}"] += 1
                level.refusal_ms.append(elapsed)
                await asyncio.sleep(wait * random.uniform(1.0, 1.5))
                continue
        raise CaseFailed(f"{step}: {response.status_code} {response.text[:160]}")


def _error_of(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", "?"))
    except ValueError:
        return "?"


async def recovery(
    http: httpx.AsyncClient, stack: ProcessStack, level: Level, email: str, number: int
) -> float:
    """One full recovery; returns when it ended (`time.monotonic()`)."""
    password = f"violet tangerine marmalade kayak {number}"
    started = time.perf_counter()
    mails_before = len(stack.sink.codes_for(email))
    opened = await ask(http, level, "create", "/v1/recovery", {"identifier": email}, 202)
    level.accepted += 1
    case_id = opened["case_id"]
    mark = time.perf_counter()
    try:
        code = await stack.sink.code_for(email, mails_before + 1, wait_up_to=300)
    except TimeoutError as err:
        raise CaseFailed(f"code_delivery: {err}") from err
    level.steps_ms.setdefault("code_delivery", []).append((time.perf_counter() - mark) * 1000)
    granted = await ask(http, level, "code", f"/v1/recovery/{case_id}/code", {"code": code}, 200)
    await ask(
        http,
        level,
        "password",
        f"/v1/recovery/{case_id}/password",
        {"reset_token": granted["reset_token"], "new_password": password},
        200,
    )
    await ask(
        http, level, "login", "/v1/sessions", {"identifier": email, "password": password}, 200
    )
    level.steps_ms.setdefault("case", []).append((time.perf_counter() - started) * 1000)
    return time.monotonic()


async def drive(
    http: httpx.AsyncClient,
    stack: ProcessStack,
    accounts: Iterator[str],
    level: Level,
    drain_s: float,
) -> Level:
    """`level.concurrency` clients for `level.seconds`, then the recoveries under way finish."""
    started = time.monotonic()
    window_end = started + level.seconds
    numbers = iter(range(10**9))

    async def client() -> None:
        while time.monotonic() < window_end:
            try:
                email = next(accounts)
            except StopIteration:
                level.failures.append("out of accounts")
                return
            try:
                ended = await recovery(http, stack, level, email, next(numbers))
            except CaseFailed as err:
                level.failures.append(str(err))
                continue
            if ended <= window_end:
                level.completed_in_window += 1
            else:
                level.completed_in_drain += 1

    before, machine_before = stack.cpu_seconds(), machine_cpu_seconds()
    refused_before = await server_refusals(http)
    tasks = [asyncio.create_task(client()) for _ in range(level.concurrency)]
    await asyncio.sleep(max(0.0, window_end - time.monotonic()))
    level.window_s = time.monotonic() - started
    after, machine_after = stack.cpu_seconds(), machine_cpu_seconds()
    if machine_before is not None and machine_after is not None and after:
        ours = sum(after.values()) - sum(before.values())
        others = max(0.0, machine_after - machine_before - ours)
        level.others_cpu_per_s = round(others / level.window_s, 2)
        per_case = max(level.completed_in_window, 1)
        level.cpu_ms_per_case = {
            name: round((after[name] - before.get(name, 0.0)) * 1000 / per_case, 1)
            for name in after
        }
    _, pending = await asyncio.wait(tasks, timeout=drain_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if pending:
        level.failures.append(f"{len(pending)} recoveries still under way after the drain")
    level.drain_s = time.monotonic() - started - level.window_s
    refused_after = await server_refusals(http)
    level.server_refusals = {
        name: refused_after.get(name, 0.0) - refused_before.get(name, 0.0) for name in refused_after
    }
    return level


async def server_refusals(http: httpx.AsyncClient) -> dict[str, float]:
    """From the API's /metrics: requests it refused (route `unmatched`, 503), in all and
    answered within 0.25, 0.5 and 1 s of their arrival, as the server measured them."""
    try:
        text = (await http.get("/metrics")).text
    except httpx.HTTPError:
        return {}
    found: dict[str, float] = {}
    for line in text.splitlines():
        if 'route="unmatched"' not in line or 'status="503"' not in line:
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith("reclaim_http_request_duration_seconds_count"):
            found["total"] = found.get("total", 0.0) + float(value)
        for bound in ("0.25", "0.5", "1.0"):
            if name.startswith("reclaim_http_request_duration_seconds_bucket") and (
                f'le="{bound}"' in name
            ):
                key = f"within_{bound}s"
                found[key] = found.get(key, 0.0) + float(value)
    return found


# -- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    saturation: int | None
    probe: Sequence[int]
    probe_seconds: float
    levels: Sequence[int]
    duration: float
    drain: float
    deadline: float
    argon2: Argon2Profile
    env: dict[str, str]
    output: Path | None
    keep_dir: bool


def saturation_of(probes: list[dict[str, Any]]) -> int:
    """The first concurrency past which doubling adds less than 10 % completed/s."""
    for here, there in itertools.pairwise(probes):
        if (there["completed_per_s"] or 0) < 1.10 * (here["completed_per_s"] or 0):
            return int(here["concurrency"])
    return int(probes[-1]["concurrency"])


async def measure(options: Options) -> dict[str, Any]:
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    env = {**options.env}
    deadline_s = options.deadline
    config = StackConfig(
        argon2=options.argon2,
        cases_per_hour=1_000_000,
        extra_env=env,
        admission=True,
        keep_dir=options.keep_dir,
    )
    log(f"starting the stack (argon2 {options.argon2.describe()}, env {env or 'defaults'})")
    probes: list[dict[str, Any]] = []
    levels: list[dict[str, Any]] = []
    async with ProcessStack(config) as stack:
        # Enough accounts for 40 recoveries/s through every window (one account per case).
        windows = options.duration * len(options.levels)
        if options.saturation is None:
            windows += options.probe_seconds * len(options.probe)
        accounts = await asyncio.to_thread(
            create_accounts, stack, int(windows * 40) + 200, options.argon2
        )
        top = max(
            max(options.probe), (options.saturation or max(options.probe)) * max(options.levels)
        )
        limits = httpx.Limits(
            max_connections=top + 8, max_keepalive_connections=top + 8, keepalive_expiry=2
        )
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=120, limits=limits) as http:
            await drive(http, stack, accounts, Level("warm-up", 2, 3), options.drain)
            saturation = options.saturation
            if saturation is None:
                for concurrency in options.probe:
                    log(f"probe: {concurrency} clients for {options.probe_seconds:g} s")
                    probe = await drive(
                        http,
                        stack,
                        accounts,
                        Level(f"probe {concurrency}", concurrency, options.probe_seconds),
                        options.drain,
                    )
                    probes.append(probe.summary(deadline_s))
                    log(f"  {probes[-1]['completed_per_s']} recoveries/s")
                saturation = saturation_of(probes)
            log(f"saturation concurrency: {saturation}")
            for times in options.levels:
                concurrency = saturation * times
                log(f"level {times}x: {concurrency} clients for {options.duration:g} s")
                level = await drive(
                    http,
                    stack,
                    accounts,
                    Level(f"{times}x", concurrency, options.duration),
                    options.drain,
                )
                levels.append(level.summary(deadline_s))
                log(
                    f"  {levels[-1]['completed_per_s']} recoveries/s, "
                    f"{levels[-1]['refusals_total']} refusals"
                )
        log("stopping the stack")
    first = levels[0]["completed_per_s"] if levels else None
    for level_ in levels:
        rate = level_["completed_per_s"]
        level_["completed_over_1x"] = round(rate / first, 3) if first and rate is not None else None
    return {
        "benchmark": NAME,
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": {**machine(), "load_average_at_start": list(os.getloadavg())},
        "config": {
            "argon2": options.argon2.describe(),
            "temporal": temporal_version(),
            "env": env,
            "request_deadline_s": deadline_s,
            "saturation_given": options.saturation,
            "probe": list(options.probe),
            "probe_seconds": options.probe_seconds,
            "levels": list(options.levels),
            "duration_s": options.duration,
        },
        "saturation": saturation,
        "probes": probes,
        "levels": levels,
        "verdict": verdict(levels),
        "total_s": round(time.perf_counter() - t0, 1),
    }


def verdict(levels: list[dict[str, Any]]) -> dict[str, bool]:
    last = levels[-1] if levels else {}
    return {
        "no_500": all(lv["http_500"] == 0 for lv in levels),
        "refusals_within_1s": all(lv["refusals_within_1s"] for lv in levels),
        "no_request_past_deadline": all(lv["no_request_past_deadline"] for lv in levels),
        "every_accepted_case_completed": all(lv["every_accepted_case_completed"] for lv in levels),
        "highest_level_at_least_90pct_of_1x": (last.get("completed_over_1x") or 0) >= 0.9,
    }


# -- reporting --------------------------------------------------------------------------------


def table(report: dict[str, Any]) -> str:
    lines = []
    if report["probes"]:
        lines.append(
            "probe: "
            + ", ".join(
                f"{p['concurrency']} clients {p['completed_per_s']}/s" for p in report["probes"]
            )
        )
    lines.append(f"saturation concurrency: {report['saturation']}")
    lines.append("")
    header = (
        f"{'level':<7}{'clients':>8}{'done/s':>8}{'vs 1x':>7}{'500s':>6}{'refused':>9}"
        f"{'refusal max ms':>16}{'longest ms':>12}{'unfinished':>12}{'others CPU':>12}"
    )
    lines.append(header)
    for lv in report["levels"]:
        lines.append(
            f"{lv['level']:<7}{lv['concurrency']:>8}{lv['completed_per_s']:>8}"
            f"{lv['completed_over_1x']:>7}{lv['http_500']:>6}{lv['refusals_total']:>9}"
            f"{lv['refusal_max_ms'] if lv['refusal_max_ms'] is not None else '-':>16}"
            f"{lv['longest_request_ms']:>12}{lv['unfinished_cases']:>12}"
            f"{lv['others_cpu_per_s'] if lv['others_cpu_per_s'] is not None else '-':>12}"
        )
    lines += ["", "accepted requests, ms p50 / p95 / p99 (max):"]
    for lv in report["levels"]:
        for name in STEPS:
            q = lv["steps_ms"].get(name)
            if q:
                lines.append(
                    f"  {lv['level']:<4} {name:<14} {q['p50']} / {q['p95']} / {q['p99']} "
                    f"({q['max']})"
                )
    for lv in report["levels"]:
        if lv["server_refusals"].get("total"):
            r = lv["server_refusals"]
            lines.append(
                f"{lv['level']}: the API refused {r['total']:.0f}, "
                f"{r.get('within_0.25s', 0):.0f} within 0.25 s, {r.get('within_1.0s', 0):.0f} "
                "within 1 s of arrival (its own clock)"
            )
    for lv in report["levels"]:
        if lv["failures"]:
            lines.append(
                f"{lv['level']}: {lv['failures']} failures, e.g. {lv['failure_samples'][:3]}"
            )
    lines += ["", "verdict: " + ", ".join(f"{k} {v}" for k, v in report["verdict"].items())]
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------------


def _counts(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of numbers of 1 or more")
    return values


def _env(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("RECLAIM_"):
        raise argparse.ArgumentTypeError("RECLAIM_NAME=value")
    return name, value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--saturation", type=positive, help="skip the probe: this concurrency")
    parser.add_argument(
        "--probe",
        type=_counts,
        default=[4, 8, 16, 32, 64],
        help="concurrencies probed for saturation (default 4,8,16,32,64)",
    )
    parser.add_argument("--probe-seconds", type=float, default=15, help="seconds per probe")
    parser.add_argument(
        "--levels",
        type=_counts,
        default=[1, 2, 4],
        help="multiples of the saturation concurrency (default 1,2,4)",
    )
    parser.add_argument("--duration", type=float, default=45, help="seconds per level")
    parser.add_argument(
        "--drain",
        type=float,
        default=120,
        help="seconds the recoveries under way get to finish after a level",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=Settings.model_fields["api_request_timeout"].default,
        help="seconds no request may take (default: RECLAIM_API_REQUEST_TIMEOUT's default)",
    )
    parser.add_argument("--workers", type=positive, help="RECLAIM_API_WORKERS for the API")
    parser.add_argument(
        "--env",
        type=_env,
        action="append",
        default=[],
        help="RECLAIM_NAME=value for the API and the worker (repeatable)",
    )
    stack_options(parser)


def main(args: argparse.Namespace) -> int:
    env = dict(args.env)
    if args.workers:
        env["RECLAIM_API_WORKERS"] = str(args.workers)
    options = Options(
        saturation=args.saturation,
        probe=args.probe,
        probe_seconds=args.probe_seconds,
        levels=args.levels,
        duration=args.duration,
        drain=args.drain,
        deadline=args.deadline,
        argon2=RECLAIM_DEFAULTS if args.default_argon2 else OWASP_MINIMUM,
        env=env,
        output=args.output,
        keep_dir=args.keep_dir,
    )
    report = run_stack(measure(options))
    output = save_report(NAME, report, options.output)
    print(table(report))
    log(f"results in {output}")
    failed = any(lv["failures"] or lv["http_500"] for lv in report["levels"])
    return 1 if failed else 0
