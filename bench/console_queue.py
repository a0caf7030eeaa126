"""`python -m bench console`: the reviewers' queue with 100 000 open claims on PostgreSQL, while
20 reviewers refresh it every 10 s.

On a `ProcessStack` whose Reclaim database is a PostgreSQL database of its own (made on the
server of `--database-url`, dropped at the end):

1. `--claims` rows of the queue's read model (`claim_queue_row`) written straight into the
   table, a realistic mix: states, the six reasons, risks, 20 reviewers' names and unassigned
   claims, `--escalated` of them escalated, deadlines from a week overdue to two weeks ahead.
   A real claim's workflow keeps its row at every change; writing 100 000 through Temporal
   would take an hour, and what is measured here is the queue's read side.
2. `--real` real claims filed through the API, to measure what an open claim costs (worker and
   server memory, Temporal's and Reclaim's database bytes) and how soon a claim's move (taken
   by a reviewer) shows in the queue.
3. The load: each reviewer, every `--refresh` seconds, opens the console's queue page with one
   of its filters (all, mine, unassigned, escalated, high risk, due soon, a reason, a state) and the
   API's queue with one of its (state, reason, risk, assignee, escalated); p50/p95 per page and
   filter, and the CPU the Temporal server and the API used meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import insert, text

from bench.code_latency import bounded, log, machine, percentile, positive, save_report
from bench.stack import OWASP_MINIMUM, ProcessStack, StackConfig, run_async
from reclaim.store.engine import make_engine
from reclaim.store.models import ClaimQueueRow
from reclaim.support.contracts import ClaimReason, ClaimState, Risk

NAME = "console"
HELP = "The reviewers' queue at 100 000 open claims: p95 per page and filter, server CPU."
REVIEWERS = [f"reviewer{n:02d}" for n in range(1, 21)]
OPEN = [s.value for s in ClaimState if s.is_open]
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A PostgreSQL database of this run's own on `server_url`'s server, dropped after."""
    import psycopg

    name = f"reclaim_console_{secrets.token_hex(4)}"
    parts = urlsplit(server_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def seed(url: str, count: int, escalated: int, rng: random.Random) -> None:
    """`count` open claims in the read model, `escalated` of them escalated."""
    now = datetime.now(UTC)
    reasons = [r.value for r in ClaimReason]
    states = {"submitted": 40, "in_review": 35, "awaiting_claimant": 15}
    states["awaiting_confirmation"] = 10
    risks = {Risk.LOW.value: 50, Risk.MEDIUM.value: 35, Risk.HIGH.value: 15}
    rows = []
    for n in range(count):
        state = rng.choices(list(states), weights=list(states.values()))[0]
        assigned = state != "submitted" or rng.random() < 0.1
        rows.append(
            {
                "case_id": f"sc_bench{n:07d}",
                "state": state,
                "is_open": True,
                "reason": rng.choice(reasons),
                "risk": rng.choices(list(risks), weights=list(risks.values()))[0],
                "assignee": rng.choice(REVIEWERS) if assigned else None,
                "escalated": n < escalated,
                "opened_at": now - timedelta(days=rng.uniform(0, 21)),
                "next_deadline": now + timedelta(hours=rng.uniform(-7 * 24, 14 * 24)),
                "version": 1,
                "updated_at": now,
            }
        )
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            for start in range(0, len(rows), 10_000):
                connection.execute(insert(ClaimQueueRow), rows[start : start + 10_000])
            connection.execute(text("ANALYZE claim_queue_row"))
    finally:
        engine.dispose()


def add_staff(stack: ProcessStack, name: str, role: str) -> str:
    env = stack._reclaim_env()
    done = subprocess.run(
        [sys.executable, "-m", "reclaim", "staff", "add", "--name", name, "--role", role],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip().splitlines()[-1].strip()


class Reviewer:
    """One member of staff with a console session (signed in with their key) and the key."""

    def __init__(self, stack: ProcessStack, name: str, key: str) -> None:
        self.name = name
        self.key = key
        self.http = httpx.AsyncClient(base_url=stack.api_url, timeout=60)

    async def sign_in(self) -> None:
        page = await self.http.get("/console/signin")
        found = CSRF.search(page.text)
        assert found, "the sign-in page has no form token"
        signed = await self.http.post(
            "/console/signin", data={"csrf": found.group(1), "key": self.key}
        )
        if signed.status_code not in (200, 303):
            raise RuntimeError(f"{self.name} could not sign in: {signed.status_code}")

    async def timed(self, path: str, api: bool) -> tuple[float, int]:
        headers = {"Authorization": f"Bearer {self.key}"} if api else {}
        began = time.perf_counter()
        answer = await self.http.get(path, headers=headers)
        return (time.perf_counter() - began) * 1000, answer.status_code


def pages() -> list[tuple[str, str, bool]]:
    """(name, path, through the API) of every page and filter a reviewer refreshes."""
    found = [("console: all", "/console", False)]
    for view in ("mine", "unassigned", "escalated", "high_risk", "due_soon"):
        found.append((f"console: {view}", f"/console?view={view}", False))
    found.append(("console: reason", "/console?reason=compromised", False))
    found.append(("console: state", "/console?state=in_review", False))
    found.append(("api: all", "/v1/staff/cases?limit=100", True))
    found.append(("api: state", "/v1/staff/cases?state=awaiting_claimant&limit=100", True))
    found.append(("api: reason", "/v1/staff/cases?reason=lost_contact&limit=100", True))
    found.append(("api: risk", "/v1/staff/cases?risk=high&limit=100", True))
    found.append(("api: assignee", "/v1/staff/cases?assignee=reviewer07&limit=100", True))
    found.append(("api: escalated", "/v1/staff/cases?escalated=true&limit=100", True))
    return found


async def freshness(stack: ProcessStack, sam_key: str, claims: list[str]) -> list[float]:
    """Seconds from a claim's assignment answered to the queue showing it assigned (to the
    supervisor, who has no seeded claims: the page holds all of theirs)."""
    seen: list[float] = []
    staff = {"Authorization": f"Bearer {sam_key}"}
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
        for case_id in claims:
            taken = await http.post(f"/v1/staff/cases/{case_id}/assign", headers=staff)
            if taken.status_code != 202:
                raise RuntimeError(f"assign {case_id}: {taken.status_code} {taken.text[:200]}")
            mark = time.perf_counter()
            while True:
                listed = await http.get(
                    "/v1/staff/cases?assignee=sam&state=in_review&limit=500",
                    headers=staff,
                )
                if case_id in {c["case_id"] for c in listed.json()["cases"]}:
                    seen.append(time.perf_counter() - mark)
                    break
                if time.perf_counter() - mark > 30:
                    raise RuntimeError(f"{case_id} never showed assigned")
                await asyncio.sleep(0.02)
    return seen


async def file_claims(stack: ProcessStack, count: int) -> list[str]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:

        async def one(n: int) -> str:
            filed = await http.post(
                "/v1/support-cases",
                json={
                    "username": f"someone{n:05d}",
                    "contact_email": f"someone{n:05d}@example.net",
                    "reason": "lost_contact",
                },
            )
            if filed.status_code != 202:
                raise RuntimeError(f"claim {n}: {filed.status_code} {filed.text[:200]}")
            return str(filed.json()["case_id"])

        return [str(case_id) for case_id in await bounded(list(range(count)), one, 10)]


def rows_written(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(text("SELECT count(*) FROM claim_queue_row")).scalar_one()
            )
    finally:
        engine.dispose()


async def rows_settled(url: str, count: int, within: float = 60.0) -> None:
    """Until the read model holds `count` rows: the real claims' first activities have run."""
    deadline = time.monotonic() + within
    while await asyncio.to_thread(rows_written, url) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the read model never reached {count} rows")
        await asyncio.sleep(0.2)


def database_bytes(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                "claim_queue_row": int(
                    connection.execute(
                        text("SELECT pg_total_relation_size('claim_queue_row')")
                    ).scalar_one()
                ),
                "database": int(
                    connection.execute(
                        text("SELECT pg_database_size(current_database())")
                    ).scalar_one()
                ),
            }
    finally:
        engine.dispose()


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(38)
    report: dict[str, Any] = {
        "benchmark": NAME,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": {
            "claims": args.claims,
            "escalated": args.escalated,
            "reviewers": len(REVIEWERS),
            "refresh_s": args.refresh,
            "seconds": args.seconds,
            "real_claims": args.real,
        },
    }
    with scratch_database(args.database_url) as url:
        config = StackConfig(
            argon2=OWASP_MINIMUM,
            database_url=url,
            extra_env={"RECLAIM_CLAIMS_PER_HOUR": "100000", "RECLAIM_CONSOLE_REFRESH": "10"},
        )
        log(f"starting the stack on PostgreSQL ({url.rsplit('/', 1)[-1]})")
        async with ProcessStack(config) as stack:
            log("staff: 20 reviewers and a supervisor")
            keys = await asyncio.gather(
                *(asyncio.to_thread(add_staff, stack, name, "reviewer") for name in REVIEWERS),
                asyncio.to_thread(add_staff, stack, "sam", "supervisor"),
            )
            sam_key = keys[-1]
            log(f"{args.claims} open claims into the read model")
            began = time.perf_counter()
            await asyncio.to_thread(seed, url, args.claims, args.escalated, rng)
            report["seed_s"] = round(time.perf_counter() - began, 1)
            before: dict[str, Any] = {
                "rss": stack.rss_mb(),
                "db": await asyncio.to_thread(database_bytes, url),
            }
            before["temporal_db"] = stack.database_mb()["temporal"]
            log(f"{args.real} real claims through the API")
            real = await file_claims(stack, args.real)
            await rows_settled(url, args.claims + args.real)
            after: dict[str, Any] = {
                "rss": stack.rss_mb(),
                "db": await asyncio.to_thread(database_bytes, url),
            }
            after["temporal_db"] = stack.database_mb()["temporal"]
            report["per_open_claim"] = {
                "worker_kib": round(
                    (after["rss"]["worker"] - before["rss"]["worker"]) * 1024 / args.real, 1
                ),
                "temporal_server_kib": round(
                    (after["rss"]["temporal"] - before["rss"]["temporal"]) * 1024 / args.real, 1
                ),
                "temporal_db_kib": round(
                    (after["temporal_db"] - before["temporal_db"]) * 1024 / args.real, 1
                ),
                "read_model_row_bytes": round(
                    after["db"]["claim_queue_row"] / (args.claims + args.real)
                ),
            }
            report["read_model_mib_at_claims"] = round(after["db"]["claim_queue_row"] / 2**20, 1)
            log("a claim's move, until the queue shows it")
            moved = await freshness(stack, sam_key, real[:20])
            report["move_shown_after_s"] = {
                "p50": round(sorted(moved)[len(moved) // 2], 3),
                "max": round(max(moved), 3),
            }
            reviewers = [
                Reviewer(stack, name, key) for name, key in zip(REVIEWERS, keys, strict=False)
            ]
            await asyncio.gather(*(r.sign_in() for r in reviewers))
            log(f"{len(reviewers)} reviewers, every {args.refresh:g} s, for {args.seconds:g} s")
            timings: dict[str, list[float]] = defaultdict(list)
            statuses: dict[str, set[int]] = defaultdict(set)
            everything = pages()
            cpu_before = stack.cpu_seconds()
            window = time.perf_counter()

            async def refreshing(index: int, reviewer: Reviewer) -> None:
                await asyncio.sleep(index * args.refresh / len(reviewers))
                turn = index
                while time.perf_counter() - window < args.seconds:
                    name, path, api = everything[turn % len(everything)]
                    took, status = await reviewer.timed(path, api)
                    timings[name].append(took)
                    statuses[name].add(status)
                    turn += 1
                    await asyncio.sleep(args.refresh)

            await asyncio.gather(*(refreshing(i, r) for i, r in enumerate(reviewers)))
            elapsed = time.perf_counter() - window
            cpu_after = stack.cpu_seconds()
            for reviewer in reviewers:
                await reviewer.http.aclose()
            report["pages"] = {
                name: {
                    "requests": len(values),
                    "p50_ms": round(percentile(sorted(values), 0.5), 1),
                    "p95_ms": round(percentile(sorted(values), 0.95), 1),
                    "statuses": sorted(statuses[name]),
                }
                for name, values in timings.items()
            }
            report["cpu_cores_during_load"] = {
                name: round((cpu_after[name] - cpu_before.get(name, 0.0)) / elapsed, 3)
                for name in ("temporal", "api", "worker")
                if name in cpu_after
            }
    return report


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['config']['claims']} open claims ({report['config']['escalated']} escalated), "
        f"{report['config']['reviewers']} reviewers refreshing every "
        f"{report['config']['refresh_s']:g} s for {report['config']['seconds']:g} s",
        "| page | requests | p50 | p95 | statuses |",
        "|---|---|---|---|---|",
    ]
    for name, found in report["pages"].items():
        lines.append(
            f"| {name} | {found['requests']} | {found['p50_ms']} ms | {found['p95_ms']} ms "
            f"| {found['statuses']} |"
        )
    lines.append(f"CPU (cores) during the load: {report['cpu_cores_during_load']}")
    lines.append(f"a claim's move shown after: {report['move_shown_after_s']} s")
    lines.append(f"per open claim: {report['per_open_claim']}")
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--claims", type=positive, default=100_000)
    parser.add_argument("--escalated", type=positive, default=10_000)
    parser.add_argument("--real", type=positive, default=200, help="real claims filed")
    parser.add_argument("--refresh", type=float, default=10.0, help="seconds between refreshes")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load lasts")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "RECLAIM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server to make the run's own database on",
    )
    parser.add_argument("--output", type=Path, help="JSON results (default: bench/results/)")


def main(args: argparse.Namespace) -> int:
    report = run_async(measure(args))
    output = save_report(NAME, report, args.output)
    print(table(report))
    log(f"results in {output}")
    bad = any(set(found["statuses"]) - {200} for found in report["pages"].values())
    return 1 if bad else 0
