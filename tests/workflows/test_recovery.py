"""The self-service rules (their list: docs/testing.md), on the time-skipping server."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from reclaim.contracts import CaseError
from reclaim.recovery.contracts import CaseState, Delivery, RecoveryRules
from reclaim.settings import Settings
from tests.codes import wrong_codes
from tests.stack import TEST_SECRET
from tests.workflows.harness import KEYS, Ledger, details, recovery_case, refusal
from workflows.recovery import RecoveryWorkflow


async def test_right_code_then_new_password_completes_the_case(time_env: WorkflowEnvironment):
    async with recovery_case(time_env) as case:
        accepted = await case.submit(case.code())
        assert (await case.status()).state is CaseState.VERIFIED
        assert accepted.reset_expires_at == (await case.status()).reset_expires_at

        status = await case.set_password(hash_="$argon2id$new")

        assert status.state is CaseState.COMPLETED
        outcome = await case.handle.result()
        assert outcome.state is CaseState.COMPLETED
        [reset] = case.ledger.resets
        assert (reset.account_id, reset.password_hash) == (7, "$argon2id$new")
        # A completed case is recorded with its reset, not by a second activity.
        assert case.ledger.closings == []


async def test_a_code_typed_before_its_delivery_reported_back_is_judged_after_it(
    time_env: WorkflowEnvironment,
):
    ledger = Ledger(hold_delivery=asyncio.Event())
    async with recovery_case(time_env, ledger=ledger) as case:
        await ledger.code_handed_over.wait()  # the user has the code...
        submitted = asyncio.create_task(case.submit(case.code()))
        await asyncio.sleep(0.2)
        assert not submitted.done()  # ...the workflow waits for the send to answer

        ledger.hold_delivery.set()

        await submitted
        assert (await case.status()).state is CaseState.VERIFIED


async def test_a_code_that_ran_out_answers_code_expired_and_the_case_waits(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env) as case:
        await time_env.sleep(601)

        error = await refusal(case.submit(case.code()))

        assert error.type == CaseError.CODE_EXPIRED
        status = await case.status()
        assert status.state is CaseState.AWAITING_CODE
        assert status.attempts_left == 5  # an expired code costs no attempt


async def test_a_resend_after_expiry_issues_a_fresh_code_that_works(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env) as case:
        await time_env.sleep(601)
        await case.resend()
        await case.wait_delivered()

        assert case.code(1)  # a second code was issued
        await case.submit(case.code(1))
        assert (await case.status()).state is CaseState.VERIFIED


async def test_the_old_code_dies_on_resend_and_is_told_a_newer_one_was_sent(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env) as case:
        first, first_link = case.code(0), case.proof(0)
        await time_env.sleep(60)
        resent = await case.resend()
        assert resent.code_expires_at is not None
        sent_at = resent.code_expires_at - timedelta(seconds=RecoveryRules().code_ttl)
        await case.wait_delivered()
        if case.code(1) == first:
            pytest.skip("the fresh code happened to equal the old one (1 in a million)")

        typed = await refusal(case.submit(first))
        linked = await refusal(case.submit_proof(first_link))

        # Told apart from a wrong code, and it costs no try: the person has the contact.
        for error in (typed, linked):
            assert error.type == CaseError.CODE_REPLACED
            assert details(error) == {"sent_at": sent_at.isoformat(), "attempts_left": 5}
        assert (await case.status()).attempts_left == 5
        other = next(code for code in wrong_codes(case.code(1), 2) if code != first)
        wrong = await refusal(case.submit(other))
        assert (wrong.type, details(wrong)["attempts_left"]) == (CaseError.INVALID_CODE, 4)
        await case.submit(case.code(1))
        assert (await case.status()).state is CaseState.VERIFIED


async def test_without_an_account_an_earlier_code_is_only_a_wrong_one(
    time_env: WorkflowEnvironment,
):
    # Nobody holds a code of a case without an account; whatever they type after a resend is
    # answered as any wrong code is on a known account's case (the words, the count).
    async with recovery_case(time_env, account_id=None) as case:
        first = case.code(0)
        await time_env.sleep(60)
        await case.resend()
        await case.wait_delivered()

        error = await refusal(case.submit(first))

        assert (error.type, details(error)) == (CaseError.INVALID_CODE, {"attempts_left": 4})


async def test_wrong_codes_count_down_and_the_fifth_locks_the_case(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env) as case:
        wrong = wrong_codes(case.code(), 5)
        for code, left in zip(wrong, (4, 3, 2, 1), strict=False):
            error = await refusal(case.submit(code))
            assert (error.type, details(error)["attempts_left"]) == (CaseError.INVALID_CODE, left)

        error = await refusal(case.submit(wrong[4]))

        assert (error.type, details(error)["attempts_left"]) == (CaseError.CASE_LOCKED, 0)
        assert (await case.handle.result()).state is CaseState.LOCKED
        [closing] = case.ledger.closings
        assert (closing.state, closing.wrong_codes) == (CaseState.LOCKED, 5)


async def test_sixth_code_is_refused_when_locked_even_the_right_one(
    time_env: WorkflowEnvironment,
):
    ledger = Ledger(hold_closing=asyncio.Event())  # locked, still recording its ending
    async with recovery_case(time_env, rules=RecoveryRules(max_attempts=2), ledger=ledger) as case:
        first, second = wrong_codes(case.code(), 2)
        await refusal(case.submit(first))
        await refusal(case.submit(second))

        error = await refusal(case.submit(case.code()))
        resend = await refusal(case.resend())

        assert (error.type, details(error)["attempts_left"]) == (CaseError.CASE_LOCKED, 0)
        assert resend.type == CaseError.CASE_LOCKED
        ledger.hold_closing.set()
        assert (await case.handle.result()).state is CaseState.LOCKED
        assert case.ledger.resets == []


async def test_resend_cooldown_doubles_and_resends_run_out(time_env: WorkflowEnvironment):
    async with recovery_case(time_env) as case:
        error = await refusal(case.resend())
        assert error.type == CaseError.RESEND_COOLDOWN
        assert details(error)["retry_after_seconds"] == 60

        for cooldown in (60, 120, 240):
            await time_env.sleep(cooldown - 1)
            early = await refusal(case.resend())
            assert early.type == CaseError.RESEND_COOLDOWN
            assert details(early)["retry_after_seconds"] == 1
            await time_env.sleep(1)
            status = await case.resend()
            await case.wait_delivered()
            assert status.code_expires_at is not None

        assert status.resend_available_at is None  # three resends: none left
        await time_env.sleep(1000)
        error = await refusal(case.resend())
        assert error.type == CaseError.RESEND_LIMIT


async def test_case_expires_when_idle_for_the_case_ttl_after_the_last_code(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env) as case:
        await time_env.sleep(60)
        await case.resend()  # the case TTL now runs from this code
        await time_env.sleep(3600 - 5)
        assert (await case.status()).state is CaseState.AWAITING_CODE

        await time_env.sleep(10)

        assert (await case.handle.result()).state is CaseState.EXPIRED
        [closing] = case.ledger.closings
        assert (closing.state, closing.resends) == (CaseState.EXPIRED, 1)


async def test_the_reset_window_closes_and_the_token_then_answers_reset_expired(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env) as case:
        await case.submit(case.code(), token="t1")
        await time_env.sleep(901)

        assert (await case.handle.result()).state is CaseState.EXPIRED
        context = await case.handle.query(RecoveryWorkflow.reset_context, KEYS.token_digest("t1"))
        assert context.problem == CaseError.RESET_EXPIRED
        assert case.ledger.resets == []


async def test_the_reset_window_is_its_own_setting_not_the_codes_lifetime(
    time_env: WorkflowEnvironment, tmp_path: Path
):
    """RECLAIM_RESET_WINDOW (600 s here), not RECLAIM_CODE_TTL (120 s): the token still works
    5 s before the window closes, and answers reset_expired 5 s after."""
    settings = Settings(secret_key=TEST_SECRET, state_dir=tmp_path, code_ttl=120, reset_window=600)
    rules = settings.recovery_rules

    async with recovery_case(time_env, rules=rules) as case:
        verified_at = await time_env.get_current_time()
        accepted = await case.submit(case.code(), token="in-time")
        await time_env.sleep(600 - 5)

        assert (await case.status()).state is CaseState.VERIFIED
        done = await case.set_password(token="in-time")

        assert done.state is CaseState.COMPLETED
        assert timedelta(seconds=599) <= accepted.reset_expires_at - verified_at
        assert accepted.reset_expires_at - verified_at <= timedelta(seconds=601)

    async with recovery_case(time_env, rules=rules) as case:
        await case.submit(case.code(), token="too-late")
        await time_env.sleep(600 + 5)

        assert (await case.handle.result()).state is CaseState.EXPIRED
        context = await case.handle.query(
            RecoveryWorkflow.reset_context, KEYS.token_digest("too-late")
        )
        assert context.problem == CaseError.RESET_EXPIRED
        assert case.ledger.resets == []


async def test_a_reset_token_is_checked_and_works_once(time_env: WorkflowEnvironment):
    async with recovery_case(time_env) as case:
        await case.submit(case.code(), token="good-token")

        wrong = await refusal(case.set_password(token="other-token"))
        assert wrong.type == CaseError.INVALID_TOKEN

        await case.set_password(token="good-token")
        context = await case.handle.query(
            RecoveryWorkflow.reset_context, KEYS.token_digest("good-token")
        )
        assert context.problem == CaseError.INVALID_TOKEN  # spent
        assert context.accepted  # a retry after a lost answer is told it was taken
        other = await case.handle.query(
            RecoveryWorkflow.reset_context, KEYS.token_digest("other-token")
        )
        assert not other.accepted
        assert len(case.ledger.resets) == 1


async def test_the_right_code_sent_again_answers_again_and_earns_nothing_new(
    time_env: WorkflowEnvironment,
):
    """A lost answer (a crash, a timeout) is repaired by sending the same code again: the same
    reset token, derived from the code, is good; any other is refused."""
    async with recovery_case(time_env) as case:
        first = await case.submit(case.code())

        again = await case.submit(case.code())
        error = await refusal(case.submit(case.code(), token="someone else's token"))

        assert again.reset_expires_at == first.reset_expires_at
        assert error.type == CaseError.INVALID_STATE
        assert (await case.status()).state is CaseState.VERIFIED


async def test_a_newer_case_supersedes_this_one(time_env: WorkflowEnvironment):
    async with recovery_case(time_env) as case:
        await case.handle.signal(RecoveryWorkflow.supersede)

        assert (await case.handle.result()).state is CaseState.SUPERSEDED
        assert [c.state for c in case.ledger.closings] == [CaseState.SUPERSEDED]


async def test_a_reset_refused_as_superseded_ends_the_case_superseded(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env, ledger=Ledger(supersede_reset=True)) as case:
        await case.submit(case.code())

        error = await refusal(case.set_password())

        assert (error.type, details(error)["state"]) == (CaseError.INVALID_STATE, "superseded")
        assert (await case.handle.result()).state is CaseState.SUPERSEDED


async def test_a_password_the_directory_refuses_leaves_the_case_verified_for_another_try(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env, ledger=Ledger(directory_refusals=1)) as case:
        await case.submit(case.code())

        refused = await refusal(case.set_password())
        still = await case.status()
        done = await case.set_password(hash_="$argon2id$another")

        assert (refused.type, details(refused)) == ("password_reused", {"reasons": ["in_history"]})
        assert still.state is CaseState.VERIFIED
        assert done.state is CaseState.COMPLETED
        assert [reset.password_hash for reset in case.ledger.resets] == ["$argon2id$another"]


async def test_an_unknown_account_never_accepts_a_code_but_looks_the_same(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env, account_id=None) as unknown:
        # Even the code its activity generated (which nobody received) is refused.
        error = await refusal(unknown.submit(unknown.code()))
        assert (error.type, details(error)["attempts_left"]) == (CaseError.INVALID_CODE, 4)
        status = await unknown.status()

    async with recovery_case(time_env, account_id=7) as known:
        await refusal(known.submit("000000" if known.code() != "000000" else "111111"))
        known_status = await known.status()

    def shape(s: object) -> dict[str, object]:
        fields = vars(s).copy()
        for moment in ("code_expires_at", "resend_available_at", "next_deadline"):
            fields[moment] = type(fields[moment])
        fields.pop("case_id")
        return fields

    assert shape(status) == shape(known_status)


async def test_an_undeliverable_code_shows_failed_delivery_and_a_resend_is_allowed(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env, ledger=Ledger(refuse_delivery=True)) as case:
        status = await case.wait_delivered()
        assert status.delivery is Delivery.FAILED

        case.ledger.refuse_delivery = False
        await time_env.sleep(60)
        await case.resend()
        status = await case.wait_delivered()

        assert status.delivery is Delivery.SENT
        await case.submit(case.code(1))


async def test_pending_notices_are_retried_before_the_case_ends(time_env: WorkflowEnvironment):
    async with recovery_case(time_env, ledger=Ledger(notices_pending=True)) as case:
        await case.submit(case.code())
        await case.set_password()

        assert (await case.handle.result()).state is CaseState.COMPLETED
        [notice] = case.ledger.notices
        assert notice.account_id == 7
        assert notice.at == case.ledger.resets[0].at  # when it changed, not when retried


async def test_rules_come_from_the_input(time_env: WorkflowEnvironment):
    rules = RecoveryRules(code_ttl=30, resend_cooldown=5, case_ttl=100)
    async with recovery_case(time_env, rules=rules) as case:
        status = await case.status()
        assert status.code_expires_at - status.next_deadline == timedelta(seconds=30 - 100)
        await time_env.sleep(31)
        assert (await refusal(case.submit(case.code()))).type == CaseError.CODE_EXPIRED


# The code's proof, the guess budget, twins


async def test_the_proof_in_the_message_link_verifies_like_the_code(time_env: WorkflowEnvironment):
    async with recovery_case(time_env) as case:
        await case.submit_proof(case.proof())

        assert (await case.status()).state is CaseState.VERIFIED
        await case.set_password()
        assert (await case.handle.result()).state is CaseState.COMPLETED


async def test_an_old_codes_proof_dies_with_it(time_env: WorkflowEnvironment):
    async with recovery_case(time_env) as case:
        old = case.proof(0)
        await time_env.sleep(60)
        await case.resend()
        await case.wait_delivered()

        error = await refusal(case.submit_proof(old))

        assert error.type == CaseError.CODE_REPLACED
        await case.submit_proof(case.proof(1))
        assert (await case.status()).state is CaseState.VERIFIED


async def test_a_code_over_the_budget_is_not_compared_and_the_holder_is_told_once(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env) as case:
        right = await refusal(case.submit(case.code(), evaluate=False))
        wrong = await refusal(case.submit(wrong_codes(case.code(), 1)[0], evaluate=False))

        # Answered as any wrong code: nothing tells a guesser the budget is spent.
        assert (right.type, details(right)["attempts_left"]) == (CaseError.INVALID_CODE, 4)
        assert (wrong.type, details(wrong)["attempts_left"]) == (CaseError.INVALID_CODE, 3)
        await case.submit_proof(case.proof())  # the link still works
        assert (await case.status()).state is CaseState.VERIFIED
        [notice] = case.ledger.guessing
        assert (notice.case_id, notice.account_id) == (case.case_id, 7)


async def test_the_same_wrong_code_again_gets_the_same_answer_and_counts_once(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env) as case:
        typed = wrong_codes(case.code(), 2)
        first = await refusal(case.submit(typed[0]))
        again = await refusal(case.submit(typed[0]))
        other = await refusal(case.submit(typed[1]))

        assert details(first)["attempts_left"] == details(again)["attempts_left"] == 4
        assert details(other)["attempts_left"] == 3


async def test_twins_of_the_right_code_sent_while_it_waited_all_get_the_token(
    time_env: WorkflowEnvironment,
):
    ledger = Ledger(hold_delivery=asyncio.Event())
    async with recovery_case(time_env, ledger=ledger) as case:
        await ledger.code_handed_over.wait()
        twins = [asyncio.create_task(case.submit(case.code())) for _ in range(3)]
        await asyncio.sleep(0.2)
        ledger.hold_delivery.set()

        answers = await asyncio.gather(*twins)

        assert len({answer.reset_expires_at for answer in answers}) == 1
        assert (await case.status()).state is CaseState.VERIFIED


# The hold

HELD = RecoveryRules(hold=86_400)


async def test_a_held_password_takes_effect_when_the_hold_ends(time_env: WorkflowEnvironment):
    async with recovery_case(time_env, rules=HELD) as case:
        await case.submit(case.code())
        started = await time_env.get_current_time()

        held = await case.set_password(hash_="$argon2id$held")

        assert held.state is CaseState.HELD
        assert held.hold_until is not None
        assert held.hold_until - started >= timedelta(seconds=86_400)
        assert case.ledger.resets == []
        context = await case.handle.query(
            RecoveryWorkflow.reset_context, KEYS.token_digest("reset-token")
        )
        assert context.accepted  # a retry is told the password was taken
        await time_env.sleep(86_400 - 60)
        assert (await case.status()).state is CaseState.HELD
        assert case.ledger.resets == []

        await time_env.sleep(120)

        assert (await case.handle.result()).state is CaseState.COMPLETED
        [reset] = case.ledger.resets
        assert reset.password_hash == "$argon2id$held"
        [notice] = case.ledger.holds
        assert (notice.account_id, notice.until) == (7, held.hold_until)


async def test_a_contact_stops_the_hold_and_the_password_never_takes_effect(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env, rules=HELD) as case:
        await case.submit(case.code())
        await case.set_password()
        await time_env.sleep(3600)

        await case.stop("jane@old.example")

        assert (await case.handle.result()).state is CaseState.CANCELLED
        assert case.ledger.resets == []
        [stopped] = case.ledger.stops
        assert stopped.contact_digest == KEYS.identifier_digest("jane@old.example")
        assert stopped.account_id == 7
        [closing] = case.ledger.closings
        assert closing.state is CaseState.CANCELLED


async def test_a_stop_link_is_single_use_and_only_during_the_hold(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env, rules=HELD) as case:
        early = await refusal(case.stop())  # nothing held yet
        await case.submit(case.code())
        await case.set_password()
        await case.stop()

        again = await refusal(case.stop())

        assert early.type == again.type == CaseError.INVALID_STATE
        assert (await case.handle.result()).state is CaseState.CANCELLED
        assert len(case.ledger.stops) == 1


async def test_an_operator_extends_the_hold_then_ends_it_now(time_env: WorkflowEnvironment):
    async with recovery_case(time_env, rules=HELD) as case:
        await case.submit(case.code())
        held = await case.set_password()

        extended = await case.change_hold(extend_seconds=3600)
        assert extended.hold_until - held.hold_until == timedelta(seconds=3600)
        await time_env.sleep(86_400 + 60)
        assert (await case.status()).state is CaseState.HELD  # an hour more to go

        await case.change_hold(end_now=True)

        assert (await case.handle.result()).state is CaseState.COMPLETED
        assert len(case.ledger.resets) == 1
