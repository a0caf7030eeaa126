"""`python -m bench compare`: Reclaim against the raw Temporal ceiling, in one run, as ratios.

One `ProcessStack` (Temporal dev server on SQLite/WAL like `make run`, Reclaim's worker and
API, an SMTP sink) plus the ceiling's own worker (`bench/ceiling.py`) on the same server.
Rounds alternate, so both see the same machine and the same database growth:

- **ceiling**: N `CeilingCase` workflows (the action shape of a completed self-service case,
  trivial bodies) driven straight through the Temporal client, C at a time: start, update
  (code), update (password).
- **product**: N real cases over HTTP, C at a time: `POST /v1/recovery` → the code read from
  the SMTP sink → `POST /code` → `POST /password` → `POST /v1/sessions` with the new password.

Per round: completed cases per second, each step's p50/p95/p99, history events per completed
case (from `describe()` of a sample), and CPU seconds per case of each process (from /proc).
The report gives the median and min..max over rounds, and the product/ceiling ratio.

`--traces` turns Reclaim's traces on (reclaim/tracing.py): the API and the worker export over
OTLP/HTTP to a sink in this process (`bench/otlp_sink.py`, its CPU counted in "bench"), and
each product round also reports the spans it exported per case, by service. Compare a run
with and one without it for the cost of tracing (docs/performance.md, "Tracing overhead").
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from bench import ceiling
from bench.code_latency import (
    bounded,
    create_accounts,
    log,
    machine,
    percentile,
    positive,
    save_report,
    stack_options,
    temporal_version,
)
from bench.otlp_sink import OtlpSink
from bench.stack import (
    OWASP_MINIMUM,
    RECLAIM_DEFAULTS,
    Argon2Profile,
    ProcessStack,
    StackConfig,
    machine_cpu_seconds,
    run_async,
)
from reclaim.security import Passwords
from reclaim.temporal.connection import connect

NAME = "compare"
HELP = "Reclaim's self-service case against the raw Temporal ceiling of the same shape."
CEILING_QUEUE = "ceiling-bench"
NEW_PASSWORD = "violet tangerine marmalade kayak"
PRODUCT_STEPS = ("create", "code_delivery", "code", "password", "login", "case")
CEILING_STEPS = ("start", "code", "password", "case")
EVENT_SAMPLE = 10
# Server request counters shown when either kind made at least this many per case.
SERVER_REQUESTS_SHOWN = 0.05
# A round's requests are counted once these stop moving.
SETTLED_WHEN_STILL = ("rpc RespondWorkflowTaskCompleted", "rpc RespondActivityTaskCompleted")
# With --traces: the batch processor's delay (ms; the SDK's default is 5000) so a round's
# last spans are exported, and their CPU counted, within a second or so of its end.
TRACES_BATCH_DELAY_MS = 500


@dataclass
class Round:
    kind: str  # "ceiling" or "product"
    number: int
    cases: int
    concurrency: int
    wall_s: float = 0.0
    steps_ms: dict[str, list[float]] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    events: list[int] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    spans: dict[str, int] | None = None  # exported during the round, by service (--traces)
    # The Temporal server's requests during the round, by operation (ProcessStack.server_requests).
    server: dict[str, float] = field(default_factory=dict)

    def record(self, steps: dict[str, float]) -> None:
        for name, value in steps.items():
            self.steps_ms.setdefault(name, []).append(value)

    @property
    def completed(self) -> int:
        return len(self.steps_ms.get("case", []))

    def summary(self) -> dict[str, Any]:
        per_case = max(self.completed, 1)
        return {
            "kind": self.kind,
            "round": self.number,
            "cases": self.cases,
            "completed": self.completed,
            "failures": self.failures[:10],
            "wall_s": round(self.wall_s, 3),
            "cases_per_s": round(self.completed / self.wall_s, 2) if self.wall_s else None,
            "steps_ms": {
                name: {f"p{q}": round(percentile(sorted(values), q), 2) for q in (50, 95, 99)}
                for name, values in self.steps_ms.items()
            },
            "events_per_case": statistics.median(self.events) if self.events else None,
            "actions_per_case": statistics.median(self.actions) if self.actions else None,
            "cpu_s_per_case": {
                name: round(value / per_case, 4) for name, value in self.cpu_s.items()
            },
            "spans_per_case": None
            if self.spans is None
            else {name: round(n / per_case, 2) for name, n in sorted(self.spans.items())},
            "server_requests_per_case": {
                name: round(n / per_case, 3) for name, n in sorted(self.server.items()) if n
            },
        }


# -- one case of each kind --------------------------------------------------------------------


async def product_case(
    http: httpx.AsyncClient, stack: ProcessStack, email: str, *, sign_in: bool = True
) -> tuple[str, dict[str, float]]:
    steps: dict[str, float] = {}

    async def step(name: str, call: Awaitable[httpx.Response], expected: int) -> dict[str, Any]:
        mark = time.perf_counter()
        response = await call
        steps[name] = (time.perf_counter() - mark) * 1000
        if response.status_code != expected:
            raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
        body: dict[str, Any] = response.json()
        return body

    started = time.perf_counter()
    opened = await step("create", http.post("/v1/recovery", json={"identifier": email}), 202)
    case_id = str(opened["case_id"])
    mark = time.perf_counter()
    code = await stack.sink.code_for(email)
    steps["code_delivery"] = (time.perf_counter() - mark) * 1000
    granted = await step(
        "code", http.post(f"/v1/recovery/{case_id}/code", json={"code": code}), 200
    )
    await step(
        "password",
        http.post(
            f"/v1/recovery/{case_id}/password",
            json={"reset_token": granted["reset_token"], "new_password": NEW_PASSWORD},
        ),
        200,
    )
    if sign_in:
        await step(
            "login",
            http.post("/v1/sessions", json={"identifier": email, "password": NEW_PASSWORD}),
            200,
        )
    steps["case"] = (time.perf_counter() - started) * 1000
    return case_id, steps


async def history_lengths(client: Client, ids: Sequence[str]) -> list[int]:
    """History events of each workflow once it has closed."""
    lengths: list[int] = []
    for workflow_id in ids:
        handle = client.get_workflow_handle(workflow_id)
        deadline = time.monotonic() + 30
        while True:
            described = await handle.describe()
            if described.close_time is not None:
                lengths.append(described.history_length)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{workflow_id} did not close")
            await asyncio.sleep(0.05)
    return lengths


# The history events Temporal Cloud bills as actions (docs.temporal.io/cloud/actions): the
# start, each timer, each search-attribute upsert, each activity attempt, each accepted
# update, signals and child workflows. Queries are billed too but leave no event: the
# product's hot path makes none.
_BILLED = {
    "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
    "EVENT_TYPE_TIMER_STARTED",
    "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
    "EVENT_TYPE_ACTIVITY_TASK_STARTED",
    "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
    "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
    "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
    "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED",
}


async def billable_actions(client: Client, workflow_id: str) -> int:
    """Temporal Cloud actions a closed workflow's history records (an estimate, as the
    Cloud's own is: heartbeats and rejected updates are not in history)."""
    from temporalio.api.enums.v1 import EventType

    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(1 for e in history.events if EventType.Name(e.event_type) in _BILLED)


async def settled(sink: OtlpSink, quiet_s: float = 1.0, wait_up_to: float = 30.0) -> None:
    """Once the sink has received no span for `quiet_s` (longer than the batch delay): the
    processes have exported what the round made."""
    deadline = time.monotonic() + wait_up_to
    last, since = sink.total(), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now = sink.total()
        if now != last:
            last, since = now, time.monotonic()


async def settled_requests(
    stack: ProcessStack, quiet_s: float = 1.0, wait_up_to: float = 15.0
) -> dict[str, float]:
    """The server's request counters once its workflow and activity tasks have stopped
    moving for `quiet_s` (its metrics lag a little behind the work), or after `wait_up_to`."""
    deadline = time.monotonic() + wait_up_to
    counts = await asyncio.to_thread(stack.server_requests)
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet_s)
        again = await asyncio.to_thread(stack.server_requests)
        if all(again.get(name) == counts.get(name) for name in SETTLED_WHEN_STILL):
            return again
        counts = again
    return counts


async def run_round(
    stack: ProcessStack,
    round_: Round,
    work: Callable[[int], Awaitable[tuple[str, dict[str, float]]]],
    client: Client,
    sink: OtlpSink | None = None,
) -> Round:
    ids: list[str] = []

    async def one(index: int) -> None:
        try:
            case_id, steps = await work(index)
        except Exception as err:  # counted, shown, and the round goes on
            round_.failures.append(f"{type(err).__name__}: {err}")
            return
        ids.append(case_id)
        round_.record(steps)

    spans_before = sink.counts() if sink else {}
    server_before = await settled_requests(stack)
    before, machine_before = stack.cpu_seconds(), machine_cpu_seconds()
    started = time.perf_counter()
    await bounded(list(range(round_.cases)), one, round_.concurrency)
    round_.wall_s = time.perf_counter() - started
    if sink is not None:
        await settled(sink)  # the spans' export is part of the round's CPU
        round_.spans = {name: n - spans_before.get(name, 0) for name, n in sink.counts().items()}
    after, machine_after = stack.cpu_seconds(), machine_cpu_seconds()
    round_.cpu_s = {name: after[name] - before.get(name, 0.0) for name in after}
    if machine_before is not None and machine_after is not None:
        round_.cpu_s["others"] = max(
            0.0, machine_after - machine_before - sum(round_.cpu_s.values())
        )
    server_after = await settled_requests(stack)
    round_.server = {
        name: count - server_before.get(name, 0.0) for name, count in server_after.items()
    }
    round_.events = await history_lengths(client, ids[:EVENT_SAMPLE])
    round_.actions = [await billable_actions(client, i) for i in ids[:EVENT_SAMPLE]]
    return round_


# -- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    cases: int
    concurrency: int
    rounds: int
    argon2: Argon2Profile
    output: Path | None
    keep_dir: bool
    sign_in: bool = True
    traces: bool = False


def hashing_cost(argon2: Argon2Profile) -> dict[str, float]:
    """CPU milliseconds of one argon2id hash and one verify with the stack's profile."""
    passwords = Passwords(argon2.time_cost, argon2.memory_cost, argon2.parallelism)
    stored = passwords.hash(NEW_PASSWORD)
    started = time.process_time()
    for _ in range(3):
        passwords.hash(NEW_PASSWORD)
    hashed = (time.process_time() - started) / 3
    started = time.process_time()
    for _ in range(3):
        passwords.verify(stored, NEW_PASSWORD)
    verified = (time.process_time() - started) / 3
    return {"hash_cpu_ms": round(hashed * 1000, 1), "verify_cpu_ms": round(verified * 1000, 1)}


async def measure(options: Options) -> dict[str, Any]:
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    total = options.cases * options.rounds
    sink = OtlpSink().start() if options.traces else None
    traces_env = (
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
            "OTEL_BSP_SCHEDULE_DELAY": str(TRACES_BATCH_DELAY_MS),
        }
        if sink
        else {}
    )
    config = StackConfig(
        argon2=options.argon2,
        cases_per_hour=max(1000, total * 2),
        keep_dir=options.keep_dir,
        extra_env=traces_env,
    )
    log(
        f"starting the stack (argon2 {options.argon2.describe()}; "
        f"traces {'to ' + sink.url if sink else 'off'})"
    )
    rounds: list[Round] = []
    try:
        await _rounds(options, config, rounds, sink)
    finally:
        if sink is not None:
            sink.stop()
    summaries = [r.summary() for r in rounds]
    report: dict[str, Any] = {
        "benchmark": NAME,
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": machine(),
        "config": {
            "cases_per_round": options.cases,
            "concurrency": options.concurrency,
            "rounds": options.rounds,
            "argon2": options.argon2.describe(),
            "sign_in": options.sign_in,
            "temporal": temporal_version(),
            "database": "Temporal dev server on sqlite (WAL, synchronous=normal); "
            "Reclaim on sqlite",
            "traces": f"OTLP/HTTP to bench/otlp_sink.py, batch delay {TRACES_BATCH_DELAY_MS} ms"
            if sink
            else "off",
        },
        "hashing": hashing_cost(options.argon2),
        "rounds": summaries,
        "summary": summarize(summaries),
        "total_s": round(time.perf_counter() - t0, 1),
    }
    return report


async def _rounds(
    options: Options, config: StackConfig, rounds: list[Round], sink: OtlpSink | None
) -> None:
    total = options.cases * options.rounds
    async with ProcessStack(config) as stack:
        stack.launch(
            "ceiling-worker",
            [
                sys.executable,
                "-m",
                "bench.ceiling",
                "--address",
                stack.temporal_address,
                "--task-queue",
                CEILING_QUEUE,
            ],
        )
        emails = await asyncio.to_thread(create_accounts, stack, total, options.argon2)
        raw = await Client.connect(stack.temporal_address)
        product_client = await connect(stack.settings())
        limits = httpx.Limits(
            max_connections=options.concurrency + 4,
            max_keepalive_connections=options.concurrency + 4,
            keepalive_expiry=2,  # before uvicorn's 5 s keep-alive closes them under us
        )
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=60, limits=limits) as http:
            # A few untimed cases of each kind first: imports, caches, connections.
            await bounded(
                list(range(4)),
                lambda i: ceiling.run_case(raw, f"ceiling-warm-{i}", CEILING_QUEUE),
                4,
            )
            for number in range(1, options.rounds + 1):
                log(f"round {number}: ceiling, {options.cases} cases at {options.concurrency}")

                async def ceiling_case(i: int, n: int = number) -> tuple[str, dict[str, float]]:
                    case_id = f"ceiling-{n}-{i}"
                    return case_id, await ceiling.run_case(raw, case_id, CEILING_QUEUE)

                rounds.append(
                    await run_round(
                        stack,
                        Round("ceiling", number, options.cases, options.concurrency),
                        ceiling_case,
                        raw,
                    )
                )
                log(f"round {number}: product, {options.cases} cases at {options.concurrency}")
                batch = emails[(number - 1) * options.cases : number * options.cases]

                async def product(i: int, batch: list[str] = batch) -> tuple[str, dict[str, float]]:
                    return await product_case(http, stack, batch[i], sign_in=options.sign_in)

                rounds.append(
                    await run_round(
                        stack,
                        Round("product", number, options.cases, options.concurrency),
                        product,
                        product_client,
                        sink,
                    )
                )
        log("stopping the stack")


# -- reporting --------------------------------------------------------------------------------


def _spread(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    by_kind = {kind: [r for r in rounds if r["kind"] == kind] for kind in ("ceiling", "product")}
    summary: dict[str, Any] = {}
    for kind, kind_rounds in by_kind.items():
        steps = sorted({name for r in kind_rounds for name in r["steps_ms"]})
        processes = sorted({name for r in kind_rounds for name in r["cpu_s_per_case"]})
        summary[kind] = {
            "cases_per_s": _spread([r["cases_per_s"] for r in kind_rounds if r["cases_per_s"]]),
            "actions_per_case": _spread(
                [r["actions_per_case"] for r in kind_rounds if r["actions_per_case"]]
            ),
            "events_per_case": _spread(
                [r["events_per_case"] for r in kind_rounds if r["events_per_case"]]
            ),
            "steps_ms": {
                name: {
                    q: _spread(
                        [r["steps_ms"][name][q] for r in kind_rounds if name in r["steps_ms"]]
                    )
                    for q in ("p50", "p95", "p99")
                }
                for name in steps
            },
            "cpu_s_per_case": {
                name: _spread([r["cpu_s_per_case"].get(name, 0.0) for r in kind_rounds])
                for name in processes
            },
            "failures": sum(r["cases"] - r["completed"] for r in kind_rounds),
        }
        requests = [r.get("server_requests_per_case", {}) for r in kind_rounds]
        summary[kind]["server_requests_per_case"] = {
            name: _spread([r.get(name, 0.0) for r in requests])
            for name in sorted({name for r in requests for name in r})
        }
        services = sorted({name for r in kind_rounds for name in r.get("spans_per_case") or {}})
        if services:
            summary[kind]["spans_per_case"] = {
                name: _spread([(r.get("spans_per_case") or {}).get(name, 0.0) for r in kind_rounds])
                for name in services
            }
    pairs = zip(by_kind["ceiling"], by_kind["product"], strict=False)
    ratios = [p["cases_per_s"] / c["cases_per_s"] for c, p in pairs if c["cases_per_s"]]
    summary["product_over_ceiling"] = _spread(ratios)
    return summary


def _fmt(spread: dict[str, float] | None, scale: float = 1.0, digits: int = 1) -> str:
    if spread is None:
        return "-"
    return (
        f"{spread['median'] * scale:.{digits}f} "
        f"({spread['min'] * scale:.{digits}f}..{spread['max'] * scale:.{digits}f})"
    )


def table(report: dict[str, Any]) -> str:
    s = report["summary"]
    ceiling_, product_ = s["ceiling"], s["product"]
    lines = [
        f"{report['config']['rounds']} rounds of {report['config']['cases_per_round']} cases at "
        f"concurrency {report['config']['concurrency']}; median (min..max) over rounds",
        "",
        f"{'':<28}{'ceiling':>24}{'product':>24}",
        f"{'completed cases/s':<28}{_fmt(ceiling_['cases_per_s']):>24}"
        f"{_fmt(product_['cases_per_s']):>24}",
        f"{'product / ceiling':<28}{'':>24}{_fmt(s['product_over_ceiling'], 1, 2):>24}",
        f"{'history events per case':<28}{_fmt(ceiling_['events_per_case'], 1, 0):>24}"
        f"{_fmt(product_['events_per_case'], 1, 0):>24}",
        f"{'billable actions per case':<28}{_fmt(ceiling_.get('actions_per_case'), 1, 0):>24}"
        f"{_fmt(product_.get('actions_per_case'), 1, 0):>24}",
        f"{'failed cases':<28}{ceiling_['failures']:>24}{product_['failures']:>24}",
        "",
        "CPU ms per case, by process:",
    ]
    processes = sorted(set(ceiling_["cpu_s_per_case"]) | set(product_["cpu_s_per_case"]))
    for name in processes:
        lines.append(
            f"  {name:<26}{_fmt(ceiling_['cpu_s_per_case'].get(name), 1000):>24}"
            f"{_fmt(product_['cpu_s_per_case'].get(name), 1000):>24}"
        )
    spans = product_.get("spans_per_case")
    if spans:
        lines += ["", "Spans exported per product case, by service (--traces):"]
        for name, spread in spans.items():
            lines.append(f"  {name:<26}{'':>24}{_fmt(spread):>24}")
    lines += _server_requests(ceiling_, product_)
    lines += ["", "Steps, ms: p50 / p95 / p99 (median over rounds):"]
    for kind, steps in (("ceiling", CEILING_STEPS), ("product", PRODUCT_STEPS)):
        for name in steps:
            q = s[kind]["steps_ms"].get(name)
            if not q:
                continue
            cells = " / ".join(f"{q[p]['median']:.1f}" for p in ("p50", "p95", "p99"))
            lines.append(f"  {kind:<8} {name:<14} {cells}")
    h = report["hashing"]
    lines += [
        "",
        f"argon2 {report['config']['argon2']}: {h['hash_cpu_ms']} ms CPU per hash, "
        f"{h['verify_cpu_ms']} ms per verify (the product's case hashes once and verifies at "
        "least twice: the reuse check and the sign-in)",
    ]
    return "\n".join(lines)


def _server_requests(ceiling_: dict[str, Any], product_: dict[str, Any]) -> list[str]:
    """What each case asked of the Temporal server, ceiling beside product: the lines where
    either made at least one request in 20 cases."""
    ours = ceiling_.get("server_requests_per_case", {})
    theirs = product_.get("server_requests_per_case", {})
    shown = [
        name
        for name in sorted(set(ours) | set(theirs))
        if max((ours.get(name) or {}).get("median", 0), (theirs.get(name) or {}).get("median", 0))
        >= SERVER_REQUESTS_SHOWN
    ]
    if not shown:
        return []
    lines = [
        "",
        "Temporal server requests per case (its own metrics; an RPC is counted by each service "
        "it passes; background polls count by time, not by case):",
    ]
    for name in shown:
        lines.append(
            f"  {name:<44}{_fmt(ours.get(name), 1, 2):>22}{_fmt(theirs.get(name), 1, 2):>22}"
        )
    return lines


# -- command line -----------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", type=positive, default=200, help="cases per round and kind")
    parser.add_argument("--concurrency", type=positive, default=50, help="cases in flight")
    parser.add_argument("--rounds", type=positive, default=3, help="rounds of each kind")
    stack_options(parser)
    parser.add_argument(
        "--no-sign-in",
        dest="sign_in",
        action="store_false",
        help="the product's case ends with its new password (no POST /v1/sessions)",
    )
    parser.add_argument(
        "--traces",
        action="store_true",
        help="turn traces on: the API and the worker export over OTLP/HTTP to a sink here",
    )


def main(args: argparse.Namespace) -> int:
    options = Options(
        cases=args.cases,
        concurrency=args.concurrency,
        rounds=args.rounds,
        argon2=RECLAIM_DEFAULTS if args.default_argon2 else OWASP_MINIMUM,
        output=args.output,
        keep_dir=args.keep_dir,
        sign_in=args.sign_in,
        traces=args.traces,
    )
    report = run_async(measure(options))
    output = save_report(NAME, report, options.output)
    print(table(report))
    log(f"results in {output}")
    failed = report["summary"]["ceiling"]["failures"] + report["summary"]["product"]["failures"]
    return 1 if failed else 0
