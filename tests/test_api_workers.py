"""`reclaim api --workers 2`: two server processes on one port, one set of metrics, and a
clean stop on SIGTERM (as Docker and systemd stop it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from reclaim.store.engine import make_engine
from reclaim.store.migrations import create_schema
from tests.conftest import free_port
from tests.stack import TEST_SECRET

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(p) for p in (task / "children").read_text().split()}
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_two_processes_answer_on_one_port_count_together_and_stop_on_sigterm(tmp_path: Path):
    database = f"sqlite:///{tmp_path / 'reclaim.db'}"
    engine = make_engine(database)
    create_schema(engine)
    engine.dispose()
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RECLAIM_", "PROMETHEUS_"))},
        "RECLAIM_SECRET_KEY": TEST_SECRET,
        "RECLAIM_STATE_DIR": str(tmp_path),
        "RECLAIM_DATABASE_URL": database,
        # Nobody listens there: the API starts all the same (its Temporal client is lazy).
        "RECLAIM_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "RECLAIM_API_PORT": str(port),
        "RECLAIM_LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        api = subprocess.Popen(
            [sys.executable, "-m", "reclaim", "api", "--workers", "2"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while len(_children(api.pid)) < 2 or not _answers(port):
            assert api.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        servers = _children(api.pid)

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            answers = [http.get("/v1/recovery/not-a-case").status_code for _ in range(30)]
            metrics = http.get("/metrics").text

        assert answers == [404] * 30
        # Whichever process answered the scrape, it counts the requests of both.
        counted = [
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("reclaim_http_request_duration_seconds_count{")
            # An id of no case's shape is refused before any route (api/guard.py).
            and 'route="unmatched"' in line
        ]
        assert sum(counted) == 30, metrics

        api.send_signal(signal.SIGTERM)
        assert api.wait(30) == 0, log.read_text()
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in servers):
            assert time.monotonic() < deadline, "a server process outlived its parent"
            time.sleep(0.1)
    finally:
        if api.poll() is None:
            api.kill()
            api.wait()


def _answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    return True
