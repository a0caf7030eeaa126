"""What an operator reads about a case in the Temporal Web UI: its summary and details,
the current step in words, described queries and updates, and list queries on the typed
search attributes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle

from tests.stack import Stack

PASSWORD = "correct horse battery staple"


async def _details_until(handle: WorkflowHandle[Any, Any], wanted: str) -> WorkflowMetadata:
    """The metadata query the UI runs, polled until the current details say `wanted`."""
    deadline = time.monotonic() + 20
    while True:
        metadata: WorkflowMetadata = await handle.query(
            "__temporal_workflow_metadata", result_type=WorkflowMetadata
        )
        if wanted in metadata.current_details:
            return metadata
        if time.monotonic() > deadline:
            raise AssertionError(f"details never said {wanted!r}: {metadata.current_details!r}")
        await asyncio.sleep(0.1)


async def _listed(stack: Stack, query: str) -> list[str]:
    scoped = f'{query} AND TaskQueue="{stack.settings.task_queue}"'
    deadline = time.monotonic() + 20
    while True:
        ids = [w.id async for w in stack.client.list_workflows(scoped)]
        if ids or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.2)


async def test_a_recovery_case_reads_step_by_step(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    case = await stack.open_case("jane@example.com")
    handle = stack.client.get_workflow_handle(case["case_id"])

    sent = await _details_until(handle, "code #1 by email sent")

    assert sent.current_details.startswith(
        "**awaiting_code**: code #1 by email sent · wrong codes: 0 of 5"
    )
    assert "expires 20" in sent.current_details and "jane" not in sent.current_details
    description = await handle.describe()
    assert await description.static_summary() == "Self-service recovery by email"
    assert "awaiting_code" in (await description.static_details() or "")
    definition = sent.definition
    assert definition.type == "RecoveryWorkflow"
    queries = {q.name: q.description for q in definition.query_definitions}
    updates = {u.name: u.description for u in definition.update_definitions}
    signals = {s.name: s.description for s in definition.signal_definitions}
    assert queries["status"].startswith("What the person sees")
    assert set(updates) == {
        "submit_code",
        "submit_second_factor",
        "passkey_challenge",
        "resend_code",
        "set_password",
        "stop",
        "change_hold",
    }
    assert all(updates.values()) and all(signals.values())
    found = await _listed(
        stack, 'RecoveryCaseKind="self_service" AND RecoveryCaseState="awaiting_code"'
    )
    assert found == [case["case_id"]]

    await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": "not-it"})
    wrong = "000000" if await stack.mail.code_for("jane@example.com") != "000000" else "111111"
    await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": wrong})

    await _details_until(handle, "wrong codes: 1 of 5")


async def test_a_support_claim_shows_its_risk_assignee_and_deadline(stack: Stack):
    filed = await stack.http.post(
        "/v1/support-cases",
        json={"username": "nobody", "contact_email": "who@example.net", "reason": "lost_contact"},
    )
    case_id = filed.json()["case_id"]
    handle = stack.client.get_workflow_handle(case_id)

    metadata = await _details_until(handle, "first_response deadline")

    assert metadata.current_details.startswith("**submitted**: unassigned · high risk")
    description = await handle.describe()
    assert await description.static_summary() == "Support claim: lost_contact, high risk"
    assert "RecoveryEscalated" in (await description.static_details() or "")
    found = await _listed(
        stack,
        'RecoveryCaseKind="support_claim" AND RecoveryEscalated=false AND RecoveryRisk="high"',
    )
    assert found == [case_id]
