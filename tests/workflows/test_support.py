"""Support claims over days, on the time-skipping server with the real worker: every timer
path (escalations, abandonment, a claim that waits five days then is approved), the
supervisor rule, and what approval does to the account."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

from reclaim.contracts import AccountStatus
from reclaim.lifecycle.contracts import LifecycleState
from reclaim.notify.outbox import text_of
from reclaim.recovery.contracts import CaseState, RecoveryOutcome, RecoveryStatus
from reclaim.store.models import SupportClaim
from reclaim.support.contracts import (
    ClaimReason,
    ClaimState,
    ContactMatch,
    Reviewer,
    Risk,
    StaffRole,
)
from reclaim.temporal import search_attributes as sa
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.workflows.lifecycle_harness import PASSWORD, Lifecycle, lifecycle_stack
from tests.workflows.support_harness import (
    CONTACT,
    OTHER_SUPERVISOR,
    REVIEWER,
    STRONG_EVIDENCE,
    SUPERVISOR,
    SupportDesk,
)

LEADS = "support-leads@example.com"
REX = Reviewer(3, "rex", StaffRole.REVIEWER)  # a second reviewer
DAY = 86_400
NEW_PASSWORD = "plum orchard lantern quietly"


@pytest.fixture
async def desk(
    time_env: WorkflowEnvironment, tmp_path: Path, mail: MailSink, sms: SmsGateway
) -> AsyncIterator[SupportDesk]:
    async with lifecycle_stack(
        time_env, tmp_path, mail, sms, escalation_email=LEADS, claims_per_hour=50
    ) as life:
        yield SupportDesk(life)


async def _mail(life: Lifecycle, to: str, words: str) -> str:
    message = await life.mail.wait_for(lambda m: m["To"] == to and words in text_of(m))
    return text_of(message)


async def _claim_row(
    life: Lifecycle, case_id: str, ready: Callable[[SupportClaim], bool], timeout: float = 10
) -> SupportClaim:
    """The claim's row once `ready` holds, read again until then (at most `timeout` s)."""
    deadline = time.monotonic() + timeout
    while True:
        with Session(life.engine) as session:
            row = session.get(SupportClaim, case_id)
        if row is not None and ready(row):
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"the claim's row never got there: {row}")
        await asyncio.sleep(0.02)


async def _contacts(life: Lifecycle, account_id: int) -> tuple[str | None, str | None]:
    """The account's email and phone, as the directory answers."""
    account = await life.directory.get(account_id)
    assert account is not None
    return account.email, account.phone


async def _recover(life: Lifecycle, case_id: str, password: str) -> RecoveryStatus:
    """The claimant types the code mailed to the claim's address, then a new password."""
    code = await life.mail.code_for(CONTACT)
    granted = await life.services.recovery.submit_code(case_id, code)
    return await life.services.recovery.set_password(case_id, granted.reset_token, password)


async def _past_the_hold(life: Lifecycle, hold_until: datetime) -> None:
    """Time skips to a second after the hold ends (no further: past the last timer of every
    case the test server would wait in real time)."""
    remaining = hold_until - await life.env.get_current_time()
    await life.env.sleep(max(remaining.total_seconds(), 0) + 1)


async def _recovery_outcome(life: Lifecycle, case_id: str) -> CaseState:
    handle = life.env.client.get_workflow_handle(case_id, result_type=RecoveryOutcome)
    return (await handle.result()).state


async def test_the_claimant_gets_the_token_by_mail_and_the_evidence_sets_the_risk(
    desk: SupportDesk,
):
    await desk.life.add_account(phone="+14155550123")
    strong = await desk.file(**STRONG_EVIDENCE)
    weak = await desk.file(registered_email="jane@example.com")
    none = await desk.file(previous_passwords=("wrong guess",), registered_phone="+14155550199")
    nobody = await desk.file(username="ghost", **STRONG_EVIDENCE)

    view = await strong.view()
    assert (view.state, view.risk) == (ClaimState.SUBMITTED, Risk.LOW)
    assert view.evidence.passwords_given == 2 and view.evidence.passwords_matched == 1
    assert view.evidence.registered_email is ContactMatch.CURRENT
    assert view.evidence.registered_phone is ContactMatch.NOT_GIVEN
    assert (await weak.view()).risk is Risk.MEDIUM
    assert (await none.view()).risk is Risk.HIGH
    assert (await none.view()).evidence.registered_phone is ContactMatch.NO_MATCH
    assert (await nobody.view()).evidence.account_found is False
    assert (await nobody.view()).risk is Risk.HIGH
    received = await _mail(desk.life, CONTACT, strong.case_id)
    assert strong.filed.claim_token in received
    # The token left with the mail, and only there: the activity wipes it just after the sink
    # received the mail, so the row is read until it shows that (or the deadline passes).
    row = await _claim_row(desk.life, strong.case_id, lambda r: r.sealed_token is None)
    assert strong.filed.claim_token not in repr(row.model_dump())


async def test_a_claim_nobody_picks_up_escalates_after_the_first_response_sla(desk: SupportDesk):
    await desk.life.add_account()
    claim = await desk.file(**STRONG_EVIDENCE)

    await desk.life.env.sleep(DAY - 60)
    assert (await claim.view()).escalated is False
    await desk.life.env.sleep(120)

    view = await claim.view()
    assert view.escalated and view.state is ClaimState.SUBMITTED
    assert (view.timeline[-1].actor, view.timeline[-1].action) == ("system", "escalated")
    assert view.timeline[-1].detail == "first_response"
    escalated = await _mail(desk.life, LEADS, "escalated")
    assert f"/console/cases/{claim.case_id}" in escalated  # the case file, one click away


async def test_an_assigned_claim_without_a_decision_escalates_again(desk: SupportDesk):
    await desk.life.add_account()
    claim = await desk.file(**STRONG_EVIDENCE)
    assigned = await claim.assign()
    assert (assigned.state, assigned.assignee, assigned.escalated) == (
        ClaimState.IN_REVIEW,
        "rita",
        False,
    )

    await desk.life.env.sleep(3 * DAY + 60)

    view = await claim.view()
    assert view.escalated and view.timeline[-1].detail == "decision"
    await _mail(desk.life, LEADS, "no decision was made")


async def test_a_question_left_unanswered_abandons_the_claim(desk: SupportDesk):
    await desk.life.add_account()
    claim = await desk.file(**STRONG_EVIDENCE)
    await claim.assign()
    asked = await claim.ask("When did you last sign in?", "From which city?")
    assert asked.state is ClaimState.AWAITING_CLAIMANT
    question = await _mail(desk.life, CONTACT, "When did you last sign in?")
    assert "From which city?" in question

    await desk.life.env.sleep(7 * DAY + 60)

    final = await claim.closed()
    assert final.state is ClaimState.ABANDONED and final.decision is not None
    assert final.decision.by == "system"
    await _mail(desk.life, CONTACT, "waited for an answer for too long")
    with Session(desk.life.engine) as session:
        row = session.get(SupportClaim, claim.case_id)
        assert row is not None and row.state == "abandoned" and row.timeline
        assert '"asked the claimant"' in row.timeline


async def test_an_answer_puts_the_claim_back_in_review_with_a_fresh_decision_deadline(
    desk: SupportDesk,
):
    await desk.life.add_account()
    claim = await desk.file(**STRONG_EVIDENCE)
    await claim.assign()
    await claim.ask("Which browser?")
    await desk.life.env.sleep(2 * DAY)

    await claim.answer()

    view = await claim.view()
    assert view.state is ClaimState.IN_REVIEW
    assert view.questions[0].answered_at is not None
    now = await desk.life.env.get_current_time()
    assert view.next_deadline is not None
    assert 3 * DAY - 60 < (view.next_deadline - now).total_seconds() <= 3 * DAY
    refused = await claim.refusal(claim.answer())
    assert refused.type == "invalid_state"


async def test_a_takeover_claim_that_waits_five_days_is_approved_and_hands_the_account_over(
    desk: SupportDesk, sms: SmsGateway
):
    life = desk.life
    account_id = await life.add_account(phone="+14155550123")
    signed_in = await life.sign_in("jane")
    claim = await desk.file(**STRONG_EVIDENCE)

    await life.env.sleep(5 * DAY)
    assert (await claim.view()).escalated
    await claim.assign()
    approved = await claim.approve(note="Evidence checks out.")

    assert approved.state is ClaimState.APPROVED
    assert approved.decision is not None and approved.decision.by == "reviewer:rita"
    recovery_case_id = approved.decision.recovery_case_id
    assert recovery_case_id is not None and recovery_case_id.startswith("rc_")
    decided = await _mail(life, CONTACT, "was approved")
    assert recovery_case_id in decided and "Evidence checks out." in decided
    # The claimant recovers at the verified address, which the account does not hold yet.
    held = await _recover(life, recovery_case_id, NEW_PASSWORD)
    assert held.state is CaseState.HELD and held.hold_until is not None
    # Whoever was signed in (a hijacker, in a takeover) was signed out at the approval.
    assert signed_in.token is not None
    assert await life.directory.session(signed_in.token) is None
    # During the claim's hold (RECLAIM_CLAIM_RECOVERY_HOLD, 72 h) nothing else changes: the
    # old addresses are told what will, each with a link to stop it.
    await life.env.sleep(3 * DAY - 3600)
    assert await _contacts(life, account_id) == ("jane@example.com", "+14155550123")
    assert (await life.sign_in(CONTACT, NEW_PASSWORD)).token is None
    told = await _mail(life, "jane@example.com", "will receive its mail at j•••@e•••.net")
    assert f"/stop/{recovery_case_id}?token=" in told and CONTACT not in told
    await sms.wait_for("+14155550123", f"/stop/{recovery_case_id}?token=")

    await _past_the_hold(life, held.hold_until)

    assert (await _recovery_outcome(life, recovery_case_id)) is CaseState.COMPLETED
    assert await _contacts(life, account_id) == (CONTACT, None)
    assert (await life.sign_in(CONTACT, NEW_PASSWORD)).token is not None
    assert (await life.sign_in("jane", PASSWORD)).token is None
    # Now the old addresses are told their addresses were replaced.
    replaced = await _mail(life, "jane@example.com", "now receives its mail at j•••@e•••.net")
    assert CONTACT not in replaced
    await sms.wait_for("+14155550123", "contact details of jane were changed")
    final = await claim.closed()
    assert [e.action for e in final.timeline] == [
        "submitted",
        "escalated",
        "assigned",
        "approved",
    ]


async def test_a_stop_during_the_claims_hold_keeps_the_old_contacts_for_good(
    desk: SupportDesk, sms: SmsGateway
):
    life = desk.life
    account_id = await life.add_account(phone="+14155550123")
    claim = await desk.file(**STRONG_EVIDENCE)
    await claim.assign()
    recovery_case_id = (await claim.approve()).decision.recovery_case_id  # type: ignore[union-attr]
    assert recovery_case_id is not None
    held = await _recover(life, recovery_case_id, NEW_PASSWORD)
    assert held.hold_until is not None
    told = await _mail(life, "jane@example.com", "will receive its mail at j•••@e•••.net")
    stop = re.search(rf"/stop/{recovery_case_id}\?token=([\w-]{{43}})", told)
    assert stop is not None
    await life.env.sleep(DAY)

    stopped, filed = await life.services.stop_recovery(recovery_case_id, stop.group(1))

    assert stopped.contact.address == "jane@example.com" and filed is not None
    # The case is over: its hold's timer is gone, nothing is left to replace the contacts.
    assert (await _recovery_outcome(life, recovery_case_id)) is CaseState.CANCELLED
    assert await _contacts(life, account_id) == ("jane@example.com", "+14155550123")
    assert (await life.sign_in("jane", PASSWORD)).token is not None
    assert (await life.sign_in(CONTACT, NEW_PASSWORD)).token is None
    await _mail(life, "jane@example.com", filed.case_id)  # the claim the stop filed
    replaced = [m for m in life.mail.to("jane@example.com") if "now receives" in text_of(m)]
    assert replaced == []


async def test_a_handover_that_cannot_be_done_when_the_hold_ends_changes_nothing(
    desk: SupportDesk,
):
    life = desk.life
    account_id = await life.add_account(phone="+14155550123")
    claim = await desk.file(**STRONG_EVIDENCE)
    await claim.assign()
    recovery_case_id = (await claim.approve()).decision.recovery_case_id  # type: ignore[union-attr]
    assert recovery_case_id is not None
    held = await _recover(life, recovery_case_id, NEW_PASSWORD)
    await life.add_account("joe", CONTACT)  # meanwhile another account takes the address
    assert held.hold_until is not None

    await _past_the_hold(life, held.hold_until)

    assert (await _recovery_outcome(life, recovery_case_id)) is CaseState.CANCELLED
    assert await _contacts(life, account_id) == ("jane@example.com", "+14155550123")
    assert (await life.sign_in("jane", PASSWORD)).token is not None
    assert (await life.sign_in("jane", NEW_PASSWORD)).token is None
    failed = await _mail(life, CONTACT, "could not be moved to this address")
    assert claim.case_id in failed
    replaced = [m for m in life.mail.to("jane@example.com") if "now receives" in text_of(m)]
    assert replaced == []


async def test_without_a_claim_hold_the_contacts_are_replaced_at_approval(
    time_env: WorkflowEnvironment, tmp_path: Path, mail: MailSink, sms: SmsGateway
):
    async with lifecycle_stack(time_env, tmp_path, mail, sms, claim_recovery_hold=0) as life:
        desk = SupportDesk(life)
        account_id = await life.add_account(phone="+14155550123")
        claim = await desk.file(**STRONG_EVIDENCE)
        await claim.assign()
        recovery_case_id = (await claim.approve()).decision.recovery_case_id  # type: ignore[union-attr]
        assert recovery_case_id is not None

        assert await _contacts(life, account_id) == (CONTACT, None)
        await _mail(life, "jane@example.com", "now receives its mail at j•••@e•••.net")
        completed = await _recover(life, recovery_case_id, NEW_PASSWORD)
        assert completed.state is CaseState.COMPLETED
        assert (await life.sign_in(CONTACT, NEW_PASSWORD)).token is not None


@pytest.mark.parametrize(
    ("evidence", "risk"),
    [(STRONG_EVIDENCE, Risk.LOW), ({"registered_email": "jane@example.com"}, Risk.MEDIUM)],
)
async def test_a_reviewer_not_in_charge_cannot_approve_a_claim_assigned_to_someone_else(
    desk: SupportDesk, evidence: dict[str, Any], risk: Risk
):
    life = desk.life
    account_id = await life.add_account()
    claim = await desk.file(**evidence)
    assert (await claim.view()).risk is risk
    await claim.assign(by=REX)

    in_review = await claim.refusal(claim.approve(by=REVIEWER))
    await claim.ask("Which browser?", by=REX)
    awaiting = await claim.refusal(claim.approve(by=REVIEWER))

    for refused in (in_review, awaiting):
        assert (refused.type, refused.details[0]) == ("not_assignee", {"assignee": "rex"})
    view = await claim.view()
    assert (view.state, view.assignee, view.decision) == (ClaimState.AWAITING_CLAIMANT, "rex", None)
    assert life.account(account_id).email == "jane@example.com"  # nothing was handed over
    await claim.answer()
    approved = await claim.approve(by=REX)
    assert approved.state is ClaimState.APPROVED
    assert approved.decision is not None and approved.decision.recovery_case_id
    await life.mail.code_for(CONTACT)  # the claim's recovery case: the hold comes next
    assert life.account(account_id).email == "jane@example.com"  # until the hold ends


async def test_a_reviewers_high_risk_approval_waits_for_another_supervisor(desk: SupportDesk):
    life = desk.life
    account_id = await life.add_account()
    ban = await life.ban(account_id)
    claim = await desk.file(ClaimReason.BANNED)
    assert (await claim.view()).risk is Risk.HIGH
    await claim.assign()

    asked = await claim.approve(note="Appeal accepted.")

    assert asked.state is ClaimState.AWAITING_CONFIRMATION
    assert asked.approval_request is not None
    assert asked.approval_request.by == "reviewer:rita"
    assert asked.next_deadline == asked.approval_request.confirm_by
    assert life.account(account_id).status == AccountStatus.BANNED  # nothing applied yet
    assert (await claim.refusal(claim.confirm(by=REVIEWER))).type == "supervisor_required"
    assert (await claim.refusal(claim.approve())).type == "invalid_state"
    attrs = (await claim.handle.describe()).typed_search_attributes
    assert attrs.get(sa.CASE_STATE) == "awaiting_confirmation"
    claimant = await life.services.claims.claimant_view(claim.case_id, claim.filed.claim_token)
    assert claimant.state is ClaimState.IN_REVIEW  # to the claimant, still review

    confirmed = await claim.confirm(by=SUPERVISOR)

    assert confirmed.state is ClaimState.APPROVED
    assert confirmed.decision is not None
    assert (confirmed.decision.by, confirmed.decision.note) == (
        "supervisor:sam",
        "Appeal accepted.",
    )
    assert [e.action for e in confirmed.timeline][-3:] == [
        "asked a supervisor to confirm the approval",
        "confirmed the approval",
        "approved",
    ]
    assert life.account(account_id).status == AccountStatus.ACTIVE
    assert (await life.outcome(ban.case_id)).state is LifecycleState.LIFTED


async def test_another_reviewer_cannot_confirm_a_reviewers_high_risk_approval(
    desk: SupportDesk,
):
    """Two people, one of them a supervisor: a second reviewer (not the one who asked) is
    refused as a reviewer, and nothing is applied until a supervisor confirms."""
    life = desk.life
    account_id = await life.add_account()
    await life.ban(account_id)
    claim = await desk.file(ClaimReason.BANNED)
    await claim.assign()
    asked = await claim.approve(note="Appeal accepted.")
    assert asked.state is ClaimState.AWAITING_CONFIRMATION

    refused = await claim.refusal(claim.confirm(by=REX))

    assert refused.type == "supervisor_required", refused.message
    view = await claim.view()
    assert view.state is ClaimState.AWAITING_CONFIRMATION
    assert view.decision is None
    assert life.account(account_id).status == AccountStatus.BANNED
    confirmed = await claim.confirm(by=SUPERVISOR)  # the control: a supervisor may
    assert confirmed.state is ClaimState.APPROVED
    assert confirmed.decision is not None and confirmed.decision.by == "supervisor:sam"
    assert life.account(account_id).status == AccountStatus.ACTIVE


async def test_whoever_asks_for_an_approval_never_confirms_it(desk: SupportDesk):
    """A member of staff whose role became supervisor after asking still cannot confirm."""
    account_id = await desk.life.add_account()
    await desk.life.ban(account_id)
    claim = await desk.file(ClaimReason.BANNED)
    await claim.assign()
    await claim.approve()

    promoted = Reviewer(REVIEWER.id, REVIEWER.name, StaffRole.SUPERVISOR)
    refused = await claim.refusal(claim.confirm(by=promoted))

    assert refused.type == "same_person"
    assert "another supervisor" in refused.message
    assert (await claim.view()).state is ClaimState.AWAITING_CONFIRMATION
    assert (await claim.confirm(by=OTHER_SUPERVISOR)).state is ClaimState.APPROVED


async def test_an_unconfirmed_approval_lapses_back_to_review(desk: SupportDesk):
    life = desk.life
    account_id = await life.add_account()
    await life.ban(account_id)
    claim = await desk.file(ClaimReason.BANNED)
    await claim.assign()
    await claim.approve(note="Looks fine.")

    await life.days_pass(1.01)  # RECLAIM_APPROVAL_CONFIRM_WINDOW: one day by default

    view = await claim.view()
    assert view.state is ClaimState.IN_REVIEW
    assert view.approval_request is None
    assert view.timeline[-1].action == "approval lapsed"
    assert "rita" in (view.timeline[-1].detail or "")
    assert (await claim.refusal(claim.confirm())).type == "invalid_state"
    assert life.account(account_id).status == AccountStatus.BANNED
    # A supervisor may still decide it, or the reviewer may ask again.
    again = await claim.approve()
    assert again.state is ClaimState.AWAITING_CONFIRMATION
    rejected = await claim.reject("Ban stands.", by=SUPERVISOR)
    assert rejected.state is ClaimState.REJECTED


async def test_a_supervisors_high_risk_approval_applies_at_once(desk: SupportDesk):
    life = desk.life
    account_id = await life.add_account()
    await life.ban(account_id)
    claim = await desk.file(ClaimReason.BANNED)
    await claim.assign(by=SUPERVISOR)

    approved = await claim.approve(by=SUPERVISOR)

    assert approved.state is ClaimState.APPROVED
    assert life.account(account_id).status == AccountStatus.ACTIVE


async def test_a_deleted_account_is_restored_inside_its_grace_period_only(desk: SupportDesk):
    life = desk.life
    kept = await life.add_account()
    gone = await life.add_account("joe", "joe@example.com")
    kept_deletion = await life.deactivate(kept)
    gone_deletion = await life.deactivate(gone)
    await life.days_pass(10)
    restore = await desk.file(ClaimReason.DELETED, **STRONG_EVIDENCE)
    await restore.assign()

    await restore.approve()

    assert life.account(kept).status == AccountStatus.ACTIVE
    assert (await life.outcome(kept_deletion.case_id)).state is LifecycleState.REACTIVATED
    assert (await life.outcome(gone_deletion.case_id)).state is LifecycleState.PURGED
    too_late = await desk.file(ClaimReason.DELETED, username="joe")
    assert (await too_late.view()).evidence.account_status == "purged"
    await too_late.assign(by=SUPERVISOR)
    refused = await too_late.refusal(too_late.approve(by=SUPERVISOR))
    assert refused.type == "cannot_resolve"
    assert "purged" in refused.message
    assert (await too_late.view()).state is ClaimState.IN_REVIEW
    rejected = await too_late.reject("Deleted for good.", by=SUPERVISOR)
    assert rejected.state is ClaimState.REJECTED


async def test_transitions_that_make_no_sense_are_refused(desk: SupportDesk):
    await desk.life.add_account()
    claim = await desk.file(**STRONG_EVIDENCE)

    assert (await claim.refusal(claim.approve())).type == "invalid_state"  # nobody assigned
    assert (await claim.refusal(claim.ask("Why?"))).type == "invalid_state"
    assert (await claim.refusal(claim.answer())).type == "invalid_state"
    other = await claim.refusal(claim.assign(to="sam"))
    assert other.type == "supervisor_required"
    await claim.assign(by=SUPERVISOR, to="sam")
    assert (await claim.refusal(claim.reject("no", by=REVIEWER))).type == "not_assignee"
    await claim.reject("Not enough evidence.", by=SUPERVISOR)
    assert (await claim.refusal(claim.assign())).type in ("invalid_state",)
