"""An account with a second factor is not recovered by a contact code alone (NIST SP
800-63B-4): the rule in RecoveryWorkflow, on the time-skipping server. The directory's side
(TOTP steps, recovery codes) is tested on real SQL in tests/persistence/test_second_factors.py,
the whole path over HTTP in tests/e2e/test_second_factor.py."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from reclaim.contracts import CaseError
from reclaim.recovery.contracts import CaseState, PasskeyChallenge, RecoveryRules
from tests.codes import wrong_codes
from tests.workflows.harness import Ledger, details, recovery_case, refusal
from workflows.recovery import RecoveryWorkflow

BOTH = ["totp", "recovery_code"]


def _ledger() -> Ledger:
    return Ledger(factor_codes={("totp", "314159"): None, ("recovery_code", "abcde-fghij"): 9})


async def test_the_right_contact_code_asks_for_the_second_factor_and_no_reset(
    time_env: WorkflowEnvironment,
):
    ledger = _ledger()
    async with recovery_case(time_env, ledger=ledger, factors=BOTH) as case:
        before = await case.status()
        accepted = await case.submit(case.code())

        assert before.factors is None  # told only after the contact code
        assert (accepted.reset_expires_at, accepted.factors) == (None, BOTH)
        status = await case.status()
        assert (status.state, status.factors) == (CaseState.AWAITING_SECOND_FACTOR, BOTH)
        assert status.attempts_left == 5
        # No reset token exists yet: a password now is refused, and nothing was applied.
        assert (await refusal(case.set_password())).type == CaseError.INVALID_TOKEN
        # The same right code again (a lost answer): the same answer, not a wrong code.
        again = await case.submit(case.code())
        assert again.factors == BOTH

        granted = await case.second_factor("recovery_code", "abcde-fghij")

        assert granted.reset_expires_at is not None
        verified = await case.status()
        assert (verified.state, verified.second_factor) == (CaseState.VERIFIED, "recovery_code")
        await case.set_password(token="reset-token-2")  # the token the second proof earned
        assert (await case.handle.result()).state is CaseState.COMPLETED
        [reset] = ledger.resets
        assert (reset.second_factor, reset.recovery_codes_left) == ("recovery_code", 9)


async def test_wrong_second_proofs_count_down_and_lock_the_case(time_env: WorkflowEnvironment):
    rules = RecoveryRules(second_factor_attempts=3)
    async with recovery_case(time_env, ledger=_ledger(), rules=rules, factors=["totp"]) as case:
        await case.submit(case.code())
        wrong = wrong_codes("314159", 3)
        first = await refusal(case.second_factor("totp", wrong[0], "t0"))
        again = await refusal(case.second_factor("totp", wrong[0], "t0"))  # a retry
        other = await refusal(case.second_factor("recovery_code", "zzzzz-zzzzz", "t1"))

        assert (first.type, details(first)) == (CaseError.INVALID_CODE, {"attempts_left": 2})
        assert details(again) == {"attempts_left": 2}
        assert (other.type, details(other)) == (CaseError.INVALID_CODE, {"attempts_left": 1})
        locked = await refusal(case.second_factor("totp", wrong[2], "t2"))
        assert (locked.type, details(locked)) == (CaseError.CASE_LOCKED, {"attempts_left": 0})
        # Locked: even the right one is refused now, without asking the directory.
        right = await refusal(case.second_factor("totp", "314159", "t3"))
        assert right.type == CaseError.CASE_LOCKED
        assert (await case.handle.result()).state is CaseState.LOCKED


async def test_the_second_proof_has_its_own_window(time_env: WorkflowEnvironment):
    rules = RecoveryRules(second_factor_window=120, reset_window=900)
    async with recovery_case(time_env, ledger=_ledger(), rules=rules, factors=["totp"]) as case:
        await case.submit(case.code())
        await time_env.sleep(115)
        assert (await case.status()).state is CaseState.AWAITING_SECOND_FACTOR

        await time_env.sleep(10)

        assert (await case.handle.result()).state is CaseState.EXPIRED


async def test_beyond_the_guess_budget_a_proof_is_not_checked(time_env: WorkflowEnvironment):
    ledger = _ledger()
    async with recovery_case(time_env, ledger=ledger, factors=["totp"]) as case:
        await case.submit(case.code())

        error = await refusal(case.second_factor("totp", "314159", evaluate=False))

        assert (error.type, details(error)) == (CaseError.INVALID_CODE, {"attempts_left": 4})
        assert ledger.factor_checks == []  # the directory was not asked


async def test_an_account_without_factors_goes_straight_to_the_new_password(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env, ledger=_ledger()) as case:
        accepted = await case.submit(case.code())

        assert accepted.reset_expires_at is not None and accepted.factors is None
        assert (await case.status()).state is CaseState.VERIFIED
        refused = await refusal(case.second_factor("totp", "314159"))
        assert refused.type == CaseError.INVALID_STATE


async def test_a_passkey_challenge_is_kept_for_one_proof_and_only_at_the_second_step(
    time_env: WorkflowEnvironment,
):
    """The digest of the challenge the API handed out reaches the check of the next passkey
    proof, and no other: a second proof has none, until a new challenge is asked for."""
    ledger = Ledger(factor_codes={("webauthn", "signed"): None})
    async with recovery_case(time_env, ledger=ledger, factors=["webauthn"]) as case:
        early = await refusal(case.handle.execute_update(
            RecoveryWorkflow.passkey_challenge, PasskeyChallenge("d0")
        ))  # fmt: skip
        assert early.type == CaseError.INVALID_STATE  # not before the contact code
        await case.submit(case.code())
        await case.handle.execute_update(RecoveryWorkflow.passkey_challenge, PasskeyChallenge("d1"))
        await case.handle.execute_update(RecoveryWorkflow.passkey_challenge, PasskeyChallenge("d2"))

        await refusal(case.second_factor("webauthn", "forged", "t1"))
        await refusal(case.second_factor("webauthn", "forged", "t2"))
        await case.handle.execute_update(RecoveryWorkflow.passkey_challenge, PasskeyChallenge("d3"))
        granted = await case.second_factor("webauthn", "signed", "t3")

        assert granted.reset_expires_at is not None
        assert [check.challenge_digest for check in ledger.factor_checks] == ["d2", None, "d3"]
        assert (await case.status()).second_factor == "webauthn"


async def test_an_account_without_a_passkey_takes_no_passkey_challenge(
    time_env: WorkflowEnvironment,
):
    async with recovery_case(time_env, ledger=_ledger(), factors=["totp"]) as case:
        await case.submit(case.code())

        refused = await refusal(case.handle.execute_update(
            RecoveryWorkflow.passkey_challenge, PasskeyChallenge("d1")
        ))  # fmt: skip

        assert refused.type == CaseError.INVALID_STATE
