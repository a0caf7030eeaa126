"""`python -m bench code-latency`: how long `POST /v1/recovery/{id}/code` takes on this machine.

Against a `ProcessStack` (real Temporal dev server on SQLite/WAL, real worker and API
processes, a real SMTP sink), with accounts written straight into the database:

1. open every case over HTTP (`POST /v1/recovery`), read its code from the sink, and wait until
   the case says its code was sent (so that no delivery is still in flight when timing starts);
2. submit a few right codes untimed (warm-up);
3. time right codes one at a time (`sequential`), then right codes from C concurrent clients
   sharing one `httpx.AsyncClient` (`concurrent`), then wrong codes one at a time
   (`wrong-code`, answered 400 `invalid_code`).

Every case takes one submission, so each scenario has cases of its own. Latency is measured in
this process around the HTTP call: loopback, the API, the Temporal update and the worker's
workflow task, all on the same machine as the benchmark itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench.stack import (
    OWASP_MINIMUM,
    RECLAIM_DEFAULTS,
    Argon2Profile,
    ProcessStack,
    StackConfig,
    machine_cpu_seconds,
    run_async,
)
from reclaim.binaries import temporal_cli
from reclaim.directory.sql import SqlDirectory
from reclaim.security import Keys, Passwords

NAME = "code-latency"
HELP = "Latency of POST /v1/recovery/{id}/code (right code, concurrent, wrong code)."
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Requests in flight while cases are opened and their delivery awaited (not measured).
SETUP_CONCURRENCY = 16
T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    cases: int = 200
    concurrency: int = 20
    wrong_cases: int | None = None  # None: as many as `cases`
    warmup: int = 10
    argon2: Argon2Profile = OWASP_MINIMUM
    output: Path | None = None
    keep_dir: bool = False

    @property
    def wrong(self) -> int:
        return self.cases if self.wrong_cases is None else self.wrong_cases


@dataclass(frozen=True)
class OpenCase:
    case_id: str
    email: str
    code: str

    @property
    def wrong_code(self) -> str:
        return f"{(int(self.code) + 1) % 1_000_000:06d}"


@dataclass
class Scenario:
    name: str
    description: str
    concurrency: int
    expected_status: int
    latencies_ms: list[float] = field(default_factory=list)
    unexpected: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    # CPU seconds each process spent while the scenario ran.
    cpu_s: dict[str, float] = field(default_factory=dict)

    def record(
        self, elapsed_ms: float, response: httpx.Response, expected_error: str | None
    ) -> None:
        ok = response.status_code == self.expected_status
        if ok and expected_error is not None:
            ok = _json(response).get("error") == expected_error
        if ok:
            self.latencies_ms.append(elapsed_ms)
        else:
            key = f"{response.status_code} {_json(response).get('error', '')}".strip()
            self.unexpected[key] = self.unexpected.get(key, 0) + 1

    @property
    def disturbed(self) -> bool:
        """Whether other programs used a noticeable share of the CPU meanwhile (a whole
        clock tick or two is noise)."""
        others = self.cpu_s.get("others", 0.0)
        ours = sum(seconds for name, seconds in self.cpu_s.items() if name != "others")
        return others > 0.05 and others > 0.1 * ours

    def summary(self) -> dict[str, Any]:
        values = sorted(self.latencies_ms)
        stats: dict[str, float | None] = {
            "median_ms": None,
            "p95_ms": None,
            "p99_ms": None,
            "min_ms": None,
            "max_ms": None,
            "mean_ms": None,
        }
        if values:
            stats = {
                "median_ms": percentile(values, 50),
                "p95_ms": percentile(values, 95),
                "p99_ms": percentile(values, 99),
                "min_ms": values[0],
                "max_ms": values[-1],
                "mean_ms": statistics.fmean(values),
            }
        attempts = len(values) + sum(self.unexpected.values())
        cpu_ms_per_request = {
            name: round(seconds * 1000 / attempts, 2)
            for name, seconds in self.cpu_s.items()
            if attempts
        }
        return {
            "name": self.name,
            "description": self.description,
            "concurrency": self.concurrency,
            "count": len(values),
            "unexpected": dict(self.unexpected),
            **{key: _round(value) for key, value in stats.items()},
            "wall_s": round(self.wall_s, 3),
            "throughput_per_s": round(attempts / self.wall_s, 1) if self.wall_s else None,
            "cpu_ms_per_request": cpu_ms_per_request,
            "disturbed_by_other_programs": self.disturbed,
            # In the order they were measured.
            "samples_ms": [round(value, 2) for value in self.latencies_ms],
        }


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile, linearly interpolated between closest ranks (numpy's default)."""
    if not sorted_values:
        raise ValueError("no values")
    position = (len(sorted_values) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# -- set-up -----------------------------------------------------------------------------------


def create_accounts(stack: ProcessStack, count: int, argon2: Argon2Profile) -> list[str]:
    """`bench0001`…, `bench0001@example.com`…: created through the built-in directory with the
    stack's argon2 profile, before anything is measured."""
    engine = stack.engine()
    directory = SqlDirectory(
        engine,
        Keys(stack.secret_key.encode()),
        Passwords(argon2.time_cost, argon2.memory_cost, argon2.parallelism),
    )
    password = secrets.token_urlsafe(16)

    async def create() -> list[str]:
        emails: list[str] = []
        for number in range(1, count + 1):
            username = f"bench{number:04d}"
            email = f"{username}@example.com"
            await directory.create(username=username, email=email, phone=None, password=password)
            emails.append(email)
        return emails

    try:
        return asyncio.run(create())
    finally:
        engine.dispose()


async def bounded(
    items: Sequence[T], work: Callable[[T], Awaitable[Any]], concurrency: int
) -> list[Any]:
    """`work` on every item, at most `concurrency` at once, results in order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(item: T) -> Any:
        async with gate:
            return await work(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


async def open_case(http: httpx.AsyncClient, stack: ProcessStack, email: str) -> OpenCase:
    """Open a case, read its code from the mail, wait until the workflow knows it was sent."""
    response = await http.post("/v1/recovery", json={"identifier": email})
    if response.status_code != 202:
        raise RuntimeError(f"opening a case for {email}: {response.status_code} {response.text}")
    case_id = str(response.json()["case_id"])
    code = await stack.sink.code_for(email)
    deadline = time.monotonic() + 30
    while True:
        status = await http.get(f"/v1/recovery/{case_id}")
        if status.status_code == 200 and status.json()["delivery"] == "sent":
            return OpenCase(case_id, email, code)
        if time.monotonic() > deadline:
            raise RuntimeError(f"case {case_id} never reported its code sent: {status.text}")
        await asyncio.sleep(0.02)


# -- measurement ------------------------------------------------------------------------------


async def submit(
    http: httpx.AsyncClient, case: OpenCase, code: str
) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await http.post(f"/v1/recovery/{case.case_id}/code", json={"code": code})
    return (time.perf_counter() - started) * 1000, response


async def run_sequential(
    http: httpx.AsyncClient, cases: Sequence[OpenCase], scenario: Scenario, *, right: bool
) -> None:
    expected_error = None if right else "invalid_code"
    for case in cases:
        elapsed, response = await submit(http, case, case.code if right else case.wrong_code)
        scenario.record(elapsed, response, expected_error)


async def run_concurrent(
    http: httpx.AsyncClient, cases: Sequence[OpenCase], scenario: Scenario
) -> None:
    """`scenario.concurrency` clients, each submitting the next case's code as soon as its
    previous answer is in, until every case has had its turn."""
    queue: asyncio.Queue[OpenCase] = asyncio.Queue()
    for case in cases:
        queue.put_nowait(case)

    async def client() -> None:
        while True:
            try:
                case = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            elapsed, response = await submit(http, case, case.code)
            scenario.record(elapsed, response, None)

    await asyncio.gather(*(client() for _ in range(scenario.concurrency)))


async def timed(stack: ProcessStack, scenario: Scenario, work: Awaitable[None]) -> Scenario:
    """Run a scenario's requests; keep its wall time and what each process spent on it."""
    before, machine_before = stack.cpu_seconds(), machine_cpu_seconds()
    started = time.perf_counter()
    await work
    scenario.wall_s = time.perf_counter() - started
    after, machine_after = stack.cpu_seconds(), machine_cpu_seconds()
    scenario.cpu_s = {name: after[name] - before.get(name, 0.0) for name in after}
    if scenario.cpu_s and machine_before is not None and machine_after is not None:
        # Whatever else ran on the machine meanwhile: when it is not near 0, the figures
        # measure a machine shared with something else.
        others = machine_after - machine_before - sum(scenario.cpu_s.values())
        scenario.cpu_s["others"] = max(0.0, others)
    return scenario


async def measure(options: Options) -> dict[str, Any]:
    started_at = datetime.now(UTC)
    load_at_start = _load_average()
    t0 = time.perf_counter()
    phases: dict[str, float] = {}
    total = options.warmup + 2 * options.cases + options.wrong
    config = StackConfig(
        argon2=options.argon2,
        # Each account opens one case; the margin keeps the rate limit out of the way.
        cases_per_hour=max(1000, total * 2),
        keep_dir=options.keep_dir,
    )
    log(f"starting the stack (argon2 {options.argon2.describe()})")
    async with ProcessStack(config) as stack:
        phases["stack_start_s"] = time.perf_counter() - t0
        log(f"stack up in {phases['stack_start_s']:.1f} s; API {stack.api_url}, dir {stack.dir}")

        mark = time.perf_counter()
        emails = await asyncio.to_thread(create_accounts, stack, total, options.argon2)
        phases["accounts_s"] = time.perf_counter() - mark

        limits = httpx.Limits(
            max_connections=max(options.concurrency, SETUP_CONCURRENCY) + 4,
            max_keepalive_connections=max(options.concurrency, SETUP_CONCURRENCY) + 4,
        )
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=30, limits=limits) as http:
            mark = time.perf_counter()
            log(f"opening {total} cases and reading their codes")
            opened: list[OpenCase] = await bounded(
                emails, lambda email: open_case(http, stack, email), SETUP_CONCURRENCY
            )
            phases["open_cases_s"] = time.perf_counter() - mark

            first_timed = options.warmup
            first_concurrent = first_timed + options.cases
            first_wrong = first_concurrent + options.cases
            warm = opened[:first_timed]
            sequential_cases = opened[first_timed:first_concurrent]
            concurrent_cases = opened[first_concurrent:first_wrong]
            wrong_cases = opened[first_wrong:]

            mark = time.perf_counter()
            warmup = Scenario("warm-up", "right code, untimed", 1, 200)
            await run_sequential(http, warm, warmup, right=True)
            if warmup.unexpected:
                raise RuntimeError(f"warm-up answered {warmup.unexpected}")

            log(f"timing {len(sequential_cases)} right codes, one at a time")
            sequential = Scenario("sequential", "right code, one request at a time", 1, 200)
            await timed(
                stack, sequential, run_sequential(http, sequential_cases, sequential, right=True)
            )
            log(f"timing {len(concurrent_cases)} right codes, {options.concurrency} clients")
            concurrent = Scenario(
                "concurrent",
                f"right code, {options.concurrency} concurrent clients",
                options.concurrency,
                200,
            )
            await timed(stack, concurrent, run_concurrent(http, concurrent_cases, concurrent))
            log(f"timing {len(wrong_cases)} wrong codes, one at a time")
            wrong = Scenario("wrong-code", "wrong code (400 invalid_code), one at a time", 1, 400)
            await timed(stack, wrong, run_sequential(http, wrong_cases, wrong, right=False))
            phases["measure_s"] = time.perf_counter() - mark
        log("stopping the stack")
    phases["total_s"] = time.perf_counter() - t0
    return {
        "benchmark": NAME,
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": {**machine(), "load_average_at_start": load_at_start},
        "config": {
            "cases": options.cases,
            "concurrency": options.concurrency,
            "wrong_cases": options.wrong,
            "warmup": options.warmup,
            "accounts": total,
            "argon2": {
                "profile": options.argon2.name,
                "time_cost": options.argon2.time_cost,
                "memory_cost_kib": options.argon2.memory_cost,
                "parallelism": options.argon2.parallelism,
            },
            "temporal": temporal_version(),
            "database": "sqlite (WAL), Temporal dev server on sqlite (WAL, synchronous=normal)",
        },
        "phases": {key: round(value, 2) for key, value in phases.items()},
        "scenarios": [s.summary() for s in (sequential, concurrent, wrong)],
    }


# -- reporting --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages: another busy program skews every figure."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def temporal_version() -> str | None:
    try:
        out = subprocess.run(
            [temporal_cli(), "--version"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def table(report: dict[str, Any]) -> str:
    columns = ("median_ms", "p95_ms", "p99_ms", "min_ms", "max_ms")
    header = f"{'scenario':<12} {'conc':>4} {'count':>5} " + " ".join(
        f"{c.removesuffix('_ms'):>8}" for c in columns
    )
    lines = [header + "   (ms)", "-" * len(header)]
    for s in report["scenarios"]:
        cells = " ".join(f"{s[c]:>8.1f}" if s[c] is not None else f"{'-':>8}" for c in columns)
        line = f"{s['name']:<12} {s['concurrency']:>4} {s['count']:>5} {cells}"
        line += f"   {s['throughput_per_s']}/s"
        if s["unexpected"]:
            line += f"   unexpected: {s['unexpected']}"
        lines.append(line)
    cpu = [s for s in report["scenarios"] if s["cpu_ms_per_request"]]
    if cpu:
        lines.append("\nCPU ms per request, by process:")
        for s in cpu:
            parts = ", ".join(f"{k} {v:.1f}" for k, v in s["cpu_ms_per_request"].items())
            lines.append(f"  {s['name']:<12} {parts}")
    return "\n".join(lines)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def save_report(name: str, report: dict[str, Any], output: Path | None) -> Path:
    """Write a benchmark's JSON to `output`, or to bench/results/<name>-<its start time>.json."""
    started_at = datetime.fromisoformat(report["started_at"])
    output = output or RESULTS_DIR / f"{name}-{started_at:%Y%m%dT%H%M%SZ}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    return output


# -- command line -----------------------------------------------------------------------------


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cases",
        type=positive,
        default=200,
        help="right-code submissions timed per scenario, sequential and concurrent (default: 200)",
    )
    parser.add_argument(
        "--concurrency", type=positive, default=20, help="concurrent clients (default: 20)"
    )
    parser.add_argument(
        "--wrong-cases",
        type=non_negative,
        default=None,
        help="wrong-code submissions timed (default: as many as --cases)",
    )
    parser.add_argument(
        "--warmup", type=non_negative, default=10, help="untimed submissions first (default: 10)"
    )
    stack_options(parser)


def stack_options(parser: argparse.ArgumentParser) -> None:
    """What every benchmark on a `ProcessStack` takes: the argon2 cost, where its JSON goes,
    and whether its temporary directory is kept."""
    parser.add_argument(
        "--default-argon2",
        action="store_true",
        help=f"run the API and worker with Reclaim's default argon2 cost "
        f"{RECLAIM_DEFAULTS.describe()} instead of {OWASP_MINIMUM.describe()}",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON results file (default: bench/results/<benchmark>-<UTC timestamp>.json)",
    )
    parser.add_argument(
        "--keep-dir",
        action="store_true",
        help="keep the stack's temporary directory (databases, logs) afterwards",
    )


def main(args: argparse.Namespace) -> int:
    options = Options(
        cases=args.cases,
        concurrency=args.concurrency,
        wrong_cases=args.wrong_cases,
        warmup=args.warmup,
        argon2=RECLAIM_DEFAULTS if args.default_argon2 else OWASP_MINIMUM,
        output=args.output,
        keep_dir=args.keep_dir,
    )
    report = run_async(measure(options))
    output = save_report(NAME, report, options.output)
    print(table(report))
    phases = report["phases"]
    print(
        f"\n{report['config']['accounts']} cases; stack up in {phases['stack_start_s']:.1f} s, "
        f"cases opened in {phases['open_cases_s']:.1f} s, whole run {phases['total_s']:.1f} s; "
        f"argon2 {options.argon2.describe()}; {report['machine']['cpus']} CPUs, load average "
        f"{report['machine']['load_average_at_start']} at start"
    )
    print(f"results: {output}")
    busy = [s["name"] for s in report["scenarios"] if s["disturbed_by_other_programs"]]
    if busy:
        print(
            f"warning: other programs used the CPU during {', '.join(busy)}: "
            "those figures are not of a quiet machine",
            file=sys.stderr,
        )
    return 1 if any(s["unexpected"] for s in report["scenarios"]) else 0
