"""A stranger who knows every identifier of an account, against the real stack: the guess
budget spans identifiers, channels and cases; over it a code is not compared, in answers that
look like any wrong code's; the owner's own case keeps working and its message's link gets
the owner through; unknown identifiers answer the same."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session

from reclaim.directory.tables import Account
from reclaim.notify.outbox import text_of
from tests.stack import Stack

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"
JANE = ("jane", "jane@example.com", "+14155550123")
GHOST = ("ghost", "ghost@example.com", "+14155550999")
# A stranger's guesses: the same for every case (1 in 200 000 that one is a case's code).
GUESSES = ("100000", "211111", "322222", "433333", "544444")


async def _hammer(stack: Stack, identifiers: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Two cases on each identifier, five wrong codes on each: what every answer said."""
    seen: list[tuple[Any, ...]] = []
    for identifier in identifiers:
        for _ in range(2):
            opened = await stack.http.post("/v1/recovery", json={"identifier": identifier})
            body = opened.json()
            seen.append((opened.status_code, body["state"], body["attempts_left"]))
            for guess in GUESSES:
                answer = await stack.http.post(
                    f"/v1/recovery/{body['case_id']}/code", json={"code": guess}
                )
                error = answer.json()
                seen.append((answer.status_code, error["error"], error.get("attempts_left")))
    return seen


async def test_the_owner_finishes_while_a_stranger_hammers_every_identifier(stack: Stack):
    await stack.add_account(*JANE, OLD)
    owner = await stack.open_case("jane@example.com")
    mail = await stack.mail.wait_for(lambda m: m["To"] == "jane@example.com")
    code = await stack.mail.code_for("jane@example.com")

    answers = await _hammer(stack, JANE)

    # 30 wrong codes, only the first 10 compared: each answered as any wrong code is.
    assert (
        answers
        == [
            (202, "awaiting_code", 5),
            (400, "invalid_code", 4),
            (400, "invalid_code", 3),
            (400, "invalid_code", 2),
            (400, "invalid_code", 1),
            (423, "case_locked", 0),
        ]
        * 6
    )
    # The stranger never touched the owner's case: it still waits for the owner's code...
    assert (await stack.http.get(f"/v1/recovery/{owner['case_id']}")).json()["state"] == (
        "awaiting_code"
    )
    # ...but the budget is spent, across identifiers: a right code typed is not compared.
    typed = await stack.http.post(f"/v1/recovery/{owner['case_id']}/code", json={"code": code})
    assert (typed.status_code, typed.json()["error"]) == (400, "invalid_code")
    # The link in the owner's message gets the owner through, within the hour.
    link = re.search(r"\?proof=([\w-]{43})", text_of(mail))
    assert link is not None
    proved = await stack.http.post(
        f"/v1/recovery/{owner['case_id']}/proof", json={"proof": link.group(1)}
    )
    assert proved.status_code == 200, proved.text
    done = await stack.http.post(
        f"/v1/recovery/{owner['case_id']}/password",
        json={"reset_token": proved.json()["reset_token"], "new_password": NEW},
    )
    assert done.json()["state"] == "completed"
    assert (await stack.sign_in("jane", NEW)).status_code == 200
    # The owner heard that someone was guessing: once, not once per case (twice only if the
    # test straddled the turn of an hour).
    await stack.mail.wait_for(
        lambda m: m["To"] == "jane@example.com" and "guessing" in m["Subject"]
    )
    await stack.sms.wait_for("+14155550123", "wrong codes")
    told = [m for m in stack.mail.to("jane@example.com") if "guessing" in m["Subject"]]
    assert 1 <= len(told) <= 2


async def test_an_unknown_account_answers_the_stranger_exactly_as_a_known_one(stack: Stack):
    await stack.add_account(*JANE, OLD)

    known = await _hammer(stack, JANE)
    unknown = await _hammer(stack, GHOST)

    assert known == unknown
    assert [m for m in stack.mail.messages if "guessing" in m["Subject"]]  # the control


async def test_right_codes_cost_no_budget(stack: Stack):
    await stack.add_account(*JANE, OLD)
    for n in range(12):  # more right codes than the budget of wrong ones, over 3 identifiers
        case = await stack.open_case(JANE[n % 3], channel="email")
        code = await stack.mail.code_for("jane@example.com", nth=n + 1)
        granted = await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
        assert granted.status_code == 200, (n, granted.text)


async def test_a_recovery_through_a_contact_changed_lately_is_held_and_the_old_ones_told(
    stack: Stack,
):
    await stack.add_account(*JANE, OLD)
    await stack.handed_over("jane", "jane.new@example.net", "lost_contact")

    # Days later (within RECLAIM_RECENT_CONTACT_DAYS) a self-service recovery by the new address.
    case = await stack.open_case("jane.new@example.net")
    code = await stack.mail.code_for("jane.new@example.net", nth=2)  # the claim's case sent one
    token = (
        await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
    ).json()["reset_token"]
    held = await stack.http.post(
        f"/v1/recovery/{case['case_id']}/password",
        json={"reset_token": token, "new_password": NEW},
    )

    assert held.json()["state"] == "held"
    view = (await stack.http.get(f"/v1/recovery/{case['case_id']}")).json()
    hold = datetime.fromisoformat(view["hold_until"]) - datetime.now(UTC)
    assert timedelta(hours=23) < hold <= timedelta(hours=24)  # RECLAIM_RECOVERY_HOLD
    assert (await stack.sign_in("jane", NEW)).status_code == 401
    # The addresses the claim replaced hear of it, each with a stop link of its own.
    stop = f"/stop/{case['case_id']}?token="
    told = await stack.mail.wait_for(lambda m: m["To"] == "jane@example.com" and stop in text_of(m))
    texted = await stack.sms.wait_for("+14155550123", stop)
    assert re.search(r"token=([\w-]{43})", text_of(told)).group(1) not in texted  # type: ignore[union-attr]


def _contacts_changed(stack: Stack, account_id: int, ago: timedelta) -> None:
    """As if an approved claim had replaced the account's contacts `ago`."""
    with Session(stack.engine) as session:
        account = session.get(Account, account_id)
        assert account is not None
        account.contacts_changed_at = datetime.now(UTC) - ago
        session.add(account)
        session.commit()


async def _recover(stack: Stack, email: str) -> tuple[str, dict[str, Any]]:
    """A self-service recovery by `email` up to its new password: the case and its answer."""
    case = await stack.open_case(email)
    code = await stack.mail.code_for(email)
    token = (
        await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
    ).json()["reset_token"]
    answer = await stack.http.post(
        f"/v1/recovery/{case['case_id']}/password",
        json={"reset_token": token, "new_password": NEW},
    )
    assert answer.status_code == 200, answer.text
    return case["case_id"], dict(answer.json())


async def test_the_recent_contact_window_is_counted_in_days(stack: Stack):
    """RECLAIM_RECENT_CONTACT_DAYS (7 by default): contacts changed 2 days ago hold the
    recovery, 8 days ago they do not."""
    assert stack.settings.recent_contact_days == 7
    recent = await stack.add_account("jane", "jane@example.com", None, OLD)
    settled = await stack.add_account("joe", "joe@example.com", None, OLD)
    _contacts_changed(stack, recent, timedelta(days=2))
    _contacts_changed(stack, settled, timedelta(days=8))

    held_case, held = await _recover(stack, "jane@example.com")
    done_case, done = await _recover(stack, "joe@example.com")

    assert held == {"case_id": held_case, "state": "held"}, held
    view = (await stack.http.get(f"/v1/recovery/{held_case}")).json()
    hold = datetime.fromisoformat(view["hold_until"]) - datetime.now(UTC)
    assert timedelta(hours=23) < hold <= timedelta(hours=24)  # RECLAIM_RECOVERY_HOLD
    assert (await stack.sign_in("jane", NEW)).status_code == 401
    assert done == {"case_id": done_case, "state": "completed"}, done
    assert (await stack.sign_in("joe", NEW)).status_code == 200
