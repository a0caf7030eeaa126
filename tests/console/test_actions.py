"""The console's actions over HTTP, and their refusals as the reviewer reads them on the case
file: a supervisor assigns a claim to a reviewer, who rejects it with a reason (not without
one); a reviewer may not assign to someone else nor act on another's claim; a decided claim
refuses any further decision."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import httpx

from tests.console.desk import PASSWORD, STRONG, Staff, file_claim
from tests.stack import Stack


def alert(page: httpx.Response) -> str:
    """The problem box's sentence."""
    found = re.search(
        r'role="alert" id="problem">.*?<p>(?:<a [^>]*>)?(.*?)(?:</a>)?</p>', page.text, re.S
    )
    assert found, f"no problem on the page ({page.status_code})"
    return html.unescape(found.group(1))


def fact(page: httpx.Response, term: str) -> str:
    """What the case file's summary says for `term` (State, Assignee, …)."""
    found = re.search(rf"<dt>{term}</dt><dd[^>]*>(.*?)</dd>", page.text, re.S)
    assert found, f"no {term} on the page"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip()


def status(page: httpx.Response) -> str:
    found = re.search(r'role="status">(.*?)</p>', page.text, re.S)
    assert found, "no notice on the page"
    return html.unescape(found.group(1))


async def desk(stack: Stack, *members: tuple[str, str]) -> dict[str, Staff]:
    """Each member signed in with a key of their own, in a browser of their own."""
    signed: dict[str, Staff] = {}
    for name, role in members:
        _, key = await stack.services.staff_members.add_staff(name, role)
        signed[name] = Staff(stack)
        answer = await signed[name].with_key(key)
        assert answer.status_code == 303, answer.text
    return signed


async def act(member: Staff, case_id: str, action: str, **fields: str) -> httpx.Response:
    """Post an action as the case file's form does; a done action is followed to the page."""
    answer = await member.post(f"/console/cases/{case_id}/{action}", **fields)
    if answer.status_code == 303:
        return await member.http.get(answer.headers["location"])
    return answer


async def test_a_supervisor_assigns_a_claim_to_a_reviewer_who_rejects_it_with_a_reason(
    stack: Stack,
):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    case_id, _ = await file_claim(stack, **STRONG)
    staff = await desk(stack, ("sam", "supervisor"), ("rita", "reviewer"))
    sam, rita = staff["sam"], staff["rita"]
    try:
        assigned = await act(sam, case_id, "assign", to="rita")
        assert assigned.status_code == 200
        assert status(assigned) == "The claim is assigned."
        assert fact(assigned, "Assignee") == "rita"
        assert fact(assigned, "State") == "In review"
        assert fact(await rita.http.get(f"/console/cases/{case_id}"), "Assignee") == "rita (you)"

        unexplained = await act(rita, case_id, "reject", reason="   ")
        assert unexplained.status_code == 422
        assert alert(unexplained) == "Write the reason: the claimant reads it in our mail."
        assert fact(unexplained, "State") == "In review"

        rejected = await act(rita, case_id, "reject", reason="The evidence is someone else's.")
        assert rejected.status_code == 200
        assert status(rejected) == "Rejected: the claimant is told why."
        assert fact(rejected, "State") == "Rejected"
        assert "«The evidence is someone else&#39;s.»" in rejected.text
        assert "This claim is closed: nothing more can be done here." in rejected.text
    finally:
        for member in staff.values():
            await member.aclose()


async def test_a_reviewer_may_not_assign_to_someone_else_nor_act_on_anothers_claim(
    stack: Stack,
):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    case_id, _ = await file_claim(stack, **STRONG)
    staff = await desk(stack, ("rita", "reviewer"), ("kim", "reviewer"))
    rita, kim = staff["rita"], staff["kim"]
    try:
        elsewhere = await act(rita, case_id, "assign", to="kim")
        assert elsewhere.status_code == 403
        assert alert(elsewhere).startswith("This needs a supervisor.")
        assert fact(elsewhere, "Assignee") == "nobody yet"

        taken = await act(rita, case_id, "assign")
        assert fact(taken, "Assignee") == "rita (you)"
        for action, fields in (
            ("approve", {"note": "Looks right."}),
            ("reject", {"reason": "Not convinced."}),
            ("ask", {"questions": "Which city?"}),
        ):
            refused = await act(kim, case_id, action, **fields)
            assert refused.status_code == 403, action
            assert alert(refused).startswith("You are not the assignee."), action
            assert (fact(refused, "State"), fact(refused, "Assignee")) == ("In review", "rita")
    finally:
        for member in staff.values():
            await member.aclose()


async def test_an_approved_claim_is_already_decided(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    case_id, _ = await file_claim(stack, **STRONG)  # low risk: one approval decides it
    staff = await desk(stack, ("rita", "reviewer"))
    rita = staff["rita"]
    try:
        await act(rita, case_id, "assign")
        approved = await act(rita, case_id, "approve", note="Evidence agrees.")
        assert status(approved).startswith("Approved")
        assert fact(approved, "State") == "Approved"

        for action, fields in (("approve", {"note": "again"}), ("reject", {"reason": "no"})):
            again = await act(rita, case_id, action, **fields)
            assert again.status_code == 409, action
            assert alert(again) == "Already decided: this claim is approved.", action
            assert fact(again, "State") == "Approved"
    finally:
        await rita.aclose()


async def test_the_case_file_names_the_accounts_second_factors_and_the_one_a_recovery_used(
    stack: Stack,
):
    jane = await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    directory = stack.services.directory
    codes = await directory.new_recovery_codes(jane, datetime.now(UTC))
    await directory.enrol_totp(jane, datetime.now(UTC))
    # A recovery through a recovery code, before the claim.
    case = await stack.open_case("jane@example.com")
    code = await stack.mail.code_for("jane@example.com")
    await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
    granted = await stack.http.post(
        f"/v1/recovery/{case['case_id']}/second-factor",
        json={"method": "recovery_code", "code": codes[0]},
    )
    await stack.http.post(
        f"/v1/recovery/{case['case_id']}/password",
        json={"reset_token": granted.json()["reset_token"], "new_password": PASSWORD + " anew"},
    )
    claim_id, _ = await file_claim(stack, **STRONG)
    staff = await desk(stack, ("sam", "supervisor"))
    try:
        page = await staff["sam"].http.get(f"/console/cases/{claim_id}")

        factors = fact(page, "Second factors")
        assert factors.startswith("authenticator app (TOTP) (since ")
        assert "recovery codes (since " in factors and ", 9 left)" in factors
        assert codes[1] not in page.text  # never a secret
        assert f"{case['case_id']}: self-service recovery by email and recovery codes" in page.text
    finally:
        await staff["sam"].aclose()
