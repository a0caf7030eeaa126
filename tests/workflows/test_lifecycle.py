"""Deactivation grace periods and bans, their timers skipped on the time-skipping server, the
real activities writing to a real database and mailing a real SMTP sink."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from reclaim.contracts import AccountStatus
from reclaim.directory import UsernameReserved
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.lifecycle.contracts import LifecycleState
from reclaim.notify.outbox import text_of
from tests import words
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.workflows.lifecycle_harness import OPERATOR, PASSWORD, Lifecycle, lifecycle_stack


@pytest.fixture
async def life(
    time_env: WorkflowEnvironment, tmp_path: Path, mail: MailSink, sms: SmsGateway
) -> AsyncIterator[Lifecycle]:
    async with lifecycle_stack(time_env, tmp_path, mail, sms) as stack:
        yield stack


async def test_the_grace_period_ends_in_a_purge_that_leaves_only_an_audit_record(
    life: Lifecycle, sms: SmsGateway
):
    account_id = await life.add_account(phone="+14155550123")
    signed_in = await life.sign_in("jane")
    assert signed_in.token is not None
    started = await life.env.get_current_time()

    case = await life.deactivate(account_id)

    assert case.state is LifecycleState.DEACTIVATED
    assert case.until is not None and case.until - started >= timedelta(days=30)
    assert case.until - started < timedelta(days=30, minutes=1)
    notice = await life.mail.wait_for(lambda m: "deactivated" in m["Subject"])
    assert notice["To"] == "jane@example.com"
    assert words.moment(case.until) in text_of(notice)
    await sms.wait_for("+14155550123", f"deleted on {words.day(case.until)}")
    # Signed out everywhere, and a deactivated account's session is no session.
    assert signed_in.token is not None
    assert await life.directory.session(signed_in.token) is None

    await life.days_pass(29)
    assert (await life.status(case.case_id)).state is LifecycleState.DEACTIVATED
    assert life.account(account_id).status == AccountStatus.DEACTIVATED

    final = await life.outcome(case.case_id)

    assert final.state is LifecycleState.PURGED
    purged = life.account(account_id)
    assert purged.status == AccountStatus.PURGED
    assert "jane" not in purged.username and "example.com" not in purged.email
    assert purged.phone is None and purged.password_hash == ""
    assert (await life.sign_in("jane")).problem == "invalid_credentials"
    assert (await life.sign_in("jane@example.com")).problem == "invalid_credentials"
    # The username stays reserved; the address is free for a new account.
    with pytest.raises(UsernameReserved):
        await life.add_account("jane", "someone.else@example.com")
    await life.add_account("jane.again", "jane@example.com")
    assert [(e.action, e.actor_kind) for e in life.events(account_id)] == [
        ("deactivated", "operator"),
        ("purged", "system"),
    ]


async def test_signing_in_inside_the_grace_period_keeps_the_account(life: Lifecycle):
    account_id = await life.add_account()
    case = await life.deactivate(account_id)
    await life.days_pass(10)

    signed_in = await life.sign_in("jane@example.com")

    assert signed_in.token is not None
    final = await life.outcome(case.case_id)
    assert final.state is LifecycleState.REACTIVATED
    await life.days_pass(30)
    assert life.account(account_id).status == AccountStatus.ACTIVE
    assert (await life.sign_in("jane")).token is not None
    assert [e.action for e in life.events(account_id)] == ["deactivated", "reactivated"]
    assert life.events(account_id)[1].actor_kind == "user"


async def test_a_lost_reactivation_signal_still_purges_nothing(life: Lifecycle):
    account_id = await life.add_account()
    case = await life.deactivate(account_id)
    await life.days_pass(3)
    # A sign-in whose signal never reached the case.
    jane = Identifier(IdentifierKind.USERNAME, "jane")
    signed_in = await life.directory.sign_in(jane, PASSWORD)
    assert signed_in.reactivated == case.case_id

    final = await life.outcome(case.case_id)

    assert final.state is LifecycleState.REACTIVATED
    assert life.account(account_id).status == AccountStatus.ACTIVE


async def test_deactivating_again_after_a_reactivation_starts_a_fresh_grace_period(
    life: Lifecycle,
):
    account_id = await life.add_account()
    first = await life.deactivate(account_id)
    await life.days_pass(20)
    await life.sign_in("jane")
    assert (await life.outcome(first.case_id)).state is LifecycleState.REACTIVATED

    second = await life.deactivate(account_id)

    assert second.case_id != first.case_id  # a new case, never a reused id
    assert second.until is not None and first.until is not None
    assert second.until - first.until >= timedelta(days=20)
    await life.days_pass(15)  # past the first grace period's end
    assert life.account(account_id).status == AccountStatus.DEACTIVATED
    assert (await life.outcome(second.case_id)).state is LifecycleState.PURGED


async def test_a_second_deactivation_while_one_runs_is_refused_and_changes_nothing(
    life: Lifecycle,
):
    account_id = await life.add_account()
    first = await life.deactivate(account_id)

    second = await life.deactivate(account_id)

    assert second.state is LifecycleState.REFUSED
    assert (await life.outcome(second.case_id)).state is LifecycleState.REFUSED
    assert life.account(account_id).status_until == first.until
    assert (await life.outcome(first.case_id)).state is LifecycleState.PURGED


async def test_a_temporary_ban_lifts_on_time_and_the_holder_is_told(life: Lifecycle):
    account_id = await life.add_account()
    case = await life.ban(account_id, days=3)

    assert case.state is LifecycleState.BANNED
    refused = await life.sign_in("jane")
    assert refused.problem == "account_banned" and refused.until == case.until
    await life.days_pass(2)
    assert (await life.sign_in("jane")).problem == "account_banned"

    final = await life.outcome(case.case_id)

    assert final.state is LifecycleState.ENDED
    assert (await life.sign_in("jane")).token is not None
    told = await life.mail.wait_for(lambda m: "available again" in m["Subject"])
    assert told["To"] == "jane@example.com"
    assert [(e.action, e.actor_kind) for e in life.events(account_id)] == [
        ("banned", "operator"),
        ("ban_ended", "system"),
    ]


async def test_unbanning_before_the_end_stops_the_timer(life: Lifecycle):
    account_id = await life.add_account()
    case = await life.ban(account_id, days=3)
    await life.days_pass(1)
    before = await life.env.get_current_time()

    lifted = await life.cases.unban(account_id, OPERATOR, "appeal accepted")

    assert lifted is not None and lifted.state is LifecycleState.LIFTED
    final = await life.outcome(case.case_id)
    assert final.state is LifecycleState.LIFTED
    assert await life.env.get_current_time() - before < timedelta(hours=1)  # no timer left
    assert (await life.sign_in("jane")).token is not None
    await life.mail.wait_for(lambda m: "available again" in m["Subject"])
    last = life.events(account_id)[-1]
    assert (last.action, last.actor, last.reason) == ("unbanned", "olivia", "appeal accepted")


async def test_a_ban_without_an_end_lasts_until_lifted(life: Lifecycle):
    account_id = await life.add_account()
    case = await life.ban(account_id)
    assert case.until is None

    await life.days_pass(400)

    assert (await life.status(case.case_id)).state is LifecycleState.BANNED
    assert (await life.sign_in("jane")).problem == "account_banned"
    await life.cases.unban(account_id, OPERATOR)
    assert (await life.outcome(case.case_id)).state is LifecycleState.LIFTED


async def test_a_new_ban_replaces_the_previous_one(life: Lifecycle):
    account_id = await life.add_account()
    permanent = await life.ban(account_id)

    shorter = await life.ban(account_id, days=1)

    assert (await life.outcome(permanent.case_id)).state is LifecycleState.SUPERSEDED
    assert (await life.outcome(shorter.case_id)).state is LifecycleState.ENDED
    assert life.account(account_id).status == AccountStatus.ACTIVE


async def test_banning_a_deactivated_account_stops_its_purge(life: Lifecycle):
    account_id = await life.add_account()
    deletion = await life.deactivate(account_id)

    await life.ban(account_id)

    assert (await life.outcome(deletion.case_id)).state is LifecycleState.SUPERSEDED
    await life.days_pass(31)
    assert life.account(account_id).status == AccountStatus.BANNED
    assert life.account(account_id).username == "jane"


async def test_a_notice_that_never_goes_out_does_not_stop_the_purge(
    time_env: WorkflowEnvironment, tmp_path: Path, mail: MailSink, sms: SmsGateway
):
    with socket.socket() as sock:  # a port where no mail server listens
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    async with lifecycle_stack(time_env, tmp_path, mail, sms, smtp_port=dead_port) as life:
        account_id = await life.add_account()
        case = await life.deactivate(account_id)

        final = await life.outcome(case.case_id)

        assert final.state is LifecycleState.PURGED
        assert life.account(account_id).status == AccountStatus.PURGED
        assert mail.messages == []
