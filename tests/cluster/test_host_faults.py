"""Reclaim on eight hosts (network namespaces behind HAProxy: bench/cluster), with a steady load
of recoveries and claims through the edge, while a host fails. What the people see: every
case they opened completes, nobody gets a 500, and while Temporal is out of reach they get 503
with Retry-After and `/readyz` says why.

The other faults (an API host killed, the database restarted) and longer runs are in
`python -m bench cluster faults`, whose figures are in docs/deploy.md.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bench.cluster import faults
from bench.cluster.hosts import Cluster, cluster_missing
from bench.people import Person
from reclaim.store.engine import make_engine

pytestmark = pytest.mark.slow
PACE = faults.Pace(seconds=15, per_second=2, claim_every=4, after=4)
PARTITION_S = 20.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    why = cluster_missing()
    if why:
        pytest.skip(f"the cluster cannot run here: {why}")
    made = Cluster.plan(Path(tempfile.mkdtemp(prefix="reclaim-cluster-")))
    made.up()
    try:
        yield made
    finally:
        left = made.down()
        assert left == [], f"the cluster left behind: {left}"
        assert not made.root.exists()


@pytest.fixture(scope="module")
def crowd(cluster: Cluster) -> list[Person]:
    return faults.accounts(cluster, 200)


def _audited_addresses(cluster: Cluster) -> set[str | None]:
    engine = make_engine(cluster.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT DISTINCT address FROM staff_audit"))
            return {row[0] for row in rows}
    finally:
        engine.dispose()


def _no_case_lost(found: dict[str, Any]) -> None:
    assert found["cases_lost"] == 0, found["lost"]
    assert found["cases_completed"] == found["cases_opened"] == found["people"]
    assert found["server_errors_500"] == 0 and found["failed"] == 0, found["answers"]


async def test_a_worker_host_killed_mid_load_loses_no_case(
    cluster: Cluster, crowd: list[Person]
) -> None:
    try:
        found = await faults.run(cluster, crowd[:40], PACE, faults.worker_host_killed)
        assert cluster.network.hosts["worker-1"].pids() == []  # it stayed down

        _no_case_lost(found)
        assert found["people"] >= 25
        # The supervisor's decisions came through the edge: the audit names where they came
        # from (the machine), not the edge (RECLAIM_API_TRUSTED_PROXIES).
        assert _audited_addresses(cluster) == {cluster.network.gateway}
    finally:
        await faults.restart_worker(cluster)


async def test_temporal_cut_off_answers_503_with_retry_after_and_every_case_completes_after(
    cluster: Cluster, crowd: list[Person]
) -> None:
    pace = faults.Pace(
        seconds=PACE.after + PARTITION_S + 6, per_second=2, claim_every=4, after=PACE.after
    )

    async def cut(c: Cluster, p: faults.Pace) -> dict[str, Any]:
        return await faults.temporal_partition(c, p, seconds=PARTITION_S)

    found = await faults.run(cluster, crowd[40:120], pace, cut)

    _no_case_lost(found)
    assert found["unavailable_503"] > 0, "nobody noticed the partition"
    assert found["retry_after_missing"] == 0
    assert any("temporal: unavailable" in said for said in found["readyz_said"])
    assert found["longest_503_spell_s"] < PARTITION_S + 15
