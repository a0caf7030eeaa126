"""An account with a second factor over HTTP, on the real Temporal dev server and the built-in
SQL directory: the mailed code alone changes nothing (the "recovery bypasses MFA" hole), a
TOTP code or a recovery code then opens the new password, and an account without factors (or
no account at all) answers exactly as before."""

from __future__ import annotations

from datetime import UTC, datetime

import pyotp

from reclaim.notify.outbox import text_of
from tests.codes import wrong_codes
from tests.conftest import StackParts
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"


async def _jane_with_totp(stack: Stack) -> tuple[int, pyotp.TOTP]:
    jane = await stack.add_account("jane", "jane@example.com", None, OLD)
    uri = await stack.services.directory.enrol_totp(jane, datetime.now(UTC))
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    return jane, totp


async def _past_the_code(stack: Stack, nth: int = 1) -> str:
    """The nth recovery of jane's, past its mailed code."""
    case = await stack.open_case("jane@example.com")
    code = await stack.mail.code_for("jane@example.com", nth=nth)
    answer = await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
    assert answer.status_code == 200, answer.text
    return str(case["case_id"])


async def test_the_mailed_code_alone_changes_nothing_for_an_account_with_a_second_factor(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(guesses_per_hour=3)
    async with running_stack(settings, engine, mail, sms) as stack:
        _, totp = await _jane_with_totp(stack)
        case = await stack.open_case("jane@example.com")
        case_id = case["case_id"]
        assert case["factors"] is None  # an identifier alone tells nothing of them
        code = await mail.code_for("jane@example.com")

        answer = await stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": code})

        assert (answer.status_code, answer.json()) == (
            200,
            {"state": "awaiting_second_factor", "factors": ["totp"]},
        )
        view = (await stack.http.get(f"/v1/recovery/{case_id}")).json()
        assert (view["state"], view["factors"]) == ("awaiting_second_factor", ["totp"])
        forged = await stack.http.post(
            f"/v1/recovery/{case_id}/password", json={"reset_token": "x" * 43, "new_password": NEW}
        )
        assert forged.status_code == 403
        url = f"/v1/recovery/{case_id}/second-factor"
        # Wrong proofs count down, and in the account's guess budget (3 an hour here): the
        # fourth is not even compared, so the right one then answers as a wrong one.
        for wrong, left in zip(wrong_codes(totp.now(), 3), (4, 3, 2), strict=True):
            refused = await stack.http.post(url, json={"method": "totp", "code": wrong})
            body = refused.json()
            assert (refused.status_code, body["error"], body["attempts_left"]) == (
                400,
                "invalid_code",
                left,
            )
        budget_spent = await stack.http.post(url, json={"method": "totp", "code": totp.now()})
        assert (budget_spent.status_code, budget_spent.json()["attempts_left"]) == (400, 1)
        assert (await stack.sign_in("jane", OLD)).status_code == 200  # nothing changed
        assert (await stack.sign_in("jane", NEW)).status_code == 401


async def test_a_totp_code_opens_the_new_password_once(stack: Stack):
    jane, totp = await _jane_with_totp(stack)
    case_id = await _past_the_code(stack)
    url = f"/v1/recovery/{case_id}/second-factor"
    # A method the account does not have is only a wrong code (no oracle).
    other = await stack.http.post(url, json={"method": "recovery_code", "code": "abcde-fghij"})
    assert (other.status_code, other.json()["error"]) == (400, "invalid_code")
    code = totp.now()

    granted = await stack.http.post(url, json={"method": "totp", "code": code})
    again = await stack.http.post(url, json={"method": "totp", "code": code})  # a lost answer

    assert granted.status_code == 200, granted.text
    assert again.json()["reset_token"] == granted.json()["reset_token"]
    changed = await stack.http.post(
        f"/v1/recovery/{case_id}/password",
        json={"reset_token": granted.json()["reset_token"], "new_password": NEW},
    )
    assert changed.json()["state"] == "completed"
    assert (await stack.sign_in("jane", NEW)).status_code == 200
    view = (await stack.http.get(f"/v1/recovery/{case_id}")).json()
    assert view["second_factor"] == "totp"
    # The same TOTP code in another case (inside its 30 s step): refused, it was used.
    later = await _past_the_code(stack, nth=2)
    replay = await stack.http.post(
        f"/v1/recovery/{later}/second-factor", json={"method": "totp", "code": code}
    )
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_code")
    # The new password left the factor in place.
    assert [f.kind.value for f in await stack.services.directory.factors(jane)] == ["totp"]


async def test_a_recovery_code_works_once_and_the_mail_says_how_many_are_left(stack: Stack):
    jane = await stack.add_account("jane", "jane@example.com", None, OLD)
    codes = await stack.services.directory.new_recovery_codes(jane, datetime.now(UTC))
    assert len(codes) == 10
    case_id = await _past_the_code(stack)
    url = f"/v1/recovery/{case_id}/second-factor"

    granted = await stack.http.post(url, json={"method": "recovery_code", "code": codes[3]})
    token = granted.json()["reset_token"]
    await stack.http.post(
        f"/v1/recovery/{case_id}/password", json={"reset_token": token, "new_password": NEW}
    )

    told = await stack.mail.wait_for(
        lambda m: m["To"] == "jane@example.com" and "changed" in str(m["Subject"])
    )
    said = " ".join(text_of(told).split())
    assert "One of your recovery codes was used for this: 9 are left." in said
    # The operator sees which factor it took, never a secret.
    shown = await stack.services.show_case(case_id)
    assert (shown["second_factor"], shown["account_factors"]) == (
        "recovery_code",
        ["recovery_code"],
    )
    [row] = await stack.services.recovery.cases_of(jane)
    assert (row.state, row.second_factor) == ("completed", "recovery_code")
    used_again = await _past_the_code(stack, nth=2)
    spent = await stack.http.post(
        f"/v1/recovery/{used_again}/second-factor",
        json={"method": "recovery_code", "code": codes[3]},
    )
    assert (spent.status_code, spent.json()["error"]) == (400, "invalid_code")


async def test_no_account_and_an_account_without_factors_answer_alike_at_every_step(
    stack: Stack,
):
    await stack.add_account("jane", "jane@example.com", None, OLD)
    # Ids, times, the delivery's progress and the masked destination (a decoy's comes from
    # the real destinations' distribution) differ; nothing else may.
    moving = {
        "case_id",
        "code_expires_at",
        "resend_available_at",
        "delivery",
        "delivery_attempts",
        "destination",
    }

    def same(body: dict) -> dict:
        return {k: v for k, v in body.items() if k not in moving}

    answers: list[list[object]] = []
    for identifier in ("jane@example.com", "nobody@example.com"):
        opened = await stack.open_case(identifier)
        case_id = opened["case_id"]
        wrong = await stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": "000001"})
        second = await stack.http.post(
            f"/v1/recovery/{case_id}/second-factor", json={"method": "totp", "code": "123456"}
        )
        view = (await stack.http.get(f"/v1/recovery/{case_id}")).json()
        answers.append(
            [
                same(opened),
                (wrong.status_code, wrong.json()),
                (second.status_code, second.json()),
                same(view),
            ]
        )

    assert answers[0] == answers[1]
    assert answers[0][2] == (
        409,
        {
            "error": "invalid_state",
            "message": "This case is awaiting_code: it takes no second factor now.",
            "state": "awaiting_code",
        },
    )
    assert answers[0][0]["factors"] is None
