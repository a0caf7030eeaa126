"""A whole Reclaim for one test: the real API over HTTP (uvicorn on a random port), a real
worker on its own task queue, the session's Temporal dev server, a real database, a real SMTP
sink and a real SMS webhook."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy.engine import Engine
from temporalio.client import Client

from api.app import create_app, services_for
from reclaim.directory.sql import SqlDirectory
from reclaim.security import Keys, Passwords
from reclaim.services import Services, build_services
from reclaim.settings import Settings
from reclaim.store.engine import make_engine
from reclaim.store.migrations import create_schema
from reclaim.temporal.connection import connect
from reclaim.tracing import Tracing
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from worker import build_worker, courier_for

# Cheap argon2 for tests: the cost profile is configuration, not behaviour.
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_cost": 1024, "argon2_parallelism": 1}
TEST_SECRET = "test-secret-key-with-enough-entropy-0123456789"
# The password a claimant chooses in `Stack.handed_over`.
HANDOVER_PASSWORD = "quince harbour velvet lighthouse"
TEST_PASSWORDS = Passwords(
    FAST_ARGON2["argon2_time_cost"],
    FAST_ARGON2["argon2_memory_cost"],
    FAST_ARGON2["argon2_parallelism"],
)


def sql_directory(engine: Engine) -> SqlDirectory:
    """The built-in directory on a test's database, with the tests' secret and cheap argon2."""
    return SqlDirectory(engine, Keys(TEST_SECRET.encode()), TEST_PASSWORDS)


def stack_settings(
    *,
    temporal: str,
    database_url: str,
    state_dir: Path,
    mail: MailSink,
    sms: SmsGateway,
    **overrides: Any,
) -> Settings:
    values: dict[str, Any] = {
        "secret_key": TEST_SECRET,
        "state_dir": state_dir,
        "database_url": database_url,
        "temporal_address": temporal,
        "task_queue": f"test-{uuid.uuid4().hex[:12]}",
        "smtp_host": "127.0.0.1",
        "smtp_port": mail.port,
        "sms_provider": "webhook",
        "sms_webhook_url": sms.url,
        "public_url": "https://reclaim.example",
        # The tests reach the API at its own address (uvicorn on 127.0.0.1) besides the
        # public URL's host; production allows the public URL's only.
        "allowed_hosts": "reclaim.example,127.0.0.1",
        # Production runs workflows without the sandbox (it costs a fifth of the worker's
        # CPU); the tests run them inside it, so a workflow that reaches for the clock, I/O
        # or randomness fails here first.
        "workflow_sandbox": True,
        # Admission control has tests of its own (tests/api/test_admission.py); elsewhere a
        # test's burst of requests is served, as the benchmarks' is.
        "api_max_in_flight": 10_000,
        **FAST_ARGON2,
    }
    values.update(overrides)
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The same configuration as RECLAIM_* variables, for a process of its own."""
    env: dict[str, str] = {}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"RECLAIM_{name.upper()}"] = str(value)
    return env


class WorkerProcess:
    """`python -m reclaim worker` configured like the test's stack (plus `env`)."""

    def __init__(self, settings: Settings, log: Path, **env: str) -> None:
        self.env = {**os.environ, **settings_env(settings), **env}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reclaim", "worker"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[1],
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self) -> None:
        """SIGTERM, as Docker or systemd stops it; returns at once."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


@dataclass
class Stack:
    settings: Settings
    engine: Engine
    client: Client
    http: httpx.AsyncClient
    mail: MailSink
    sms: SmsGateway
    # The services as the API and the worker build them, on this stack's parts.
    services: Services

    async def add_account(self, username: str, email: str, phone: str | None, password: str) -> int:
        account = await sql_directory(self.engine).create(
            username=username, email=email, phone=phone, password=password
        )
        return account.id

    async def open_case(self, identifier: str, channel: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"identifier": identifier}
        if channel:
            body["channel"] = channel
        response = await self.http.post("/v1/recovery", json=body)
        assert response.status_code == 202, response.text
        return dict(response.json())

    async def sign_in(self, identifier: str, password: str) -> httpx.Response:
        return await self.http.post(
            "/v1/sessions", json={"identifier": identifier, "password": password}
        )

    async def approved_claim(self, username: str, contact: str, reason: str) -> str:
        """A claim filed, assigned and approved over the API by a supervisor: the id of the
        recovery case it opens to `contact` (which replaces the account's contacts when that
        case's new password takes effect, after the claim's hold)."""
        _, key = await self.services.staff_members.add_staff(
            f"sup-{uuid.uuid4().hex[:8]}", "supervisor"
        )
        staff = {"Authorization": f"Bearer {key}"}
        filed = await self.http.post(
            "/v1/support-cases",
            json={"username": username, "contact_email": contact, "reason": reason},
        )
        claim = filed.json()["case_id"]
        await self.http.post(f"/v1/staff/cases/{claim}/assign", headers=staff)
        approved = await self.http.post(f"/v1/staff/cases/{claim}/approve", headers=staff)
        assert approved.status_code == 202, approved.text
        return str(approved.json()["decision"]["recovery_case_id"])

    async def handed_over(self, username: str, contact: str, reason: str) -> str:
        """`approved_claim`, then its claimant recovers at `contact` (its first code there)
        with `HANDOVER_PASSWORD` and an operator ends the hold now: the account's contacts are
        replaced by `contact`. The id of the claim's recovery case."""
        case_id = await self.approved_claim(username, contact, reason)
        code = await self.mail.code_for(contact)
        granted = await self.http.post(f"/v1/recovery/{case_id}/code", json={"code": code})
        held = await self.http.post(
            f"/v1/recovery/{case_id}/password",
            json={"reset_token": granted.json()["reset_token"], "new_password": HANDOVER_PASSWORD},
        )
        assert held.json()["state"] == "held", held.text
        ended = await self.services.recovery.change_hold(case_id, end_now=True)
        assert ended.state.value == "completed", ended
        return case_id


@asynccontextmanager
async def serve_api(
    settings: Settings,
    given: Services | None = None,
    port: int = 0,
    tracing: Tracing | None = None,
) -> AsyncIterator[str]:
    """The API app with its real lifespan, behind uvicorn on a free port (or `port`), on a
    database with the schema (made here if missing: the API only checks it). `given`:
    services of the test's own (an instrumented engine or client) instead of the API's.
    `tracing`: the API process's tracing (its requests and its Temporal client)."""
    engine = make_engine(settings.resolved_database_url)
    create_schema(engine)
    engine.dispose()
    services = given or await services_for(settings, tracing)
    app = create_app(settings, services, tracing)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        if given is None:
            await services.aclose()
            services.engine.dispose()


async def polled(services: Services, timeout: float = 20) -> None:
    """Once Temporal has seen the worker poll its task queue (so `/readyz` says ready)."""
    deadline = time.monotonic() + timeout
    while await services.workers.problem() is not None:
        assert time.monotonic() < deadline, "the worker never polled its task queue"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_stack(
    settings: Settings,
    engine: Engine,
    mail: MailSink,
    sms: SmsGateway,
    *,
    worker: bool = True,
    api_services: Services | None = None,
    port: int = 0,
    api_tracing: Tracing | None = None,
    worker_tracing: Tracing | None = None,
) -> AsyncIterator[Stack]:
    """`api_tracing`, `worker_tracing`: each side's tracing, as each process would have
    its own (the worker's also traces the test's own client calls)."""
    client = await connect(settings, tracing=worker_tracing)
    courier = courier_for(settings)
    async with (
        serve_api(settings, api_services, port, api_tracing) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
    ):
        services = build_services(settings, client, engine, courier)
        stack = Stack(settings, engine, client, http, mail, sms, services)
        if worker:
            async with build_worker(
                client, settings, engine, courier, task_queue=settings.task_queue
            ):
                await polled(services)
                yield stack
        else:
            yield stack
    await courier.aclose()
