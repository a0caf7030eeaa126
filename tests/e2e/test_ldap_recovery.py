"""Recovering an account held in OpenLDAP, end to end over HTTP: the real API and worker, the
session's Temporal dev server, a real slapd of the test's own (tests/ldap_server.py), the SMTP
sink and the SMS webhook. What the person sees, and what the LDAP server then accepts."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from reclaim.cli import app as cli_app
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.notify.courier import Courier
from tests.conftest import LDAP_JANE, LDAP_OLD, Seen, StackParts
from tests.ldap_server import PEOPLE, Slapd
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack, settings_env
from worker import build_worker, courier_for

JANE_DN = f"uid=jane,{PEOPLE}"
PASSWORDS = [
    "violet tangerine marmalade kayak",
    "orchid lantern pebble saxophone",
    "copper meadow whistle galaxy",
]


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


async def _verify(stack: Stack, case_id: str, code: str) -> str:
    granted = await stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": code})
    assert granted.status_code == 200, granted.text
    return str(granted.json()["reset_token"])


async def _choose(stack: Stack, case_id: str, token: str, password: str) -> Any:
    return await stack.http.post(
        f"/v1/recovery/{case_id}/password",
        json={"reset_token": token, "new_password": password},
    )


async def test_an_ldap_user_recovers_by_email_phone_and_username(
    slapd: Slapd, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    # Three recoveries in a row: each one's password change is a change to the entry, which
    # modifyTimestamp (the default RECLAIM_LDAP_CONTACTS_CHANGED_ATTRIBUTE) cannot tell from a
    # contact change, so the next would be held. The hold is tested below; no window here.
    settings, engine = stack_parts(**slapd.reclaim_settings(), recent_contact_days=0)
    async with running_stack(settings, engine, mail, sms) as stack:
        ready = await stack.http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["directory_kind"] == "ldap"
        old = LDAP_OLD
        ways = [
            ("Jane@Example.com", None, "email"),
            ("+1 415 555 0123", None, "sms"),
            ("JANE", "email", "email"),
        ]
        mails = 0
        for (identifier, channel, delivered), new in zip(ways, PASSWORDS, strict=True):
            case = await stack.open_case(identifier, channel)
            assert (case["state"], case["channel"]) == ("awaiting_code", delivered)
            if delivered == "email":
                mails += 1
                code = await mail.code_for(LDAP_JANE["mail"], nth=mails)
            else:
                code = await sms.code_for("+14155550123")
            token = await _verify(stack, case["case_id"], code)

            done = await _choose(stack, case["case_id"], token, new)

            assert done.status_code == 200, done.text
            assert done.json() == {"case_id": case["case_id"], "state": "completed"}
            assert slapd.binds(JANE_DN, new), f"new password refused after {identifier}"
            assert not slapd.binds(JANE_DN, old), f"old password still works after {identifier}"
            old = new
        # Every contact the directory holds is told.
        await mail.wait_for(
            lambda m: m["To"] == LDAP_JANE["mail"] and "password was changed" in m["Subject"]
        )
        await sms.wait_for("+14155550123", "password of jane was changed")
        # Sessions are the applications' own: Reclaim says so instead of half-working.
        session = await stack.sign_in("jane", old)
        assert session.status_code == 501
        assert session.json()["error"] == "not_supported"
        assert "people sign in to the applications" in session.json()["message"]


async def test_a_recovery_of_an_entry_changed_moments_ago_is_held(
    slapd: Slapd, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    """RECLAIM_LDAP_CONTACTS_CHANGED_ATTRIBUTE (modifyTimestamp by default): an entry whose
    mail an administrator just changed is recovered only after the hold, as on the built-in
    directory; an entry unchanged since it was loaded is not held."""
    settings, engine = stack_parts(**slapd.reclaim_settings())
    assert settings.ldap_contacts_changed_attribute == "modifyTimestamp"
    async with running_stack(settings, engine, mail, sms) as stack:
        # bob, as loaded (modifyTimestamp is createTimestamp): not held.
        case = await stack.open_case("bob@example.com")
        token = await _verify(stack, case["case_id"], await mail.code_for("bob@example.com"))
        done = await _choose(stack, case["case_id"], token, PASSWORDS[0])
        assert done.json() == {"case_id": case["case_id"], "state": "completed"}, done.text

        # jane's mail changed now (a second after she was loaded: GeneralizedTime has seconds).
        created = slapd.read(JANE_DN, "createTimestamp")["createTimestamp"][0]
        loaded = datetime.strptime(created[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        await asyncio.sleep(
            max(0.0, (loaded + timedelta(seconds=1.1) - datetime.now(UTC)).total_seconds())
        )
        slapd.replace(JANE_DN, mail=["jane.new@example.com"])
        case = await stack.open_case("jane.new@example.com")
        token = await _verify(stack, case["case_id"], await mail.code_for("jane.new@example.com"))
        held = await _choose(stack, case["case_id"], token, PASSWORDS[1])

        assert held.status_code == 200, held.text
        assert held.json() == {"case_id": case["case_id"], "state": "held"}
        view = (await stack.http.get(f"/v1/recovery/{case['case_id']}")).json()
        hold = datetime.fromisoformat(view["hold_until"]) - datetime.now(UTC)
        assert timedelta(hours=23) < hold <= timedelta(hours=24)  # RECLAIM_RECOVERY_HOLD
        assert slapd.binds(JANE_DN, LDAP_OLD)  # nothing set during the hold
        assert not slapd.binds(JANE_DN, PASSWORDS[1])


@pytest.mark.private_history
async def test_a_password_the_servers_history_refuses_can_be_chosen_again(
    slapd: Slapd, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    """Reclaim cannot read this server's pwdHistory: the server's policy has the last word,
    and the person sees the same answer Reclaim's own check gives."""
    # Two recoveries in a row: no recent-contact window (modifyTimestamp would hold the second).
    settings, engine = stack_parts(**slapd.reclaim_settings(), recent_contact_days=0)
    async with running_stack(settings, engine, mail, sms) as stack:
        first = await stack.open_case("jane")
        token = await _verify(stack, first["case_id"], await mail.code_for(LDAP_JANE["mail"]))
        assert (await _choose(stack, first["case_id"], token, PASSWORDS[0])).status_code == 200
        second = await stack.open_case("jane")
        code = await mail.code_for(LDAP_JANE["mail"], nth=2)
        token = await _verify(stack, second["case_id"], code)

        jane = await stack.services.directory.find(Identifier(IdentifierKind.USERNAME, "jane"))
        assert jane is not None
        assert not await stack.services.directory.password_reused(jane.id, LDAP_OLD)

        reused = await _choose(stack, second["case_id"], token, LDAP_OLD)

        assert reused.status_code == 422, reused.text
        assert reused.json()["error"] == "password_reused"
        view = (await stack.http.get(f"/v1/recovery/{second['case_id']}")).json()
        assert view["state"] == "verified"  # the same token, another try
        assert slapd.binds(JANE_DN, PASSWORDS[0])
        again = await _choose(stack, second["case_id"], token, PASSWORDS[1])
        assert again.status_code == 200, again.text
        assert slapd.binds(JANE_DN, PASSWORDS[1])
        assert not slapd.binds(JANE_DN, LDAP_OLD)


async def test_an_injection_shaped_identifier_finds_nobody_and_breaks_nothing(
    slapd: Slapd, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(**slapd.reclaim_settings())
    async with running_stack(settings, engine, mail, sms) as stack:
        # `*` is allowed in an email's local part: unescaped, it would match every address.
        wildcard = await stack.open_case("*@example.com")
        refused = await stack.http.post("/v1/recovery", json={"identifier": "jane)(|(uid=*"})

        assert refused.status_code == 422
        assert refused.json()["error"] == "invalid_identifier"
        # Treated as the unknown address it is: that address is told nobody has an account.
        await mail.wait_for(lambda m: m["To"] == "*@example.com")
        assert wildcard["state"] == "awaiting_code"
        assert mail.to(LDAP_JANE["mail"]) == [] and mail.to("bob@example.com") == []
        assert (await stack.http.get("/readyz")).status_code == 200
        case = await stack.open_case("jane@example.com")
        token = await _verify(stack, case["case_id"], await mail.code_for(LDAP_JANE["mail"]))
        assert (await _choose(stack, case["case_id"], token, PASSWORDS[0])).status_code == 200


async def test_a_case_waits_while_the_ldap_server_is_down_and_finishes_after(
    slapd: Slapd, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(**slapd.reclaim_settings())
    async with running_stack(settings, engine, mail, sms, worker=False) as stack:
        case = await stack.open_case("jane@example.com")  # found while the server answers
        case_id = case["case_id"]
        slapd.stop()
        courier: Courier = courier_for(settings)
        async with build_worker(
            stack.client, settings, engine, courier, task_queue=settings.task_queue
        ):
            # The code cannot be addressed: the send activity retries, the case waits.
            waiting = await _poll(
                lambda: stack.http.get(f"/v1/recovery/{case_id}"),
                lambda r: r.json()["delivery"] == "retrying",
            )
            assert waiting.json()["state"] == "awaiting_code"
            ready = await stack.http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["directory"].startswith("unavailable (the LDAP server does not")
            assert ready.json()["reason"].startswith("directory: unavailable")
            another = await stack.http.post("/v1/recovery", json={"identifier": "bob"})
            assert another.status_code == 503, another.text
            assert another.json()["error"] == "temporarily_unavailable"

            slapd.start()
            token = await _verify(stack, case_id, await mail.code_for(LDAP_JANE["mail"]))
            slapd.stop()
            down = await _choose(stack, case_id, token, PASSWORDS[0])
            assert down.status_code == 503, down.text
            assert down.json()["error"] == "temporarily_unavailable"
            slapd.start()
            done = await _choose(stack, case_id, token, PASSWORDS[0])
            assert done.status_code == 200, done.text
        await courier.aclose()
    assert slapd.binds(JANE_DN, PASSWORDS[0])
    assert not slapd.binds(JANE_DN, LDAP_OLD)


async def _staff_key(stack: Stack) -> dict[str, str]:
    _, key = await stack.services.staff_members.add_staff("rita", "supervisor")
    return {"Authorization": f"Bearer {key}"}


async def test_an_approved_takeover_claim_hands_the_ldap_account_to_the_verified_address(
    slapd: Slapd, stack_parts: StackParts, mail: MailSink, sms: SmsGateway, comparisons: Seen
):
    settings, engine = stack_parts(**slapd.reclaim_settings())
    async with running_stack(settings, engine, mail, sms) as stack:
        rita = await _staff_key(stack)
        filed = await stack.http.post(
            "/v1/support-cases",
            json={
                "username": "jane",
                "contact_email": "jane.new@example.net",
                "reason": "compromised",
                "registered_email": "jane@example.com",
                "previous_passwords": ["not this one", LDAP_OLD],
            },
        )
        assert filed.status_code == 202, filed.text
        case_id = filed.json()["case_id"]
        detail = (await stack.http.get(f"/v1/staff/cases/{case_id}", headers=rita)).json()
        # Checked against what the directory holds: the password by its readable history.
        assert detail["evidence"]["passwords_matched"] == 1
        # Each remembered password compared in constant time (tests/e2e/test_constant_time.py).
        assert comparisons[("reclaim/directory/ldap.py", "_verify")] == {True, False}
        assert detail["evidence"]["registered_email"] == "current"
        # What could not be checked is said: an LDAP entry keeps no former addresses.
        assert detail["evidence"]["previous_passwords_checked"] is True
        assert detail["evidence"]["past_addresses_checked"] is False
        assert detail["risk"] == "low"
        await stack.http.post(f"/v1/staff/cases/{case_id}/assign", headers=rita)

        approved = await stack.http.post(f"/v1/staff/cases/{case_id}/approve", headers=rita)

        assert approved.status_code == 202, approved.text
        before = {"mail": [LDAP_JANE["mail"]], "mobile": [LDAP_JANE["mobile"]]}
        assert slapd.read(JANE_DN, "mail", "mobile") == before  # not before the hold ends
        recovery_case_id = approved.json()["decision"]["recovery_case_id"]
        code = await mail.code_for("jane.new@example.net")
        token = await _verify(stack, recovery_case_id, code)
        done = await _choose(stack, recovery_case_id, token, PASSWORDS[0])
        assert (done.status_code, done.json()["state"]) == (200, "held")
        assert not slapd.binds(JANE_DN, PASSWORDS[0])  # not before the hold ends
        await mail.wait_for(lambda m: m["To"] == LDAP_JANE["mail"] and "recovering" in m["Subject"])
        await stack.services.recovery.change_hold(recovery_case_id, end_now=True)
        await _poll(
            lambda: stack.http.get(f"/v1/recovery/{recovery_case_id}"),
            lambda r: r.json()["state"] == "completed",
        )
        assert slapd.binds(JANE_DN, PASSWORDS[0])
        assert slapd.read(JANE_DN, "mail", "mobile") == {"mail": ["jane.new@example.net"]}
        await mail.wait_for(
            lambda m: m["To"] == LDAP_JANE["mail"] and "contact details" in m["Subject"]
        )


async def test_an_appeal_for_an_account_locked_in_ldap_is_refused_with_what_to_do(
    slapd: Slapd, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    slapd.replace(JANE_DN, pwdAccountLockedTime=["000001010000Z"])
    settings, engine = stack_parts(**slapd.reclaim_settings())
    async with running_stack(settings, engine, mail, sms) as stack:
        rita = await _staff_key(stack)
        # Recovering it: the usual answer, no code, and its holder is told it is suspended.
        await stack.open_case("jane@example.com")
        notice = await mail.wait_for(lambda m: m["To"] == LDAP_JANE["mail"])
        assert "suspended" in notice["Subject"]
        filed = await stack.http.post(
            "/v1/support-cases",
            json={"username": "jane", "contact_email": "jane@example.com", "reason": "banned"},
        )
        case_id = filed.json()["case_id"]
        await stack.http.post(f"/v1/staff/cases/{case_id}/assign", headers=rita)

        approved = await stack.http.post(f"/v1/staff/cases/{case_id}/approve", headers=rita)

        assert approved.status_code == 409, approved.text
        assert approved.json()["error"] == "cannot_resolve"
        assert approved.json()["message"] == (
            "The ldap account directory cannot do this (status): lock, disable or unlock the "
            "account in the directory itself"
        )
        view = (await stack.http.get(f"/v1/staff/cases/{case_id}", headers=rita)).json()
        assert view["state"] != "approved"  # still open, for a rejection or a later try


async def test_an_ldap_account_marked_for_a_second_factor_recovers_only_with_a_kept_code(
    slapd: Slapd, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    """RECLAIM_LDAP_MFA_ATTRIBUTE / RECLAIM_LDAP_MFA_GROUP: jane (employeeType mfa) and bob (a
    member of the MFA group) are bound to a second factor kept elsewhere: the mailed code alone
    opens no new password; one of the recovery codes Reclaim keeps for them does, once. sam,
    unmarked, recovers with the code alone."""
    group = f"cn=mfa,{PEOPLE}"
    with slapd.admin() as admin:
        assert admin.add(group, ["groupOfNames"], {"cn": "mfa", "member": [f"uid=bob,{PEOPLE}"]}), (
            admin.result
        )
    slapd.replace(JANE_DN, employeeType=["MFA"])
    settings, engine = stack_parts(
        **slapd.reclaim_settings(),
        recent_contact_days=0,
        ldap_mfa_attribute="employeeType",
        ldap_mfa_value="mfa",
        ldap_mfa_group=group,
    )
    async with running_stack(settings, engine, mail, sms) as stack:
        directory = stack.services.directory
        jane = await directory.find(Identifier(IdentifierKind.USERNAME, "jane"))
        bob = await directory.find(Identifier(IdentifierKind.USERNAME, "bob"))
        sam = await directory.find(Identifier(IdentifierKind.USERNAME, "sam"))
        assert jane is not None and bob is not None and sam is not None
        assert [f.value for f in jane.factors] == ["recovery_code"]
        assert [f.value for f in bob.factors] == ["recovery_code"]
        assert sam.factors == ()
        codes = await directory.new_recovery_codes(jane.id, datetime.now(UTC))
        [kept] = await directory.factors(jane.id)
        assert (kept.kind.value, kept.remaining) == ("recovery_code", 10)

        case = await stack.open_case("jane")
        code = await mail.code_for(LDAP_JANE["mail"])
        answer = await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
        assert answer.json() == {"state": "awaiting_second_factor", "factors": ["recovery_code"]}
        url = f"/v1/recovery/{case['case_id']}/second-factor"
        wrong = await stack.http.post(url, json={"method": "recovery_code", "code": "zzzzz-zzzzz"})
        assert (wrong.status_code, wrong.json()["attempts_left"]) == (400, 4)
        granted = await stack.http.post(url, json={"method": "recovery_code", "code": codes[2]})
        assert granted.status_code == 200, granted.text
        done = await _choose(stack, case["case_id"], granted.json()["reset_token"], PASSWORDS[0])
        assert done.json()["state"] == "completed"
        assert slapd.binds(JANE_DN, PASSWORDS[0])
        assert (await directory.factors(jane.id))[0].remaining == 9
        # The same code again, in a new case: spent.
        again = await stack.open_case("jane")
        code = await mail.code_for(LDAP_JANE["mail"], nth=2)
        await stack.http.post(f"/v1/recovery/{again['case_id']}/code", json={"code": code})
        spent = await stack.http.post(
            f"/v1/recovery/{again['case_id']}/second-factor",
            json={"method": "recovery_code", "code": codes[2]},
        )
        assert (spent.status_code, spent.json()["error"]) == (400, "invalid_code")

        # bob, bound by the group, has no code yet: the contact code leads to the second step.
        case = await stack.open_case("bob")
        code = await mail.code_for("bob@example.com")
        answer = await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
        assert answer.json()["state"] == "awaiting_second_factor"
        # An operator makes bob's codes with the command line, as the docs say.
        env = settings_env(stack.settings)
        shown = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["accounts", "mfa", "show", "bob"], env=env
        )
        assert "only a support claim recovers it" in shown.output, shown.output
        made = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["accounts", "mfa", "recovery-codes", "bob"], env=env
        )
        assert made.exit_code == 0, made.output
        assert len(re.findall(r"^[a-z0-9]{5}-[a-z0-9]{5}$", made.output, re.M)) == 10
        shown = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["accounts", "mfa", "show", "bob"], env=env
        )
        assert "10 left" in shown.output, shown.output
        # sam: no mark, the code alone.
        case = await stack.open_case("sam")
        code = await mail.code_for("sam@example.com")
        answer = await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
        assert "reset_token" in answer.json()
