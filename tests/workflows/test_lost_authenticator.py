"""A lost-authenticator claim on the time-skipping server with the real worker: filed, always
high risk (two people), its review showing the account's second factors, approved with a
choice of the factors to remove; the recovery it opens is held, and the chosen factors go
only when the hold ends, every contact told. A stop during the hold leaves them all."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from reclaim.directory import FactorKind, Passkey, passkey_key
from reclaim.notify.outbox import text_of
from reclaim.recovery.contracts import CaseState, RecoveryOutcome, RecoveryStatus
from reclaim.support.claims import CaseFile
from reclaim.support.contracts import Approve, ClaimCalls, ClaimReason, ClaimState, Risk
from tests.conftest import Seen
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.workflows.lifecycle_harness import PASSWORD, Lifecycle, lifecycle_stack
from tests.workflows.support_harness import (
    OTHER_SUPERVISOR,
    REVIEWER,
    SUPERVISOR,
    Claim,
    SupportDesk,
)

JANE = "jane@example.com"
PHONE = "+14155550123"
NEW_PASSWORD = "plum orchard lantern quietly"
LAPTOP = passkey_key(b"Laptop")
PHONE_KEY = passkey_key(b"Phone")


@pytest.fixture
async def desk(
    time_env: WorkflowEnvironment, tmp_path: Path, mail: MailSink, sms: SmsGateway
) -> AsyncIterator[SupportDesk]:
    async with lifecycle_stack(time_env, tmp_path, mail, sms, claims_per_hour=50) as life:
        yield SupportDesk(life)


async def _jane_with_every_factor(life: Lifecycle) -> int:
    account_id = await life.add_account(phone=PHONE)
    now = datetime.now(UTC)
    await life.directory.enrol_totp(account_id, now)
    await life.directory.new_recovery_codes(account_id, now)
    for name in ("Laptop", "Phone"):
        passkey = Passkey(name.encode(), b"cose key", 0, (), name, now)
        await life.directory.add_passkey(account_id, passkey)
    return account_id


async def _factors(life: Lifecycle, account_id: int) -> list[str]:
    return sorted(
        f"{f.kind.value}:{f.name}" if f.name else f.kind.value
        for f in await life.directory.factors(account_id)
    )


EVERY_FACTOR = ["recovery_code", "totp", "webauthn:Laptop", "webauthn:Phone"]


async def _approved_by_two(desk: SupportDesk, chosen: list[str]) -> tuple[Claim, str]:
    """Filed from the account's own address, knowing the password and the address: still high
    risk; a reviewer approves with a choice of factors, a supervisor confirms."""
    life = desk.life
    filed = await life.services.claims.file(
        username="jane",
        contact_email=JANE,
        reason=ClaimReason.LOST_AUTHENTICATOR,
        registered_email=JANE,
        previous_passwords=[PASSWORD],
        description="I lost my phone with the app and my passkeys.",
    )
    claim = Claim(desk, filed)
    seen = await claim.view()
    assert (seen.reason, seen.risk) == (ClaimReason.LOST_AUTHENTICATOR, Risk.HIGH)
    assert seen.evidence.passwords_matched == 1  # what the claimant could prove
    assert seen.evidence.wrote_from_account_email is True

    found: CaseFile = await life.services.claims.case_file(claim.case_id)
    assert found.account is not None
    shown = {(f.kind, f.name) for f in found.account.factors}
    assert shown == {
        (FactorKind.TOTP, None),
        (FactorKind.RECOVERY_CODE, None),
        (FactorKind.WEBAUTHN, "Laptop"),
        (FactorKind.WEBAUTHN, "Phone"),
    }

    await claim.assign()
    asked = await claim.update(ClaimCalls.APPROVE, Approve(REVIEWER, "Checked.", "", chosen))
    assert asked.state is ClaimState.AWAITING_CONFIRMATION  # two people
    assert asked.approval_request is not None
    assert asked.approval_request.remove_factors == chosen
    confirmed = await claim.confirm(by=SUPERVISOR)
    assert confirmed.state is ClaimState.APPROVED
    assert confirmed.decision is not None and confirmed.decision.recovery_case_id is not None
    return claim, confirmed.decision.recovery_case_id


async def _recover(life: Lifecycle, case_id: str) -> RecoveryStatus:
    """The claimant types the code mailed to the account's address (no second step), then a
    new password: held."""
    code = await life.mail.code_for(JANE)
    granted = await life.services.recovery.submit_code(case_id, code)
    assert granted.reset_token is not None
    return await life.services.recovery.set_password(case_id, granted.reset_token, NEW_PASSWORD)


async def _outcome(life: Lifecycle, case_id: str) -> CaseState:
    handle = life.env.client.get_workflow_handle(case_id, result_type=RecoveryOutcome)
    return (await handle.result()).state


async def test_the_chosen_factors_go_when_the_hold_ends_and_every_contact_is_told(
    desk: SupportDesk, sms: SmsGateway
):
    life = desk.life
    account_id = await _jane_with_every_factor(life)
    signed_in = await life.sign_in("jane")

    _, recovery_case_id = await _approved_by_two(desk, ["totp", f"webauthn:{LAPTOP}"])

    # Whoever was signed in is out at once; the recovery waits out its hold.
    assert signed_in.token is not None
    assert await life.directory.session(signed_in.token) is None
    held = await _recover(life, recovery_case_id)
    assert held.state is CaseState.HELD and held.hold_until is not None
    # Every contact, the address recovering too, may stop it.
    told = text_of(
        await life.mail.wait_for(
            lambda m: m["To"] == JANE and "second factors of the account are removed" in text_of(m)
        )
    )
    assert f"/stop/{recovery_case_id}?token=" in told
    await sms.wait_for(PHONE, f"/stop/{recovery_case_id}?token=")
    assert await _factors(life, account_id) == EVERY_FACTOR  # nothing removed yet
    assert (await life.sign_in("jane", NEW_PASSWORD)).token is None

    remaining = held.hold_until - await life.env.get_current_time()
    await life.env.sleep(remaining.total_seconds() + 1)

    assert await _outcome(life, recovery_case_id) is CaseState.COMPLETED
    assert (await life.sign_in("jane", NEW_PASSWORD)).token is not None
    assert await _factors(life, account_id) == ["recovery_code", "webauthn:Phone"]
    removed = text_of(
        await life.mail.wait_for(
            lambda m: m["To"] == JANE and "Second factors removed" in m["Subject"]
        )
    )
    assert "the authenticator app was removed" in removed
    assert "the passkey “Laptop” was removed" in removed
    assert "Phone" not in removed
    await sms.wait_for(PHONE, "second factors of jane removed")


async def test_a_stop_during_the_hold_leaves_every_factor(desk: SupportDesk):
    life = desk.life
    account_id = await _jane_with_every_factor(life)
    _, recovery_case_id = await _approved_by_two(
        desk, ["totp", "recovery_code", f"webauthn:{LAPTOP}", f"webauthn:{PHONE_KEY}"]
    )
    held = await _recover(life, recovery_case_id)
    assert held.hold_until is not None
    told = text_of(
        await life.mail.wait_for(
            lambda m: m["To"] == JANE and "second factors of the account are removed" in text_of(m)
        )
    )
    stop = re.search(rf"/stop/{recovery_case_id}\?token=([\w-]{{43}})", told)
    assert stop is not None

    stopped, _ = await life.services.stop_recovery(recovery_case_id, stop.group(1))

    assert stopped.contact.address == JANE
    assert await _outcome(life, recovery_case_id) is CaseState.CANCELLED
    assert await _factors(life, account_id) == EVERY_FACTOR
    assert (await life.sign_in("jane", PASSWORD)).token is not None
    assert (await life.sign_in("jane", NEW_PASSWORD)).token is None
    assert not [m for m in life.mail.to(JANE) if "Second factors removed" in m["Subject"]]


async def test_a_claim_not_written_from_the_accounts_address_is_not_approved(
    desk: SupportDesk,
):
    life = desk.life
    account_id = await _jane_with_every_factor(life)
    filed = await life.services.claims.file(
        username="jane", contact_email="someone@example.net", reason=ClaimReason.LOST_AUTHENTICATOR
    )
    claim = Claim(desk, filed)
    assert (await claim.view()).evidence.wrote_from_account_email is False
    await claim.assign(by=SUPERVISOR)
    # A supervisor's own approval waits for another supervisor: two people, always.
    asked = await claim.approve(by=SUPERVISOR)
    assert asked.state is ClaimState.AWAITING_CONFIRMATION
    assert (await claim.refusal(claim.confirm(by=SUPERVISOR))).type == "same_person"

    refused = await claim.refusal(claim.confirm(by=OTHER_SUPERVISOR))

    assert "not written from the account's email address" in str(refused)
    assert (await claim.view()).state is ClaimState.AWAITING_CONFIRMATION
    assert await _factors(life, account_id) == EVERY_FACTOR


async def test_the_accounts_address_is_compared_in_constant_time_both_ways(
    desk: SupportDesk, comparisons: Seen
):
    """Whether a claim came from the account's address is compared in constant time, when the
    evidence is gathered and again when the approval is applied: once each way here."""
    life = desk.life
    await _jane_with_every_factor(life)
    await _approved_by_two(desk, ["totp"])
    filed = await life.services.claims.file(
        username="jane", contact_email="someone@example.net", reason=ClaimReason.LOST_AUTHENTICATOR
    )
    claim = Claim(desk, filed)
    await claim.assign(by=SUPERVISOR)
    await claim.approve(by=SUPERVISOR)
    await claim.refusal(claim.confirm(by=OTHER_SUPERVISOR))

    assert comparisons[("reclaim/support/evidence.py", "_from_account_email")] == {True, False}
    assert comparisons[("reclaim/support/steps.py", "ClaimSteps._without_factors")] == {
        True,
        False,
    }
