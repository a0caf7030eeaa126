"""A rolling upgrade of the cluster's workers with cases open (`python -m bench cluster
upgrade`, tests/cluster/test_rolling_upgrade.py).

1. **Before**: recoveries opened (each person has their code mail, some have typed it and set a
   password and wait out a hold: their contact changed lately), support claims filed (some
   taken by the supervisor, waiting on their multi-day decision deadline).
2. **The check**: `reclaim workflows check-replay` on a worker host, once with the careless
   drill build (it must name the open cases it would break) and once with the guarded one
   (none).
3. **The swap**, one host at a time, while new people keep recovering through the edge:
   `worker-1` stopped (SIGTERM) and started as build `b2` with the guarded drill; `b2` made the
   deployment's current build; `worker-2` the same.
4. **After**: the old cases finish on the new build: people type their codes and choose
   passwords, the holds run out (the cluster's hold is short), the supervisor turns the claims
   down.
5. **The count**, from each case's own history in Temporal: cases completed, non-determinism
   errors (workflow tasks that failed), the build that ran each case's last task.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowExecutionStatus

from bench.cluster.hosts import Cluster
from bench.cluster.load import NEW_PASSWORD, GaveUp, Inbox, Load
from bench.code_latency import bounded
from bench.people import Person
from reclaim.store.engine import make_engine

NEW_BUILD = "b2"
CASE_ID = re.compile(r"\b(?:rc|sc)_[A-Za-z0-9_-]+")


def cluster_env(drill: Drill) -> dict[str, str]:
    """The drill's cluster: a recovery hold short enough to end within the run."""
    return {"RECLAIM_RECOVERY_HOLD": str(drill.hold_s)}


@dataclass(frozen=True)
class Drill:
    recoveries: int = 1000
    held: int = 100  # of the recoveries: set a password before the swap, then wait a hold
    claims: int = 50
    in_review: int = 25  # of the claims: taken by the supervisor before the swap
    swap_rate: float = 2.0  # people per second recovering while the workers are replaced
    concurrency: int = 25
    # The cluster's recovery hold: it must outlast opening the cases, the check and the swap,
    # so that the held cases finish on the new build.
    hold_s: int = 300

    @property
    def people(self) -> int:
        return self.recoveries + self.claims + 200


@dataclass
class Case:
    case_id: str
    person: Person
    kind: str  # "recovery", "held", "claim", "in_review", "during"
    code: str | None = None
    token: str | None = None


def mark_contacts_changed(cluster: Cluster, people: list[Person]) -> None:
    """These people changed a contact today: their recovery is held (recovery_hold)."""
    from datetime import UTC, datetime

    from reclaim.directory.tables import Account

    engine = make_engine(cluster.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(Account)
                .where(Account.username.in_([p.username for p in people]))  # type: ignore[attr-defined]
                .values(contacts_changed_at=datetime.now(UTC))
            )
    finally:
        engine.dispose()


async def before(load: Load, drill: Drill, crowd: list[Person]) -> list[Case]:
    """Open every case of the drill and bring each to where it waits during the swap."""
    deadline = time.monotonic() + 600
    staff = {"Authorization": f"Bearer {load.staff_key}"}
    recoverers = crowd[: drill.recoveries]
    claimants = crowd[drill.recoveries : drill.recoveries + drill.claims]

    async def recovery(index_person: tuple[int, Person]) -> Case:
        index, person = index_person
        kind = "held" if index < drill.held else "recovery"
        opened = await load.call(
            "POST", "/v1/recovery", (202,), deadline, json={"identifier": person.email}
        )
        case = Case(str(opened.json()["case_id"]), person, kind)
        case.code = await load.inbox.code_for(case.case_id, deadline - time.monotonic())
        if kind == "held":
            await _type_code(load, case, deadline)
            answer = await _choose_password(load, case, deadline)
            if answer != "held":
                raise GaveUp(f"{case.case_id}: {answer} instead of held")
        return case

    async def claim(index_person: tuple[int, Person]) -> Case:
        index, person = index_person
        case = Case(await load.file_claim(person, deadline), person, "claim")
        if index < drill.in_review:
            case.kind = "in_review"
            path = f"/v1/staff/cases/{case.case_id}/assign"
            await load.call("POST", path, (202,), deadline, headers=staff)
        return case

    opened = await bounded(list(enumerate(recoverers)), recovery, drill.concurrency)
    opened += await bounded(list(enumerate(claimants)), claim, drill.concurrency)
    return list(opened)


async def after(load: Load, cases: list[Case]) -> Counter[str]:
    """Each old case finished as its person or the supervisor would; what each ended as."""
    deadline = time.monotonic() + 600
    staff = {"Authorization": f"Bearer {load.staff_key}"}

    async def finish(case: Case) -> str:
        try:
            if case.kind == "recovery":
                await _type_code(load, case, deadline)
                return await _choose_password(load, case, deadline)
            if case.kind == "held":
                return await _held_until_done(load, case, deadline)
            if case.kind == "claim":
                path = f"/v1/staff/cases/{case.case_id}/assign"
                await load.call("POST", path, (202,), deadline, headers=staff)
            answer = await load.reject(case.case_id, deadline)
            return str(answer.json()["state"])
        except GaveUp as err:
            load.lost[case.case_id] = str(err)
            return "lost"

    return Counter(await bounded(cases, finish, 25))


async def swap(cluster: Cluster, load: Load, crowd: list[Person], rate: float) -> dict[str, Any]:
    """Replace the workers one host at a time while people keep recovering."""
    began = time.monotonic()
    steps: list[str] = []

    async def replace() -> None:
        drill = {"RECLAIM_UPGRADE_DRILL": "guarded"}
        await asyncio.to_thread(cluster.replace_worker, "worker-1", NEW_BUILD, drill)
        steps.append(f"worker-1 is {NEW_BUILD} after {time.monotonic() - began:.1f} s")
        said = await asyncio.to_thread(cluster.set_current_build, NEW_BUILD)
        steps.append(f"{said} after {time.monotonic() - began:.1f} s")
        await asyncio.to_thread(cluster.replace_worker, "worker-2", NEW_BUILD, drill)
        steps.append(f"worker-2 is {NEW_BUILD} after {time.monotonic() - began:.1f} s")

    swapping = asyncio.create_task(replace())
    joined: list[asyncio.Task[None]] = []
    for person in crowd:
        if swapping.done():  # the load lasts as long as the swap
            break
        joined.append(asyncio.create_task(load.recover(person)))
        await asyncio.sleep(1 / rate)
    await swapping
    swap_s = time.monotonic() - began
    await asyncio.gather(*joined)
    return {"swap_s": round(swap_s, 1), "swap_steps": steps, "people_during_swap": len(joined)}


async def histories(cluster: Cluster, ids: list[str]) -> dict[str, Any]:
    """From each case's history: how it ended, non-determinism errors, the last task's build."""
    client = await Client.connect(cluster.temporal_address)
    statuses: Counter[str] = Counter()
    builds: Counter[str] = Counter()
    failed_tasks = nondeterministic = 0
    nde = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR

    async def read(workflow_id: str) -> None:
        nonlocal failed_tasks, nondeterministic
        handle = client.get_workflow_handle(workflow_id)
        described = await handle.describe()
        status = described.status or WorkflowExecutionStatus.RUNNING
        statuses[status.name.lower()] += 1
        last_build = "none"
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failed_tasks += 1
                if event.workflow_task_failed_event_attributes.cause == nde:
                    nondeterministic += 1
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                version = event.workflow_task_completed_event_attributes.deployment_version
                last_build = version.build_id or "unversioned"
        builds[last_build] += 1

    await bounded(ids, read, 20)
    return {
        "workflows": dict(statuses),
        "last_task_by_build": dict(builds),
        "workflow_tasks_failed": failed_tasks,
        "nondeterminism_errors": nondeterministic,
    }


async def _type_code(load: Load, case: Case, deadline: float) -> None:
    granted = await load.call(
        "POST", f"/v1/recovery/{case.case_id}/code", (200,), deadline, json={"code": case.code}
    )
    case.token = str(granted.json()["reset_token"])


async def _choose_password(load: Load, case: Case, deadline: float) -> str:
    answer = await load.call(
        "POST",
        f"/v1/recovery/{case.case_id}/password",
        (200,),
        deadline,
        json={"reset_token": case.token, "new_password": NEW_PASSWORD},
    )
    return str(answer.json()["state"])


async def _held_until_done(load: Load, case: Case, deadline: float) -> str:
    while True:
        status = await load.call("GET", f"/v1/recovery/{case.case_id}", (200,), deadline)
        state = str(status.json()["state"])
        if state != "held" or time.monotonic() > deadline:
            return state
        await asyncio.sleep(1)


async def run(cluster: Cluster, crowd: list[Person], drill: Drill) -> dict[str, Any]:
    """The whole drill on `cluster` (made with a short recovery hold); its report."""
    report: dict[str, Any] = {}
    inbox = Inbox(cluster.mail_dir)
    inbox.skip_existing()
    assert cluster.staff_key is not None
    await asyncio.to_thread(mark_contacts_changed, cluster, crowd[: drill.held])
    async with Load(cluster.edge_url, cluster.staff_key, inbox) as load:
        began = time.monotonic()
        cases = await before(load, drill, crowd)
        report["cases_open_before"] = dict(Counter(case.kind for case in cases))
        report["before_s"] = round(time.monotonic() - began, 1)
        await visible(cluster, len(cases))
        open_ids = {case.case_id for case in cases}
        report["replay_check"] = await asyncio.to_thread(replay_checks, cluster, open_ids)
        waits_before = len(load.waits)
        report.update(await swap(cluster, load, crowd[len(cases) :], drill.swap_rate))
        waited = [took for _, took in load.waits[waits_before:]]
        report["longest_request_during_swap_s"] = round(max(waited, default=0.0), 2)
        ended = await after(load, cases)
        report["old_cases_ended"] = dict(ended)
        report["cases_lost"] = len(load.lost)
        report["lost"] = dict(list(load.lost.items())[:10])
        report["mails_sent_twice"] = inbox.sent_twice()
        during = sorted(set(load.completed) - {case.case_id for case in cases})
    report["old_cases"] = await histories(cluster, [case.case_id for case in cases])
    report["cases_during_swap"] = await histories(cluster, during)
    report["nondeterminism_errors"] = sum(
        found["nondeterminism_errors"]
        for found in (report["old_cases"], report["cases_during_swap"])
    )
    return report


def replay_checks(cluster: Cluster, open_ids: set[str]) -> dict[str, Any]:
    """`reclaim workflows check-replay` on worker-1, with each drill build's workflows: its
    exit status, its first lines, and whether the cases it names are exactly the open ones."""
    found: dict[str, Any] = {}
    for drill in ("careless", "guarded"):
        done = cluster.run_in(
            "worker-1",
            ["reclaim", "workflows", "check-replay"],
            {"RECLAIM_UPGRADE_DRILL": drill},
        )
        lines = done.stdout.strip().splitlines()
        named = set(CASE_ID.findall(done.stdout))
        found[drill] = {
            "exit": done.returncode,
            "summary": lines[:3],
            "cases_named": len(named),
            "names_exactly_the_open_cases": named == open_ids,
        }
    return found


async def visible(cluster: Cluster, count: int, within: float = 30.0) -> None:
    """Until Temporal's visibility lists `count` running cases (it lags a little)."""
    client = await Client.connect(cluster.temporal_address)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        running = await client.count_workflows('ExecutionStatus="Running"')
        if running.count >= count:
            return
        await asyncio.sleep(0.2)
