"""`reclaim dev` as a user runs it: the whole stack in one process group, killed with -9 and
started again, then stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NEW = "violet tangerine marmalade kayak"
# Long enough for a loaded machine to restart the whole stack (25 s seen) before the case
# that must survive the kill expires; the idle case's expiry is then waited for.
CASE_TTL = 45
# Right after a kill -9, a call to an open case may wait for the dead worker's sticky queue
# to time out (10 s) before the new worker takes it: be as patient as a real client.
http = httpx.Client(timeout=30)


def _poll(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


class DevRun:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reclaim", "dev"],
            env=env,
            cwd=REPO,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal would give it
        )

    def ready_line(self) -> str:
        def ready() -> str | None:
            if self.process.poll() is not None:
                raise AssertionError(f"reclaim dev exited:\n{self.log.read_text()[-3000:]}")
            lines = [ln for ln in self.log.read_text().splitlines() if "Reclaim is ready" in ln]
            return lines[-1] if lines else None

        line: str = _poll(ready, 90, "the ready line")
        return line

    def group(self) -> list[int]:
        out = subprocess.run(
            ["ps", "-o", "pid=,stat=", "-g", str(self.process.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [int(p) for p, s in (ln.split() for ln in out.splitlines()) if not s.startswith("Z")]

    def signal_group(self, sig: int) -> None:
        os.killpg(self.process.pid, sig)


@pytest.fixture
def dev_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECLAIM_")}
    env.update(
        RECLAIM_STATE_DIR=str(tmp_path / "state"),
        RECLAIM_API_PORT=str(free_port()),
        RECLAIM_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        RECLAIM_TEMPORAL_UI_PORT=str(free_port()),
        RECLAIM_DEV_SMTP_PORT=str(free_port()),
        RECLAIM_WORKER_METRICS_ADDRESS=f"127.0.0.1:{free_port()}",
        RECLAIM_CASE_TTL=str(CASE_TTL),
        RECLAIM_TEMPORAL_RPC_TIMEOUT="25",
        RECLAIM_ARGON2_TIME_COST="1",
        RECLAIM_ARGON2_MEMORY_COST="1024",
        RECLAIM_ARGON2_PARALLELISM="1",
    )
    return env


@pytest.fixture
def runs(dev_env: dict[str, str], tmp_path: Path) -> Iterator[list[DevRun]]:
    started: list[DevRun] = []
    yield started
    for run in started:  # whatever a failed test left running
        if run.process.poll() is None:
            run.signal_group(signal.SIGKILL)
            run.process.wait()


def _outbox_code(api: str, to: str) -> str | None:
    messages = http.get(f"{api}/dev/outbox").json()["messages"]
    for message in messages:
        if message["to"] == to and "recovery code" in (message.get("subject") or ""):
            found = re.search(r"^\s+(\d{6})\s*$", message["text"], re.MULTILINE)
            return found.group(1) if found else None
    return None


def test_a_killed_stack_restarts_with_every_case_and_timer_then_stops_on_ctrl_c(
    dev_env: dict[str, str], runs: list[DevRun], tmp_path: Path
):
    api = f"http://127.0.0.1:{dev_env['RECLAIM_API_PORT']}"
    ui = f"http://127.0.0.1:{dev_env['RECLAIM_TEMPORAL_UI_PORT']}"
    runs.append(DevRun(dev_env, tmp_path / "dev1.log"))
    ready = runs[0].ready_line()
    for url in (api, f"{api}/docs", ui, f"{api}/dev/outbox"):
        assert url in ready
    assert http.get(ui).status_code == 200
    assert "Forgot your password?" in http.get(f"{api}/recover").text  # the pages answer
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "reclaim",
            "accounts",
            "add",
            "--username",
            "jane",
            "--email",
            "jane@example.com",
            "--phone",
            "+14155550123",
            "--password",
            "correct horse battery staple",
        ],
        env=dev_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    jane = http.post(f"{api}/v1/recovery", json={"identifier": "jane@example.com"}).json()
    code = _poll(lambda: _outbox_code(api, "jane@example.com"), 20, "the code mail")
    # Prometheus can read the worker's SDK metrics and the API's own.
    worker_metrics = f"http://{dev_env['RECLAIM_WORKER_METRICS_ADDRESS']}/metrics"
    assert worker_metrics in ready
    scraped = http.get(worker_metrics).text
    assert "temporal_activity_execution_latency" in scraped
    assert 'service="reclaim-worker"' in scraped
    assert 'reclaim_codes_sent_total{channel="email"} 1.0' in http.get(f"{api}/metrics").text
    idle = http.post(f"{api}/v1/recovery", json={"identifier": "ghost@example.com"}).json()

    runs[0].signal_group(signal.SIGKILL)
    runs[0].process.wait()
    _poll(lambda: not runs[0].group(), 10, "every process of the group dying")
    runs.append(DevRun(dev_env, tmp_path / "dev2.log"))
    runs[1].ready_line()

    after = http.get(f"{api}/v1/recovery/{jane['case_id']}").json()
    assert {k: after[k] for k in ("state", "attempts_left", "code_expires_at")} == {
        "state": "awaiting_code",
        "attempts_left": 5,
        "code_expires_at": jane["code_expires_at"],
    }
    granted = http.post(f"{api}/v1/recovery/{jane['case_id']}/code", json={"code": code})
    assert granted.status_code == 200, granted.text
    done = http.post(
        f"{api}/v1/recovery/{jane['case_id']}/password",
        json={"reset_token": granted.json()["reset_token"], "new_password": NEW},
    )
    assert done.json()["state"] == "completed"
    signed_in = http.post(f"{api}/v1/sessions", json={"identifier": "jane", "password": NEW})
    assert signed_in.status_code == 200
    # The idle case's TTL timer, armed before the kill, fires after the restart.
    _poll(
        lambda: http.get(f"{api}/v1/recovery/{idle['case_id']}").json()["state"] == "expired",
        CASE_TTL + 40,
        "the idle case expiring",
    )
    shown = subprocess.run(
        [sys.executable, "-m", "reclaim", "cases", "show", idle["case_id"]],
        env=dev_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(shown.stdout)["state"] == "expired"

    runs[1].signal_group(signal.SIGINT)  # Ctrl-C in the terminal

    assert runs[1].process.wait(30) == 0
    _poll(lambda: not runs[1].group(), 20, "every process stopping")
    assert not (tmp_path / "state" / "dev.pids").exists()
