"""The support claim's state machine as a stateful property: random sequences of assigning
(to oneself or, by a supervisor, to someone else), questions and answers, approvals (a
reviewer's approval of a high-risk claim waits for a supervisor's confirmation and lapses
back to review when nobody gives it in time), confirmations, rejections, an operator's cancel
and time passing past the first-response, decision, claimant and confirmation deadlines, by
two reviewers and a supervisor, run on the time-skipping server against a small reference
model of the claim's rules.

The activities are doubles that remember what the claimant and the support leads were told.
Claims are for a deleted or banned account, so an approval opens no recovery case; one drawn
as unresolvable answers approvals with the reason it cannot be applied (as a purged account
does)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule, run_state_machine_as_test
from temporalio import activity

from reclaim.contracts import CaseError
from reclaim.security import CLAIM_CASE_PREFIX, new_case_id
from reclaim.support.contracts import (
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
    ClaimRules,
    ClaimState,
    ClaimView,
    ConfirmApproval,
    ContactMatch,
    Escalation,
    Evidence,
    ProvideInfo,
    QueueRowChange,
    Reject,
    ReleaseRequest,
    RequestInfo,
    Resolution,
    ResolveClaim,
    Reviewer,
    Risk,
    StaffRole,
)
from tests.workflows.properties import (
    ACCEPTED,
    CaseMachine,
    Expected,
    World,
    machine_settings,
    near,
    time_skipping_world,
)
from workflows.support import SupportCaseWorkflow

RITA = Reviewer(1, "rita", StaffRole.REVIEWER)
REX = Reviewer(2, "rex", StaffRole.REVIEWER)
SAM = Reviewer(3, "sam", StaffRole.SUPERVISOR)
STAFF = {member.name: member for member in (RITA, REX, SAM)}
# Who acts: most often whoever the claim is assigned to (rita while nobody is), else anyone.
ACTORS = st.sampled_from(["assignee", "assignee", "rita", "rex", "sam"])
# What happens, the most common first: assigning (most often to oneself), questions and
# answers, decisions, and now and then an operator's cancel (it ends the claim).
ACTIONS = st.sampled_from(
    ["assign"] * 3
    + ["assign to rita", "assign to rex", "assign to sam"]
    + ["release"]
    + ["ask"] * 3
    + ["answer"] * 3
    + ["approve"] * 2
    + ["confirm"] * 2
    + ["reject", "cancel", "nothing"]
)
OPERATOR = "operator:olivia"
DECIDING = (ClaimState.IN_REVIEW, ClaimState.AWAITING_CLAIMANT)
OPEN = (ClaimState.SUBMITTED, *DECIDING, ClaimState.AWAITING_CONFIRMATION)
HOUR, DAY = 3600, 86_400

# Random deadlines, the defaults first (hypothesis shrinks towards the first choice).
RULES = st.builds(
    ClaimRules,
    first_response_sla=st.sampled_from([DAY, HOUR]),
    decision_sla=st.sampled_from([3 * DAY, 2 * HOUR]),
    claimant_window=st.sampled_from([7 * DAY, 2 * HOUR]),
    confirm_window=st.sampled_from([DAY, 2 * HOUR]),
)
# How long everybody waits before a step: mostly not at all or a little, now and then until
# just past the claim's next deadline, or a long while.
WAIT = st.one_of(
    *[st.just(0)] * 8,
    *[st.integers(1, HOUR)] * 4,
    st.just("deadline"),
    st.integers(HOUR, 8 * DAY),
)
PURGED = "The account was purged: it cannot be restored."


@dataclass
class SupportDesk:
    """Activity doubles: approvals applied (or refused for the claims in `unresolvable`),
    what the claimant and the support leads were told, the claims recorded."""

    unresolvable: set[str] = field(default_factory=set)
    resolved: list[str] = field(default_factory=list)
    told: list[ClaimNotice] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)
    recorded: list[ClaimClosing] = field(default_factory=list)
    # Each claim's queue row: the newest version delivered wins (as `QueueRows.upsert`).
    rows: dict[str, QueueRowChange] = field(default_factory=dict)

    @activity.defn(name=ClaimActivity.RESOLVE_CLAIM)
    async def resolve_claim(self, request: ResolveClaim) -> Resolution:
        if request.case_id in self.unresolvable:
            return Resolution(problem=PURGED)
        self.resolved.append(request.case_id)
        return Resolution()

    @activity.defn(name=ClaimActivity.NOTIFY_CLAIMANT)
    async def notify_claimant(self, notice: ClaimNotice) -> None:
        self.told.append(notice)

    @activity.defn(name=ClaimActivity.NOTIFY_ESCALATION)
    async def notify_escalation(self, escalation: Escalation) -> None:
        self.escalations.append(escalation)

    @activity.defn(name=ClaimActivity.RECORD_CLAIM)
    async def record_claim(self, closing: ClaimClosing) -> None:
        self.recorded.append(closing)

    @activity.defn(name=ClaimActivity.KEEP_QUEUE_ROW)
    async def keep_queue_row(self, change: QueueRowChange) -> None:
        kept = self.rows.get(change.case_id)
        if kept is None or kept.version < change.version:
            self.rows[change.case_id] = change

    def activities(self) -> list[Any]:
        return [
            self.resolve_claim,
            self.notify_claimant,
            self.notify_escalation,
            self.record_claim,
            self.keep_queue_row,
        ]


@dataclass(frozen=True)
class Setup:
    """What an example's claims are: the claim's own facts and its deadlines."""

    reason: ClaimReason
    risk: Risk
    known: bool  # someone has the username
    resolvable: bool
    rules: ClaimRules


@dataclass
class ClaimModel:
    """The claim's rules, written down again as plainly as possible."""

    setup: Setup
    deadline: datetime | None
    deadline_for: str = "first_response"
    state: ClaimState = ClaimState.SUBMITTED
    assignee: str | None = None
    escalated: bool = False
    questions: int = 0
    rounds: int = 0
    decision: tuple[ClaimState, str] | None = None
    told: Counter[tuple[ClaimNoticeKind, int]] = field(
        default_factory=lambda: Counter({(ClaimNoticeKind.RECEIVED, 0): 1})
    )
    escalations: list[str] = field(default_factory=list)
    asked_by: str | None = None  # the reviewer whose approval waits for a supervisor

    @property
    def is_open(self) -> bool:
        return self.state in OPEN

    def moments(self) -> list[datetime | None]:
        return [self.deadline]

    def target(self, name: str) -> datetime | None:
        return self.deadline

    def time_passes(self, now: datetime) -> None:
        # A lapsed approval sets the decision deadline, which may have passed too.
        while self.is_open and self.deadline is not None and now >= self.deadline:
            self._deadline_passed(self.deadline)

    def _deadline_passed(self, deadline: datetime) -> None:
        if self.state is ClaimState.AWAITING_CLAIMANT:  # no answer in time
            self._decide(ClaimState.ABANDONED, "system", ClaimNoticeKind.ABANDONED)
            return
        if self.state is ClaimState.AWAITING_CONFIRMATION:  # the approval lapses
            self.state, self.asked_by = ClaimState.IN_REVIEW, None
            self._set_deadline("decision", self.setup.rules.decision_sla, deadline)
            return
        # Nobody picked it up, or nobody decided: the claim escalates, once per deadline.
        self.escalated = True
        self.escalations.append(self.deadline_for)
        self.deadline = None

    # -- each call, as the rules say ---------------------------------------------------

    def _refuse_unless(self, *states: ClaimState) -> Expected | None:
        if self.state not in states:
            return Expected(CaseError.INVALID_STATE, {"state": self.state.value})
        return None

    def _refuse_unless_in_charge(self, by: Reviewer) -> Expected | None:
        if by.role is not StaffRole.SUPERVISOR and by.name != self.assignee:
            return Expected(CaseError.NOT_ASSIGNEE, {"assignee": self.assignee})
        return None

    def _set_deadline(self, what: str, seconds: int, now: datetime) -> None:
        self.deadline, self.deadline_for = now + timedelta(seconds=seconds), what

    def _decide(self, outcome: ClaimState, by: str, kind: ClaimNoticeKind) -> None:
        self.state, self.decision, self.deadline = outcome, (outcome, by), None
        self.asked_by = None
        self.told[(kind, 0)] += 1

    def assign(self, by: Reviewer, to: str | None, now: datetime) -> Expected:
        if refused := self._refuse_unless(*OPEN):
            return refused
        if to not in (None, by.name) and by.role is not StaffRole.SUPERVISOR:
            return Expected(CaseError.SUPERVISOR_REQUIRED)
        if self.assignee not in (None, by.name) and by.role is not StaffRole.SUPERVISOR:
            return Expected(CaseError.SUPERVISOR_REQUIRED)  # only a supervisor moves it
        self.assignee = to or by.name
        if self.state is ClaimState.SUBMITTED:
            self.state = ClaimState.IN_REVIEW
        if self.state is ClaimState.IN_REVIEW:
            self._set_deadline("decision", self.setup.rules.decision_sla, now)
        return ACCEPTED

    def release(self, by: Reviewer) -> Expected:
        if refused := self._refuse_unless(*DECIDING, ClaimState.AWAITING_CONFIRMATION):
            return refused
        if self.assignee is None:
            return Expected(CaseError.INVALID_STATE)
        if refused := self._refuse_unless_in_charge(by):
            return refused
        self.assignee = None
        return ACCEPTED

    def ask(self, by: Reviewer, now: datetime) -> Expected:
        refused = self._refuse_unless(ClaimState.IN_REVIEW) or self._refuse_unless_in_charge(by)
        if refused:
            return refused
        self.state = ClaimState.AWAITING_CLAIMANT
        self.questions += 1
        self.rounds += 1
        self._set_deadline("claimant", self.setup.rules.claimant_window, now)
        self.told[(ClaimNoticeKind.QUESTION, self.rounds)] += 1
        return ACCEPTED

    def answer(self, now: datetime) -> Expected:
        if refused := self._refuse_unless(ClaimState.AWAITING_CLAIMANT):
            return refused
        self.state = ClaimState.IN_REVIEW
        self._set_deadline("decision", self.setup.rules.decision_sla, now)
        return ACCEPTED

    def approve(self, by: Reviewer, now: datetime) -> Expected:
        refused = self._refuse_unless(*DECIDING) or self._refuse_unless_in_charge(by)
        if refused:
            return refused
        if not self.setup.known:
            return Expected(CaseError.CANNOT_RESOLVE, {"state": self.state.value})
        if self.setup.risk is Risk.HIGH and by.role is not StaffRole.SUPERVISOR:
            # The two-person rule: it waits for a supervisor, within the window.
            self.state, self.asked_by = ClaimState.AWAITING_CONFIRMATION, by.name
            self._set_deadline("confirmation", self.setup.rules.confirm_window, now)
            return ACCEPTED
        return self._apply(by)

    def confirm(self, by: Reviewer) -> Expected:
        if refused := self._refuse_unless(ClaimState.AWAITING_CONFIRMATION):
            return refused
        if by.role is not StaffRole.SUPERVISOR:
            return Expected(CaseError.SUPERVISOR_REQUIRED)
        if by.name == self.asked_by:
            return Expected(CaseError.SAME_PERSON)
        return self._apply(by)

    def _apply(self, by: Reviewer) -> Expected:
        if not self.setup.resolvable:  # the claim stays open, for a rejection
            return Expected(CaseError.CANNOT_RESOLVE, {"state": self.state.value})
        self.asked_by = None
        self._decide(ClaimState.APPROVED, by.label, ClaimNoticeKind.APPROVED)
        return ACCEPTED

    def reject(self, by: Reviewer) -> Expected:
        refused = self._refuse_unless(*DECIDING, ClaimState.AWAITING_CONFIRMATION)
        refused = refused or self._refuse_unless_in_charge(by)
        if refused:
            return refused
        self._decide(ClaimState.REJECTED, by.label, ClaimNoticeKind.REJECTED)
        return ACCEPTED

    def cancel(self) -> Expected:
        if refused := self._refuse_unless(*OPEN):
            return refused
        self._decide(ClaimState.CANCELLED, OPERATOR, ClaimNoticeKind.CANCELLED)
        return ACCEPTED


SETUPS = st.builds(
    Setup,
    reason=st.sampled_from([ClaimReason.DELETED, ClaimReason.BANNED]),
    risk=st.sampled_from([Risk.LOW, Risk.MEDIUM, Risk.HIGH]),
    known=st.sampled_from([True, True, True, False]),
    resolvable=st.sampled_from([True, True, True, False]),
    rules=RULES,
)


class ClaimMachine(CaseMachine):
    """A support desk working claims, one after another."""

    def __init__(self, world: World, desk: SupportDesk) -> None:
        super().__init__(world)
        self.desk = desk
        self.case_id = ""
        self._model: ClaimModel | None = None
        self.example_setup: Setup | None = None
        self.claims = 0

    @property
    def model(self) -> ClaimModel:
        assert self._model is not None
        return self._model

    # -- the desk's steps -----------------------------------------------------------------

    @initialize(setup=SETUPS)
    def a_claim_is_filed(self, setup: Setup) -> None:
        self.example_setup, self.claims = setup, 0
        self._open(setup)

    @rule(after=WAIT, who=ACTORS, action=ACTIONS)
    def someone_acts(self, after: str | int, who: str, action: str) -> None:
        """Time passes, then a member of staff assigns the claim (to themselves or to
        someone), asks the claimant a question, approves or rejects it; the claimant
        answers; an operator cancels the claim; or nobody does anything. (One rule with
        weighted actions rather than a rule each: swarm testing would otherwise leave most
        bounded examples without the steps that make a claim move.)"""
        if (now := self.begin(f"{action} by {who}", after)) is None or action == "nothing":
            return
        model, was_open = self.model, self.model.is_open
        by = STAFF[(model.assignee or "rita") if who == "assignee" else who]
        request: object
        result_type: type = ClaimView
        if action.startswith("assign"):
            to = None if action == "assign" else action.removeprefix("assign to ")
            expected = model.assign(by, to, now)
            update, request = ClaimCalls.ASSIGN, AssignRequest(by, to)
        elif action == "release":
            expected = model.release(by)
            update, request = ClaimCalls.RELEASE, ReleaseRequest(by)
        elif action == "ask":
            expected = model.ask(by, now)
            update = ClaimCalls.REQUEST_INFO
            request = RequestInfo(by, ["Which city did you last sign in from?"])
        elif action == "answer":
            expected = model.answer(now)
            update, request, result_type = ClaimCalls.PROVIDE_INFO, ProvideInfo(now), ClaimantView
        elif action == "approve":
            expected = model.approve(by, now)
            update, request = ClaimCalls.APPROVE, Approve(by, "ok")
        elif action == "confirm":
            expected = model.confirm(by)
            update, request = ClaimCalls.CONFIRM_APPROVAL, ConfirmApproval(by, None)
        elif action == "reject":
            expected = model.reject(by)
            update, request = ClaimCalls.REJECT, Reject(by, "no")
        else:
            expected = model.cancel()
            update, request = ClaimCalls.CANCEL, CancelClaim(OPERATOR, "filed twice")
        got = self.update(update, request, result_type=result_type)
        self.same(action.split()[0], expected, got, was_open)

    # -- what the desk and the claimant see ----------------------------------------------

    @invariant()
    def the_claim_shows_what_the_rules_say(self) -> None:
        if self._model is None or not self.unchecked:
            return
        self.unchecked = False
        model, handle = self.model, self.handle
        view: ClaimView = self.world.poll(
            lambda: handle.query(ClaimCalls.STAFF_VIEW, result_type=ClaimView),
            lambda v: v.state is model.state and v.escalated is model.escalated,
        )
        assert view.assignee == model.assignee
        assert near(view.next_deadline, model.deadline if model.is_open else None)
        assert len(view.questions) == model.questions
        decision = view.decision and (view.decision.outcome, view.decision.by)
        assert decision == model.decision
        # What the claimant and the support leads were told (the mail goes out in the
        # background: read until it has).
        self.world.poll(lambda: _settle(), lambda _: self._told() == model.told)
        self.world.poll(
            lambda: _settle(),
            lambda _: (
                [e.level for e in self.desk.escalations if e.case_id == self.case_id]
                == model.escalations
            ),
        )
        resolved = self.desk.resolved.count(self.case_id)
        assert resolved == (model.state is ClaimState.APPROVED)
        # The queue's row ends at what the claim shows (written in the background).
        self.world.poll(
            lambda: _settle(), lambda _: self._row() == (view.state.value, view.assignee)
        )

    # -- helpers -------------------------------------------------------------------------

    def _row(self) -> tuple[str, str | None] | None:
        row = self.desk.rows.get(self.case_id)
        return (row.state, row.assignee) if row else None

    def open_next_case(self) -> None:
        """The next claim is like the last one, a risk level higher (high turns to low)."""
        setup = self.example_setup
        assert setup is not None
        self.claims += 1
        risks = list(Risk)
        risk = risks[(risks.index(setup.risk) + self.claims) % len(risks)]
        self._open(Setup(setup.reason, risk, setup.known, setup.resolvable, setup.rules))

    def _open(self, setup: Setup) -> None:
        now = self.world.now()
        self.case_id = new_case_id(CLAIM_CASE_PREFIX)
        if not setup.resolvable:
            self.desk.unresolvable.add(self.case_id)
        found = setup.known
        claim = ClaimInput(
            case_id=self.case_id,
            account_id=7 if found else None,
            reason=setup.reason,
            risk=setup.risk if found else Risk.HIGH,
            evidence=Evidence(
                account_found=found,
                account_status=setup.reason.value if found else None,
                account_age_days=400 if found else None,
                passwords_given=1,
                passwords_matched=int(found and setup.risk is not Risk.HIGH),
                registered_email=ContactMatch.CURRENT if found else ContactMatch.NO_MATCH,
                registered_phone=ContactMatch.NOT_GIVEN,
            ),
            opened_at=now,
            rules=setup.rules,
        )
        handle = self.world.run(
            self.world.env.client.start_workflow(
                SupportCaseWorkflow.run,
                claim,
                id=self.case_id,
                task_queue=self.world.task_queue,
                execution_timeout=timedelta(days=60),
            )
        )
        self.handles.append(handle)
        deadline = now + timedelta(seconds=setup.rules.first_response_sla)
        self._model = ClaimModel(setup if found else _high_risk(setup), deadline)
        self.unchecked = True

    def _told(self) -> Counter[tuple[ClaimNoticeKind, int]]:
        return Counter((n.kind, n.attempt) for n in self.desk.told if n.case_id == self.case_id)


def _high_risk(setup: Setup) -> Setup:
    """An unknown username always makes a high-risk claim."""
    return Setup(setup.reason, Risk.HIGH, setup.known, setup.resolvable, setup.rules)


async def _settle() -> None:
    """A short pause for the background notices to reach the doubles."""
    await asyncio.sleep(0.005)


def test_the_claim_rules_hold_in_any_sequence():
    desk = SupportDesk()
    with time_skipping_world(
        workflows=[SupportCaseWorkflow], activities=desk.activities()
    ) as world:
        run_state_machine_as_test(
            lambda: ClaimMachine(world, desk),
            settings=machine_settings(examples=30, steps=20),
        )
