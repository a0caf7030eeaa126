"""The account lifecycle end to end on the real Temporal dev server: deactivation over HTTP,
bans from the operator's CLI, and what self-service recovery answers for each status."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import extract_parameters
from sqlmodel import Session, select
from temporalio.client import WorkflowExecutionStatus
from typer.testing import CliRunner

from reclaim.cli import app
from reclaim.contracts import Actor, ActorKind
from reclaim.directory.tables import AccountEvent
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.lifecycle.contracts import LifecycleCalls, LifecycleState, LifecycleStatus
from reclaim.notify.outbox import text_of
from reclaim.recovery.rules import plan_case
from reclaim.security import Keys
from tests import words
from tests.conftest import StackParts
from tests.history_text import payload_texts
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import TEST_SECRET, Stack, running_stack, settings_env
from worker import build_worker, courier_for

PASSWORD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"


def _shape(body: dict[str, Any]) -> dict[str, Any]:
    """An answer without the values that differ between any two cases."""
    return {
        k: (type(v), len(v) if isinstance(v, str) else v)
        for k, v in body.items()
        if k not in ("case_id", "code_expires_at", "resend_available_at")
    }


async def _session(stack: Stack, identifier: str = "jane", password: str = PASSWORD) -> str:
    signed_in = await stack.sign_in(identifier, password)
    assert signed_in.status_code == 200, signed_in.text
    return str(signed_in.json()["session_token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _closed(stack: Stack, case_id: str, timeout: float = 20) -> LifecycleStatus:
    """The final status of a lifecycle case, once its workflow has closed."""
    handle = stack.client.get_workflow_handle(case_id)
    deadline = time.monotonic() + timeout
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        if time.monotonic() > deadline:
            raise AssertionError(f"{case_id} is still running")
        await asyncio.sleep(0.05)
    status: LifecycleStatus = await handle.query(LifecycleCalls.STATUS, result_type=LifecycleStatus)
    return status


async def _events(stack: Stack) -> list[AccountEvent]:
    def read() -> list[AccountEvent]:
        with Session(stack.engine) as session:
            return list(session.exec(select(AccountEvent)).all())

    return await asyncio.to_thread(read)


async def _finish_recovery(stack: Stack, identifier: str, address: str) -> None:
    case = await stack.open_case(identifier)
    code = await stack.mail.code_for(address)
    granted = await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
    assert granted.status_code == 200, granted.text
    done = await stack.http.post(
        f"/v1/recovery/{case['case_id']}/password",
        json={"reset_token": granted.json()["reset_token"], "new_password": NEW},
    )
    assert done.status_code == 200, done.text


class _Said:
    def __init__(self, exit_code: int, output: str) -> None:
        self.exit_code, self.output = exit_code, output


def _without_worker_logs(result: Any) -> _Said:
    """What the command printed. The test's worker runs in this process, so its JSON log
    lines land in the same captured stderr; a user's terminal never shows them."""
    kept = [line for line in result.output.splitlines() if not line.startswith('{"')]
    return _Said(result.exit_code, "\n".join(kept))


async def test_an_unknown_identifier_costs_one_argon2_verification_like_a_wrong_password(
    stack: Stack, argon2_verifications: list[str]
):
    await stack.add_account("jane", "jane@example.com", "+14155550123", PASSWORD)
    verified = argon2_verifications

    async def attempt(identifier: str, password: str) -> tuple[int, Any, list[str]]:
        verified.clear()
        response = await stack.sign_in(identifier, password)
        return response.status_code, response.json(), list(verified)

    wrong_password = await attempt("jane", "not her password at all")
    unknown = [
        await attempt(identifier, "not her password at all")
        for identifier in ("nobody", "nobody@example.com", "+14155550199")
    ]
    right = await attempt("jane", PASSWORD)

    status, body, [janes_hash] = wrong_password
    assert (status, body["error"]) == (401, "invalid_credentials")
    for unknown_status, unknown_body, hashes in unknown:
        assert (unknown_status, unknown_body) == (status, body)
        # Exactly one verification, against a hash that costs what jane's costs.
        assert len(hashes) == 1 and hashes[0] != janes_hash
        assert extract_parameters(hashes[0]) == extract_parameters(janes_hash)
    assert (right[0], len(right[2])) == (200, 1)


async def test_a_deactivated_account_is_kept_by_completing_a_recovery(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    token = await _session(stack)

    deactivated = await stack.http.post("/v1/accounts/deactivate", headers=_bearer(token))

    assert deactivated.status_code == 202, deactivated.text
    assert deactivated.json()["status"] == "deactivated"
    purge_at = datetime.fromisoformat(deactivated.json()["purge_at"])
    assert timedelta(days=29, hours=23) < purge_at - datetime.now(UTC) <= timedelta(days=30)
    notice = await stack.mail.wait_for(lambda m: "deactivated" in m["Subject"])
    assert f"deleted for good on {words.moment(purge_at)}" in text_of(notice)
    # Signed out everywhere: the session that asked is gone too.
    gone = await stack.http.get("/v1/sessions/current", headers=_bearer(token))
    assert gone.status_code == 401
    again = await stack.http.post("/v1/accounts/deactivate", headers=_bearer(token))
    assert (again.status_code, again.json()["error"]) == (401, "invalid_session")

    await _finish_recovery(stack, "jane", "jane@example.com")

    back = await stack.sign_in("jane", NEW)
    assert back.status_code == 200
    [case_id] = [e.case_id for e in await _events(stack) if e.action == "deactivated"]
    assert case_id is not None
    assert (await _closed(stack, case_id)).state is LifecycleState.REACTIVATED
    history = (await stack.client.get_workflow_handle(case_id).fetch_history()).to_json()
    decoded = "\n".join(payload_texts(json.loads(history), stack.settings.codec()))
    assert "account holder" in decoded  # the control: the payloads were read
    assert "jane" not in (history + decoded).lower()  # neither the username nor the address


async def test_deactivating_needs_a_valid_session(stack: Stack):
    for headers in ({}, _bearer("not-a-session")):
        refused = await stack.http.post("/v1/accounts/deactivate", headers=headers)
        assert (refused.status_code, refused.json()["error"]) == (401, "invalid_session")


async def test_a_banned_account_gets_the_neutral_answer_and_a_notice_instead_of_a_code(
    stack: Stack,
):
    jane = await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    await stack.add_account("bob", "bob@example.com", None, PASSWORD)
    cases = stack.services.lifecycle
    ban = await cases.ban(jane, "spam", Actor(ActorKind.OPERATOR, "olivia"), 2 * 86_400)
    assert isinstance(ban, LifecycleStatus) and ban.until is not None

    banned = await stack.open_case("jane@example.com")
    active = await stack.open_case("bob@example.com")

    assert _shape(banned) == _shape(active)
    assert banned["destination"] == "j•••@e•••.com"
    notice = await stack.mail.wait_for(lambda m: m["To"] == "jane@example.com")
    body = text_of(notice)
    assert "suspended" in notice["Subject"]
    assert f"suspended until {words.moment(ban.until)}" in body
    assert "Reason given: spam" in body and "https://reclaim.example/support" in body
    await stack.mail.code_for("bob@example.com")
    assert not any("recovery code" in m["Subject"] for m in stack.mail.to("jane@example.com"))
    wrong = await stack.http.post(f"/v1/recovery/{banned['case_id']}/code", json={"code": "123456"})
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_code")
    login = await stack.sign_in("jane", PASSWORD)
    assert (login.status_code, login.json()["error"]) == (403, "account_banned")
    assert datetime.fromisoformat(login.json()["ends_at"]) == ban.until


async def test_a_purged_account_is_indistinguishable_from_one_that_never_existed(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(deletion_grace=1)
    async with running_stack(settings, engine, mail, sms) as stack:
        await stack.add_account("jane", "jane@example.com", None, PASSWORD)
        token = await _session(stack)
        deactivated = await stack.http.post("/v1/accounts/deactivate", headers=_bearer(token))
        assert deactivated.status_code == 202
        [case_id] = [e.case_id for e in await _events(stack) if e.action == "deactivated"]
        assert case_id is not None
        assert (await _closed(stack, case_id)).state is LifecycleState.PURGED

        by_email = await stack.open_case("jane@example.com")
        by_username = await stack.open_case("jane")
        never = await stack.open_case("nobody@example.com")

        assert _shape(by_email) == _shape(never)
        assert by_email["destination"] == "j•••@e•••.com"
        told = await mail.wait_for(lambda m: "no account" in text_of(m))
        assert told["To"] == "jane@example.com"
        jane = Identifier(IdentifierKind.USERNAME, "jane")
        seed = Keys(TEST_SECRET.encode()).decoy_seed(jane.key)
        # The only account is purged: nothing to lend its contacts, they are invented.
        decoy = plan_case(None, jane, None, None, seed)
        assert by_username["destination"] == decoy.destination
        login = await stack.sign_in("jane@example.com", PASSWORD)
        assert (login.status_code, login.json()["error"]) == (401, "invalid_credentials")


async def test_operators_ban_unban_deactivate_and_read_the_record_from_the_cli(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    env = settings_env(stack.settings)

    async def cli(*args: str) -> Any:
        return _without_worker_logs(
            await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
        )

    banned = await cli(
        "accounts", "ban", "jane", "--reason", "spam", "--days", "2", "--by", "olivia"
    )
    assert banned.exit_code == 0, banned.output
    assert "banned until" in banned.output
    shown = await cli("accounts", "show", "jane")
    assert "status:     banned since" in shown.output and "reason:     spam" in shown.output
    assert (await stack.sign_in("jane", PASSWORD)).status_code == 403

    lifted = await cli("accounts", "unban", "jane", "--reason", "appeal accepted", "--by", "olivia")

    assert lifted.exit_code == 0, lifted.output
    assert (await stack.sign_in("jane", PASSWORD)).status_code == 200
    await stack.mail.wait_for(lambda m: "available again" in m["Subject"])
    not_banned = await cli("accounts", "unban", "jane")
    assert (not_banned.exit_code, "jane is not banned") == (1, not_banned.output.strip())
    deactivated = await cli("accounts", "deactivate", "jane", "--by", "olivia")
    assert deactivated.exit_code == 0, deactivated.output
    assert "deactivated; purge scheduled until" in deactivated.output
    record = (await cli("accounts", "show", "jane")).output
    lines = [line.split() for line in record.splitlines() if line.startswith("  20")]
    assert [(line[2], line[4], line[5]) for line in lines] == [
        ("banned", "operator", "(olivia)"),
        ("unbanned", "operator", "(olivia)"),
        ("deactivated", "operator", "(olivia)"),
    ]


async def test_a_deactivation_asked_while_no_worker_runs_happens_when_one_starts(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(temporal_rpc_timeout=1)
    async with running_stack(settings, engine, mail, sms, worker=False) as stack:
        await stack.add_account("jane", "jane@example.com", None, PASSWORD)
        token = await _session(stack)

        asked = await stack.http.post("/v1/accounts/deactivate", headers=_bearer(token))

        assert (asked.status_code, asked.json()) == (
            202,
            {"status": "deactivating", "purge_at": None},
        )
        assert (
            await stack.http.get("/v1/sessions/current", headers=_bearer(token))
        ).status_code == 200
        courier = courier_for(settings)
        async with build_worker(
            stack.client, settings, engine, courier, task_queue=settings.task_queue
        ):
            await mail.wait_for(lambda m: "deactivated" in m["Subject"])
        await courier.aclose()
        gone = await stack.http.get("/v1/sessions/current", headers=_bearer(token))
        assert gone.status_code == 401
        assert [e.action for e in await _events(stack)] == ["deactivated"]
