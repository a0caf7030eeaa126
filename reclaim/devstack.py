"""`reclaim dev`: the whole stack on one machine, supervised.

Brings Reclaim's database to the newest schema revision, starts the Temporal dev server (state
in `<state>/temporal.db`, Web UI), registers the search attributes, starts a local SMTP sink
(unless RECLAIM_SMTP_HOST is set), the worker and the API, prints one ready line, and restarts
any of them that dies. Ctrl-C stops everything.

The children stay in the supervisor's process group, so `kill -9` of the group takes them
all; if only the supervisor is killed, the next start finds the orphans in the pid file and
stops them before it starts anew. Everything durable lives in the state directory, so a
restart finds every open case where it was, timers included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from reclaim.binaries import dev_server_command
from reclaim.settings import CannotStart, Settings
from reclaim.temporal.connection import connect, register_search_attributes

RESTARTS_PER_MINUTE = 5


class DevStackError(RuntimeError):
    pass


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: IO[bytes] | None = None  # None: inherit the terminal
    process: subprocess.Popen[bytes] | None = None
    crashes: deque[float] = field(default_factory=deque)

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


DEV_WORKER_METRICS = "127.0.0.1:9464"


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise DevStackError(f"{what} did not come up within {timeout:.0f} s")
        time.sleep(0.2)


class DevStack:
    def __init__(self, settings: Settings) -> None:
        if not settings.worker_metrics_address:
            settings = settings.model_copy(update={"worker_metrics_address": DEV_WORKER_METRICS})
        self.settings = settings
        self.state_dir = settings.state_dir.resolve()
        self.pid_file = self.state_dir / "dev.pids"
        host, _, port = settings.temporal_address.rpartition(":")
        self.temporal_host, self.temporal_port = host or "127.0.0.1", int(port)
        self.children: list[Child] = []
        self.smtp_controller: object | None = None
        self._stopping = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        # The sink's per-connection chatter and the readiness polls are not worth a line each.
        for noisy in ("mail.log", "httpx"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._stop_orphans()
        self._check_ports()
        # Before any child starts, so they all read the same secret.
        self.settings.secret_bytes()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self._stopping.set())
        try:
            self._start_all()
            print(self.ready_line(), flush=True)
            return self._supervise()
        except DevStackError as err:
            print(f"reclaim dev: {err}", file=sys.stderr, flush=True)
            return 1
        finally:
            self._stop_all()

    def ready_line(self) -> str:
        s = self.settings
        api = f"http://{s.api_host}:{s.api_port}"
        parts = [
            f"Pages {api}",
            f"API {api}/v1",
            f"API docs {api}/docs",
            f"Temporal Web UI http://{self.temporal_host}:{s.temporal_ui_port}",
            f"Temporal {s.temporal_address}",
        ]
        parts.append(f"API metrics {api}/metrics")
        parts.append(f"worker metrics http://{s.worker_metrics_address}/metrics")
        if s.smtp_host:
            parts.append(f"mail via SMTP {s.smtp_host}:{s.smtp_port}")
        else:
            parts.append(f"mail outbox {api}/dev/outbox (SMTP sink 127.0.0.1:{s.dev_smtp_port})")
        return "Reclaim is ready: " + " | ".join(parts)

    def _start_all(self) -> None:
        self._upgrade_database()
        env = self._child_env()
        temporal = Child(
            "temporal",
            dev_server_command(
                host=self.temporal_host,
                port=self.temporal_port,
                db_file=self.state_dir / "temporal.db",
                ui_port=self.settings.temporal_ui_port,
                ui_codec_endpoint=f"http://{self.settings.api_host}:{self.settings.api_port}/codec",
            ),
            env,
            log=(self.state_dir / "temporal.log").open("ab"),
        )
        self._launch(temporal)
        _wait_until(self._temporal_answers, 60, "the Temporal dev server")
        asyncio.run(self._register_search_attributes())
        if not self.settings.smtp_host:
            self._start_smtp_sink()
        self._launch(Child("worker", [sys.executable, "-m", "reclaim", "worker"], env))
        workers = (
            self.settings.api_workers if "api_workers" in self.settings.model_fields_set else 2
        )
        self._launch(
            Child("api", [sys.executable, "-m", "reclaim", "api", "--workers", str(workers)], env)
        )
        _wait_until(self._api_healthy, 60, "the API")

    def _supervise(self) -> int:
        while not self._stopping.wait(0.5):
            for child in self.children:
                if child.running:
                    continue
                code = child.process.returncode if child.process else None
                now = time.monotonic()
                child.crashes.append(now)
                while child.crashes and now - child.crashes[0] > 60:
                    child.crashes.popleft()
                if len(child.crashes) > RESTARTS_PER_MINUTE:
                    print(
                        f"reclaim dev: {child.name} keeps exiting (last code {code}); stopping",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
                print(
                    f"reclaim dev: {child.name} exited (code {code}); restarting it",
                    file=sys.stderr,
                    flush=True,
                )
                child.start()
                self._write_pids()
        print("reclaim dev: stopping", file=sys.stderr, flush=True)
        return 0

    def _stop_all(self) -> None:
        # The API and the worker first (the worker finishes what it holds), Temporal last.
        for child in reversed(self.children):
            child.stop(timeout=15)
        if self.smtp_controller is not None:
            with contextlib.suppress(Exception):
                self.smtp_controller.stop()  # type: ignore[attr-defined]
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()

    # -- pieces ----------------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return self.settings.database_url or f"sqlite:///{self.state_dir / 'reclaim.db'}"

    def _upgrade_database(self) -> None:
        """Before any child starts: they only check the schema, they never make it."""
        from reclaim.store.engine import make_engine
        from reclaim.store.migrations import upgrade

        engine = make_engine(self.database_url)
        try:
            done = upgrade(engine)
        except CannotStart as err:
            raise DevStackError(str(err)) from err
        finally:
            engine.dispose()
        if done.before != done.after or done.adopted:
            print(f"reclaim dev: database {done.describe()}", file=sys.stderr, flush=True)

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            RECLAIM_DEV_MODE="1",
            RECLAIM_STATE_DIR=str(self.state_dir),
            RECLAIM_DATABASE_URL=self.database_url,
            RECLAIM_TEMPORAL_ADDRESS=self.settings.temporal_address,
            RECLAIM_WORKER_METRICS_ADDRESS=self.settings.worker_metrics_address or "",
            PYTHONUNBUFFERED="1",
        )
        return env

    def _launch(self, child: Child) -> None:
        child.start()
        self.children.append(child)
        self._write_pids()

    def _write_pids(self) -> None:
        pids = {c.name: c.process.pid for c in self.children if c.process is not None}
        self.pid_file.write_text(json.dumps({"supervisor": os.getpid(), **pids}))

    def _stop_orphans(self) -> None:
        """Stop what a previous `reclaim dev`, killed alone, left running."""
        try:
            recorded = json.loads(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return
        for name, pid in recorded.items():
            if name == "supervisor" or not isinstance(pid, int):
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"reclaim" in cmdline or b"temporal" in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                    print(f"reclaim dev: stopped a leftover {name} (pid {pid})", file=sys.stderr)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            self._gone(pid) for pid in recorded.values() if isinstance(pid, int)
        ):
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)

    @staticmethod
    def _gone(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            return True
        return state == "Z"

    def _check_ports(self) -> None:
        s = self.settings
        wanted = [
            (self.temporal_host, self.temporal_port, "RECLAIM_TEMPORAL_ADDRESS"),
            (self.temporal_host, s.temporal_ui_port, "RECLAIM_TEMPORAL_UI_PORT"),
            (s.api_host, s.api_port, "RECLAIM_API_PORT"),
        ]
        metrics_host, _, metrics_port = (s.worker_metrics_address or "").rpartition(":")
        if metrics_port.isdigit():
            wanted.append((metrics_host, int(metrics_port), "RECLAIM_WORKER_METRICS_ADDRESS"))
        if not s.smtp_host:
            wanted.append(("127.0.0.1", s.dev_smtp_port, "RECLAIM_DEV_SMTP_PORT"))
        busy = [f"{port} ({var})" for host, port, var in wanted if not _port_free(host, port)]
        if busy:
            raise SystemExit(
                f"reclaim dev: port(s) already in use: {', '.join(busy)}. Stop what uses them "
                "or choose other ports with those variables."
            )

    def _temporal_answers(self) -> bool:
        if not self.children[0].running:
            raise DevStackError(
                f"the Temporal dev server exited; see {self.state_dir / 'temporal.log'}"
            )
        with contextlib.suppress(OSError):
            socket.create_connection((self.temporal_host, self.temporal_port), 0.5).close()
            return True
        return False

    async def _register_search_attributes(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = await connect(self.settings)
                await register_search_attributes(client, self.settings.temporal_namespace)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    def _start_smtp_sink(self) -> None:
        from aiosmtpd.controller import Controller

        from reclaim.notify.outbox import MaildirHandler

        controller = Controller(
            MaildirHandler(self.settings.outbox_dir.resolve()),
            hostname="127.0.0.1",
            port=self.settings.dev_smtp_port,
        )
        controller.start()
        self.smtp_controller = controller

    def _api_healthy(self) -> bool:
        for child in self.children:
            if not child.running:
                raise DevStackError(f"the {child.name} exited during start-up")
        url = f"http://{self.settings.api_host}:{self.settings.api_port}/healthz"
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False
