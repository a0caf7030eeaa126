"""Every secret a request brings is compared in constant time: one counting spy on
`hmac.compare_digest` sees every place that does it, while each secret is given right and
wrong over HTTP.

The workflow runs in Temporal's sandbox on the test's worker, as in production. The sandbox
passes the standard library's `hmac` through, so the spy sees the workflow's comparisons too;
if it ever stopped doing so, this test would fail (a place unseen), not pass."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

from reclaim.notify.outbox import text_of
from tests.conftest import Seen, StackParts
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import running_stack

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("reclaim", "api", "workflows", "activities")
PASSWORD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"
METRICS_TOKEN = "scrape-token-for-the-test"

# Every place that compares a secret with what a request brought: (file, function) → what.
PLACES = {
    ("workflows/recovery.py", "RecoveryWorkflow._code_is"): "a one-time code's digest",
    ("workflows/recovery.py", "RecoveryWorkflow._same_right_code"): "a repeated right code",
    ("workflows/recovery.py", "RecoveryWorkflow._reset_problem"): "a reset token's digest",
    ("workflows/recovery.py", "RecoveryWorkflow.reset_context"): "a spent reset token",
    ("workflows/recovery.py", "RecoveryWorkflow._same_second_factor"): "a repeated second factor",
    ("reclaim/security.py", "Keys.open_reset_pass"): "a reset pass's signature",
    ("reclaim/recovery/oversight.py", "CaseOversight._stopper"): "a hold's stop link",
    ("api/pages/security.py", "csrf_ok"): "a page's form token",
    ("reclaim/support/staff.py", "StaffRoster.authenticate.<locals>.work"): "a staff key's digest",
    ("reclaim/support/ledger.py", "SupportLedger.token_matches"): "a claim token's digest",
    ("reclaim/support/evidence.py", "_compare"): "an address the claimant remembers",
    ("api/auth.py", "metrics_scraper"): "the metrics token",
}
# Places only another kind of stack reaches, each driven both ways by the test named, with the
# same spy (the `comparisons` fixture of tests/conftest.py).
ELSEWHERE = {
    ("reclaim/directory/ldap.py", "_verify"): (
        "tests/e2e/test_ldap_recovery.py::"
        "test_an_approved_takeover_claim_hands_the_ldap_account_to_the_verified_address"
    ),
    ("reclaim/recovery/challenge.py", "Challenges.check"): (
        "tests/e2e/test_challenge.py::"
        "test_a_solution_opens_one_case_for_its_identifier_and_the_next_costs_more"
    ),
    ("reclaim/temporal/proofs.py", "ActorProofs.problem"): (
        "tests/e2e/test_forged_actors.py::"
        "test_a_reviewer_cannot_confirm_their_own_approval_as_an_invented_supervisor"
    ),
    ("reclaim/support/signin.py", "StaffSignIn.finish_sign_in"): (
        "tests/console/test_auth.py::test_a_callback_that_is_not_this_browsers_sign_in_is_refused"
    ),
    ("reclaim/support/evidence.py", "_from_account_email"): (
        "tests/workflows/test_lost_authenticator.py::"
        "test_the_accounts_address_is_compared_in_constant_time_both_ways"
    ),
    ("reclaim/support/steps.py", "ClaimSteps._without_factors"): (
        "tests/workflows/test_lost_authenticator.py::"
        "test_the_accounts_address_is_compared_in_constant_time_both_ways"
    ),
    ("reclaim/recovery/factors.py", "is_the_challenge"): (
        "tests/e2e/test_passkey_recovery.py::"
        "test_a_stranger_key_a_spent_challenge_and_a_copy_are_wrong_proofs"
    ),
    ("reclaim/directory/sql_factors.py", "_check_totp"): (
        "tests/persistence/test_second_factors.py::"
        "test_a_totp_code_is_good_for_its_step_and_one_either_side_not_two"
    ),
}


class _CallSites(ast.NodeVisitor):
    """The qualified name (as `co_qualname` gives it) of every function in a module that
    calls `compare_digest`."""

    def __init__(self) -> None:
        self.qualname: list[str] = []
        self.found: set[str] = set()

    def _enter(self, node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.qualname.append(node.name)
        is_function = not isinstance(node, ast.ClassDef)
        self.qualname += ["<locals>"] if is_function else []
        self.generic_visit(node)
        del self.qualname[-2 if is_function else -1 :]

    visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _enter

    def visit_Call(self, node: ast.Call) -> None:
        if ast.unparse(node.func).endswith("compare_digest"):
            self.found.add(".".join(self.qualname).removesuffix(".<locals>"))
        self.generic_visit(node)


def _call_sites() -> set[tuple[str, str]]:
    sites: set[tuple[str, str]] = set()
    for folder in PRODUCT:
        for path in sorted((REPO / folder).rglob("*.py")):
            visitor = _CallSites()
            visitor.visit(ast.parse(path.read_text(), str(path)))
            sites |= {(path.relative_to(REPO).as_posix(), name) for name in visitor.found}
    return sites


async def test_every_secret_is_compared_in_constant_time_wherever_it_is_checked(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway, comparisons: Seen
):
    # The table above is every constant-time comparison in the code: a new one joins it, and
    # must then be driven below.
    assert _call_sites() == set(PLACES) | set(ELSEWHERE)
    settings, engine = stack_parts(metrics_token=METRICS_TOKEN)
    async with running_stack(settings, engine, mail, sms) as stack:
        http = stack.http
        await stack.add_account("jane", "jane@example.com", None, PASSWORD)

        # A staff key, wrong then right.
        member, key = await stack.services.staff_members.add_staff("rita", "reviewer")
        for given, status in ((f"rk_{member.id}_not-the-key", 401), (key, 200)):
            response = await http.get(
                "/v1/staff/cases", headers={"Authorization": f"Bearer {given}"}
            )
            assert response.status_code == status, response.text

        # A claim (its evidence compares the registered address), then its token.
        claims = []
        for remembered in ("jane@example.com", "jane@example.org"):
            filed = await http.post(
                "/v1/support-cases",
                json={
                    "username": "jane",
                    "contact_email": "jane.new@example.net",
                    "reason": "compromised",
                    "registered_email": remembered,
                },
            )
            assert filed.status_code == 202, filed.text
            claims.append(filed.json())
        case_id, claim_token = claims[0]["case_id"], claims[0]["claim_token"]
        for given, status in (("not-the-claim-token", 401), (claim_token, 200)):
            response = await http.get(
                f"/v1/support-cases/{case_id}", headers={"Authorization": f"Bearer {given}"}
            )
            assert response.status_code == status, response.text

        # A page's form, with a token that is not this browser's, then with its own.
        form = await http.get("/recover")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        for given, status in (("not-the-form-token", 403), (csrf.group(1), 303)):
            page = await http.post("/recover", data={"csrf": given, "identifier": "nobody"})
            assert page.status_code == status, page.text

        # A recovery: a wrong code, the right one, a wrong one (too late), the right one again (its
        # answer may have been lost), a
        # wrong reset token, a forged pass, the right one, and all again once it is spent.
        recovery_id = (await stack.open_case("jane@example.com"))["case_id"]
        code = await stack.mail.code_for("jane@example.com")
        wrong = "000000" if code != "000000" else "111111"
        for given, status in ((wrong, 400), (code, 200), (wrong, 409), (code, 200)):
            answer = await http.post(f"/v1/recovery/{recovery_id}/code", json={"code": given})
            assert answer.status_code == status, answer.text
        reset_token = answer.json()["reset_token"]
        forged = reset_token[:-4] + ("AAAA" if not reset_token.endswith("AAAA") else "BBBB")
        moves = (("not-the-reset-token", 403), (forged, 403), (reset_token, 200))
        for given, status in moves + moves:
            answer = await http.post(
                f"/v1/recovery/{recovery_id}/password",
                json={"reset_token": given, "new_password": NEW},
            )
            assert answer.status_code == status, answer.text

        # A hold's stop link: a recovery through the address an approved claim just set is
        # held, and the address it replaced gets a link to stop it.
        await stack.handed_over("jane", "jane.new@example.net", "lost_contact")
        case = await stack.open_case("jane.new@example.net")
        code = await stack.mail.code_for("jane.new@example.net", nth=2)
        token = (
            await http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
        ).json()["reset_token"]
        held = await http.post(
            f"/v1/recovery/{case['case_id']}/password",
            json={"reset_token": token, "new_password": "another " + NEW},
        )
        assert held.json()["state"] == "held", held.text
        stop = f"/stop/{case['case_id']}?token="
        told = await stack.mail.wait_for(
            lambda m: m["To"] == "jane@example.com" and stop in text_of(m)
        )
        link = re.search(r"token=([\w-]{43})", text_of(told))
        assert link
        for given, status in (("x" * 43, 400), (link.group(1), 200)):
            page = await http.get(f"{stop}{given}", follow_redirects=True)
            assert page.status_code == status, page.text

        # A second factor: kim's recovery past its code, her recovery code, the same again (a
        # lost answer) and another one once the case is verified.
        kim = await stack.add_account("kim", "kim@example.com", None, PASSWORD)
        saved = await stack.services.directory.new_recovery_codes(kim, datetime.now(UTC))
        kim_case = (await stack.open_case("kim@example.com"))["case_id"]
        code = await stack.mail.code_for("kim@example.com")
        answer = await http.post(f"/v1/recovery/{kim_case}/code", json={"code": code})
        assert answer.json()["state"] == "awaiting_second_factor", answer.text
        for given, status in ((saved[0], 200), (saved[0], 200), (saved[1], 409)):
            answer = await http.post(
                f"/v1/recovery/{kim_case}/second-factor",
                json={"method": "recovery_code", "code": given},
            )
            assert answer.status_code == status, answer.text

        # The metrics token.
        for given, status in (("not-the-scrape-token", 401), (METRICS_TOKEN, 200)):
            response = await http.get("/metrics", headers={"Authorization": f"Bearer {given}"})
            assert response.status_code == status, response.text

    # Every place compared in constant time, and its answer decided: it said yes and no.
    unseen = {what for place, what in PLACES.items() if comparisons.get(place) != {True, False}}
    assert not unseen, f"not compared with hmac.compare_digest both ways: {sorted(unseen)}"
