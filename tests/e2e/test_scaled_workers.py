"""Two workers on one task queue, as `docker compose` runs them: one is stopped with SIGTERM
while codes are being sent and typed, it leaves cleanly (exit 0), and every case completes.
The health checks the compose file runs (`reclaim healthcheck api|worker`) are run here too."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import StackParts, free_port
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, WorkerProcess, running_stack, settings_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CASES = 24
NEW = "violet tangerine marmalade kayak"


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def _healthcheck(what: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reclaim", "healthcheck", what],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def _until_healthy(what: str, env: dict[str, str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        done = await asyncio.to_thread(_healthcheck, what, env)
        if done.returncode == 0:
            return done.stdout.strip()
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not healthy within {timeout} s: {done.stderr}")
        await asyncio.sleep(0.2)


def _metric_total(metrics: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(name)
    )


async def _post(stack: Stack, url: str, body: dict[str, str]) -> httpx.Response:
    """A person's request: told 503 with Retry-After (a worker's cases move to the other one
    within the request's deadline, or just after), they send the same again."""
    deadline = time.monotonic() + 90
    while True:
        response = await stack.http.post(url, json=body, timeout=90)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))


async def _recover(stack: Stack, number: int) -> dict[str, Any]:
    """One person's whole self-service recovery, over HTTP, reading the code from the mail."""
    address = f"user{number:02d}@example.com"
    case_id = (await stack.open_case(address))["case_id"]
    code = await stack.mail.code_for(address, timeout=90)
    granted = await _post(stack, f"/v1/recovery/{case_id}/code", {"code": code})
    assert granted.status_code == 200, granted.text
    done = await _post(
        stack,
        f"/v1/recovery/{case_id}/password",
        {"reset_token": granted.json()["reset_token"], "new_password": NEW},
    )
    assert done.status_code == 200, done.text
    seen = await stack.http.get(f"/v1/recovery/{case_id}")
    return dict(seen.json())


async def test_a_worker_stopped_with_sigterm_mid_load_loses_no_case(
    stack_parts: StackParts,
    mail: MailSink,
    sms: SmsGateway,
    tmp_path: Path,
    workers: list[WorkerProcess],
):
    settings, engine = stack_parts(temporal_rpc_timeout=60)
    metrics = {name: f"127.0.0.1:{free_port()}" for name in ("stopped", "staying")}
    envs = {
        name: {**settings_env(settings), "RECLAIM_WORKER_METRICS_ADDRESS": address}
        for name, address in metrics.items()
    }
    refused = await asyncio.to_thread(_healthcheck, "worker", envs["stopped"])
    assert refused.returncode == 1
    assert "worker unhealthy:" in refused.stderr and "does not answer" in refused.stderr
    for name in metrics:
        worker = WorkerProcess(
            settings,
            tmp_path / f"worker-{name}.log",
            RECLAIM_WORKER_METRICS_ADDRESS=metrics[name],
        )
        workers.append(worker)
        worker.start()
    stopped, staying = workers
    for name in metrics:
        assert await _until_healthy("worker", envs[name]) == "worker healthy"

    async with running_stack(settings, engine, mail, sms, worker=False) as stack:
        port = str(urlsplit(str(stack.http.base_url)).port)
        api_env = {**settings_env(settings), "RECLAIM_API_PORT": port}
        assert await _until_healthy("api", api_env) == "api healthy"
        for number in range(CASES):
            address = f"user{number:02d}@example.com"
            await stack.add_account(f"user{number:02d}", address, None, "correct horse battery")

        cases = [asyncio.create_task(_recover(stack, n)) for n in range(CASES)]
        # Stop one worker once codes are going out and being typed, not before.
        deadline = time.monotonic() + 60
        while sum("recovery code" in (m["Subject"] or "") for m in mail.messages) < CASES // 4:
            assert time.monotonic() < deadline, f"codes are not going out: {mail.summary()}"
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient() as scrape:
            worked = (await scrape.get(f"http://{metrics['stopped']}/metrics")).text
        stopped.terminate()

        seen = await asyncio.wait_for(asyncio.gather(*cases), timeout=240)

        assert [case["state"] for case in seen] == ["completed"] * CASES
        for number in range(CASES):
            assert (await stack.sign_in(f"user{number:02d}", NEW)).status_code == 200
    assert stopped.process is not None
    assert await asyncio.to_thread(stopped.process.wait, 60) == 0, stopped.log.read_text()[-3000:]
    # It had a share of the load when it was told to stop, and the other one carried on.
    assert _metric_total(worked, "temporal_workflow_task_execution_latency_count") > 0
    assert staying.process is not None and staying.process.poll() is None
