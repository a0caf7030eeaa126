"""SupportCaseWorkflow: a support claim reviewed by people over hours or days.

submitted → in_review (assigned) ⇄ awaiting_claimant (questions asked) → approved | rejected,
or abandoned when the claimant does not answer in time. Timers escalate a claim nobody picked
up (first-response SLA) and one assigned but not decided (decision SLA). Approval applies the
resolution in activities and, for a takeover or a lost contact, starts a child self-service
recovery case to the verified address.

The two-person rule: a reviewer's approval of a high-risk claim does not apply it. The claim
waits in awaiting_confirmation until a supervisor other than the reviewer confirms it (then
it is applied) or the confirmation window ends (it lapses back to in_review).

What the claimant wrote (description, answers) and where to reach them stay in the database;
this history holds who did what and when, the evidence's results and the reviewers' words.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from reclaim.contracts import CaseError, Channel
    from reclaim.recovery.contracts import RecoveryInput, RecoveryStatus
    from reclaim.support.contracts import (
        ApprovalRequest,
        Approve,
        AssignRequest,
        CancelClaim,
        ClaimActivity,
        ClaimantView,
        ClaimCalls,
        ClaimClosing,
        ClaimInput,
        ClaimNotice,
        ClaimNoticeKind,
        ClaimReason,
        ClaimState,
        ClaimView,
        ConfirmApproval,
        Decision,
        Escalation,
        ProvideInfo,
        Question,
        QueueRowChange,
        Reject,
        ReleaseRequest,
        RequestInfo,
        Resolution,
        ResolveClaim,
        Reviewer,
        Risk,
        StaffRole,
        TimelineEntry,
    )
    from reclaim.temporal import search_attributes
    from reclaim.temporal.case_text import STATIC_DETAILS, at, current_details

from workflows.policies import ACTIVITY_TIMEOUT, LEDGER_RETRY, NOTICE_DEADLINE, NOTICE_RETRY
from workflows.recovery import RecoveryWorkflow

CLAIMANT = "claimant"
SYSTEM = "system"
DECIDING = (ClaimState.IN_REVIEW, ClaimState.AWAITING_CLAIMANT)
# The marker of the two-person rule. Before it, a reviewer's approval of a high-risk claim was
# refused by the validator, and a refused update leaves nothing in history: no stored history
# takes the new path, and every one made since carries the marker.
TWO_PERSON_RULE = "two-person-approval"
# The marker of lost-authenticator claims: before it, no claim had the reason. Asked only for
# such a claim (its approval always waits for a second person, and carries the factors to
# remove), so no stored history of another reason meets it.
LOST_FACTORS = "lost-authenticator-factors"
# The marker of the reviewers' queue in the database: every change (and the opening) writes the
# claim's row in the background. A claim begun before it never asks again (a patch is decided
# once per run): `reclaim cases rebuild-queue` fills its row in.
QUEUE_ROWS = "claim-queue-rows"


def _refusal(error: CaseError, message: str, **details: object) -> ApplicationError:
    return ApplicationError(message, details, type=error.value, non_retryable=True)


@workflow.defn(name=ClaimCalls.WORKFLOW)
class SupportCaseWorkflow:
    @workflow.init
    def __init__(self, claim: ClaimInput) -> None:
        self._claim = claim
        self._rules = claim.rules
        self._state = ClaimState.SUBMITTED
        self._assignee: str | None = None
        self._escalated = False
        self._questions: list[Question] = []
        self._rounds = 0  # rounds of questions asked
        self._timeline = [TimelineEntry(claim.opened_at, CLAIMANT, "submitted", claim.reason.value)]
        self._decision: Decision | None = None
        self._resolving = False
        self._approval_request: ApprovalRequest | None = None
        # The one deadline that matters now, what it is for, and a counter that moves at
        # every change so the run loop knows to set a new timer.
        self._deadline: datetime | None = claim.opened_at + timedelta(
            seconds=claim.rules.first_response_sla
        )
        self._deadline_for = "first_response"
        self._changes = 0
        self._notices: list[asyncio.Task[None]] = []
        self._queue_rows: list[asyncio.Task[None]] = []

    @workflow.run
    async def run(self, claim: ClaimInput) -> ClaimView:
        self._keep_queue_row()
        await self._first_step()
        self._show()
        self._tell_claimant(ClaimNoticeKind.RECEIVED)
        while self._state.is_open:
            seen, deadline = self._changes, self._deadline
            timeout = max(deadline - workflow.now(), timedelta(0)) if deadline else None
            try:
                await workflow.wait_condition(
                    self._moved_since(seen),
                    timeout=timeout,
                    timeout_summary=f"{self._deadline_for} deadline",
                )
            except TimeoutError:
                await self._deadline_passed()
        await workflow.wait_condition(workflow.all_handlers_finished)
        # A mail that could not go out within its day of retries does not hold the claim open.
        await asyncio.gather(*self._notices, return_exceptions=True)
        # Nor does a queue row that could not be written (the rebuild writes it again).
        await asyncio.gather(*self._queue_rows, return_exceptions=True)
        await workflow.execute_activity(
            ClaimActivity.RECORD_CLAIM,
            ClaimClosing(
                claim.case_id, self._state, workflow.now(), self._decision, self._timeline
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=LEDGER_RETRY,
            summary="record the decision and the timeline",
        )
        return self.staff_view()

    async def _first_step(self) -> None:
        """Nothing (and nothing in history): where the upgrade drill's build adds a timer that
        every running claim has passed (workflows/drill.py)."""

    # -- reviewers -------------------------------------------------------------------------

    @workflow.update(name=ClaimCalls.ASSIGN)
    def assign(self, request: AssignRequest) -> ClaimView:
        to = request.to or request.by.name
        self._assignee = to
        self._note(request.by, "assigned", to)
        if self._state is ClaimState.SUBMITTED:
            self._move_to(ClaimState.IN_REVIEW)
        if self._state is ClaimState.IN_REVIEW:
            self._set_deadline("decision", self._rules.decision_sla)
        else:
            self._move_to(self._state)  # a new assignee, nothing else
        return self.staff_view()

    @assign.validator
    def _can_assign(self, request: AssignRequest) -> None:
        self._refuse_unless(*self._open_states())
        if request.by.role is StaffRole.SUPERVISOR:
            return
        if request.to not in (None, request.by.name):
            raise _refusal(
                CaseError.SUPERVISOR_REQUIRED, "Only a supervisor assigns a claim to someone else."
            )
        if self._assignee not in (None, request.by.name):
            raise _refusal(
                CaseError.SUPERVISOR_REQUIRED,
                f"This claim is assigned to {self._assignee}: only a supervisor moves it, "
                f"or {self._assignee} releases it.",
                assignee=self._assignee,
            )

    @workflow.update(
        name=ClaimCalls.RELEASE,
        description="The assignee (or a supervisor) gives the claim back to the queue.",
    )
    def release(self, request: ReleaseRequest) -> ClaimView:
        self._note(request.by, "released", self._assignee)
        self._assignee = None
        self._move_to(self._state)
        return self.staff_view()

    @release.validator
    def _can_release(self, request: ReleaseRequest) -> None:
        self._refuse_unless(*DECIDING, ClaimState.AWAITING_CONFIRMATION)
        if self._assignee is None:
            raise _refusal(
                CaseError.INVALID_STATE, "Nobody is assigned to this claim.", assignee=None
            )
        self._refuse_unless_in_charge(request.by)

    @workflow.update(name=ClaimCalls.REQUEST_INFO)
    def request_info(self, request: RequestInfo) -> ClaimView:
        now = workflow.now()
        self._rounds += 1
        for text in request.questions:
            self._questions.append(Question(len(self._questions) + 1, text, now, request.by.label))
        self._note(request.by, "asked the claimant", f"{len(request.questions)} question(s)")
        self._move_to(ClaimState.AWAITING_CLAIMANT)
        self._set_deadline("claimant", self._rules.claimant_window)
        self._tell_claimant(
            ClaimNoticeKind.QUESTION,
            attempt=self._rounds,
            detail="\n".join(f"- {q}" for q in request.questions),
        )
        return self.staff_view()

    @request_info.validator
    def _can_request_info(self, request: RequestInfo) -> None:
        self._refuse_unless(ClaimState.IN_REVIEW)
        self._refuse_unless_in_charge(request.by)

    @workflow.update(name=ClaimCalls.APPROVE)
    async def approve(self, request: Approve) -> ClaimView:
        if self._needs_confirmation(request.by) and workflow.patched(TWO_PERSON_RULE):
            self._ask_for_confirmation(request)
            return self.staff_view()
        if self._claim.reason is ClaimReason.LOST_AUTHENTICATOR and workflow.patched(LOST_FACTORS):
            # Going without the account's second factors takes two people, a supervisor's
            # own approval included: another supervisor confirms it.
            self._ask_for_confirmation(request)
            return self.staff_view()
        self._resolving = True
        try:
            resolution = await self._resolve(request.by, request.remove_factors)
        finally:
            self._resolving = False
        if resolution.problem is not None:
            self._note(request.by, "could not approve", resolution.problem)
            raise _refusal(CaseError.CANNOT_RESOLVE, resolution.problem, state=self._state.value)
        if resolution.recovery_case_id is not None:
            await self._open_recovery_case(resolution)
        self._decide(ClaimState.APPROVED, request.by.label, request.note, resolution)
        return self.staff_view()

    @approve.validator
    def _can_approve(self, request: Approve) -> None:
        self._refuse_unless(*DECIDING)
        self._refuse_unless_in_charge(request.by)
        if self._claim.account_id is None:
            raise _refusal(
                CaseError.CANNOT_RESOLVE,
                "No account has this username: there is nothing to give back. Reject the claim.",
                state=self._state.value,
            )

    @workflow.update(
        name=ClaimCalls.CONFIRM_APPROVAL,
        description="A supervisor confirms a reviewer's approval of a high-risk claim.",
    )
    async def confirm_approval(self, request: ConfirmApproval) -> ClaimView:
        asked = self._approval_request
        assert asked is not None
        self._resolving = True
        try:
            resolution = await self._resolve(request.by, asked.remove_factors)
        finally:
            self._resolving = False
        if resolution.problem is not None:
            self._note(request.by, "could not approve", resolution.problem)
            raise _refusal(CaseError.CANNOT_RESOLVE, resolution.problem, state=self._state.value)
        if resolution.recovery_case_id is not None:
            await self._open_recovery_case(resolution)
        self._note(request.by, "confirmed the approval", f"asked by {asked.by}")
        self._approval_request = None
        note = request.note or asked.note
        self._decide(ClaimState.APPROVED, request.by.label, note, resolution)
        return self.staff_view()

    @confirm_approval.validator
    def _can_confirm(self, request: ConfirmApproval) -> None:
        self._refuse_unless(ClaimState.AWAITING_CONFIRMATION)
        asked = self._approval_request
        if request.by.role is not StaffRole.SUPERVISOR:
            raise _refusal(CaseError.SUPERVISOR_REQUIRED, "Only a supervisor confirms an approval.")
        if asked is not None and request.by.name == asked.by_name:
            raise _refusal(
                CaseError.SAME_PERSON,
                "You asked for this approval: another supervisor must confirm it.",
            )

    @workflow.update(name=ClaimCalls.REJECT)
    def reject(self, request: Reject) -> ClaimView:
        self._decide(ClaimState.REJECTED, request.by.label, request.reason)
        return self.staff_view()

    @reject.validator
    def _can_reject(self, request: Reject) -> None:
        self._refuse_unless(*DECIDING, ClaimState.AWAITING_CONFIRMATION)
        self._refuse_unless_in_charge(request.by)

    @workflow.update(
        name=ClaimCalls.CANCEL,
        description="An operator closes the claim without a decision (`reclaim cases cancel`).",
    )
    def cancel(self, request: CancelClaim) -> ClaimView:
        self._decide(ClaimState.CANCELLED, request.by, request.reason)
        return self.staff_view()

    @cancel.validator
    def _can_cancel(self, request: CancelClaim) -> None:
        self._refuse_unless(*self._open_states())

    # -- the claimant ----------------------------------------------------------------------

    @workflow.update(name=ClaimCalls.PROVIDE_INFO)
    def provide_info(self, answer: ProvideInfo) -> ClaimantView:
        self._questions = [
            q
            if q.answered_at
            else Question(q.n, q.text, q.asked_at, q.asked_by, answer.answered_at)
            for q in self._questions
        ]
        self._timeline.append(TimelineEntry(workflow.now(), CLAIMANT, "answered", None))
        self._move_to(ClaimState.IN_REVIEW)
        self._set_deadline("decision", self._rules.decision_sla)
        return self.claimant_view()

    @provide_info.validator
    def _can_take_answers(self, answer: ProvideInfo) -> None:
        self._refuse_unless(ClaimState.AWAITING_CLAIMANT)

    # -- queries ---------------------------------------------------------------------------

    @workflow.query(name=ClaimCalls.STAFF_VIEW, description="Everything a reviewer sees.")
    def staff_view(self) -> ClaimView:
        return ClaimView(
            case_id=self._claim.case_id,
            state=self._state,
            reason=self._claim.reason,
            risk=self._claim.risk,
            evidence=self._claim.evidence,
            assignee=self._assignee,
            escalated=self._escalated,
            opened_at=self._claim.opened_at,
            next_deadline=self._deadline if self._state.is_open else None,
            questions=list(self._questions),
            timeline=list(self._timeline),
            decision=self._decision,
            approval_request=self._approval_request,
            version=self._changes,
        )

    @workflow.query(
        name=ClaimCalls.CLAIMANT_VIEW,
        description="What the claimant sees: state, questions, decision (no evidence, no staff).",
    )
    def claimant_view(self) -> ClaimantView:
        decision = self._decision
        if decision is not None:  # decided by "support", not by a named reviewer
            decision = Decision(
                decision.outcome, decision.at, "support", decision.note, decision.recovery_case_id
            )
        awaiting = self._state is ClaimState.AWAITING_CLAIMANT
        # Waiting for a second member of staff is still review, to the claimant.
        confirming = self._state is ClaimState.AWAITING_CONFIRMATION
        return ClaimantView(
            case_id=self._claim.case_id,
            state=ClaimState.IN_REVIEW if confirming else self._state,
            questions=list(self._questions),
            answer_by=self._deadline if awaiting else None,
            decision=decision,
        )

    # -- helpers ---------------------------------------------------------------------------

    async def _deadline_passed(self) -> None:
        if self._resolving:  # an approval is being applied: let it decide
            await workflow.wait_condition(lambda: not self._resolving)
            return
        if self._state is ClaimState.AWAITING_CLAIMANT:
            self._decide(ClaimState.ABANDONED, SYSTEM, "no answer from the claimant in time")
            return
        if self._state is ClaimState.AWAITING_CONFIRMATION:
            asked = self._approval_request
            self._approval_request = None
            self._timeline.append(
                TimelineEntry(
                    workflow.now(),
                    SYSTEM,
                    "approval lapsed",
                    f"no supervisor confirmed {asked.by}'s approval in time" if asked else None,
                )
            )
            self._state = ClaimState.IN_REVIEW
            self._set_deadline("decision", self._rules.decision_sla)
            return
        level = self._deadline_for
        self._escalated = True
        self._timeline.append(TimelineEntry(workflow.now(), SYSTEM, "escalated", level))
        self._deadline = None
        self._move_to(self._state)
        self._notices.append(
            asyncio.create_task(
                workflow.execute_activity(
                    ClaimActivity.NOTIFY_ESCALATION,
                    Escalation(self._claim.case_id, level, workflow.now()),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    schedule_to_close_timeout=NOTICE_DEADLINE,
                    retry_policy=NOTICE_RETRY,
                    summary=f"tell the support leads ({level} SLA missed)",
                )
            )
        )

    async def _resolve(self, by: Reviewer, remove_factors: list[str] | None) -> Resolution:
        assert self._claim.account_id is not None
        chosen = None
        if self._claim.reason is ClaimReason.LOST_AUTHENTICATOR and workflow.patched(LOST_FACTORS):
            chosen = remove_factors
        try:
            resolution: Resolution = await workflow.execute_activity(
                ClaimActivity.RESOLVE_CLAIM,
                ResolveClaim(
                    self._claim.case_id,
                    self._claim.account_id,
                    self._claim.reason,
                    by,
                    workflow.now(),
                    chosen,
                ),
                result_type=Resolution,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=LEDGER_RETRY,
                summary=f"apply the approval ({self._claim.reason.value})",
            )
        except ActivityError as err:
            raise _refusal(
                CaseError.CANNOT_RESOLVE,
                "The approval could not be applied; try again.",
                state=self._state.value,
            ) from err
        return resolution

    async def _open_recovery_case(self, resolution: Resolution) -> None:
        """The self-service case that sends a code to the verified address: a child that
        lives on whatever becomes of this claim."""
        assert resolution.recovery_case_id and resolution.destination
        assert self._claim.account_id is not None
        case = RecoveryInput(
            case_id=resolution.recovery_case_id,
            account_id=self._claim.account_id,
            channel=Channel.EMAIL,
            destination=resolution.destination,
            opened_at=workflow.now(),
            rules=self._rules.recovery,
        )
        opening = RecoveryStatus.at_opening(case)
        await workflow.start_child_workflow(
            RecoveryWorkflow.run,
            case,
            id=case.case_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=search_attributes.self_service_case(
                opening.state, case.channel, opening.next_deadline
            ),
            static_summary=f"Self-service recovery opened by support claim {self._claim.case_id}",
            static_details=STATIC_DETAILS[search_attributes.SELF_SERVICE],
        )

    def _needs_confirmation(self, by: Reviewer) -> bool:
        return self._claim.risk is Risk.HIGH and by.role is not StaffRole.SUPERVISOR

    def _ask_for_confirmation(self, request: Approve) -> None:
        """The two-person rule: the approval waits for a supervisor who is not its author."""
        now = workflow.now()
        window = self._rules.confirm_window
        self._approval_request = ApprovalRequest(
            request.by.label,
            request.by.name,
            now,
            request.note,
            now + timedelta(seconds=window),
            request.remove_factors,
        )
        self._note(request.by, "asked a supervisor to confirm the approval", request.note)
        self._state = ClaimState.AWAITING_CONFIRMATION
        self._set_deadline("confirmation", window)

    def _decide(
        self,
        outcome: ClaimState,
        by: str,
        note: str | None,
        resolution: Resolution | None = None,
    ) -> None:
        recovery_case_id = resolution.recovery_case_id if resolution else None
        self._decision = Decision(outcome, workflow.now(), by, note, recovery_case_id)
        self._timeline.append(TimelineEntry(workflow.now(), by, outcome.value, note))
        self._deadline = None
        self._move_to(outcome)
        self._tell_claimant(
            {
                ClaimState.APPROVED: ClaimNoticeKind.APPROVED,
                ClaimState.REJECTED: ClaimNoticeKind.REJECTED,
                ClaimState.CANCELLED: ClaimNoticeKind.CANCELLED,
            }.get(outcome, ClaimNoticeKind.ABANDONED),
            detail=note,
            recovery_case_id=recovery_case_id,
        )

    def _tell_claimant(
        self,
        kind: ClaimNoticeKind,
        *,
        attempt: int = 0,
        detail: str | None = None,
        recovery_case_id: str | None = None,
    ) -> None:
        """Mail the claimant in the background: a slow mail server never holds a decision."""
        self._notices.append(
            asyncio.create_task(
                workflow.execute_activity(
                    ClaimActivity.NOTIFY_CLAIMANT,
                    ClaimNotice(self._claim.case_id, kind, attempt, detail, recovery_case_id),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    schedule_to_close_timeout=NOTICE_DEADLINE,
                    retry_policy=NOTICE_RETRY,
                    summary=f"mail the claimant ({kind.value})",
                )
            )
        )

    def _note(self, by: Reviewer, action: str, detail: str | None) -> None:
        self._timeline.append(TimelineEntry(workflow.now(), by.label, action, detail))

    def _moved_since(self, seen: int) -> Callable[[], bool]:
        return lambda: self._changes != seen

    def _set_deadline(self, what: str, seconds: int) -> None:
        self._deadline = workflow.now() + timedelta(seconds=seconds)
        self._deadline_for = what
        self._move_to(self._state)

    def _move_to(self, state: ClaimState) -> None:
        """The one place state, deadline and the search attributes change together."""
        self._state = state
        self._changes += 1
        workflow.upsert_search_attributes(
            search_attributes.claim_change(
                state.value,
                self._deadline if state.is_open else None,
                self._assignee,
                self._escalated,
            )
        )
        self._keep_queue_row()
        self._show()

    def _keep_queue_row(self) -> None:
        """The claim's row in the reviewers' queue, as of this change, written in the
        background: rows may land late or out of order, and a row never overwrites a newer
        version (`reclaim.support.queue_rows`). Nothing waits for it but the run's end."""
        if not workflow.patched(QUEUE_ROWS):
            return
        change = QueueRowChange(
            case_id=self._claim.case_id,
            version=self._changes,
            state=self._state.value,
            reason=self._claim.reason.value,
            risk=self._claim.risk.value,
            assignee=self._assignee,
            escalated=self._escalated,
            opened_at=self._claim.opened_at,
            next_deadline=self._deadline if self._state.is_open else None,
        )
        self._queue_rows.append(
            asyncio.create_task(
                workflow.execute_activity(
                    ClaimActivity.KEEP_QUEUE_ROW,
                    change,
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    schedule_to_close_timeout=NOTICE_DEADLINE,
                    retry_policy=LEDGER_RETRY,
                    summary=f"queue row v{change.version} ({change.state})",
                )
            )
        )

    def _show(self) -> None:
        """The line the Web UI shows as this claim's current details."""
        workflow.set_current_details(
            current_details(
                self._state.value,
                "ESCALATED" if self._escalated else None,
                f"assigned to {self._assignee}" if self._assignee else "unassigned",
                f"{self._claim.risk.value} risk",
                f"{self._deadline_for} deadline {at(self._deadline)}"
                if self._deadline is not None and self._state.is_open
                else None,
            )
        )

    def _open_states(self) -> tuple[ClaimState, ...]:
        return (ClaimState.SUBMITTED, *DECIDING, ClaimState.AWAITING_CONFIRMATION)

    def _refuse_unless(self, *states: ClaimState) -> None:
        if self._state not in states or self._resolving:
            raise _refusal(
                CaseError.INVALID_STATE,
                f"This claim is {self._state.value}: that cannot be done now.",
                state=self._state.value,
            )

    def _refuse_unless_in_charge(self, by: Reviewer) -> None:
        if by.role is not StaffRole.SUPERVISOR and by.name != self._assignee:
            held = (
                f"This claim is assigned to {self._assignee}"
                if self._assignee
                else "Nobody is assigned to this claim"
            )
            raise _refusal(
                CaseError.NOT_ASSIGNEE,
                f"{held}: assign it to yourself first.",
                assignee=self._assignee,
            )
