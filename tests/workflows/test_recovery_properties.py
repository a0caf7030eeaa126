"""The self-service rules as a stateful property: random sequences of opening a case, right,
stale and wrong codes, resends, time passing (past the cooldown, the code's lifetime, the
reset window, the case TTL) and new passwords with the right or a wrong reset token, run on
the time-skipping server against a small reference model of the rules in `RecoveryRules`.

Each example draws limits and whether the identifier has an account, and opens cases with
them on one server and worker shared by the whole test (tests/workflows/properties.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule, run_state_machine_as_test

from reclaim.contracts import CaseError, Channel
from reclaim.recovery.contracts import (
    CaseState,
    CodeAccepted,
    RecoveryInput,
    RecoveryRules,
    RecoveryStatus,
    SetPassword,
    SubmitCode,
)
from reclaim.security import new_case_id
from tests.workflows.harness import KEYS, Ledger
from tests.workflows.properties import (
    ACCEPTED,
    MARGIN,
    CaseMachine,
    Expected,
    World,
    machine_settings,
    near,
    time_skipping_world,
)
from workflows.recovery import RecoveryWorkflow

ACCOUNT_ID = 7

# Random limits, the defaults first (hypothesis shrinks towards the first choice). The case
# TTL is mostly longer than the code's lifetime, as configured in practice.
RULES = st.builds(
    RecoveryRules,
    code_ttl=st.sampled_from([600, 300, 60]),
    max_attempts=st.sampled_from([5, 3, 2, 1]),
    resend_cooldown=st.sampled_from([60, 30, 0]),
    max_resends=st.sampled_from([3, 2, 1, 0]),
    reset_window=st.sampled_from([900, 120]),
    case_ttl=st.sampled_from([3600, 1800, 600]),
)
# How long the person waits before a step: mostly not at all or a little, often until just
# past the next cooldown or the code's lifetime, now and then past the case's deadline or a
# long while (that ends the case).
WAIT = st.one_of(
    *[st.just(0)] * 4,
    *[st.integers(1, 120)] * 2,
    *[st.sampled_from(["cooldown", "code"])] * 3,
    st.sampled_from(["deadline", 5000]),
)
# What the person does then, the most common first.
ACTIONS = st.sampled_from(
    ["code just sent"] * 3
    + ["code wrong"] * 3
    + ["code sent before"]
    + ["resend"] * 3
    + ["password with the token"] * 2
    + ["password with a forged token", "nothing"]
)


@dataclass
class RecoveryModel:
    """The self-service rules, written down again as plainly as possible."""

    rules: RecoveryRules
    known: bool  # an account exists: only then can a code be right
    issued_at: datetime
    deadline: datetime
    state: CaseState = CaseState.AWAITING_CODE
    resends: int = 0
    wrong_codes: int = 0
    reset_expires_at: datetime | None = None
    token: str | None = None  # the reset token a right code was answered with
    tried: set[str] = field(default_factory=set)  # wrong codes counted since the last send

    @property
    def is_open(self) -> bool:
        return self.state in (CaseState.AWAITING_CODE, CaseState.VERIFIED)

    @property
    def code_expires_at(self) -> datetime:
        return self.issued_at + timedelta(seconds=self.rules.code_ttl)

    @property
    def resend_available_at(self) -> datetime | None:
        """The cooldown doubles with each resend; None once none are left."""
        if self.resends >= self.rules.max_resends:
            return None
        return self.issued_at + timedelta(seconds=self.rules.resend_cooldown * 2**self.resends)

    def moments(self) -> list[datetime | None]:
        return [self.code_expires_at, self.resend_available_at, self.deadline]

    def target(self, name: str) -> datetime | None:
        return {
            "cooldown": self.resend_available_at,
            "code": self.code_expires_at,
            "deadline": self.deadline,
        }[name]

    def time_passes(self, now: datetime) -> None:
        # The case ends at its deadline: the case TTL after the last code while it waits
        # for a code, the reset window once a code was right.
        if self.is_open and now >= self.deadline:
            self.state = CaseState.EXPIRED

    def _takes_codes(self) -> Expected | None:
        if self.state is CaseState.LOCKED:
            return Expected(CaseError.CASE_LOCKED, {"attempts_left": 0})
        if self.state is not CaseState.AWAITING_CODE:
            return Expected(CaseError.INVALID_STATE, {"state": self.state.value})
        return None

    def submit(
        self, code: str, right: bool, token: str, now: datetime, *, replaced: bool = False
    ) -> Expected:
        """`replaced`: the code of an earlier send (not the current one's)."""
        if (refused := self._takes_codes()) is not None:
            return refused
        left = self.rules.max_attempts - self.wrong_codes
        if code in self.tried:  # the same wrong code again (a retry): counted once
            return Expected(CaseError.INVALID_CODE, {"attempts_left": left})
        if replaced and self.known:  # told a newer code was sent; it costs no attempt
            return Expected(CaseError.CODE_REPLACED, {"attempts_left": left})
        if now >= self.code_expires_at:
            return Expected(CaseError.CODE_EXPIRED)  # and it costs no attempt
        if right and self.known:
            self.state, self.token = CaseState.VERIFIED, token
            self.reset_expires_at = now + timedelta(seconds=self.rules.reset_window)
            self.deadline = self.reset_expires_at
            return ACCEPTED
        self.wrong_codes += 1
        self.tried.add(code)
        left = self.rules.max_attempts - self.wrong_codes
        if left <= 0:
            self.state = CaseState.LOCKED
            return Expected(CaseError.CASE_LOCKED, {"attempts_left": 0})
        return Expected(CaseError.INVALID_CODE, {"attempts_left": left})

    def resend(self, now: datetime) -> Expected:
        if (refused := self._takes_codes()) is not None:
            return refused
        available_at = self.resend_available_at
        if available_at is None:
            return Expected(CaseError.RESEND_LIMIT)
        if now < available_at:
            return Expected(CaseError.RESEND_COOLDOWN)
        self.resends += 1
        self.issued_at = now  # the previous code dies, the case TTL starts again
        self.tried.clear()
        self.deadline = now + timedelta(seconds=self.rules.case_ttl)
        return ACCEPTED

    def set_password(self, token: str) -> Expected:
        if self.token is None or token != self.token or self.state is CaseState.COMPLETED:
            return Expected(CaseError.INVALID_TOKEN)  # a reset token works once
        if self.state is CaseState.EXPIRED:
            return Expected(CaseError.RESET_EXPIRED)
        if self.state is not CaseState.VERIFIED:
            return Expected(CaseError.INVALID_STATE)
        self.state = CaseState.COMPLETED
        return ACCEPTED


class RecoveryCaseMachine(CaseMachine):
    """A person recovering an account, one case after another."""

    def __init__(self, world: World, ledger: Ledger) -> None:
        super().__init__(world)
        self.ledger = ledger
        self.case_id = ""
        self.tokens = 0
        self._model: RecoveryModel | None = None

    @property
    def model(self) -> RecoveryModel:
        assert self._model is not None
        return self._model

    # -- the person's steps ---------------------------------------------------------------

    @initialize(rules=RULES, known=st.sampled_from([True, True, True, False]))
    def open_a_case(self, rules: RecoveryRules, known: bool) -> None:
        self._open(rules, known)

    @rule(after=WAIT, action=ACTIONS)
    def the_person_acts(self, after: str | int, action: str) -> None:
        """The person waits a while, then types a code (the one just sent, one sent before,
        a wrong one), asks for a new code, chooses a password with the reset token or a
        forged one, or does nothing. (One rule with weighted actions rather than a rule
        each: swarm testing would otherwise leave most bounded examples with one or two of
        them.)"""
        if (now := self.begin(action, after)) is None:
            return
        if action.startswith("code"):
            self._submit(action.removeprefix("code "), now)
        elif action == "resend":
            self._resend(now)
        elif action.startswith("password"):
            self._choose(right=action == "password with the token")

    def _submit(self, which: str, now: datetime) -> None:
        model = self.model
        current = self.ledger.codes[(self.case_id, model.resends)]
        code = {
            "just sent": current,
            # A code of an earlier send: dead since the resend (the first code if none).
            "sent before": self.ledger.codes[(self.case_id, max(model.resends - 1, 0))],
            "wrong": f"{(int(current) + 1) % 10**6:06d}",
        }[which]
        self.tokens += 1
        token = f"reset-token-{self.tokens}"
        was_open = model.is_open

        earlier = {self.ledger.codes[(self.case_id, sent)] for sent in range(model.resends)}
        replaced = code in earlier and code != current
        expected = model.submit(code, code == current, token, now, replaced=replaced)

        got = self.update(
            RecoveryWorkflow.submit_code,
            SubmitCode(KEYS.code_digest(self.case_id, code), KEYS.token_digest(token)),
        )
        self.same("code", expected, got, was_open)
        if expected.refusal is CaseError.CODE_REPLACED and not got.finished:
            assert near(datetime.fromisoformat(got.details["sent_at"]), model.issued_at)
        if expected is ACCEPTED:
            assert isinstance(got.result, CodeAccepted)
            assert near(got.result.reset_expires_at, model.reset_expires_at)

    def _resend(self, now: datetime) -> None:
        model = self.model
        was_open, available_at = model.is_open, model.resend_available_at

        expected = model.resend(now)

        got = self.update(RecoveryWorkflow.resend_code)
        self.same("resend", expected, got, was_open)
        if expected.refusal is CaseError.RESEND_COOLDOWN and not got.finished:
            assert available_at is not None
            wait = (available_at - now).total_seconds()
            assert abs(got.details["retry_after_seconds"] - wait) <= MARGIN.total_seconds()
        if expected is ACCEPTED:
            self._delivered()

    def _choose(self, *, right: bool) -> None:
        model = self.model
        token = (model.token or "never-handed-out") if right else "forged-token"
        was_open = model.is_open

        expected = model.set_password(token)

        got = self.update(
            RecoveryWorkflow.set_password,
            SetPassword(KEYS.token_digest(token), f"$argon2id${self.case_id}"),
        )
        self.same("password", expected, got, was_open)

    # -- what the person sees ------------------------------------------------------------

    @invariant()
    def the_case_shows_what_the_rules_say(self) -> None:
        if self._model is None or not self.unchecked:
            return
        self.unchecked = False
        model, handle = self.model, self.handle
        status: RecoveryStatus = self.world.poll(
            lambda: handle.query(RecoveryWorkflow.status),
            lambda s: s.state is model.state,  # a deadline may still be on its way in
        )
        awaiting = model.state is CaseState.AWAITING_CODE
        assert status.attempts_left == model.rules.max_attempts - model.wrong_codes
        assert near(status.code_expires_at, model.code_expires_at if awaiting else None)
        assert near(status.resend_available_at, model.resend_available_at if awaiting else None)
        verified = model.state is CaseState.VERIFIED
        assert near(status.reset_expires_at, model.reset_expires_at if verified else None)
        assert near(status.next_deadline, model.deadline if model.is_open else None)
        resets = [r for r in self.ledger.resets if r.case_id == self.case_id]
        assert len(resets) == (model.state is CaseState.COMPLETED)
        assert all(r.account_id == ACCOUNT_ID for r in resets)

    # -- helpers -------------------------------------------------------------------------

    def open_next_case(self) -> None:
        self._open(self.model.rules, self.model.known)

    def _open(self, rules: RecoveryRules, known: bool) -> None:
        now = self.world.now()
        self.case_id = new_case_id()
        handle = self.world.run(
            self.world.env.client.start_workflow(
                RecoveryWorkflow.run,
                RecoveryInput(
                    case_id=self.case_id,
                    account_id=ACCOUNT_ID if known else None,
                    channel=Channel.EMAIL,
                    destination="j•••@e•••.com",
                    opened_at=now,
                    rules=rules,
                ),
                id=self.case_id,
                task_queue=self.world.task_queue,
                execution_timeout=timedelta(days=2),
            )
        )
        self.handles.append(handle)
        self._model = RecoveryModel(
            rules, known, issued_at=now, deadline=now + timedelta(seconds=rules.case_ttl)
        )
        self.unchecked = True
        self._delivered()

    def _delivered(self) -> None:
        """Wait until the send activity has handed the code over: the person has it. (A code
        typed before the send reported back is judged once it has.)"""
        sent = (self.case_id, self.model.resends)
        self.world.poll(lambda: asyncio.sleep(0.005), lambda _: sent in self.ledger.codes)


def test_the_self_service_rules_hold_in_any_sequence():
    ledger = Ledger()
    with time_skipping_world(workflows=[RecoveryWorkflow], activities=ledger.activities()) as world:
        run_state_machine_as_test(
            lambda: RecoveryCaseMachine(world, ledger),
            settings=machine_settings(examples=30, steps=20),
        )
