"""Recovering the users of a host application, end to end: the real API and worker, the
reference host (examples/host_directory/app.py) as a process of its own with its own user
table, every request signed, bans set at the host, a host that answers 503 for a minute."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from standardwebhooks import Webhook
from temporalio.client import WorkflowExecutionStatus
from typer.testing import CliRunner

from reclaim.cli import app as cli_app
from reclaim.contracts import Actor, ActorKind, StatusChange
from reclaim.directory import FactorKind
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.lifecycle.contracts import LifecycleCalls, LifecycleState, LifecycleStatus
from reclaim.notify.outbox import text_of
from tests import words
from tests.codes import wrong_codes
from tests.conftest import StackParts
from tests.host_app import HOST_SECRET, HostApp, Proxy, serve_proxy
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack, settings_env

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"
OTHER = "orchid lantern pebble saxophone"


@pytest.fixture
def host(tmp_path: Path) -> AsyncIterator[HostApp]:
    app = HostApp(tmp_path / "host")
    app.add_user("jane", "jane@example.com", "+14155550123", OLD)
    app.add_user("bob", "bob@example.com", None, OLD)
    app.start()
    yield app  # type: ignore[misc]
    app.stop()


def _settings(url: str, **more: Any) -> dict[str, Any]:
    return {
        "directory": "http",
        "http_directory_url": f"{url}/reclaim",
        "http_directory_secret": HOST_SECRET,
        **more,
    }


async def _poll(
    read: Callable[[], Awaitable[Any]], until: Callable[[Any], bool], within: float = 30
) -> Any:
    deadline = time.monotonic() + within
    while True:
        answer = await read()
        if until(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"never came: {answer}")
        await asyncio.sleep(0.1)


async def _token(stack: Stack, case_id: str, code: str) -> str:
    granted = await stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": code})
    assert granted.status_code == 200, granted.text
    return str(granted.json()["reset_token"])


async def _choose(stack: Stack, case_id: str, token: str, password: str) -> httpx.Response:
    return await stack.http.post(
        f"/v1/recovery/{case_id}/password", json={"reset_token": token, "new_password": password}
    )


async def test_a_host_user_recovers_by_email_and_by_phone(
    host: HostApp, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(**_settings(host.origin))
    async with running_stack(settings, engine, mail, sms) as stack:
        ready = await stack.http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["directory_kind"] == "http"
        signed_in = await host.login("jane", OLD)
        assert signed_in.status_code == 200

        case = await stack.open_case("jane@example.com")
        assert (case["channel"], case["destination"]) == ("email", "j•••@e•••.com")
        token = await _token(stack, case["case_id"], await mail.code_for("jane@example.com"))
        reused = await _choose(stack, case["case_id"], token, OLD)
        assert (reused.status_code, reused.json()["error"]) == (422, "password_reused")
        done = await _choose(stack, case["case_id"], token, NEW)
        assert done.status_code == 200, done.text

        assert (await host.login("jane", NEW)).status_code == 200
        assert (await host.login("jane", OLD)).status_code == 401
        # The host signed her out everywhere: the session from before is revoked.
        assert host.query(
            "SELECT revoked FROM sessions WHERE token = ?", signed_in.json()["session"]
        ) == [(1,)]
        await sms.wait_for("+14155550123", "password of jane was changed")

        by_phone = await stack.open_case("+1 415 555 0123")
        code = await sms.code_for("+14155550123")
        token = await _token(stack, by_phone["case_id"], code)
        assert (await _choose(stack, by_phone["case_id"], token, OTHER)).status_code == 200
        assert (await host.login("jane", OTHER)).status_code == 200

        # Nobody else was touched; sessions and account creation stay the host's.
        assert (await host.login("bob", OLD)).status_code == 200
        refused = await stack.sign_in("jane", OTHER)
        assert (refused.status_code, refused.json()["error"]) == (501, "not_supported")


async def test_a_host_answering_503_refuses_new_cases_and_a_lost_answer_is_applied_once(
    host: HostApp, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    proxy = Proxy(host.origin)
    async with serve_proxy(proxy) as proxied:
        settings, engine = stack_parts(**_settings(proxied))
        async with running_stack(settings, engine, mail, sms) as stack:
            proxy.down = True
            ready = await stack.http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["directory"] == ("unavailable (the host application answered 503)")
            refused = await stack.http.post("/v1/recovery", json={"identifier": "jane"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "temporarily_unavailable"
            proxy.down = False

            case = await stack.open_case("jane")
            token = await _token(stack, case["case_id"], await mail.code_for("jane@example.com"))
            # The host applies the change twice more than it can answer: the activity retries
            # with the same idempotency key, the host answers what it did the first time.
            proxy.lose["/password"] = 2
            done = await _choose(stack, case["case_id"], token, NEW)

            assert done.status_code == 200, done.text
            sent = [key for path, key in proxy.seen if path.endswith("/password")]
            assert len(sent) == 3 and len(set(sent)) == 1, sent
            assert sent[0].startswith(f"pw_{case['case_id']}_")
            changes = host.query(
                "SELECT count(*) FROM passwords WHERE case_id = ?", case["case_id"]
            )
            assert changes == [(1,)]  # applied once
            assert (await host.login("jane", NEW)).status_code == 200
            final = await _poll(
                lambda: stack.http.get(f"/v1/recovery/{case['case_id']}"),
                lambda r: r.json()["state"] == "completed",
            )
            assert final.status_code == 200


async def test_requests_are_signed_and_a_wrong_secret_is_named(
    host: HostApp, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    async with httpx.AsyncClient(base_url=host.origin) as http:
        unsigned = await http.post("/reclaim/accounts/lookup", json={"kind": "username"})
        other = Webhook("whsec_" + "b3RoZXIgc2VjcmV0IG9mIDMyIGJ5dGVzIGxvbmcgISE=")
        forged = {"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time()))}
        forged["webhook-signature"] = other.sign("msg_1", datetime.now(UTC), "")
        wrong = await http.get("/reclaim/health", headers=forged)
    assert (unsigned.status_code, wrong.status_code) == (401, 401)

    wrong_secret = "whsec_" + "b3RoZXIgc2VjcmV0IG9mIDMyIGJ5dGVzIGxvbmcgISE="
    settings, engine = stack_parts(**_settings(host.origin, http_directory_secret=wrong_secret))
    async with running_stack(settings, engine, mail, sms) as stack:
        ready = await stack.http.get("/readyz")
        opened = await stack.http.post("/v1/recovery", json={"identifier": "jane"})

    assert ready.status_code == 503
    assert (
        "refused Reclaim's signature (401): check RECLAIM_HTTP_DIRECTORY_SECRET"
        in (ready.json()["directory"])
    )
    assert (opened.status_code, opened.json()["error"]) == (503, "temporarily_unavailable")


async def test_a_ban_reaches_the_host_refuses_recovery_and_its_lifting_gives_it_back(
    host: HostApp, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    proxy = Proxy(host.origin)
    async with serve_proxy(proxy) as proxied:
        settings, engine = stack_parts(**_settings(proxied))
        async with running_stack(settings, engine, mail, sms) as stack:
            cases = stack.services.lifecycle
            jane = await cases.account_id("jane")
            signed_in = await host.login("jane", OLD)
            # The host applies the ban but its answer is lost: the activity sends it again.
            proxy.lose["/status"] = 1

            ban = await cases.ban(jane, "spam", Actor(ActorKind.OPERATOR, "olivia"), 2 * 86_400)

            assert isinstance(ban, LifecycleStatus), ban
            assert (ban.state, ban.account_status) == (LifecycleState.BANNED, "banned")
            assert ban.until is not None
            [(status, case, reason, until)] = host.query(
                "SELECT status, status_case, status_reason, status_until FROM users "
                "WHERE username = 'jane'"
            )
            assert (status, case, reason) == ("banned", ban.case_id, "spam")
            assert datetime.fromisoformat(until) == ban.until
            sent = [key for path, key in proxy.seen if path.endswith("/status")]
            assert sent == [f"st_{ban.case_id}_banned"] * 2
            assert host.query(
                "SELECT status, actor FROM status_changes WHERE case_id = ?", ban.case_id
            ) == [("banned", "operator: olivia")]  # applied once
            assert host.query(
                "SELECT revoked FROM sessions WHERE token = ?", signed_in.json()["session"]
            ) == [(1,)]
            refused = await host.login("jane", OLD)
            assert (refused.status_code, refused.json()) == (403, {"error": "account_banned"})

            # A recovery for her: the usual answer, no code, a notice saying why.
            banned = await stack.open_case("jane@example.com")
            assert banned["destination"] == "j•••@e•••.com"
            notice = await mail.wait_for(lambda m: "suspended" in m["Subject"])
            assert notice["To"] == "jane@example.com"
            assert f"suspended until {words.moment(ban.until)}" in text_of(notice)
            assert "Reason given: spam" in text_of(notice)
            wrong = await stack.http.post(
                f"/v1/recovery/{banned['case_id']}/code", json={"code": "123456"}
            )
            assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_code")
            assert not any("recovery code" in m["Subject"] for m in mail.to("jane@example.com"))

            # An older ban case's timer cannot lift this ban: the host answers not in charge.
            stale = StatusChange("ban_older", jane, datetime.now(UTC), Actor(ActorKind.SYSTEM, "t"))
            assert (await cases.apply_lift(stale)).applied is False
            assert host.query("SELECT status FROM users WHERE username = 'jane'") == [("banned",)]

            lifted = await cases.unban(jane, Actor(ActorKind.OPERATOR, "olivia"), "appeal")

            assert lifted is not None and lifted.state is LifecycleState.LIFTED
            assert host.query(
                "SELECT status, status_case, status_until FROM users WHERE username = 'jane'"
            ) == [("active", None, None)]
            await mail.wait_for(
                lambda m: m["To"] == "jane@example.com" and "available again" in m["Subject"]
            )
            assert (await host.login("jane", OLD)).status_code == 200
            case = await stack.open_case("jane@example.com")
            token = await _token(stack, case["case_id"], await mail.code_for("jane@example.com"))
            assert (await _choose(stack, case["case_id"], token, NEW)).status_code == 200
            assert (await host.login("jane", NEW)).status_code == 200
            assert host.query(
                "SELECT status, actor FROM status_changes WHERE case_id = ? ORDER BY id",
                ban.case_id,
            ) == [("banned", "operator: olivia"), ("active", "operator: olivia")]


# How long the host is away in the test below.
OUTAGE = 60.0


async def test_a_host_down_for_a_minute_while_the_password_is_set_completes_the_case_once(
    host: HostApp, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    """The host goes down as the new password reaches it, for a minute. The activity retries
    (LEDGER_RETRY: after 1, 2, 4, 8, 16, then every 30 s), the person is told to try again
    meanwhile, and once the host is back the case completes with the password applied once."""
    proxy = Proxy(host.origin)
    async with serve_proxy(proxy) as proxied:
        settings, engine = stack_parts(**_settings(proxied))
        async with running_stack(settings, engine, mail, sms) as stack:
            case = await stack.open_case("jane")
            case_id = case["case_id"]
            token = await _token(stack, case_id, await mail.code_for("jane@example.com"))
            proxy.down_on = "/password"  # down from the moment the password arrives

            first = await _choose(stack, case_id, token, NEW)

            # The API waited its deadline for the update, then said to try again: no 500.
            assert proxy.down_since is not None
            assert first.status_code == 503, first.text
            assert first.json()["error"] == "temporarily_unavailable"
            assert first.headers["retry-after"] == "5"
            # Meanwhile, what the person (or anybody) sees, asked every few seconds.
            answers: set[tuple[str, int, str]] = set()
            while time.monotonic() - proxy.down_since < OUTAGE:
                seen = await stack.http.get(f"/v1/recovery/{case_id}")
                answers.add(("status", seen.status_code, seen.json()["state"]))
                again = await _choose(stack, case_id, token, NEW)
                answers.add(("password again", again.status_code, again.json()["error"]))
                other = await stack.http.post("/v1/recovery", json={"identifier": "bob"})
                answers.add(("new case", other.status_code, other.json()["error"]))
                await asyncio.sleep(5)  # the person's pace, not a wait for state
            assert answers == {
                ("status", 200, "verified"),
                ("password again", 503, "temporarily_unavailable"),
                ("new case", 503, "temporarily_unavailable"),
            }
            assert host.query("SELECT count(*) FROM passwords WHERE case_id = ?", case_id) == [(0,)]
            proxy.down = False

            final = await _poll(
                lambda: stack.http.get(f"/v1/recovery/{case_id}"),
                lambda r: r.json()["state"] == "completed",
                within=45,  # the longest retry interval (30 s), and some
            )

            assert final.status_code == 200
            assert host.query("SELECT count(*) FROM passwords WHERE case_id = ?", case_id) == [
                (1,)
            ]  # applied once
            sent = {key for path, key in proxy.seen if path.endswith("/password")}
            assert len(sent) == 1 and sent.pop().startswith(f"pw_{case_id}_")
            assert (await host.login("jane", NEW)).status_code == 200
            # The person's own retry, now: taken, the case is completed, nothing applied again.
            retried = await _choose(stack, case_id, token, NEW)
            assert (retried.status_code, retried.json()["state"]) == (200, "completed")
            assert host.query("SELECT count(*) FROM passwords WHERE case_id = ?", case_id) == [(1,)]
            await sms.wait_for("+14155550123", "password of jane was changed")


async def test_a_ban_the_host_keeps_is_reported_as_refused_not_lifted(
    host: HostApp, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(**_settings(host.origin))
    async with running_stack(settings, engine, mail, sms) as stack:
        cases = stack.services.lifecycle
        jane = await cases.account_id("jane")
        ban = await cases.ban(jane, "spam", Actor(ActorKind.OPERATOR, "olivia"), 2 * 86_400)
        assert isinstance(ban, LifecycleStatus), ban
        # The host's own administrators take the ban over: Reclaim's case is no longer in charge.
        host.query("UPDATE users SET status_case = 'host-admin' WHERE username = 'jane'")

        said = await asyncio.to_thread(
            CliRunner().invoke,
            cli_app,
            ["accounts", "unban", "jane", "--by", "olivia"],
            env=settings_env(stack.settings),
        )

        assert said.exit_code == 1, said.output
        assert "The directory did not lift the ban: the account is banned" in said.output
        assert "lifted the ban" not in said.output
        assert host.query("SELECT status FROM users WHERE username = 'jane'") == [("banned",)]

        # An appeal approved by a supervisor: refused, with why, and in the audit.
        claim = await stack.http.post(
            "/v1/support-cases",
            json={"username": "jane", "contact_email": "jane@example.com", "reason": "banned"},
        )
        assert claim.status_code == 202, claim.text
        claim_id = claim.json()["case_id"]
        _, key = await stack.services.staff_members.add_staff("sam", "supervisor")
        staff = {"Authorization": f"Bearer {key}"}
        assigned = await stack.http.post(
            f"/v1/staff/cases/{claim_id}/assign", json={}, headers=staff
        )
        assert assigned.status_code == 202, assigned.text
        approved = await stack.http.post(
            f"/v1/staff/cases/{claim_id}/approve", json={"note": "fair appeal"}, headers=staff
        )
        assert approved.status_code == 409, approved.text
        assert approved.json()["error"] == "cannot_resolve"
        assert approved.json()["message"].startswith("The directory did not lift the ban")
        entries = await stack.services.staff_members.audit_entries(case_id=claim_id)
        assert [(e.action, e.outcome) for e in entries if e.action == "approve"] == [
            ("approve", "refused: cannot_resolve")
        ]


async def test_a_host_saying_the_contacts_changed_now_holds_the_recovery_long_ago_does_not(
    host: HostApp, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    """The account's `contacts_changed_at`: jane's email changed at the host a moment ago, so
    her recovery is held (RECLAIM_RECOVERY_HOLD) and the host gets no password meanwhile;
    bob's changed thirty days ago (beyond RECLAIM_RECENT_CONTACT_DAYS), so his completes."""
    now = datetime.now(UTC)
    host.query(
        "UPDATE users SET email = ?, contacts_changed_at = ? WHERE username = ?",
        "jane.new@example.com",
        now.isoformat(),
        "jane",
    )
    long_ago = now - timedelta(days=30)
    host.query(
        "UPDATE users SET contacts_changed_at = ? WHERE username = ?", long_ago.isoformat(), "bob"
    )
    settings, engine = stack_parts(**_settings(host.origin))
    async with running_stack(settings, engine, mail, sms) as stack:
        held_case = await stack.open_case("jane.new@example.com")
        code = await mail.code_for("jane.new@example.com")
        token = await _token(stack, held_case["case_id"], code)
        held = await _choose(stack, held_case["case_id"], token, NEW)
        assert held.status_code == 200, held.text
        assert held.json() == {"case_id": held_case["case_id"], "state": "held"}
        view = (await stack.http.get(f"/v1/recovery/{held_case['case_id']}")).json()
        hold = datetime.fromisoformat(view["hold_until"]) - datetime.now(UTC)
        assert timedelta(hours=23) < hold <= timedelta(hours=24)  # RECLAIM_RECOVERY_HOLD
        assert (await host.login("jane", OLD)).status_code == 200  # nothing sent yet
        assert (await host.login("jane", NEW)).status_code == 401

        case = await stack.open_case("bob@example.com")
        token = await _token(stack, case["case_id"], await mail.code_for("bob@example.com"))
        done = await _choose(stack, case["case_id"], token, NEW)
        assert done.json() == {"case_id": case["case_id"], "state": "completed"}, done.text
        assert (await host.login("bob", NEW)).status_code == 200


async def _closed(stack: Stack, case_id: str, within: float = 30) -> LifecycleStatus:
    handle = stack.client.get_workflow_handle(case_id)
    deadline = time.monotonic() + within
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        if time.monotonic() > deadline:
            raise AssertionError(f"{case_id} is still running")
        await asyncio.sleep(0.05)
    status: LifecycleStatus = await handle.query(LifecycleCalls.STATUS, result_type=LifecycleStatus)
    return status


async def test_a_deactivated_host_account_is_purged_after_its_grace_period_or_kept_by_a_recovery(
    host: HostApp, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    """Deactivation on the HTTP directory: the host deactivates the user (signed out, no
    sign-in), and when the grace period (RECLAIM_DELETION_GRACE, a second here) ends, the
    signed `POST …/purge` erases them, leaving a tombstone. A recovery inside the grace
    period keeps the account instead."""
    settings, engine = stack_parts(**_settings(host.origin), deletion_grace=1)
    async with running_stack(settings, engine, mail, sms) as stack:
        cases = stack.services.lifecycle
        bob = await cases.account_id("bob")
        signed_in = await host.login("bob", OLD)
        env = settings_env(stack.settings)
        said = await asyncio.to_thread(
            CliRunner().invoke,
            cli_app,
            ["accounts", "deactivate", "bob", "--by", "olivia"],
            env=env,
        )
        assert said.exit_code == 0, said.output
        [(case_id,)] = host.query("SELECT case_id FROM status_changes WHERE status = 'deactivated'")

        closed = await _closed(stack, case_id)

        assert closed.state is LifecycleState.PURGED
        [row] = host.query(
            "SELECT id, username, email, phone, status, status_case, password_changed_at "
            "FROM users WHERE id = ?",
            int(host.query("SELECT user_id FROM status_changes WHERE case_id = ?", case_id)[0][0]),
        )
        tombstone = f"purged:{row[0]}"
        assert row[1:] == (tombstone, tombstone, None, "purged", case_id, None)
        assert host.query("SELECT count(*) FROM passwords WHERE user_id = ?", row[0]) == [(0,)]
        assert host.query("SELECT count(*) FROM sessions WHERE user_id = ?", row[0]) == [(0,)]
        assert host.query(
            "SELECT status, actor FROM status_changes WHERE case_id = ? ORDER BY id", case_id
        ) == [("deactivated", "operator: olivia"), ("purged", "system: deletion grace period")]
        assert signed_in.status_code == 200
        assert (await host.login("bob", OLD)).status_code == 401
        purged = await stack.services.directory.get(bob)
        assert purged is not None and purged.status.value == "purged"
        assert (
            await stack.services.directory.find(Identifier(IdentifierKind.EMAIL, "bob@example.com"))
            is None
        )

    # A recovery inside the grace period keeps the account: the host reactivates it.
    settings, engine = stack_parts(**_settings(host.origin), deletion_grace=3600)
    async with running_stack(settings, engine, mail, sms) as stack:
        jane = await stack.services.lifecycle.account_id("jane")
        deactivated = await stack.services.lifecycle.deactivate(
            jane, Actor(ActorKind.OPERATOR, "olivia")
        )
        assert isinstance(deactivated, LifecycleStatus), deactivated
        assert host.query("SELECT status FROM users WHERE username = 'jane'") == [("deactivated",)]
        assert (await host.login("jane", OLD)).status_code == 403
        case = await stack.open_case("jane@example.com")
        token = await _token(stack, case["case_id"], await mail.code_for("jane@example.com"))
        done = await _choose(stack, case["case_id"], token, NEW)
        assert done.json() == {"case_id": case["case_id"], "state": "completed"}, done.text

        kept = await _closed(stack, deactivated.case_id)

        assert kept.state is LifecycleState.REACTIVATED
        assert host.query("SELECT status, status_case FROM users WHERE username = 'jane'") == [
            ("active", None)
        ]
        assert (await host.login("jane", NEW)).status_code == 200


async def _past_the_code(stack: Stack, nth: int) -> tuple[str, dict[str, Any]]:
    case = await stack.open_case("jane@example.com")
    code = await stack.mail.code_for("jane@example.com", nth=nth)
    answer = await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
    return str(case["case_id"]), answer.json()


async def test_the_host_verifies_its_users_authenticator_app_and_removes_it_when_told(
    host: HostApp, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    """jane's app lives at the host: the mailed code alone opens nothing, the host checks the
    app's code (once per step), and removes the app when Reclaim asks (an approved claim)."""
    app = pyotp.TOTP(host.add_totp("jane"))
    settings, engine = stack_parts(**_settings(host.origin))
    async with running_stack(settings, engine, mail, sms) as stack:
        directory = stack.services.directory
        case_id, answer = await _past_the_code(stack, nth=1)
        assert answer == {"state": "awaiting_second_factor", "factors": ["totp"]}
        url = f"/v1/recovery/{case_id}/second-factor"
        wrong = await stack.http.post(
            url, json={"method": "totp", "code": wrong_codes(app.now(), 1)[0]}
        )
        assert (wrong.status_code, wrong.json()["attempts_left"]) == (400, 4)
        code = app.now()
        granted = await stack.http.post(url, json={"method": "totp", "code": code})
        assert granted.status_code == 200, granted.text
        done = await _choose(stack, case_id, granted.json()["reset_token"], NEW)
        assert done.json()["state"] == "completed"
        assert (await host.login("jane", NEW)).status_code == 200
        # The same code in another case: the host refuses a step used once.
        later, _ = await _past_the_code(stack, nth=2)
        replay = await stack.http.post(
            f"/v1/recovery/{later}/second-factor", json={"method": "totp", "code": code}
        )
        assert (replay.status_code, replay.json()["error"]) == (400, "invalid_code")
        jane = await directory.find(Identifier(IdentifierKind.USERNAME, "jane"))
        assert jane is not None
        [summary] = await directory.factors(jane.id)
        assert (summary.kind.value, summary.last_used_at is not None) == ("totp", True)

        assert await directory.remove_factor(jane.id, FactorKind.TOTP)

        assert host.query("SELECT COUNT(*) FROM totp") == [(0,)]
        again = await directory.find(Identifier(IdentifierKind.USERNAME, "jane"))
        assert again is not None and again.factors == ()


async def test_a_host_that_cannot_verify_factors_leaves_reclaim_to_keep_recovery_codes(
    host: HostApp, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    """RECLAIM_HTTP_DIRECTORY_VERIFIES_FACTORS=false: an account the host lists factors for
    proves one of the recovery codes Reclaim keeps; bob, with none, the contact code alone."""
    host.add_totp("jane")
    settings, engine = stack_parts(**_settings(host.origin), http_directory_verifies_factors=False)
    async with running_stack(settings, engine, mail, sms) as stack:
        directory = stack.services.directory
        jane = await directory.find(Identifier(IdentifierKind.USERNAME, "jane"))
        assert jane is not None and [f.value for f in jane.factors] == ["recovery_code"]
        codes = await directory.new_recovery_codes(jane.id, datetime.now(UTC))
        case_id, answer = await _past_the_code(stack, nth=1)
        assert answer == {"state": "awaiting_second_factor", "factors": ["recovery_code"]}
        granted = await stack.http.post(
            f"/v1/recovery/{case_id}/second-factor",
            json={"method": "recovery_code", "code": codes[0]},
        )
        assert granted.status_code == 200, granted.text
        assert (await directory.factors(jane.id))[0].remaining == 9

        bob = await stack.open_case("bob@example.com")
        code = await mail.code_for("bob@example.com")
        answer = (
            await stack.http.post(f"/v1/recovery/{bob['case_id']}/code", json={"code": code})
        ).json()
        assert "reset_token" in answer
