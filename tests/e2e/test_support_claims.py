"""Support claims end to end on the real Temporal dev server: the claimant over HTTP with
their claim token, reviewers with their staff keys, mail through a real SMTP sink."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import extract_parameters

from reclaim.directory import Passkey, passkey_key
from reclaim.notify.outbox import text_of
from reclaim.support.contracts import StaffRole
from tests.history_text import payload_texts
from tests.stack import Stack

PASSWORD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"
CONTACT = "jane.new@example.net"


async def _staff(stack: Stack, name: str, role: StaffRole) -> dict[str, str]:
    _, key = await stack.services.staff_members.add_staff(name, role.value)
    return {"Authorization": f"Bearer {key}"}


def _claimant(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _file(stack: Stack, **body: Any) -> dict[str, Any]:
    claim = {"username": "jane", "contact_email": CONTACT, "reason": "compromised", **body}
    response = await stack.http.post("/v1/support-cases", json=claim)
    assert response.status_code == 202, response.text
    return dict(response.json())


async def _in_queue(
    stack: Stack, key: dict[str, str], query: str, found: Callable[[list[dict]], bool]
) -> list[dict[str, Any]]:
    """The queue, polled until it shows what is expected (visibility lags a little)."""
    deadline = time.monotonic() + 20
    while True:
        response = await stack.http.get(f"/v1/staff/cases{query}", headers=key)
        assert response.status_code == 200, response.text
        cases = response.json()["cases"]
        if found(cases):
            return list(cases)
        if time.monotonic() > deadline:
            raise AssertionError(f"the queue never showed it: {cases}")
        await asyncio.sleep(0.1)


async def test_a_takeover_claim_from_submission_to_a_new_password(stack: Stack):
    await stack.add_account("jane", "jane@example.com", "+14155550123", PASSWORD)
    rita = await _staff(stack, "rita", StaffRole.REVIEWER)

    filed = await _file(
        stack,
        registered_email="Jane@Example.com",
        previous_passwords=["not this one", PASSWORD],
        description="Someone changed my email on Monday.",
    )

    assert filed["state"] == "submitted" and filed["case_id"].startswith("sc_")
    case_id, token = filed["case_id"], filed["claim_token"]
    received = await stack.mail.wait_for(lambda m: m["To"] == CONTACT)
    assert token in text_of(received) and case_id in received["Subject"]
    status = await stack.http.get(f"/v1/support-cases/{case_id}", headers=_claimant(token))
    assert status.json() == {
        "case_id": case_id,
        "state": "submitted",
        "questions": [],
        "answer_by": None,
        "decision": None,
    }
    [queued] = await _in_queue(stack, rita, "?reason=compromised", lambda c: len(c) == 1)
    assert (queued["case_id"], queued["risk"], queued["assignee"]) == (case_id, "low", None)
    assert queued["escalated"] is False and queued["next_deadline"]

    assigned = await stack.http.post(f"/v1/staff/cases/{case_id}/assign", headers=rita)
    assert (assigned.status_code, assigned.json()["state"]) == (202, "in_review")
    await _in_queue(stack, rita, "?assignee=rita&state=in_review", lambda c: len(c) == 1)
    asked = await stack.http.post(
        f"/v1/staff/cases/{case_id}/request-info",
        json={"questions": ["Which city did you last sign in from?"]},
        headers=rita,
    )
    assert asked.json()["state"] == "awaiting_claimant"
    await stack.mail.wait_for(lambda m: "Which city" in text_of(m))
    waiting = (
        await stack.http.get(f"/v1/support-cases/{case_id}", headers=_claimant(token))
    ).json()
    assert waiting["questions"][0]["text"] == "Which city did you last sign in from?"
    assert waiting["questions"][0]["answered"] is False and waiting["answer_by"]

    answered = await stack.http.post(
        f"/v1/support-cases/{case_id}/info", json={"answer": "Lyon"}, headers=_claimant(token)
    )

    assert (answered.status_code, answered.json()["state"]) == (202, "in_review")
    detail = (await stack.http.get(f"/v1/staff/cases/{case_id}", headers=rita)).json()
    assert detail["claimant"] == {
        "contact_email": CONTACT,
        "description": "Someone changed my email on Monday.",
    }
    assert [a["text"] for a in detail["answers"]] == ["Lyon"]
    assert detail["evidence"]["passwords_matched"] == 1
    assert detail["evidence"]["registered_email"] == "current"
    assert [(e["actor"], e["action"]) for e in detail["timeline"]] == [
        ("claimant", "submitted"),
        ("reviewer:rita", "assigned"),
        ("reviewer:rita", "asked the claimant"),
        ("claimant", "answered"),
    ]
    approved = await stack.http.post(
        f"/v1/staff/cases/{case_id}/approve", json={"note": "Checks out."}, headers=rita
    )
    assert approved.status_code == 202, approved.text
    recovery_case_id = approved.json()["decision"]["recovery_case_id"]
    decided = (
        await stack.http.get(f"/v1/support-cases/{case_id}", headers=_claimant(token))
    ).json()
    assert decided["state"] == "approved"
    assert decided["decision"]["recovery_case_id"] == recovery_case_id

    # The claimant recovers the account at the verified address, and signs in.
    code = await stack.mail.code_for(CONTACT)
    granted = await stack.http.post(f"/v1/recovery/{recovery_case_id}/code", json={"code": code})
    assert granted.status_code == 200, granted.text
    done = await stack.http.post(
        f"/v1/recovery/{recovery_case_id}/password",
        json={"reset_token": granted.json()["reset_token"], "new_password": NEW},
    )
    assert done.status_code == 200, done.text
    # The new password waits out the claim's hold; the replaced address may stop it.
    assert done.json()["state"] == "held"
    held = (await stack.http.get(f"/v1/recovery/{recovery_case_id}")).json()
    hold = datetime.fromisoformat(held["hold_until"]) - datetime.now(UTC)
    assert timedelta(hours=71) < hold <= timedelta(hours=72)
    assert (await stack.sign_in(CONTACT, NEW)).status_code == 401
    notice = await stack.mail.wait_for(
        lambda m: m["To"] == "jane@example.com" and "recovering" in m["Subject"]
    )
    assert f"/stop/{recovery_case_id}?token=" in text_of(notice)
    # An operator ends the hold (`reclaim cases hold --end-now`): the password takes effect.
    ended = await stack.services.recovery.change_hold(recovery_case_id, end_now=True)
    assert ended.state.value == "completed"
    assert (await stack.sign_in(CONTACT, NEW)).status_code == 200
    assert (await stack.sign_in("jane@example.com", NEW)).status_code == 401
    await stack.mail.wait_for(
        lambda m: m["To"] == "jane@example.com" and "contact details" in m["Subject"]
    )
    await _in_queue(
        stack, rita, "?state=approved", lambda c: [x["case_id"] for x in c] == [case_id]
    )
    # What the claimant wrote and where to reach them stayed out of the claim's history.
    history = (await stack.client.get_workflow_handle(case_id).fetch_history()).to_json()
    decoded = "\n".join(payload_texts(json.loads(history), stack.settings.codec()))
    assert "Which city did you last sign in from?" in decoded  # the control
    for private in (CONTACT, "jane@example.com", token, PASSWORD, "Lyon", "on Monday"):
        assert private not in history + decoded, private


async def test_a_rejected_claim_for_an_unknown_username_tells_the_claimant_why(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    sam = await _staff(stack, "sam", StaffRole.SUPERVISOR)
    known = await _file(stack)
    unknown = await _file(stack, username="ghost")
    assert set(known) == set(unknown) and unknown["state"] == known["state"] == "submitted"
    case_id, token = unknown["case_id"], unknown["claim_token"]
    await stack.http.post(f"/v1/staff/cases/{case_id}/assign", headers=sam)

    refused = await stack.http.post(f"/v1/staff/cases/{case_id}/approve", headers=sam)
    assert (refused.status_code, refused.json()["error"]) == (409, "cannot_resolve")
    rejected = await stack.http.post(
        f"/v1/staff/cases/{case_id}/reject",
        json={"reason": "We found no account you could prove is yours."},
        headers=sam,
    )

    assert rejected.json()["state"] == "rejected"
    status = (await stack.http.get(f"/v1/support-cases/{case_id}", headers=_claimant(token))).json()
    assert status["decision"]["outcome"] == "rejected"
    assert status["decision"]["note"] == "We found no account you could prove is yours."
    await stack.mail.wait_for(lambda m: "not approved" in text_of(m) and case_id in text_of(m))
    again = await stack.http.post(
        f"/v1/staff/cases/{case_id}/reject", json={"reason": "x"}, headers=sam
    )
    assert (again.status_code, again.json()["error"]) == (409, "invalid_state")


async def test_a_reviewers_high_risk_approval_waits_for_a_supervisors_confirmation(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    rita = await _staff(stack, "rita", StaffRole.REVIEWER)
    sam = await _staff(stack, "sam", StaffRole.SUPERVISOR)
    claim = await _file(stack)  # no evidence at all
    case_id = claim["case_id"]
    await stack.http.post(f"/v1/staff/cases/{case_id}/assign", headers=rita)

    asked = await stack.http.post(
        f"/v1/staff/cases/{case_id}/approve", json={"note": "Seems right."}, headers=rita
    )

    assert (asked.status_code, asked.json()["state"]) == (202, "awaiting_confirmation")
    refused = await stack.http.post(f"/v1/staff/cases/{case_id}/confirm", headers=rita)
    assert (refused.status_code, refused.json()["error"]) == (403, "supervisor_required")
    await _in_queue(
        stack, sam, "?state=awaiting_confirmation", lambda cases: cases and cases[0]["case_id"]
    )
    confirmed = await stack.http.post(f"/v1/staff/cases/{case_id}/confirm", headers=sam)
    assert (confirmed.status_code, confirmed.json()["state"]) == (202, "approved")
    decision = confirmed.json()["decision"]
    assert (decision["by"], decision["note"]) == ("supervisor:sam", "Seems right.")


async def test_a_reviewer_cannot_approve_a_claim_assigned_to_another_reviewer(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    rita = await _staff(stack, "rita", StaffRole.REVIEWER)
    rex = await _staff(stack, "rex", StaffRole.REVIEWER)
    claim = await _file(stack, registered_email="jane@example.com", previous_passwords=[PASSWORD])
    case_id = claim["case_id"]
    assigned = await stack.http.post(f"/v1/staff/cases/{case_id}/assign", headers=rex)
    assert (assigned.status_code, assigned.json()["assignee"]) == (202, "rex")

    refused = await stack.http.post(
        f"/v1/staff/cases/{case_id}/approve", json={"note": "Looks fine."}, headers=rita
    )

    assert refused.status_code == 403, refused.text
    assert (refused.json()["error"], refused.json()["assignee"]) == ("not_assignee", "rex")
    detail = (await stack.http.get(f"/v1/staff/cases/{case_id}", headers=rita)).json()
    assert (detail["state"], detail["risk"], detail["assignee"]) == ("in_review", "low", "rex")
    assert detail["decision"] is None
    # Nothing was handed over: the account still signs in at its own address.
    assert (await stack.sign_in("jane@example.com", PASSWORD)).status_code == 200
    approved = await stack.http.post(f"/v1/staff/cases/{case_id}/approve", headers=rex)
    assert (approved.status_code, approved.json()["state"]) == (202, "approved")


async def test_a_claim_costs_the_same_argon2_work_whether_the_username_exists_or_not(
    stack: Stack, argon2_verifications: list[str]
):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    guesses = ["not this one", PASSWORD]
    work: dict[str, list[str]] = {}

    for username in ("jane", "ghost"):
        argon2_verifications.clear()
        await _file(stack, username=username, previous_passwords=guesses)
        work[username] = list(argon2_verifications)

    # Each guess is checked against five hashes, the account's own padded with the decoy.
    assert [len(hashes) for hashes in work.values()] == [2 * 5, 2 * 5]
    parameters = {str(extract_parameters(h)) for hashes in work.values() for h in hashes}
    assert len(parameters) == 1


async def test_staff_routes_need_a_staff_key_and_claims_their_own_token(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    rita = await _staff(stack, "rita", StaffRole.REVIEWER)
    claim = await _file(stack)
    case_id, token = claim["case_id"], claim["claim_token"]
    session = (await stack.sign_in("jane", PASSWORD)).json()["session_token"]
    key = rita["Authorization"].removeprefix("Bearer ")
    member_id = key.split("_")[1]
    for headers in (
        {},
        {"Authorization": "Bearer rk_1_not-the-key"},
        {"Authorization": f"Bearer rk_{member_id}_{key[-10:]}"},
        {"Authorization": f"Bearer {token}"},  # a claim token
        {"Authorization": f"Bearer {session}"},  # a session token
        {"Authorization": key},  # no scheme
    ):
        for method, path in (
            ("GET", "/v1/staff/cases"),
            ("GET", f"/v1/staff/cases/{case_id}"),
            ("POST", f"/v1/staff/cases/{case_id}/assign"),
        ):
            response = await stack.http.request(method, path, headers=headers)
            assert (response.status_code, response.json()["error"]) == (401, "invalid_key"), (
                headers,
                path,
            )
    for headers in (
        {},
        rita,
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {session}"},
    ):
        response = await stack.http.get(f"/v1/support-cases/{case_id}", headers=headers)
        assert response.status_code == 401, headers
    unknown = await stack.http.get(
        "/v1/support-cases/sc_AAAAAAAAAAAAAAAAAAAAAA", headers=_claimant(token)
    )
    assert unknown.status_code == 404
    assert (
        await stack.http.get(f"/v1/support-cases/{case_id}", headers=_claimant(token))
    ).status_code == 200


async def test_claims_are_validated_and_limited_per_contact_address(stack: Stack):
    for body, field in (
        ({"reason": "bored"}, "reason"),
        ({"contact_email": "not-an-address"}, "contact_email"),
        ({"username": "no spaces allowed"}, "username"),
        ({"previous_passwords": ["a", "b", "c", "d", "e", "f"]}, "previous_passwords"),
        ({"registered_phone": "+1 000"}, "registered_phone"),
        ({"surprise": True}, "surprise"),
    ):
        claim = {"username": "jane", "contact_email": CONTACT, "reason": "compromised", **body}
        response = await stack.http.post("/v1/support-cases", json=claim)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["fields"][0]["field"] == field
    for _ in range(3):
        await _file(stack)
    limited = await stack.http.post(
        "/v1/support-cases",
        json={"username": "jane", "contact_email": CONTACT, "reason": "deleted"},
    )
    assert (limited.status_code, limited.json()["error"]) == (429, "rate_limited")
    assert int(limited.headers["Retry-After"]) > 3000


async def test_a_claim_held_by_one_reviewer_is_moved_by_a_supervisor_or_released_by_them(
    stack: Stack,
):
    await stack.add_account("jane", "jane@example.com", "+14155550123", PASSWORD)
    rita = await _staff(stack, "rita", StaffRole.REVIEWER)
    omar = await _staff(stack, "omar", StaffRole.REVIEWER)
    sam = await _staff(stack, "sam", StaffRole.SUPERVISOR)
    case_id = (await _file(stack))["case_id"]
    staff = f"/v1/staff/cases/{case_id}"
    assert (await stack.http.post(f"{staff}/assign", headers=rita)).status_code == 202

    # Omar cannot take Rita's claim, nor release it, nor decide it.
    taken = await stack.http.post(f"{staff}/assign", headers=omar)
    assert taken.status_code == 403, taken.text
    assert taken.json()["error"] == "supervisor_required"
    assert "assigned to rita" in taken.json()["message"]
    assert (await stack.http.post(f"{staff}/release", headers=omar)).status_code == 403
    rejected = await stack.http.post(f"{staff}/reject", json={"reason": "no"}, headers=omar)
    assert rejected.json()["error"] == "not_assignee"
    assert (await stack.http.get(staff, headers=omar)).json()["assignee"] == "rita"

    # Rita gives it back to the queue; then Omar may take it.
    released = await stack.http.post(f"{staff}/release", headers=rita)
    assert released.status_code == 202, released.text
    assert released.json()["assignee"] is None
    assert (await stack.http.post(f"{staff}/assign", headers=omar)).json()["assignee"] == "omar"
    # A supervisor moves it to whomever they choose.
    moved = await stack.http.post(f"{staff}/assign", json={"assignee": "rita"}, headers=sam)
    assert moved.json()["assignee"] == "rita"

    audit = await stack.services.staff_members.audit_entries(case_id=case_id)
    assert [(e.staff_name, e.action, e.detail, e.outcome) for e in reversed(audit)] == [
        ("rita", "assign", "rita", "done"),
        ("omar", "assign", "omar", "refused: supervisor_required"),
        ("omar", "release", None, "refused: not_assignee"),
        ("omar", "reject", "no", "refused: not_assignee"),
        ("rita", "release", None, "done"),
        ("omar", "assign", "omar", "done"),
        ("sam", "assign", "rita", "done"),
    ]


async def test_a_lost_authenticator_claim_over_the_api_removes_the_chosen_factor(stack: Stack):
    """Filed by the claimant, approved by a reviewer with the factors to remove and confirmed
    by a supervisor (always high risk); the held recovery's end removes the chosen passkey,
    keeps the other factors, and tells every contact."""
    jane = await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    directory, now = stack.services.directory, datetime.now(UTC)
    await directory.enrol_totp(jane, now)
    for name in ("Laptop", "Phone"):
        await directory.add_passkey(jane, Passkey(name.encode(), b"cose key", 0, (), name, now))
    rita = await _staff(stack, "rita", StaffRole.REVIEWER)
    sam = await _staff(stack, "sam", StaffRole.SUPERVISOR)
    filed = await _file(
        stack,
        contact_email="jane@example.com",
        reason="lost_authenticator",
        registered_email="jane@example.com",
        previous_passwords=[PASSWORD],
    )
    case_id = filed["case_id"]
    [queued] = await _in_queue(stack, rita, "?reason=lost_authenticator", lambda c: len(c) == 1)
    assert queued["risk"] == "high"  # whatever the claimant knew

    detail = (await stack.http.get(f"/v1/staff/cases/{case_id}", headers=rita)).json()
    assert detail["evidence"]["passwords_matched"] == 1
    assert detail["evidence"]["registered_email"] == "current"
    factors = {f["name"] or f["kind"]: f for f in detail["factors"]}
    assert set(factors) == {"totp", "Laptop", "Phone"}
    assert factors["Laptop"]["choice"] == f"webauthn:{passkey_key(b'Laptop')}"
    assert factors["totp"]["last_used_at"] is None
    assert "secret" not in json.dumps(detail["factors"])
    await stack.http.post(f"/v1/staff/cases/{case_id}/assign", headers=rita)
    wrong = await stack.http.post(
        f"/v1/staff/cases/{case_id}/approve", json={"remove_factors": ["sms"]}, headers=rita
    )
    assert (wrong.status_code, wrong.json()["error"]) == (422, "invalid_factor")
    chosen = [factors["Laptop"]["choice"]]
    asked = await stack.http.post(
        f"/v1/staff/cases/{case_id}/approve", json={"remove_factors": chosen}, headers=rita
    )
    assert asked.json()["state"] == "awaiting_confirmation"
    waiting = (await stack.http.get(f"/v1/staff/cases/{case_id}", headers=sam)).json()
    assert waiting["approval_request"]["remove_factors"] == chosen
    confirmed = await stack.http.post(f"/v1/staff/cases/{case_id}/confirm", headers=sam)
    assert confirmed.status_code == 202, confirmed.text
    recovery_case_id = confirmed.json()["decision"]["recovery_case_id"]

    # The code goes to the account's own address, with no second step; the password is held.
    code = await stack.mail.code_for("jane@example.com")
    granted = await stack.http.post(f"/v1/recovery/{recovery_case_id}/code", json={"code": code})
    assert granted.status_code == 200 and granted.json()["reset_token"], granted.text
    done = await stack.http.post(
        f"/v1/recovery/{recovery_case_id}/password",
        json={"reset_token": granted.json()["reset_token"], "new_password": NEW},
    )
    assert done.json()["state"] == "held"
    assert len(await directory.factors(jane)) == 3
    ended = await stack.services.recovery.change_hold(recovery_case_id, end_now=True)

    assert ended.state.value == "completed"
    left = await directory.factors(jane)
    assert sorted(f.name or f.kind.value for f in left) == ["Phone", "totp"]
    told = await stack.mail.wait_for(
        lambda m: m["To"] == "jane@example.com" and "Second factors removed" in m["Subject"]
    )
    assert "the passkey “Laptop” was removed" in text_of(told)
    history = (await stack.client.get_workflow_handle(case_id).fetch_history()).to_json()
    decoded = "\n".join(payload_texts(json.loads(history), stack.settings.codec()))
    assert chosen[0] in decoded  # the choice travels as a name, never a secret
    for private in ("jane@example.com", PASSWORD):
        assert private not in history + decoded, private
