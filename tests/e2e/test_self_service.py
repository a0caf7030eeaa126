"""Self-service recovery end to end on the real Temporal dev server: HTTP → SMTP or SMS
webhook → code → new password → sign in."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from tests.codes import wrong_codes
from tests.conftest import StackParts
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack, sql_directory

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"
JANE = {"username": "jane", "email": "jane@example.com", "phone": "+14155550123"}


async def _jane(stack: Stack, phone: str | None = JANE["phone"]) -> None:
    await stack.add_account(JANE["username"], JANE["email"], phone, OLD)


async def _poll_case(stack: Stack, case_id: str, until: Any, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = (await stack.http.get(f"/v1/recovery/{case_id}")).json()
        if until(body):
            return dict(body)
        if time.monotonic() > deadline:
            raise AssertionError(f"case never reached the expected state: {body}")
        await asyncio.sleep(0.05)


async def _finish(stack: Stack, case_id: str, code: str, password: str = NEW) -> dict:
    granted = await stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": code})
    assert granted.status_code == 200, granted.text
    done = await stack.http.post(
        f"/v1/recovery/{case_id}/password",
        json={"reset_token": granted.json()["reset_token"], "new_password": password},
    )
    assert done.status_code == 200, done.text
    return dict(done.json())


async def test_recovery_by_email_from_request_to_sign_in(stack: Stack):
    await _jane(stack)
    before = (await stack.sign_in("jane", OLD)).json()["session_token"]

    case = await stack.open_case("Jane@Example.com")

    assert case["state"] == "awaiting_code"
    assert case["channel"] == "email"
    assert case["destination"] == "j•••@e•••.com"
    assert case["case_id"].startswith("rc_")
    assert case["code_expires_at"] and case["resend_available_at"]
    code = await stack.mail.code_for("jane@example.com")
    assert (await _finish(stack, case["case_id"], code))["state"] == "completed"

    assert (await stack.sign_in("jane@example.com", NEW)).status_code == 200
    old = await stack.sign_in("jane", OLD)
    assert (old.status_code, old.json()["error"]) == (401, "invalid_credentials")
    revoked = await stack.http.get(
        "/v1/sessions/current", headers={"Authorization": f"Bearer {before}"}
    )
    assert (revoked.status_code, revoked.json()["error"]) == (401, "invalid_session")
    # Every contact is told: the email and the phone.
    await stack.mail.wait_for(
        lambda m: m["To"] == "jane@example.com" and "password was changed" in m["Subject"]
    )
    assert any("password of jane was changed" in body for body in stack.sms.to(JANE["phone"]))
    final = await _poll_case(stack, case["case_id"], lambda b: b["state"] == "completed")
    assert final["code_expires_at"] is None


async def test_the_code_mail_has_a_text_and_an_html_part(stack: Stack):
    await _jane(stack)
    await stack.open_case("jane@example.com")
    code = await stack.mail.code_for("jane@example.com")

    [mail] = stack.mail.to("jane@example.com")

    assert mail.get_content_type() == "multipart/alternative"
    html = mail.get_body(preferencelist=("html",))
    assert html is not None and code in html.get_content()


async def test_recovery_by_phone_number_goes_by_sms_with_a_webotp_line(stack: Stack):
    await _jane(stack)

    case = await stack.open_case("+1 (415) 555-0123")

    assert (case["channel"], case["destination"]) == ("sms", "+1••••••••23")
    code = await stack.sms.code_for(JANE["phone"])
    [body] = [b for b in stack.sms.to(JANE["phone"]) if "recovery code" in b]
    assert body.splitlines()[-1] == f"@reclaim.example #{code}"
    await _finish(stack, case["case_id"], code)
    assert (await stack.sign_in("jane", NEW)).status_code == 200


async def test_recovery_by_username_with_the_sms_channel(stack: Stack):
    await _jane(stack)

    case = await stack.open_case("JANE", channel="sms")

    assert case["channel"] == "sms"
    await _finish(stack, case["case_id"], await stack.sms.code_for(JANE["phone"]))
    assert (await stack.sign_in("+14155550123", NEW)).status_code == 200


async def test_sms_asked_for_an_account_without_a_phone_goes_to_the_email(stack: Stack):
    await _jane(stack, phone=None)

    case = await stack.open_case("jane", channel="sms")

    assert case["channel"] == "email"
    await _finish(stack, case["case_id"], await stack.mail.code_for("jane@example.com"))


async def test_a_stranger_s_case_does_not_stop_the_owner_s(stack: Stack):
    """Anyone who knows the username can open a case for it; the owner's own case, opened by
    email, keeps working: each case belongs to whoever holds its id."""
    await _jane(stack)
    owners = await stack.open_case("jane@example.com")
    owners_code = await stack.mail.code_for("jane@example.com")

    strangers = await stack.open_case("jane")

    await stack.mail.code_for("jane@example.com", nth=2)  # the stranger's code, to the owner
    assert (await stack.http.get(f"/v1/recovery/{owners['case_id']}")).json()["state"] == (
        "awaiting_code"
    )
    assert (await stack.http.get(f"/v1/recovery/{strangers['case_id']}")).json()["state"] == (
        "awaiting_code"
    )
    await _finish(stack, owners["case_id"], owners_code)


async def test_an_unknown_email_gets_the_same_answer_and_a_notice(stack: Stack):
    await _jane(stack)

    known = await stack.open_case("jane@example.com")
    unknown = await stack.open_case("nobody@example.com")

    def shape(body: dict) -> dict:
        return {
            k: (type(v), len(v) if isinstance(v, str) else v)
            for k, v in body.items()
            if k not in ("case_id", "code_expires_at", "resend_available_at")
        }

    assert shape(known) == shape(unknown)
    assert unknown["destination"] == "n•••@e•••.com"
    # The address typed is told nobody has an account there; no code is ever sent to it.
    notice = await stack.mail.wait_for(lambda m: m["To"] == "nobody@example.com")
    assert "no account" in notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    answers = []
    for case in (known, unknown):
        await _poll_case(stack, case["case_id"], lambda b: b["delivery"] == "sent")
        response = await stack.http.post(
            f"/v1/recovery/{case['case_id']}/code", json={"code": "000000"}
        )
        answers.append((response.status_code, response.json()))
    assert (
        answers[0]
        == answers[1]
        == (
            400,
            {"error": "invalid_code", "message": "That code is not right.", "attempts_left": 4},
        )
    )
    views = [
        shape((await stack.http.get(f"/v1/recovery/{c['case_id']}")).json())
        for c in (known, unknown)
    ]
    assert views[0] == views[1]


async def test_a_stranger_asked_about_five_times_however_spelt_gets_one_notice(stack: Stack):
    spellings = [
        "stranger@gmail.com",
        "Stranger+x@GMail.com",
        "s.t.r.anger@gmail.com",
        "STRANGER@googlemail.com",
        "st.ranger+promo@gmail.com",
    ]

    opened = [await stack.open_case(spelt) for spelt in spellings]
    views = [
        await _poll_case(stack, case["case_id"], lambda b: b["delivery"] == "sent")
        for case in opened
    ]
    another = await stack.open_case("someone.else@gmail.com")
    await _poll_case(stack, another["case_id"], lambda b: b["delivery"] == "sent")

    # The stranger heard it once, from the first request; another address has its own.
    notice = await stack.mail.wait_for(lambda m: m["To"] == "stranger@gmail.com")
    assert "no account" in notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    await stack.mail.wait_for(lambda m: m["To"] == "someone.else@gmail.com")
    assert sorted(str(m["To"]) for m in stack.mail.messages) == [
        "someone.else@gmail.com",
        "stranger@gmail.com",
    ]
    # Whoever asked saw the same answers, notice sent or not: only ids and times differ.
    moving = ("case_id", "code_expires_at", "resend_available_at", "expires_at")

    def same(body: dict) -> dict:
        return {k: v for k, v in body.items() if k not in moving}

    assert all(same(o) == same(opened[0]) for o in opened), opened
    assert all(same(v) == same(views[0]) for v in views), views
    assert (views[0]["state"], views[0]["delivery"]) == ("awaiting_code", "sent")


async def test_once_the_interval_has_passed_the_stranger_hears_it_again(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(no_account_notice_interval=2)
    async with running_stack(settings, engine, mail, sms) as stack:
        first = await stack.open_case("stranger@gmail.com")
        await _poll_case(stack, first["case_id"], lambda b: b["delivery"] == "sent")
        assert len(mail.to("stranger@gmail.com")) == 1
        # Asked again (each time spelt anew, below the rate limit) until a second notice goes
        # out: not before the interval, and soon after it.
        deadline = time.monotonic() + 20
        n = 0
        while len(mail.messages) < 2:
            assert time.monotonic() < deadline, mail.summary()
            n += 1
            case = await stack.open_case(f"stranger+{n}@gmail.com")
            await _poll_case(stack, case["case_id"], lambda b: b["delivery"] == "sent")
        second = mail.messages[1]
        assert second["To"] == f"stranger+{n}@gmail.com"
        assert (
            parsedate_to_datetime(second["Date"]) - parsedate_to_datetime(mail.messages[0]["Date"])
        ).total_seconds() >= 1  # a Date header is to the second


async def test_an_unknown_username_gets_a_believable_stable_destination(stack: Stack):
    first = await stack.open_case("ghost_user")
    again = await stack.open_case("ghost_user")

    assert first["destination"] == again["destination"]
    assert first["destination"].count("•••") == 2 and "@" in first["destination"]
    # Once the case has "sent" its code, nothing went anywhere: there is nobody to tell.
    await _poll_case(stack, first["case_id"], lambda b: b["delivery"] == "sent")
    assert stack.mail.messages == [] and stack.sms.posted == []


async def test_cases_per_identifier_are_limited_per_hour_known_or_not(stack: Stack):
    """Then a proof of work or a wait (tests/e2e/test_challenge.py): the same for both."""
    await _jane(stack)
    answers = []
    for identifier in ("jane", "ghost_user"):
        for _ in range(5):
            await stack.open_case(identifier)

        limited = await stack.http.post("/v1/recovery", json={"identifier": identifier})

        assert limited.status_code == 429
        assert limited.json()["error"] == "challenge_required"
        retry_after = int(limited.headers["Retry-After"])
        assert 3500 < retry_after <= 3600
        assert limited.json()["retry_after_seconds"] == retry_after
        answers.append(limited.json())
    known, unknown = answers
    assert set(known) == set(unknown)
    assert set(known["challenge"]) == set(unknown["challenge"])
    assert known["challenge"]["maxNumber"] == unknown["challenge"]["maxNumber"]
    # Another identifier of the same account is counted on its own.
    await stack.open_case("jane@example.com")


async def test_the_fifth_wrong_code_locks_and_an_ended_case_still_answers_locked(stack: Stack):
    await _jane(stack)
    case = await stack.open_case("jane")
    code = await stack.mail.code_for("jane@example.com")
    url = f"/v1/recovery/{case['case_id']}/code"

    answers = [(await stack.http.post(url, json={"code": c})) for c in wrong_codes(code, 5)]

    assert [(a.status_code, a.json()["attempts_left"]) for a in answers] == [
        (400, 4),
        (400, 3),
        (400, 2),
        (400, 1),
        (423, 0),
    ]
    # Once the workflow has ended, updates reach no workflow; the API answers from its state.
    handle = stack.client.get_workflow_handle(case["case_id"])
    deadline = time.monotonic() + 20
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        assert time.monotonic() < deadline, "the locked case never ended"
        await asyncio.sleep(0.05)
    right = await stack.http.post(url, json={"code": code})
    resend = await stack.http.post(f"/v1/recovery/{case['case_id']}/resend")
    assert (right.status_code, right.json()["error"]) == (423, "case_locked")
    assert (resend.status_code, resend.json()["error"]) == (423, "case_locked")
    view = (await stack.http.get(f"/v1/recovery/{case['case_id']}")).json()
    assert (view["state"], view["attempts_left"]) == ("locked", 0)
    assert (await stack.sign_in("jane", OLD)).status_code == 200  # nothing changed


async def test_a_resend_too_soon_answers_with_the_wait(stack: Stack):
    await _jane(stack)
    case = await stack.open_case("jane")

    response = await stack.http.post(f"/v1/recovery/{case['case_id']}/resend")

    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "resend_cooldown"
    assert 55 <= body["retry_after_seconds"] <= 60
    assert response.headers["Retry-After"] == str(body["retry_after_seconds"])


async def _delivered(stack: Stack, case_id: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while (await stack.http.get(f"/v1/recovery/{case_id}")).json()["delivery"] != "sent":
        assert time.monotonic() < deadline, "the code was never delivered"
        await asyncio.sleep(0.05)


async def test_after_a_resend_the_earlier_code_answers_that_a_newer_one_was_sent(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(resend_cooldown=0, guesses_per_hour=1)
    async with running_stack(settings, engine, mail, sms) as stack:
        await _jane(stack)
        case = await stack.open_case("jane@example.com")
        first = await mail.code_for("jane@example.com")
        # The case knows the first code once its delivery is over (the mail can arrive a
        # moment sooner): a resend before that replaces a code the case has not recorded yet.
        await _delivered(stack, case["case_id"])
        resent = await stack.http.post(f"/v1/recovery/{case['case_id']}/resend")
        assert resent.status_code == 202, resent.text
        if await mail.code_for("jane@example.com", nth=2) == first:
            pytest.skip("the new code equals the old one (1 in a million): nothing to tell apart")
        url = f"/v1/recovery/{case['case_id']}/code"

        typed = [await stack.http.post(url, json={"code": first}) for _ in range(2)]

        for answer in typed:
            body = answer.json()
            assert (answer.status_code, body["error"], body["attempts_left"]) == (
                410,
                "code_replaced",
                5,
            )
            assert (
                body["message"] == "A newer code was sent: type the code from the latest message."
            )
            sent_at = datetime.fromisoformat(body["sent_at"])
            assert abs(sent_at - datetime.now(UTC)) < timedelta(minutes=1)
        # Not a guess: the account's one guess an hour is still there for the newest code.
        newest = await mail.code_for("jane@example.com", nth=2)
        accepted = await stack.http.post(url, json={"code": newest})
        assert accepted.status_code == 200, accepted.text


async def test_password_refusals_keep_the_token_usable(stack: Stack):
    await _jane(stack)
    case = await stack.open_case("jane")
    code = await stack.mail.code_for("jane@example.com")
    token = (
        await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
    ).json()["reset_token"]
    url = f"/v1/recovery/{case['case_id']}/password"

    weak = await stack.http.post(url, json={"reset_token": token, "new_password": "jane1234"})
    reused = await stack.http.post(url, json={"reset_token": token, "new_password": OLD})
    forged = await stack.http.post(url, json={"reset_token": "forged", "new_password": NEW})

    assert weak.status_code == 422 and weak.json()["error"] == "weak_password"
    assert {"contains_username", "too_guessable"} <= set(weak.json()["reasons"])
    assert weak.json()["hints"]
    assert (reused.status_code, reused.json()["error"]) == (422, "password_reused")
    assert (forged.status_code, forged.json()["error"]) == (403, "invalid_token")
    done = await stack.http.post(url, json={"reset_token": token, "new_password": NEW})
    assert done.json() == {"case_id": case["case_id"], "state": "completed"}
    # The token is spent: the same request again (a lost answer) says where its change went.
    again = await stack.http.post(url, json={"reset_token": token, "new_password": NEW})
    assert (again.status_code, again.json()) == (200, done.json())
    assert (await stack.sign_in("jane", NEW)).status_code == 200


async def test_a_spent_token_with_another_password_is_refused_with_when_it_changed(stack: Stack):
    await _jane(stack)
    case = await stack.open_case("jane")
    code = await stack.mail.code_for("jane@example.com")
    token = (
        await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
    ).json()["reset_token"]
    url = f"/v1/recovery/{case['case_id']}/password"
    done = await stack.http.post(url, json={"reset_token": token, "new_password": NEW})
    assert done.json() == {"case_id": case["case_id"], "state": "completed"}

    other = await stack.http.post(url, json={"reset_token": token, "new_password": NEW + "!"})
    same = await stack.http.post(url, json={"reset_token": token, "new_password": NEW})

    assert (other.status_code, other.json()["error"]) == (409, "token_used"), other.text
    changed_at = datetime.fromisoformat(other.json()["changed_at"])
    assert abs(datetime.now(UTC) - changed_at) < timedelta(minutes=1)
    assert "already" in other.json()["message"]
    assert (same.status_code, same.json()) == (200, done.json())  # a lost answer, retried
    # A token handed out before passes were signed (its workflow is asked) is told the same.
    opened = stack.services.keys.open_reset_pass(case["case_id"], token)
    assert opened is not None
    unsigned = {"reset_token": opened[0]}
    other_unsigned = await stack.http.post(url, json={**unsigned, "new_password": NEW + "!"})
    same_unsigned = await stack.http.post(url, json={**unsigned, "new_password": NEW})
    assert (other_unsigned.status_code, other_unsigned.json()["error"]) == (409, "token_used")
    assert (same_unsigned.status_code, same_unsigned.json()) == (200, done.json())
    assert (await stack.sign_in("jane", NEW + "!")).status_code == 401
    assert (await stack.sign_in("jane", NEW)).status_code == 200


async def test_a_new_password_containing_the_emails_local_part_is_refused_for_it(stack: Stack):
    # The local part (jane.doe) is not the username (jdoe): only the email rule can refuse it.
    await stack.add_account("jdoe", "jane.doe@example.com", None, OLD)
    case = await stack.open_case("jdoe")
    code = await stack.mail.code_for("jane.doe@example.com")
    token = (
        await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
    ).json()["reset_token"]
    url = f"/v1/recovery/{case['case_id']}/password"

    weak = await stack.http.post(
        url, json={"reset_token": token, "new_password": "violet Jane.Doe tangerine marmalade"}
    )

    assert weak.status_code == 422, weak.text
    assert weak.json()["error"] == "weak_password"
    assert "contains_email" in weak.json()["reasons"], weak.json()
    assert "contains_username" not in weak.json()["reasons"]
    done = await stack.http.post(url, json={"reset_token": token, "new_password": NEW})
    assert done.json() == {"case_id": case["case_id"], "state": "completed"}  # the control


async def test_the_fifth_most_recent_password_is_refused_and_the_sixth_accepted(stack: Stack):
    # Oldest first: the password jane signed up with, then five earlier recoveries.
    passwords = [
        f"{word} harbour lantern quince"
        for word in ("amber", "birch", "cobalt", "dune", "ember", "fjord")
    ]
    directory = sql_directory(stack.engine)
    account = await directory.create(
        username="jane", email="jane@example.com", phone=None, password=passwords[0]
    )
    for n, password in enumerate(passwords[1:], start=1):
        earlier = f"rc_earlier_{n}"
        await directory.set_password(
            account.id,
            await directory.new_password(earlier, password),
            case_id=earlier,
            at=datetime.now(UTC) - timedelta(days=10 - n),
        )
    case = await stack.open_case("jane")
    code = await stack.mail.code_for("jane@example.com")
    token = (
        await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
    ).json()["reset_token"]
    url = f"/v1/recovery/{case['case_id']}/password"

    fifth = await stack.http.post(url, json={"reset_token": token, "new_password": passwords[1]})
    sixth = await stack.http.post(url, json={"reset_token": token, "new_password": passwords[0]})

    assert (fifth.status_code, fifth.json()["error"]) == (422, "password_reused")
    assert sixth.json() == {"case_id": case["case_id"], "state": "completed"}
    assert (await stack.sign_in("jane", passwords[0])).status_code == 200


async def test_an_sms_provider_outage_shows_retrying_then_the_code_arrives(stack: Stack):
    await _jane(stack)
    stack.sms.failures_left = 1

    case = await stack.open_case("+14155550123")

    retrying = await _poll_case(stack, case["case_id"], lambda b: b["delivery"] != "sending")
    assert retrying["delivery"] == "retrying"
    assert retrying["delivery_attempts"] >= 2
    await _poll_case(stack, case["case_id"], lambda b: b["delivery"] == "sent")
    await _finish(stack, case["case_id"], await stack.sms.code_for(JANE["phone"]))
    assert stack.sms.calls >= 2
