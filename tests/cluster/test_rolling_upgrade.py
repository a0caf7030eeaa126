"""A rolling upgrade of the workers with cases open, on the cluster (bench/cluster/upgrade.py):
recoveries waiting on their code and in a hold, claims waiting on their multi-day deadlines;
the workers replaced one host at a time by a build whose workflows changed (the guarded
upgrade drill, workflows/drill.py) under worker versioning; then every old case finished on
the new build. And the replay check an operator runs first: it names every open case a
careless build would break, and none for the guarded one.

`python -m bench cluster upgrade` runs the same with 1 000 recoveries and 50 claims.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.cluster import faults, upgrade
from bench.cluster.hosts import Cluster, cluster_missing
from bench.stack import run_async

pytestmark = pytest.mark.slow
DRILL = upgrade.Drill(recoveries=40, held=8, claims=6, in_review=3, swap_rate=2.0, hold_s=45)


@pytest.fixture(scope="module")
def drilled() -> Iterator[dict[str, Any]]:
    why = cluster_missing()
    if why:
        pytest.skip(f"the cluster cannot run here: {why}")
    cluster = Cluster.plan(
        Path(tempfile.mkdtemp(prefix="reclaim-cluster-")), upgrade.cluster_env(DRILL)
    )
    cluster.up()
    try:
        crowd = faults.accounts(cluster, DRILL.people)
        yield run_async(upgrade.run(cluster, crowd, DRILL))
    finally:
        assert cluster.down() == []


def test_the_replay_check_names_every_open_case_a_careless_build_would_break(
    drilled: dict[str, Any],
) -> None:
    careless, guarded = drilled["replay_check"]["careless"], drilled["replay_check"]["guarded"]

    assert careless["exit"] == 1
    assert careless["names_exactly_the_open_cases"], careless
    assert careless["cases_named"] == DRILL.recoveries + DRILL.claims
    assert "(40 would fail)" in careless["summary"][1]
    assert guarded["exit"] == 0 and guarded["cases_named"] == 0, guarded


def test_a_rolling_upgrade_with_cases_open_loses_none_and_meets_no_nondeterminism(
    drilled: dict[str, Any],
) -> None:
    assert drilled["cases_open_before"] == {"recovery": 32, "held": 8, "claim": 3, "in_review": 3}
    assert drilled["cases_lost"] == 0, drilled["lost"]
    # Every old case ended as its people or the supervisor meant, on the new build.
    assert drilled["old_cases_ended"] == {"completed": 40, "rejected": 6}
    old = drilled["old_cases"]
    assert old["workflows"] == {"completed": 46}
    assert old["last_task_by_build"] == {upgrade.NEW_BUILD: 46}
    assert old["workflow_tasks_failed"] == 0 and old["nondeterminism_errors"] == 0
    # People who came during the swap got through too.
    during = drilled["cases_during_swap"]
    assert drilled["people_during_swap"] >= 1
    assert sum(during["workflows"].values()) == during["workflows"].get("completed")
    assert during["nondeterminism_errors"] == 0
    assert drilled["mails_sent_twice"] == 0
