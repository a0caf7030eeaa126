"""Record the histories that tests/workflows/test_replay.py replays.

    python -m tests.histories.record [recovery] [lifecycle] [support] [--version v3]

Run it when a deliberate, patched change to a workflow should be captured too: keep the old
files (they prove running cases still replay) and add the new ones under a new name.

Histories are recorded as a deployment writes them: every payload encrypted by the codec, with
the key derived from the tests' secret (`tests.history_text.TEST_CODEC`), which the replay
test uses to read them; `--plain` records them unencrypted, as the v1 files were.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import WorkflowUpdateFailedError
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from reclaim.binaries import temporal_test_server
from reclaim.directory import Passkey, passkey_key
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.recovery.contracts import PasskeyChallenge, RecoveryRules
from reclaim.support.contracts import Approve, CancelClaim, ClaimCalls, ClaimReason, Reviewer
from reclaim.temporal.codec import data_converter
from reclaim.temporal.connection import register_search_attributes
from tests.history_text import TEST_CODEC
from tests.mailbox import MailSink, smtp_server
from tests.sms_gateway import SmsGateway
from tests.workflows.harness import Case, Ledger, recovery_case
from tests.workflows.lifecycle_harness import OPERATOR, PASSWORD, Lifecycle, lifecycle_stack
from tests.workflows.support_harness import (
    OTHER_SUPERVISOR,
    REVIEWER,
    STRONG_EVIDENCE,
    SUPERVISOR,
    Claim,
    SupportDesk,
)
from workflows.recovery import RecoveryWorkflow

HISTORIES = Path(__file__).parent
HERE = HISTORIES / "recovery"


async def _refused(call: Awaitable[object]) -> None:
    try:
        await call
    except WorkflowUpdateFailedError:
        return
    raise AssertionError("expected a refusal")


def _wrong(case: Case) -> str:
    return "000000" if case.code() != "000000" else "111111"


async def completed(case: Case) -> None:
    await _refused(case.submit(_wrong(case)))
    await case.submit(case.code())
    await case.set_password()


async def resent_then_completed(case: Case) -> None:
    await _refused(case.resend())
    await case.env.sleep(61)
    await case.resend()
    await case.wait_delivered()
    await case.submit(case.code(1))
    await case.set_password()


async def locked(case: Case) -> None:
    for _ in range(5):
        await _refused(case.submit(_wrong(case)))


async def expired_idle(case: Case) -> None:
    await case.env.sleep(601)
    await _refused(case.submit(case.code()))
    await case.env.sleep(3000)


async def undeliverable(case: Case) -> None:
    await _refused(case.submit("000000"))  # nothing arrived; a guess is just wrong
    await case.env.sleep(3601)


async def reset_window_closed(case: Case) -> None:
    await case.submit(case.code())
    await case.env.sleep(901)


async def superseded(case: Case) -> None:
    await case.handle.signal(RecoveryWorkflow.supersede)


async def cancelled(case: Case) -> None:
    await case.handle.signal(RecoveryWorkflow.cancel, "operator drill")


SCENARIOS: dict[str, tuple[Callable[[Case], Awaitable[None]], dict[str, object]]] = {
    "completed": (completed, {}),
    "resent_then_completed": (resent_then_completed, {}),
    "locked": (locked, {}),
    "expired_idle": (expired_idle, {}),
    "reset_window_closed": (reset_window_closed, {}),
    "superseded": (superseded, {}),
    "cancelled": (cancelled, {}),
    "unknown_account": (locked, {"account_id": None}),
    "undeliverable": (undeliverable, {"ledger": Ledger(refuse_delivery=True)}),
    "completed_notices_pending": (completed, {"ledger": Ledger(notices_pending=True)}),
    "superseded_at_reset": (
        lambda case: _refused_reset(case),
        {"ledger": Ledger(supersede_reset=True)},
    ),
}


async def _refused_reset(case: Case) -> None:
    await case.submit(case.code())
    await _refused(case.set_password())


async def password_refused_by_directory(case: Case) -> None:
    await case.submit(case.code())
    await _refused(case.set_password())
    await case.set_password(hash_="$argon2id$another")


SCENARIOS["password_refused_by_directory"] = (
    password_refused_by_directory,
    {"ledger": Ledger(directory_refusals=1)},
)

# An account with a second factor (patch `second-factor`): the stand-in directory takes this
# TOTP code and this recovery code.
FACTOR_CODES: dict[tuple[str, str], int | None] = {
    ("totp", "314159"): None,
    ("recovery_code", "abcde-fghij"): 9,
}


async def second_factor_completed(case: Case) -> None:
    await case.submit(case.code())
    await _refused(case.second_factor("totp", "000000", "wrong"))
    await case.second_factor("recovery_code", "abcde-fghij", "second")
    await case.set_password(token="second")


async def second_factor_expired(case: Case) -> None:
    await case.submit(case.code())
    await case.env.sleep(601)


for _name, _play in (
    ("second_factor_completed", second_factor_completed),
    ("second_factor_expired", second_factor_expired),
):
    SCENARIOS[_name] = (
        _play,
        {"ledger": Ledger(factor_codes=dict(FACTOR_CODES)), "factors": ["totp", "recovery_code"]},
    )


async def passkey_completed(case: Case) -> None:
    """Two wrong passkey proofs (the second with no challenge left), then a right one."""
    await case.submit(case.code())
    await case.handle.execute_update(RecoveryWorkflow.passkey_challenge, PasskeyChallenge("d1"))
    await _refused(case.second_factor("webauthn", "forged", "wrong"))
    await _refused(case.second_factor("webauthn", "forged", "spent"))
    await case.handle.execute_update(RecoveryWorkflow.passkey_challenge, PasskeyChallenge("d2"))
    await case.second_factor("webauthn", "signed", "second")
    await case.set_password(token="second")


SCENARIOS["passkey_completed"] = (
    passkey_completed,
    {"ledger": Ledger(factor_codes={("webauthn", "signed"): None}), "factors": ["webauthn"]},
)
CONVERTER: DataConverter = data_converter(TEST_CODEC)


async def _environment() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_test_server(), data_converter=CONVERTER
    )


async def record_recovery(version: str, only: list[str] | None = None) -> list[Path]:
    HERE.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (play, options) in SCENARIOS.items():
        if only and name not in only:
            continue
        env = await _environment()
        try:
            await register_search_attributes(env.client, env.client.namespace)
            async with recovery_case(env, rules=RecoveryRules(), **options) as case:  # type: ignore[arg-type]
                await play(case)
                await case.handle.result()
                history = await case.handle.fetch_history()
        finally:
            await env.shutdown()
        path = HERE / f"{version}_{name}.json"
        path.write_text(history.to_json())
        written.append(path)
        print(f"recorded {path.relative_to(Path.cwd())} ({len(history.events)} events)")
    return written


# -- account lifecycle ------------------------------------------------------------------------
# Each scenario returns the lifecycle cases whose histories to keep, once they have closed.


async def deletion_purged(life: Lifecycle) -> list[str]:
    case = await life.deactivate(await life.add_account())
    await life.outcome(case.case_id)
    return [case.case_id]


async def deletion_reactivated(life: Lifecycle) -> list[str]:
    case = await life.deactivate(await life.add_account())
    await life.days_pass(3)
    await life.sign_in("jane")
    await life.outcome(case.case_id)
    return [case.case_id]


async def deletion_signal_lost(life: Lifecycle) -> list[str]:
    case = await life.deactivate(await life.add_account())
    # Signed in, but the signal to the case is lost: the directory alone knows.
    await life.directory.sign_in(Identifier(IdentifierKind.USERNAME, "jane"), PASSWORD)
    await life.outcome(case.case_id)
    return [case.case_id]


async def ban_ended(life: Lifecycle) -> list[str]:
    case = await life.ban(await life.add_account(), days=7)
    await life.outcome(case.case_id)
    return [case.case_id]


async def deletion_refused_and_ban_superseding(life: Lifecycle) -> list[str]:
    account_id = await life.add_account()
    deletion = await life.deactivate(account_id)
    refused = await life.deactivate(account_id)
    ban = await life.ban(account_id, days=2)
    for case in (deletion, refused, ban):
        await life.outcome(case.case_id)
    return [deletion.case_id, refused.case_id, ban.case_id]


async def ban_lifted_and_replaced(life: Lifecycle) -> list[str]:
    account_id = await life.add_account()
    permanent = await life.ban(account_id)
    replaced = await life.ban(account_id)
    await life.cases.unban(account_id, OPERATOR, "appeal accepted")
    for case in (permanent, replaced):
        await life.outcome(case.case_id)
    return [permanent.case_id, replaced.case_id]


async def ban_refused(life: Lifecycle) -> list[str]:
    case = await life.ban(404)  # no such account
    await life.outcome(case.case_id)
    return [case.case_id]


LIFECYCLE: dict[str, Callable[[Lifecycle], Awaitable[list[str]]]] = {
    "deletion_purged": deletion_purged,
    "deletion_reactivated": deletion_reactivated,
    "deletion_signal_lost": deletion_signal_lost,
    "ban_ended": ban_ended,
    "deletion_refused_and_ban_superseding": deletion_refused_and_ban_superseding,
    "ban_lifted_and_replaced": ban_lifted_and_replaced,
    "ban_refused": ban_refused,
}
# -- support claims ---------------------------------------------------------------------------


async def claim_approved_after_escalation(life: Lifecycle) -> list[str]:
    desk = SupportDesk(life)
    await life.add_account(phone="+14155550123")
    claim = await desk.file(**STRONG_EVIDENCE)
    await life.env.sleep(2 * 86_400)
    await claim.assign()
    await claim.ask("Which city?")
    await claim.answer()
    await claim.approve(note="ok")
    await claim.closed()
    return [claim.case_id]


async def claim_abandoned(life: Lifecycle) -> list[str]:
    desk = SupportDesk(life)
    await life.add_account()
    claim = await desk.file(**STRONG_EVIDENCE)
    await claim.assign()
    await claim.ask("Which city?")
    await life.env.sleep(8 * 86_400)
    await claim.closed()
    return [claim.case_id]


async def claim_refused_then_rejected(life: Lifecycle) -> list[str]:
    desk = SupportDesk(life)
    claim = await desk.file(ClaimReason.DELETED, username="ghost")
    await claim.assign(by=SUPERVISOR)
    await claim.refusal(claim.approve(by=SUPERVISOR))
    await claim.reject("no such account", by=SUPERVISOR)
    await claim.closed()
    return [claim.case_id]


async def claim_appeal_approved_by_supervisor(life: Lifecycle) -> list[str]:
    desk = SupportDesk(life)
    account_id = await life.add_account()
    await life.ban(account_id)
    claim = await desk.file(ClaimReason.BANNED)
    await claim.assign()
    await claim.refusal(claim.assign(to="sam"))  # only a supervisor gives a claim away
    await claim.assign(by=SUPERVISOR, to="sam")
    await claim.approve(by=SUPERVISOR)
    await claim.closed()
    return [claim.case_id]


async def claim_restored_inside_grace(life: Lifecycle) -> list[str]:
    desk = SupportDesk(life)
    account_id = await life.add_account()
    await life.deactivate(account_id)
    claim = await desk.file(ClaimReason.DELETED, **STRONG_EVIDENCE)
    await life.env.sleep(4 * 86_400)
    await claim.assign()
    await claim.approve()
    await claim.closed()
    return [claim.case_id]


async def claim_cancelled_by_an_operator(life: Lifecycle) -> list[str]:
    desk = SupportDesk(life)
    await life.add_account()
    claim = await desk.file(**STRONG_EVIDENCE)
    await claim.assign()
    await claim.update(ClaimCalls.CANCEL, CancelClaim("operator:olivia", "duplicate claim"))
    await claim.closed()
    return [claim.case_id]


async def claim_high_risk_confirmed_by_a_second_supervisor(life: Lifecycle) -> list[str]:
    """The two-person rule: a reviewer's approval waits; its author cannot confirm it even as
    a supervisor; another supervisor does."""
    desk = SupportDesk(life)
    account_id = await life.add_account()
    await life.ban(account_id)
    claim = await desk.file(ClaimReason.BANNED)
    await claim.assign()
    await claim.approve(note="appeal accepted")
    await claim.refusal(claim.confirm(by=Reviewer(REVIEWER.id, REVIEWER.name, SUPERVISOR.role)))
    await life.env.sleep(3_600)
    await claim.confirm(by=SUPERVISOR)
    await claim.closed()
    return [claim.case_id]


async def claim_high_risk_approval_lapsed(life: Lifecycle) -> list[str]:
    """Nobody confirms: back to review, asked again, then rejected by a supervisor."""
    desk = SupportDesk(life)
    account_id = await life.add_account()
    await life.ban(account_id)
    claim = await desk.file(ClaimReason.BANNED)
    await claim.assign()
    await claim.approve()
    await life.env.sleep(2 * 86_400)
    await claim.approve()
    await claim.reject("ban stands", by=SUPERVISOR)
    await claim.closed()
    return [claim.case_id]


async def claim_lost_authenticator_confirmed(life: Lifecycle) -> list[str]:
    """Lost second factors: always high risk; a reviewer approves with the factors to remove
    (the marker of that choice), a supervisor confirms; the held recovery opens."""
    desk = SupportDesk(life)
    account_id = await life.add_account()
    now = datetime.now(UTC)
    await life.directory.enrol_totp(account_id, now)
    await life.directory.add_passkey(
        account_id, Passkey(b"Laptop", b"cose key", 0, (), "Laptop", now)
    )
    filed = await life.services.claims.file(
        username="jane",
        contact_email="jane@example.com",
        reason=ClaimReason.LOST_AUTHENTICATOR,
        **STRONG_EVIDENCE,
    )
    claim = Claim(desk, filed)
    await claim.assign()
    chosen = ["totp", f"webauthn:{passkey_key(b'Laptop')}"]
    await claim.update(ClaimCalls.APPROVE, Approve(REVIEWER, "lost phone", "", chosen))
    await claim.confirm(by=SUPERVISOR)
    await claim.closed()
    return [claim.case_id]


async def claim_lost_authenticator_by_two_supervisors(life: Lifecycle) -> list[str]:
    """A supervisor's own approval of a lost-authenticator claim waits too (all factors, by
    default); its author cannot confirm it; another supervisor does."""
    desk = SupportDesk(life)
    account_id = await life.add_account()
    await life.directory.enrol_totp(account_id, datetime.now(UTC))
    filed = await life.services.claims.file(
        username="jane", contact_email="jane@example.com", reason=ClaimReason.LOST_AUTHENTICATOR
    )
    claim = Claim(desk, filed)
    await claim.assign(by=SUPERVISOR)
    await claim.approve(by=SUPERVISOR)
    await claim.refusal(claim.confirm(by=SUPERVISOR))
    await claim.confirm(by=OTHER_SUPERVISOR)
    await claim.closed()
    return [claim.case_id]


SUPPORT: dict[str, Callable[[Lifecycle], Awaitable[list[str]]]] = {
    "claim_lost_authenticator_by_two_supervisors": claim_lost_authenticator_by_two_supervisors,
    "claim_lost_authenticator_confirmed": claim_lost_authenticator_confirmed,
    "claim_high_risk_confirmed_by_a_second_supervisor": (
        claim_high_risk_confirmed_by_a_second_supervisor
    ),
    "claim_high_risk_approval_lapsed": claim_high_risk_approval_lapsed,
    "claim_cancelled_by_an_operator": claim_cancelled_by_an_operator,
    "claim_approved_after_escalation": claim_approved_after_escalation,
    "claim_abandoned": claim_abandoned,
    "claim_refused_then_rejected": claim_refused_then_rejected,
    "claim_appeal_approved_by_supervisor": claim_appeal_approved_by_supervisor,
    "claim_restored_inside_grace": claim_restored_inside_grace,
}
KIND_BY_PREFIX = {"del_": "deletion", "ban_": "ban", "sc_": "support"}


async def record_lifecycle(version: str, only: list[str] | None = None) -> list[Path]:
    return await _record_with_worker(version, LIFECYCLE, only)


async def record_support(version: str, only: list[str] | None = None) -> list[Path]:
    return await _record_with_worker(version, SUPPORT, only)


async def _record_with_worker(
    version: str,
    scenarios: dict[str, Callable[[Lifecycle], Awaitable[list[str]]]],
    only: list[str] | None = None,
) -> list[Path]:
    """Play each scenario with the real worker on a time-skipping server of its own, and keep
    the histories of the cases it names."""
    written = []
    for name, play in scenarios.items():
        if only and name not in only:
            continue
        env = await _environment()
        sms = SmsGateway()
        sms.start()
        try:
            await register_search_attributes(env.client, env.client.namespace)
            with (
                tempfile.TemporaryDirectory() as state_dir,
                smtp_server(MailSink()) as mail,
            ):
                async with lifecycle_stack(
                    env, Path(state_dir), mail, sms, claims_per_hour=50
                ) as life:
                    case_ids = await play(life)
                    histories = [await life.handle(c).fetch_history() for c in case_ids]
        finally:
            sms.stop()
            await env.shutdown()
        for n, (case_id, history) in enumerate(zip(case_ids, histories, strict=True)):
            kind = next(k for p, k in KIND_BY_PREFIX.items() if case_id.startswith(p))
            (HISTORIES / kind).mkdir(exist_ok=True)
            path = HISTORIES / kind / f"{version}_{name}_{n}.json"
            path.write_text(history.to_json())
            written.append(path)
            print(f"recorded {path.relative_to(Path.cwd())} ({len(history.events)} events)")
    return written


RECORDERS = {
    "recovery": record_recovery,
    "lifecycle": record_lifecycle,
    "support": record_support,
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "kinds", nargs="*", metavar="KIND", help="recovery, lifecycle, support [all]"
    )
    parser.add_argument("--version", default="v2")
    parser.add_argument("--plain", action="store_true", help="record without the codec")
    parser.add_argument(
        "--only", action="append", metavar="SCENARIO", help="the scenarios to record (all)"
    )
    args = parser.parse_args()
    if args.plain:
        global CONVERTER
        CONVERTER = DataConverter.default
    for kind in args.kinds or list(RECORDERS):
        await RECORDERS[kind](args.version, args.only)


if __name__ == "__main__":
    asyncio.run(main())
