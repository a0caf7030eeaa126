"""Whoever reaches the Temporal frontend is not trusted: an update that names its actor is
refused unless a door that authenticated the actor signed it. Tried with a real Temporal
client, the way an attacker on the Temporal network (or a curious reviewer) would."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from reclaim.security import Keys
from reclaim.support.audit import AuditEntry
from reclaim.support.contracts import (
    Approve,
    AssignRequest,
    ClaimCalls,
    ClaimState,
    ClaimView,
    ConfirmApproval,
    Reviewer,
    StaffRole,
)
from reclaim.temporal.proofs import FORGED_ACTOR, ActorProofs
from tests.conftest import Seen
from tests.stack import Stack

PASSWORD = "correct horse battery staple"
CONTACT = "mallory@example.net"
NOBODY = Reviewer(0, "nobody", StaffRole.SUPERVISOR)


async def _high_risk_claim(stack: Stack) -> str:
    """A takeover claim with no evidence at all: high risk, two people must approve it."""
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    filed = await stack.http.post(
        "/v1/support-cases",
        json={"username": "jane", "contact_email": CONTACT, "reason": "compromised"},
    )
    assert filed.status_code == 202, filed.text
    case_id = str(filed.json()["case_id"])
    await stack.mail.wait_for(lambda m: CONTACT in m["To"])  # the receipt
    return case_id


async def _forged(stack: Stack, case_id: str, update: str, arg: Any) -> ApplicationError:
    handle = stack.client.get_workflow_handle(case_id)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(update, arg, result_type=ClaimView)
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def _audit(stack: Stack, case_id: str, count: int) -> list[AuditEntry]:
    """The claim's audit once it holds `count` lines (the worker writes refusals from a
    thread of its own)."""
    deadline = time.monotonic() + 10
    while True:
        entries = await stack.services.staff_members.audit_entries(case_id=case_id)
        if len(entries) >= count or time.monotonic() > deadline:
            return entries
        await asyncio.sleep(0.05)


async def test_a_supervisor_who_does_not_exist_cannot_take_or_approve_a_claim(stack: Stack):
    case_id = await _high_risk_claim(stack)

    # The attack as it was found: assign to "nobody", then approve as "supervisor:nobody",
    # through a client that seals its payloads like ours (the codec is not the defence here).
    assign = await _forged(stack, case_id, ClaimCalls.ASSIGN, AssignRequest(NOBODY))
    approve = await _forged(stack, case_id, ClaimCalls.APPROVE, Approve(NOBODY, "ok"))
    assert assign.type == approve.type == FORGED_ACTOR
    assert "no proof of who sent it" in str(approve)

    # A proof made with another deployment's key (or a guessed one) is no better.
    elsewhere = ActorProofs(Keys(b"another-deployment-secret-0123456").actor_proof_key)
    signed = elsewhere.sign(case_id, ClaimCalls.APPROVE, Approve(NOBODY, "ok"))
    assert (await _forged(stack, case_id, ClaimCalls.APPROVE, signed)).type == FORGED_ACTOR

    # Nothing happened to the claim; no code went to the attacker's address.
    view = await stack.services.claims.staff_view(case_id)
    assert view.state is ClaimState.SUBMITTED
    assert view.assignee is None and view.decision is None
    assert len(stack.mail.to(CONTACT)) == 1  # the receipt, no code

    # Each refusal is in the staff audit, as sent straight to Temporal, under the name the
    # request claimed.
    entries = await _audit(stack, case_id, 3)
    assert [(e.action, e.staff_name, e.role, e.channel, e.outcome) for e in entries] == [
        ("approve", "nobody", "supervisor", "temporal", "refused: forged_actor"),
        ("approve", "nobody", "supervisor", "temporal", "refused: forged_actor"),
        ("assign", "nobody", "supervisor", "temporal", "refused: forged_actor"),
    ]
    assert "does not match" in (entries[0].detail or "")


async def test_a_reviewer_cannot_confirm_their_own_approval_as_an_invented_supervisor(
    stack: Stack, comparisons: Seen
):
    case_id = await _high_risk_claim(stack)
    _, key = await stack.services.staff_members.add_staff("rita", StaffRole.REVIEWER.value)
    rita = {"Authorization": f"Bearer {key}"}
    assert (await stack.http.post(f"/v1/staff/cases/{case_id}/assign", headers=rita)).is_success
    asked = await stack.http.post(
        f"/v1/staff/cases/{case_id}/approve", json={"note": "checked"}, headers=rita
    )
    assert asked.status_code == 202, asked.text
    assert asked.json()["state"] == "awaiting_confirmation"

    # Rita holds a genuine proof (her own approval's, as history shows it to whoever reads
    # it); moved onto a confirmation by an invented supervisor, it proves nothing.
    history = await stack.client.get_workflow_handle(case_id).fetch_history()
    genuine = next(
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.args
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
        and e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        == ClaimCalls.APPROVE
    )
    approved = await stack.client.data_converter.decode(genuine.payloads, [Approve])
    proof = approved[0].proof
    assert proof
    boss = Reviewer(99, "boss", StaffRole.SUPERVISOR)
    confirm = ConfirmApproval(boss, "fine", proof=proof)
    assert (
        await _forged(stack, case_id, ClaimCalls.CONFIRM_APPROVAL, confirm)
    ).type == FORGED_ACTOR
    # Her own approval, sent again as is but with the role raised, neither.
    raised = dataclasses.replace(
        approved[0], by=dataclasses.replace(approved[0].by, role=StaffRole.SUPERVISOR)
    )
    assert (await _forged(stack, case_id, ClaimCalls.APPROVE, raised)).type == FORGED_ACTOR

    view = await stack.services.claims.staff_view(case_id)
    assert view.state is ClaimState.AWAITING_CONFIRMATION
    assert view.decision is None
    # The proof's signature was compared in constant time, and said yes and no.
    assert comparisons[("reclaim/temporal/proofs.py", "ActorProofs.problem")] == {True, False}


async def test_a_payload_not_sealed_by_us_reaches_no_workflow(stack: Stack):
    """The codec is a second wall: a plain payload (what the `temporal` CLI sends without
    our key) never reaches a handler. The update is rejected at once, and the case goes on
    for the people who act through the doors."""
    case_id = await _high_risk_claim(stack)
    plain = await Client.connect(
        stack.settings.temporal_address, namespace=stack.settings.temporal_namespace
    )
    handle = plain.get_workflow_handle(case_id)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await asyncio.wait_for(handle.execute_update(ClaimCalls.ASSIGN, AssignRequest(NOBODY)), 20)
    assert "Failed decoding arguments" in str(refused.value.cause)  # not even read

    # The claim answers and moves for a reviewer who acts through the API.
    assert (await stack.services.claims.staff_view(case_id)).assignee is None
    _, key = await stack.services.staff_members.add_staff("sam", StaffRole.SUPERVISOR.value)
    taken = await stack.http.post(
        f"/v1/staff/cases/{case_id}/assign", headers={"Authorization": f"Bearer {key}"}
    )
    assert (taken.status_code, taken.json()["assignee"]) == (202, "sam")
