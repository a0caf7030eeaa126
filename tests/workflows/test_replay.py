"""Every stored history of every workflow type still replays against today's code: a change
that would break running cases fails here (use `workflow.patched` for deliberate changes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.lifecycle import AccountBanWorkflow, AccountDeletionWorkflow
from workflows.recovery import RecoveryWorkflow
from workflows.support import SupportCaseWorkflow

HISTORIES = Path(__file__).parents[1] / "histories"
WORKFLOWS = {
    "recovery": RecoveryWorkflow,
    "deletion": AccountDeletionWorkflow,
    "ban": AccountBanWorkflow,
    "support": SupportCaseWorkflow,
}
STORED = sorted(HISTORIES.glob("*/*.json"))


def test_every_workflow_type_has_stored_histories():
    for kind in WORKFLOWS:
        assert len(list((HISTORIES / kind).glob("*.json"))) >= 5, kind
    assert {path.parent.name for path in STORED} <= set(WORKFLOWS)


@pytest.mark.parametrize("path", STORED, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_stored_history_replays(path: Path):
    history = WorkflowHistory.from_json(path.stem, await asyncio.to_thread(path.read_text))

    await Replayer(workflows=[WORKFLOWS[path.parent.name]]).replay_workflow(history)
