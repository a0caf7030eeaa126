"""`reclaim cases list|show|cancel` on every kind of case, as an operator runs them against a
live deployment: a self-service recovery, a support claim, an account deletion and a ban."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

from typer.testing import CliRunner

from reclaim.cli import app
from reclaim.contracts import Actor, ActorKind
from reclaim.lifecycle.contracts import LifecycleStatus
from tests.stack import Stack, settings_env

PASSWORD = "correct horse battery staple"
OPERATOR = Actor(ActorKind.OPERATOR, "olivia")


async def _cli(stack: Stack, *args: str) -> Any:
    env = settings_env(stack.settings)
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def _one_case_of_each_kind(stack: Stack) -> dict[str, str]:
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    joe = await stack.add_account("joe", "joe@example.com", None, PASSWORD)
    ann = await stack.add_account("ann", "ann@example.com", None, PASSWORD)
    recovery = await stack.open_case("jane@example.com")
    claim = await stack.http.post(
        "/v1/support-cases",
        json={"username": "jane", "contact_email": "jane.new@example.net", "reason": "compromised"},
    )
    assert claim.status_code == 202, claim.text
    deletion = await stack.services.lifecycle.deactivate(joe, OPERATOR)
    ban = await stack.services.lifecycle.ban(ann, "spam", OPERATOR, 86_400)
    assert isinstance(deletion, LifecycleStatus) and isinstance(ban, LifecycleStatus)
    return {
        "self_service": recovery["case_id"],
        "support_claim": claim.json()["case_id"],
        "account_deletion": deletion.case_id,
        "account_ban": ban.case_id,
    }


async def test_cases_show_and_list_every_kind_of_case(stack: Stack):
    cases = await _one_case_of_each_kind(stack)

    shown = {}
    for kind, case_id in cases.items():
        result = await _cli(stack, "cases", "show", case_id)
        assert result.exit_code == 0, (kind, result.output)
        shown[kind] = json.loads(result.output)
    listed = await _cli(stack, "cases", "list")
    claims = await _cli(stack, "cases", "list", "--kind", "support_claim")

    assert {kind: view["kind"] for kind, view in shown.items()} == {k: k for k in cases}
    assert shown["self_service"]["state"] == "awaiting_code"
    assert shown["self_service"]["destination"] == "j•••@e•••.com"
    assert (shown["support_claim"]["state"], shown["support_claim"]["risk"]) == (
        "submitted",
        "high",
    )
    assert shown["account_deletion"]["state"] == "deactivated"
    assert shown["account_ban"]["state"] == "banned"
    assert listed.exit_code == 0, listed.output
    lines = {line.split()[0]: line.split()[1:3] for line in listed.output.splitlines()}
    assert {case_id: lines[case_id] for case_id in cases.values()} == {
        cases["self_service"]: ["self_service", "awaiting_code"],
        cases["support_claim"]: ["support_claim", "submitted"],
        cases["account_deletion"]: ["account_deletion", "deactivated"],
        cases["account_ban"]: ["account_ban", "banned"],
    }
    assert [line.split()[0] for line in claims.output.splitlines()] == [cases["support_claim"]]


async def test_cases_cancel_stops_every_kind_of_case(stack: Stack):
    cases = await _one_case_of_each_kind(stack)

    outcomes = {}
    for kind, case_id in cases.items():
        result = await _cli(stack, "cases", "cancel", case_id, "--reason", "drill", "--by", "ol")
        assert result.exit_code == 0, (kind, result.output)
        outcomes[kind] = result.output.strip()

    assert outcomes == {
        "self_service": f"stopped {cases['self_service']}: cancelled",
        "support_claim": f"stopped {cases['support_claim']}: cancelled",
        "account_deletion": f"stopped {cases['account_deletion']}: reactivated",
        "account_ban": f"stopped {cases['account_ban']}: lifted",
    }
    # What the people concerned see: the ban is over, the claimant is told, the code is dead.
    assert (await stack.sign_in("ann", PASSWORD)).status_code == 200
    assert (await stack.sign_in("joe", PASSWORD)).status_code == 200
    closed = await stack.mail.wait_for(lambda m: "was closed" in m["Subject"])
    assert closed["To"] == "jane.new@example.net"
    code = await stack.mail.code_for("jane@example.com")
    late = await stack.http.post(f"/v1/recovery/{cases['self_service']}/code", json={"code": code})
    assert (late.status_code, late.json()["error"]) == (409, "invalid_state")
    again = await _cli(stack, "cases", "cancel", cases["account_ban"], "--reason", "twice")
    assert again.exit_code == 1
    assert "there is nothing to stop" in again.output


async def test_cases_list_all_shows_the_closed_cases_too_newest_first(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    await stack.add_account("joe", "joe@example.com", None, PASSWORD)
    first = (await stack.open_case("jane@example.com"))["case_id"]
    second = (await stack.open_case("joe@example.com"))["case_id"]
    for case_id in (first, second):
        stopped = await _cli(stack, "cases", "cancel", case_id, "--reason", "drill")
        assert stopped.exit_code == 0, stopped.output

    expected = [[second, "self_service", "cancelled"], [first, "self_service", "cancelled"]]
    # Visibility catches up with the closed cases: asked again until it has (20 s at most).
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        every = await _cli(stack, "cases", "list", "--all")
        listed = [line.split()[:3] for line in every.stdout.splitlines()]
        ours = [line for line in listed if line[0] in (first, second)]
        if ours == expected or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    opened = await _cli(stack, "cases", "list")

    assert every.exit_code == 0, every.output
    assert ours == expected  # newest first
    assert opened.exit_code == 0 and opened.stdout == ""
    assert opened.stderr.startswith("No open cases.")


async def test_cases_show_of_an_unknown_case_says_so_in_one_line(stack: Stack):
    for case_id in ("rc_AAAAAAAAAAAAAAAAAAAAAA", "sc_AAAAAAAAAAAAAAAAAAAAAA", "nonsense"):
        result = await _cli(stack, "cases", "show", case_id)

        assert result.exit_code == 1
        assert result.output.strip().startswith("No ") and "has this id" in result.output


async def test_cases_hold_extends_then_ends_a_held_recovery(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    case_id = await stack.approved_claim("jane", "jane.new@example.net", "lost_contact")
    code = await stack.mail.code_for("jane.new@example.net")
    token = (await stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": code})).json()[
        "reset_token"
    ]
    await stack.http.post(
        f"/v1/recovery/{case_id}/password",
        json={"reset_token": token, "new_password": "violet tangerine marmalade"},
    )
    before = (await stack.http.get(f"/v1/recovery/{case_id}")).json()["hold_until"]

    neither = await _cli(stack, "cases", "hold", case_id)
    extended = await _cli(stack, "cases", "hold", case_id, "--extend", "3600")
    after = (await stack.http.get(f"/v1/recovery/{case_id}")).json()["hold_until"]
    ended = await _cli(stack, "cases", "hold", case_id, "--end-now")
    again = await _cli(stack, "cases", "hold", case_id, "--end-now")

    assert neither.exit_code != 0 and "--end-now or --extend" in neither.output
    assert extended.exit_code == 0, extended.output
    assert datetime.fromisoformat(after) - datetime.fromisoformat(before) == timedelta(hours=1)
    assert f"held until {datetime.fromisoformat(after):%Y-%m-%d %H:%M:%S} UTC" in extended.output
    assert (ended.exit_code, ended.output.strip()) == (0, f"{case_id}: hold ended, completed")
    assert again.exit_code != 0 and "no hold" in again.output
    assert (
        await stack.sign_in("jane.new@example.net", "violet tangerine marmalade")
    ).status_code == 200
