"""`reclaim workflows check-replay` against the session's real Temporal dev server: the
running cases of a live stack replay against today's code; against a build that changed the
recovery workflow's first step they are named, each as a non-determinism; and a Temporal that
does not answer is said in one line with exit code 2."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from typer.testing import CliRunner

import worker
from reclaim.cli import app
from reclaim.recovery.contracts import CaseState, RecoveryCalls, RecoveryInput, RecoveryOutcome
from reclaim.temporal.replay_check import check_replay, deployment_query
from tests.conftest import free_port
from tests.stack import TEST_SECRET, Stack, settings_env
from worker import WORKFLOWS
from workflows.recovery import RecoveryWorkflow

PASSWORD = "correct horse battery staple"
PEOPLE = ["jane", "joe", "ann"]
_CLAIMS = 'ExecutionStatus = "Running" AND WorkflowType = "SupportCaseWorkflow"'


@workflow.defn(name=RecoveryCalls.WORKFLOW)
class ChangedRecoveryWorkflow:
    """A build whose recovery workflow waits before anything else: its first command is a
    timer where the running cases' histories have their first activity."""

    @workflow.run
    async def run(self, case: RecoveryInput) -> RecoveryOutcome:
        await workflow.sleep(5)
        return RecoveryOutcome(case.case_id, CaseState.CANCELLED)


async def _cli(stack: Stack, *args: str, env: dict[str, str] | None = None) -> Any:
    env = {**settings_env(stack.settings), **(env or {})}
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def _running_cases(stack: Stack) -> tuple[list[str], str]:
    """Three recovery cases (each past its first step: its code was mailed) and a support
    claim, all running and seen by visibility: the recoveries' ids and the claim's."""
    recoveries = []
    for name in PEOPLE:
        await stack.add_account(name, f"{name}@example.com", None, PASSWORD)
        recoveries.append((await stack.open_case(f"{name}@example.com"))["case_id"])
    filed = await stack.http.post(
        "/v1/support-cases",
        json={"username": "jane", "contact_email": "jane.new@example.net", "reason": "compromised"},
    )
    assert filed.status_code == 202, filed.text
    claim = filed.json()["case_id"]
    for name in PEOPLE:
        await stack.mail.code_for(f"{name}@example.com")
    # Visibility lags a little after a start: asked again until it lists them (20 s at most).
    deadline = time.monotonic() + 20
    while True:
        listed = {case.case_id for case in await stack.services.list_cases()}
        if listed >= {*recoveries, claim} or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert listed == {*recoveries, claim}
    return recoveries, claim


async def test_the_running_cases_replay_against_todays_code(stack: Stack):
    await _running_cases(stack)

    result = await _cli(stack, "workflows", "check-replay")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Replayed 4 cases (TaskQueue = ")
    assert [line.split() for line in lines[1:]] == [
        ["RecoveryWorkflow", "3"],
        ["SupportCaseWorkflow", "1"],
        ["All", "4", "replay", "on", "this", "build."],
    ]


async def test_the_query_and_the_limit_narrow_what_is_replayed(stack: Stack):
    await _running_cases(stack)

    claims = await _cli(stack, "workflows", "check-replay", "--query", _CLAIMS)
    two = await _cli(stack, "workflows", "check-replay", "--limit", "2")
    none = await _cli(stack, "workflows", "check-replay", "--query", 'WorkflowType = "Nope"')
    typo = await _cli(stack, "workflows", "check-replay", "--query", "ExecutionStatus ==")

    assert claims.exit_code == 0, claims.output
    assert [line.split() for line in claims.stdout.splitlines()[1:]] == [
        ["SupportCaseWorkflow", "1"],
        ["All", "1", "replay", "on", "this", "build."],
    ]
    assert two.exit_code == 0, two.output
    assert two.stdout.startswith("Replayed 2 cases (")
    assert (none.exit_code, none.stdout.endswith(": nothing to replay.\n")) == (0, True)
    assert typo.exit_code == 2 and typo.stdout == ""
    assert typo.stderr.startswith("reclaim: Temporal refused the query ")
    assert typo.stderr.count("\n") == 1


async def test_a_breaking_change_names_exactly_the_open_recovery_cases(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    recoveries, claim = await _running_cases(stack)
    changed = [ChangedRecoveryWorkflow if w is RecoveryWorkflow else w for w in WORKFLOWS]
    assert changed != WORKFLOWS

    check = await check_replay(stack.client, changed, deployment_query(stack.settings.task_queue))
    # The command, as run from that build (outside the sandbox: the changed class is this
    # test module's, which the sandbox would import afresh).
    monkeypatch.setattr(worker, "WORKFLOWS", changed)
    result = await _cli(stack, "workflows", "check-replay", env={"RECLAIM_WORKFLOW_SANDBOX": "0"})

    assert dict(check.replayed) == {"RecoveryWorkflow": 3, "SupportCaseWorkflow": 1}
    assert sorted(f.workflow_id for f in check.failures) == sorted(recoveries)
    assert all(f.nondeterminism and f.workflow_type == "RecoveryWorkflow" for f in check.failures)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[:3] for line in lines[1:3]] == [
        ["RecoveryWorkflow", "3", "(3"],
        ["SupportCaseWorkflow", "1"],
    ]
    assert lines[3] == "3 of 4 would fail on this build:"
    failed = {line.split()[0]: line.split(maxsplit=2)[1:] for line in lines[4:]}
    assert set(failed) == set(recoveries)
    for kind, why in failed.values():
        assert kind == "RecoveryWorkflow"
        assert "nondeterminism" in why.lower().replace("-", ""), why
    assert claim not in result.stdout


async def test_a_temporal_that_does_not_answer_is_said_in_one_line(tmp_path: Path):
    env = {
        "RECLAIM_SECRET_KEY": TEST_SECRET,
        "RECLAIM_STATE_DIR": str(tmp_path),
        "RECLAIM_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
    }

    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["workflows", "check-replay"], env=env
    )

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"reclaim: Temporal at {env['RECLAIM_TEMPORAL_ADDRESS']} ")
    assert "is not answering: nothing was checked" in result.stderr
