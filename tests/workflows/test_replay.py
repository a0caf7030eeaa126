"""Every stored history of every workflow type still replays against today's code: a change
that would break running cases fails here (use `workflow.patched` for deliberate changes)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from reclaim.temporal.codec import data_converter
from tests.history_text import TEST_CODEC, all_encrypted
from workflows.drill import DRILLS
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


def test_the_newer_histories_were_recorded_through_the_codec():
    """As a deployment writes them: what replays must be what Temporal really stores."""
    newer = [path for path in STORED if not path.stem.startswith("v1_")]

    assert newer and all(all_encrypted(json.loads(path.read_text())) for path in newer)


async def _replay(path: Path, workflows: list[type]) -> None:
    text = await asyncio.to_thread(path.read_text)
    history = WorkflowHistory.from_json(path.stem, text)
    converter = (
        data_converter(TEST_CODEC) if all_encrypted(json.loads(text)) else DataConverter.default
    )
    await Replayer(workflows=workflows, data_converter=converter).replay_workflow(history)


@pytest.mark.parametrize("path", STORED, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_stored_history_replays(path: Path):
    await _replay(path, [WORKFLOWS[path.parent.name]])


# -- the upgrade drill (workflows/drill.py): what a change to a running workflow type needs ----

DRILLED = [path for path in STORED if path.parent.name in ("recovery", "support")]


@pytest.mark.parametrize("path", DRILLED, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_the_guarded_drill_build_replays_every_stored_history(path: Path):
    """A new first step behind `workflow.patched`: every case from before replays past it."""
    await _replay(path, DRILLS["guarded"])


@pytest.mark.parametrize(
    "path",
    [next(p for p in DRILLED if p.parent.name == kind) for kind in ("recovery", "support")],
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
async def test_the_careless_drill_build_breaks_the_cases_from_before(path: Path):
    """The same step without `workflow.patched`: a non-determinism error on replay."""
    with pytest.raises(Exception, match=r"[Nn]ondeterminism"):
        await _replay(path, DRILLS["careless"])
