"""Host faults on the cluster, each under a steady load (`bench.cluster.load`), each ending with
the cluster whole again so the next one starts from the same place:

- `worker_host_killed`: every process of `worker-1` killed (SIGKILL) mid-load; the other worker
  finishes every case;
- `temporal_partition`: the `temporal` host cut off the network for a while; the API hosts
  answer 503 with `Retry-After` meanwhile and `/readyz` says why;
- `api_host_killed`: every process of `api-1` killed; HAProxy takes it out;
- `db_restarted`: Reclaim's PostgreSQL killed and started again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher

from bench.cluster.edge import server_states
from bench.cluster.hosts import Cluster
from bench.cluster.load import Inbox, Load
from bench.people import Person, fill, people
from reclaim.store.engine import make_engine


@dataclass(frozen=True)
class Pace:
    """How the load runs during a fault: `per_second` people start, every `claim_every`-th
    files a claim; the fault strikes `after` seconds in; the load lasts `seconds`."""

    seconds: float = 30.0
    per_second: float = 3.0
    claim_every: int = 4
    after: float = 5.0

    @property
    def people(self) -> int:
        return int(self.seconds * self.per_second) + 1


def accounts(cluster: Cluster, count: int, seed: int = 35) -> list[Person]:
    """`count` people as active accounts of the cluster's database (one password for all)."""
    everyone = people(count, seed)
    argon2 = cluster.argon2
    hashed = PasswordHasher(argon2.time_cost, argon2.memory_cost, argon2.parallelism).hash(
        "the password everyone forgot"
    )
    engine = make_engine(cluster.database_url)
    try:
        fill(engine, everyone, hashed)
    finally:
        engine.dispose()
    return everyone


Fault = Callable[[Cluster, Pace], Awaitable[dict[str, Any]]]


async def run(cluster: Cluster, crowd: list[Person], pace: Pace, fault: Fault) -> dict[str, Any]:
    """`fault` under a steady load of `crowd`; the figures of what users saw."""
    inbox = Inbox(cluster.mail_dir)
    inbox.skip_existing()
    ended = {"at": time.monotonic()}

    async def strike() -> dict[str, Any]:
        await asyncio.sleep(pace.after)
        report = await fault(cluster, pace)
        ended["at"] = time.monotonic()
        return report

    assert cluster.staff_key is not None
    async with Load(cluster.edge_url, cluster.staff_key, inbox) as load:
        report = await load.steady(crowd, pace.seconds, pace.per_second, pace.claim_every, strike)
    report.update(load.figures(ended["at"]))
    await asyncio.to_thread(cluster.wait_ready)
    return report


async def worker_host_killed(cluster: Cluster, pace: Pace) -> dict[str, Any]:
    killed = await asyncio.to_thread(cluster.kill_host, "worker-1")
    return {"fault": "worker-1 killed (SIGKILL, every process)", "processes_killed": killed}


async def restart_worker(cluster: Cluster) -> None:
    await asyncio.to_thread(cluster.start_host, "worker-1")


async def temporal_partition(cluster: Cluster, pace: Pace, seconds: float = 30.0) -> dict[str, Any]:
    said: list[str] = []
    cluster.network.cut("temporal")
    began = time.monotonic()
    try:
        while time.monotonic() - began < seconds:
            reason = await asyncio.to_thread(_readyz_reason, cluster)
            if reason and reason not in said:
                said.append(reason)
            await asyncio.sleep(0.5)
    finally:
        cluster.network.mend("temporal")
    return {"fault": f"temporal cut off for {seconds:g} s", "readyz_said": said}


async def api_host_killed(cluster: Cluster, pace: Pace) -> dict[str, Any]:
    killed = await asyncio.to_thread(cluster.kill_host, "api-1")
    began = time.monotonic()
    taken_out = None
    while time.monotonic() - began < 30:
        states = await asyncio.to_thread(server_states, cluster.edge_socket)
        if states.get("api/api-1", "").startswith("DOWN"):
            taken_out = round(time.monotonic() - began, 1)
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(max(0.0, pace.seconds / 2))
    await asyncio.to_thread(cluster.start_host, "api-1")
    return {
        "fault": "api-1 killed (SIGKILL, every process), started again later",
        "processes_killed": killed,
        "haproxy_took_it_out_after_s": taken_out,
    }


async def db_restarted(cluster: Cluster, pace: Pace, down_for: float = 5.0) -> dict[str, Any]:
    killed = await asyncio.to_thread(cluster.kill_host, "db")
    await asyncio.sleep(down_for)
    await asyncio.to_thread(cluster.start_host, "db")
    return {
        "fault": f"db killed (SIGKILL), started again {down_for:g} s later",
        "processes_killed": killed,
    }


def _readyz_reason(cluster: Cluster) -> str | None:
    import httpx

    try:
        answer = httpx.get(f"{cluster.api_url('api-1')}/readyz", timeout=10)
    except httpx.HTTPError:
        return None
    if answer.status_code == 200:
        return None
    return str(answer.json().get("reason"))
