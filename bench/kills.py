"""`python -m bench kills`: a wave of recoveries while the worker is killed (SIGKILL) and
started again, as a crashing host would do it; then what people received.

On a `ProcessStack`, with one account per case written straight into the database:

1. `--cases` cases are opened over HTTP, `--concurrency` at a time; meanwhile the worker is
   killed every `--every` seconds (`--kills` times) and a new one started at once;
2. once every code mail has arrived, each person types the newest code they received;
3. the count: code mails per case (a second one is the same code with the same Message-ID,
   sent again because the first send's outcome was unknown when its worker died), cases that
   received two *different* codes (must be 0), cases whose code was refused (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.code_latency import bounded, create_accounts, log, machine, positive, save_report
from bench.stack import OWASP_MINIMUM, ProcessStack, StackConfig, run_async

NAME = "kills"
HELP = "Recoveries while the worker is killed and restarted: duplicate and lost code mails."


@dataclass(frozen=True)
class Options:
    cases: int
    concurrency: int
    kills: int
    every: float
    output: Path | None


async def _kill_the_worker(stack: ProcessStack, kills: int, every: float) -> int:
    worker = next(child for child in stack.children if child.name == "worker")
    done = 0
    for _ in range(kills):
        await asyncio.sleep(every)
        worker.kill()  # SIGKILL: nothing is flushed, no activity told
        worker.close_log()
        worker.start()
        done += 1
    return done


async def measure(options: Options) -> dict[str, Any]:
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    config = StackConfig(argon2=OWASP_MINIMUM, cases_per_hour=max(1000, options.cases))
    report: dict[str, Any] = {
        "benchmark": NAME,
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": machine(),
        "config": {
            "cases": options.cases,
            "concurrency": options.concurrency,
            "kills": options.kills,
            "every_s": options.every,
        },
    }
    log("starting the stack")
    async with ProcessStack(config) as stack:
        emails = await asyncio.to_thread(create_accounts, stack, options.cases, OWASP_MINIMUM)
        limits = httpx.Limits(max_connections=options.concurrency + 4, keepalive_expiry=2)
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=120, limits=limits) as http:
            cases: dict[str, str] = {}

            async def open_one(email: str) -> None:
                for _ in range(60):  # a 503 while no worker polls: try again, as a person would
                    response = await http.post("/v1/recovery", json={"identifier": email})
                    if response.status_code == 202:
                        cases[email] = response.json()["case_id"]
                        return
                    await asyncio.sleep(1)
                raise RuntimeError(f"{email}: no case opened ({response.status_code})")

            log(f"{options.cases} cases, the worker killed {options.kills} times meanwhile")
            killer = asyncio.create_task(_kill_the_worker(stack, options.kills, options.every))
            await bounded(emails, open_one, options.concurrency)
            kills = await killer
            mark = time.perf_counter()
            deadline = time.monotonic() + 600
            while any(not stack.sink.codes_for(email) for email in emails):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            report["all_mailed_after_s"] = round(time.perf_counter() - mark, 1)
            received = {email: stack.sink.codes_for(email) for email in emails}

            async def type_code(email: str) -> str:
                codes = received[email]
                if not codes:
                    return "no code"
                response = await http.post(
                    f"/v1/recovery/{cases[email]}/code", json={"code": codes[-1]}
                )
                if response.status_code == 200:
                    return "accepted"
                return f"{response.status_code} {response.json().get('error', '')}".strip()

            answers = await bounded(emails, type_code, options.concurrency)
        log("stopping the stack")
    mails = Counter(len(codes) for codes in received.values())
    report["kills"] = kills
    report["mails_per_case"] = {str(k): v for k, v in sorted(mails.items())}
    report["same_code_twice"] = sum(
        1 for codes in received.values() if len(codes) > 1 and len(set(codes)) == 1
    )
    report["different_codes"] = sum(1 for codes in received.values() if len(set(codes)) > 1)
    report["no_code"] = mails.get(0, 0)
    refusals = Counter(answer for answer in answers if answer not in ("accepted", "no code"))
    report["code_refused"] = sum(refusals.values())
    report["refusals"] = dict(refusals)
    report["total_s"] = round(time.perf_counter() - t0, 1)
    return report


def table(report: dict[str, Any]) -> str:
    config = report["config"]
    return "\n".join(
        [
            f"{config['cases']} cases, {config['concurrency']} at a time; the worker killed "
            f"(SIGKILL) {report['kills']} times, every {config['every_s']} s",
            f"code mails per case: {report['mails_per_case']}",
            f"the same code mailed twice: {report['same_code_twice']} cases",
            f"two different codes: {report['different_codes']} (must be 0)",
            f"no code at all: {report['no_code']}; right code refused: {report['code_refused']}"
            + (f" {report['refusals']}" if report["code_refused"] else ""),
            f"every code mailed {report['all_mailed_after_s']} s after the last case opened",
        ]
    )


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", type=positive, default=200)
    parser.add_argument("--concurrency", type=positive, default=20)
    parser.add_argument("--kills", type=positive, default=3, help="times the worker is killed")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between kills")
    parser.add_argument("--output", type=Path, help="JSON results (default: bench/results/)")


def main(args: argparse.Namespace) -> int:
    report = run_async(
        measure(Options(args.cases, args.concurrency, args.kills, args.every, args.output))
    )
    output = save_report(NAME, report, args.output)
    print(table(report))
    log(f"results in {output}")
    failed = report["different_codes"] or report["no_code"] or report["code_refused"]
    return 1 if failed else 0
