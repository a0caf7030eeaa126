"""`python -m bench open-cases`: a phishing wave's worth of cases left waiting on their code.

On a `ProcessStack`, with one account per case written straight into the database:

1. **baseline**: after 20 untimed cases (warm-up), `--probe` new cases opened over HTTP
   (`POST /v1/recovery`), `--probe-concurrency` at a time, on an empty system: their latency;
2. **wave**: `--cases` cases opened over HTTP, `--concurrency` at a time, and left waiting on
   their code (the code mails go out; nobody types them): the start rate, then the time until
   every code mail has reached the sink;
3. **with the wave open**: the resident memory of the worker, the Temporal server and the API,
   the size of both databases, and the latency of `--probe` more new cases.

The new-case p99 with the wave open, over the baseline's, is the figure to watch.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.code_latency import (
    bounded,
    create_accounts,
    log,
    machine,
    percentile,
    positive,
    save_report,
    temporal_version,
)
from bench.stack import OWASP_MINIMUM, ProcessStack, StackConfig, run_async

NAME = "open-cases"
WARMUP = 20
HELP = "Start N cases that wait on their code: start rate, memory, database size, latency."


@dataclass(frozen=True)
class Options:
    cases: int
    concurrency: int
    probe: int
    probe_concurrency: int
    output: Path | None
    env: dict[str, str]


def latencies(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {f"p{q}": round(percentile(ordered, q), 2) for q in (50, 95, 99)} | {
        "max": round(ordered[-1], 2)
    }


async def open_cases(
    http: httpx.AsyncClient, emails: list[str], concurrency: int
) -> tuple[list[float], float]:
    """Open a case per address; each request's milliseconds and the wall time."""

    async def one(email: str) -> float:
        mark = time.perf_counter()
        response = await http.post("/v1/recovery", json={"identifier": email})
        if response.status_code != 202:
            raise RuntimeError(f"{email}: {response.status_code} {response.text[:200]}")
        return (time.perf_counter() - mark) * 1000

    started = time.perf_counter()
    values = await bounded(emails, one, concurrency)
    return values, time.perf_counter() - started


async def measure(options: Options) -> dict[str, Any]:
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    total = WARMUP + options.cases + 2 * options.probe
    config = StackConfig(
        argon2=OWASP_MINIMUM, cases_per_hour=max(1000, total), extra_env=options.env
    )
    report: dict[str, Any] = {
        "benchmark": NAME,
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": machine(),
        "config": {
            "cases": options.cases,
            "concurrency": options.concurrency,
            "probe": options.probe,
            "probe_concurrency": options.probe_concurrency,
            "temporal": temporal_version(),
            "env": options.env,
        },
    }
    log("starting the stack")
    async with ProcessStack(config) as stack:
        emails = await asyncio.to_thread(create_accounts, stack, total, OWASP_MINIMUM)
        warm, emails = emails[:WARMUP], emails[WARMUP:]
        before, wave, after = (
            emails[: options.probe],
            emails[options.probe : options.probe + options.cases],
            emails[options.probe + options.cases :],
        )
        # Idle connections are dropped before uvicorn's 5 s keep-alive would close them.
        limits = httpx.Limits(max_connections=options.concurrency + 4, keepalive_expiry=2)
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=60, limits=limits) as http:
            await open_cases(http, warm, options.probe_concurrency)  # untimed: warm-up
            await _all_mailed(stack, warm)
            log(f"baseline: {options.probe} new cases on an empty system")
            baseline, _ = await open_cases(http, before, options.probe_concurrency)
            await _all_mailed(stack, before)
            report["memory_mb_before"] = stack.rss_mb()
            log(f"wave: {options.cases} cases at {options.concurrency} at a time")
            started, wall = await open_cases(http, wave, options.concurrency)
            report["wave"] = {
                "start_rate_per_s": round(options.cases / wall, 1),
                "wall_s": round(wall, 1),
                "create_ms": latencies(started),
            }
            mark = time.perf_counter()
            await _all_mailed(stack, wave)
            report["wave"]["codes_all_mailed_after_s"] = round(time.perf_counter() - mark, 1)
            report["memory_mb_open"] = stack.rss_mb()
            report["database_mb_open"] = stack.database_mb()
            log(f"probe: {options.probe} new cases with {options.cases} open")
            probe, _ = await open_cases(http, after, options.probe_concurrency)
        report["new_case_ms"] = {
            "baseline": latencies(baseline),
            "with_wave_open": latencies(probe),
        }
        report["new_case_p99_ratio"] = round(
            report["new_case_ms"]["with_wave_open"]["p99"]
            / report["new_case_ms"]["baseline"]["p99"],
            2,
        )
        log("stopping the stack")
    report["total_s"] = round(time.perf_counter() - t0, 1)
    return report


async def _all_mailed(stack: ProcessStack, emails: list[str], wait_up_to: float = 900) -> None:
    deadline = time.monotonic() + wait_up_to
    while any(not stack.sink.codes_for(email) for email in emails):
        if time.monotonic() > deadline:
            missing = sum(1 for email in emails if not stack.sink.codes_for(email))
            raise RuntimeError(f"{missing} code mails never arrived")
        await asyncio.sleep(0.5)


def table(report: dict[str, Any]) -> str:
    wave, new = report["wave"], report["new_case_ms"]
    mem_open, mem_before = report["memory_mb_open"], report["memory_mb_before"]
    lines = [
        f"{report['config']['cases']} cases opened at {report['config']['concurrency']} at a "
        f"time: {wave['start_rate_per_s']}/s ({wave['wall_s']} s); every code mailed "
        f"{wave['codes_all_mailed_after_s']} s later",
        "resident memory, MiB (before the wave -> with it open): "
        + ", ".join(f"{k} {mem_before.get(k, 0)} -> {v}" for k, v in mem_open.items()),
        "databases, MiB: "
        + ", ".join(f"{k} {v}" for k, v in report["database_mb_open"].items())
        + f" ({report['database_mb_open']['temporal'] * 1024 / report['config']['cases']:.1f}"
        " KiB of Temporal database per open case)",
        "POST /v1/recovery, ms p50 / p95 / p99:",
        "  baseline        "
        + " / ".join(f"{new['baseline'][q]:.1f}" for q in ("p50", "p95", "p99")),
        "  with wave open  "
        + " / ".join(f"{new['with_wave_open'][q]:.1f}" for q in ("p50", "p95", "p99"))
        + f"   (p99 x{report['new_case_p99_ratio']})",
        "  during the wave "
        + " / ".join(f"{wave['create_ms'][q]:.1f}" for q in ("p50", "p95", "p99")),
    ]
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", type=positive, default=10_000, help="cases left open")
    parser.add_argument("--concurrency", type=positive, default=50, help="while opening them")
    parser.add_argument("--probe", type=positive, default=200, help="new cases timed")
    parser.add_argument("--probe-concurrency", type=positive, default=10)
    parser.add_argument("--output", type=Path, help="JSON results (default: bench/results/)")
    parser.add_argument(
        "--env",
        action="append",
        type=setting,
        default=[],
        metavar="RECLAIM_X=V",
        help="a setting for the API and the worker, e.g. RECLAIM_WORKER_MAX_CACHED_WORKFLOWS=500",
    )


def setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("RECLAIM_"):
        raise argparse.ArgumentTypeError("RECLAIM_NAME=value")
    return name, value


def main(args: argparse.Namespace) -> int:
    options = Options(
        args.cases,
        args.concurrency,
        args.probe,
        args.probe_concurrency,
        args.output,
        dict(args.env),
    )
    report = run_async(measure(options))
    output = save_report(NAME, report, options.output)
    print(table(report))
    log(f"results in {output}")
    return 0
