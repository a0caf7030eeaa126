"""Who gets into the console, and who does not: staff signed in through the identity provider
(the real authorization code flow with PKCE, the ID token verified against the provider's
JWKS) or with their staff key; refused without a session, with an expired one, with a
claimant's cookie, with a disabled or rotated key, with a token from another issuer or for
another audience, tampered with, expired, or carrying another sign-in's nonce. The codec
endpoint takes the same tokens. Every console action needs the page's form token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session

from reclaim.store.models import ConsoleSession, Staff, utcnow
from reclaim.support.audit import Origin
from tests.conftest import Seen, StackParts, free_port
from tests.console.desk import PASSWORD, STRONG, csrf_of, file_claim
from tests.console.desk import Staff as StaffBrowser
from tests.mailbox import MailSink
from tests.oidc_issuer import CLIENT_ID, TestIssuer, new_key, tamper
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack

SESSION = "reclaim_console"
_CLI = Origin("cli")


async def test_a_reviewer_signs_in_through_the_provider_and_appears_in_the_staff_table(
    sso_stack: Stack, issuer: TestIssuer
):
    rita = StaffBrowser(sso_stack)
    try:
        back = await rita.sso(issuer, "rita")

        assert (back.status_code, back.headers["location"]) == (303, "/console")
        cookie = back.headers["set-cookie"]
        assert f"{SESSION}=" in cookie and "HttpOnly" in cookie and "Path=/console" in cookie
        assert "samesite=lax" in cookie.lower()
        queue = await rita.http.get("/console")
        assert queue.status_code == 200
        assert "Signed in as <strong>rita</strong> (reviewer)" in queue.text
        exchange = issuer.exchanges[-1]
        assert len(exchange["code_verifier"]) >= 43  # PKCE
        members = {m.name: m for m in await sso_stack.services.staff_members.staff()}
        assert members["rita"].role == "reviewer" and members["rita"].oidc_subject
        with Session(sso_stack.engine) as session:
            stored = session.exec(
                ConsoleSession.__table__.select()  # type: ignore[attr-defined]
            ).all()
        token = rita.http.cookies[SESSION]
        assert stored and all(token not in str(row) for row in stored)
    finally:
        await rita.aclose()


async def test_a_member_whose_provider_gives_no_role_is_refused(
    sso_stack: Stack, issuer: TestIssuer
):
    visitor = StaffBrowser(sso_stack)
    try:
        back = await visitor.sso(issuer, "visitor")

        assert back.status_code == 401
        assert "gives you no role in the support console" in back.text
        assert SESSION not in visitor.http.cookies
        assert (await visitor.http.get("/console")).status_code == 303
    finally:
        await visitor.aclose()


async def test_keys_the_provider_rotates_right_after_the_first_fetch_are_fetched_once(
    sso_stack: Stack, issuer: TestIssuer
):
    """An unknown key id refetches the JWKS at once, even a moment after the first fetch; a
    second unknown one within the minute does not (a stranger's made-up key ids cannot make
    Reclaim hammer the provider)."""
    first, second, third = (StaffBrowser(sso_stack) for _ in range(3))
    try:
        assert (await first.sso(issuer, "rita")).status_code == 303  # the keys fetched
        issuer.key = new_key("test-2")
        assert (await second.sso(issuer, "rita")).status_code == 303  # refetched
        issuer.key = new_key("test-3")
        throttled = await third.sso(issuer, "rita")
        assert throttled.status_code == 401
        assert "signature is not the identity provider" in throttled.text
    finally:
        for browser in (first, second, third):
            await browser.aclose()


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("issuer", "iss is wrong"),
        ("audience", "aud is wrong"),
        ("nonce", "nonce is wrong"),
        ("signature", "signature is not the identity provider"),
        ("foreign_key", "signature is not the identity provider"),
        ("expired", "The token has expired"),
    ],
)
async def test_a_bad_id_token_opens_no_session(
    sso_stack: Stack, issuer: TestIssuer, mode: str, said: str
):
    issuer.misbehave = mode
    someone = StaffBrowser(sso_stack)
    try:
        back = await someone.sso(issuer, "sam")

        assert back.status_code == 401, back.text
        assert said in back.text
        assert SESSION not in someone.http.cookies
        assert (await someone.http.get("/console")).headers["location"] == "/console/signin"
    finally:
        await someone.aclose()


async def test_a_callback_that_is_not_this_browsers_sign_in_is_refused(
    sso_stack: Stack, issuer: TestIssuer, comparisons: Seen
):
    rita = StaffBrowser(sso_stack)
    try:
        started = await rita.http.get("/console/signin/sso")
        assert started.status_code == 303
        forged = await rita.http.get("/console/oidc/callback?code=x&state=not-the-state")
        assert forged.status_code == 401
        assert "did not come back as it left" in forged.text
        stranger = StaffBrowser(sso_stack)  # no sign-in started here
        lost = await stranger.http.get("/console/oidc/callback?code=x&state=y")
        assert lost.status_code == 400 and "start again" in lost.text
        await stranger.aclose()
        denied = await rita.http.get("/console/oidc/callback?error=access_denied")
        assert denied.status_code == 401 and "access_denied" in denied.text
        back = await rita.sso(issuer, "rita")  # and the sign-in that is this browser's
        assert back.status_code == 303
        # The state compared in constant time, both ways (tests/e2e/test_constant_time.py).
        assert comparisons[("reclaim/support/signin.py", "StaffSignIn.finish_sign_in")] == {
            True,
            False,
        }
    finally:
        await rita.aclose()


async def test_no_session_an_expired_one_or_a_claimants_cookie_opens_nothing(
    sso_stack: Stack, issuer: TestIssuer
):
    await sso_stack.add_account("jane", "jane@example.com", None, PASSWORD)
    case_id, claim_token = await file_claim(sso_stack, **STRONG)
    jane = (await sso_stack.sign_in("jane", PASSWORD)).json()["session_token"]
    nobody = StaffBrowser(sso_stack)
    rita = StaffBrowser(sso_stack)
    try:
        for path in ("/console", f"/console/cases/{case_id}", f"/console/cases/{case_id}/audit"):
            answer = await nobody.http.get(path)
            assert (answer.status_code, answer.headers["location"]) == (303, "/console/signin")
        for cookie in (claim_token, jane, "rk_1_" + "x" * 43):
            nobody.http.cookies.set(SESSION, cookie)
            nobody.http.cookies.set("reclaim_claim", claim_token)
            assert (await nobody.http.get("/console")).status_code == 303
        nobody.http.cookies.clear()
        refused = await nobody.post(f"/console/cases/{case_id}/assign")
        assert refused.status_code == 401
        assert "session ended, or you never signed in: nothing was done" in refused.text

        await rita.sso(issuer, "rita")
        assert (await rita.http.get("/console")).status_code == 200
        with Session(sso_stack.engine) as session:
            session.execute(
                update(ConsoleSession).values(expires_at=utcnow() - timedelta(seconds=1))
            )
            session.commit()
        expired = await rita.http.get("/console")
        assert (expired.status_code, expired.headers["location"]) == (303, "/console/signin")
        assert (await rita.post(f"/console/cases/{case_id}/assign")).status_code == 401
        view = await sso_stack.services.claims.staff_view(case_id)
        assert view.assignee is None  # nothing was done
    finally:
        await nobody.aclose()
        await rita.aclose()


async def test_without_a_provider_a_staff_key_signs_in_until_it_is_disabled_or_rotated(
    stack: Stack,
):
    members = stack.services.staff_members
    _, key = await members.add_staff("rita", "reviewer")
    rita = StaffBrowser(stack)
    try:
        page = await rita.http.get("/console/signin")
        assert "Staff key" in page.text and "/console/signin/sso" not in page.text
        wrong = await rita.with_key(key[:-2] + "xx")
        assert wrong.status_code == 401 and "This staff key does not work" in wrong.text

        signed = await rita.with_key(key)
        assert (signed.status_code, signed.headers["location"]) == (303, "/console")
        assert (await rita.http.get("/console")).status_code == 200
        await members.rotate_staff_key("rita", "olivia", _CLI)
        assert (await rita.http.get("/console")).status_code == 303  # the session ended
        assert (await rita.with_key(key)).status_code == 401  # and the old key

        _, again = await members.rotate_staff_key("rita", "olivia", _CLI)
        assert (await rita.with_key(again)).status_code == 303
        await members.disable_staff("rita", "olivia", _CLI)
        assert (await rita.http.get("/console")).status_code == 303
        assert (await rita.with_key(again)).status_code == 401
        api = await stack.http.get("/v1/staff/cases", headers={"Authorization": f"Bearer {again}"})
        assert api.status_code == 401
    finally:
        await rita.aclose()


async def test_the_codec_endpoint_takes_the_providers_tokens_and_refuses_bad_ones(
    sso_stack: Stack, issuer: TestIssuer
):
    body = {"payloads": [{"metadata": {"encoding": "YmluYXJ5L3BsYWlu"}, "data": "aGk="}]}

    async def codec(token: str) -> int:
        answer = await sso_stack.http.post(
            "/codec/encode", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        return answer.status_code

    assert await codec(issuer.token("sam")) == 200  # an access token for Reclaim
    assert await codec(issuer.token("sam", nonce="n")) == 200  # an ID token
    assert await codec(issuer.token("sam", audience=["other", CLIENT_ID])) == 200
    # A reviewer's good token is a reviewer's: the codec seals nothing for them.
    assert await codec(issuer.token("rita", nonce="n")) == 403
    refused = {
        "another issuer": issuer.token("sam", issuer="https://other.example"),
        "another issuer's key": issuer.token("sam", key=new_key("elsewhere")),
        "another audience": issuer.token("sam", audience="another-app"),
        "tampered": tamper(issuer.token("rita")),
        "expired": issuer.token("sam", expires_in=-3600),
        "no role": issuer.token("visitor"),
        "not a token": "hello",
    }
    for what, token in refused.items():
        assert await codec(token) == 401, what
    _, key = await sso_stack.services.staff_members.add_staff("kim", "supervisor")
    assert await codec(key) == 200  # staff keys still work
    await sso_stack.services.staff_members.disable_staff("kim", "olivia", _CLI)
    assert await codec(key) == 401
    await StaffBrowser(sso_stack).sso(issuer, "sam")  # sam is now a member of staff
    await sso_stack.services.staff_members.disable_staff("sam", "olivia", _CLI)
    assert await codec(issuer.token("sam")) == 401  # a disabled member's tokens too


@pytest.mark.parametrize("action", ["assign", "ask", "approve", "confirm", "reject"])
async def test_every_action_needs_the_pages_form_token(stack: Stack, action: str):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    case_id, _ = await file_claim(stack, **STRONG)
    _, key = await stack.services.staff_members.add_staff("sam", "supervisor")
    sam = StaffBrowser(stack)
    try:
        await sam.with_key(key)
        fields = {"questions": "Which city?", "note": "ok", "reason": "no", "to": "sam"}
        path = f"/console/cases/{case_id}/{action}"

        without = await sam.http.post(path, data=fields)
        wrong = await sam.http.post(path, data={**fields, "csrf": "x" * 43})
        page = await sam.http.get(f"/console/cases/{case_id}")
        elsewhere = await sam.http.post(
            path,
            data={**fields, "csrf": csrf_of(page.text)},
            headers={"Origin": "https://attacker.example"},
        )

        for answer in (without, wrong, elsewhere):
            assert answer.status_code == 403
            assert "This form has expired" in answer.text
        view = await stack.services.claims.staff_view(case_id)
        assert (view.state.value, view.assignee, view.questions) == ("submitted", None, [])
        signout = await sam.http.post("/console/signout")
        assert signout.status_code == 403
        assert (await sam.http.get("/console")).status_code == 200  # still signed in
    finally:
        await sam.aclose()


async def test_staff_members_with_the_same_name_from_the_provider_and_a_key_are_one(
    sso_stack: Stack, issuer: TestIssuer
):
    """A member added with a key who later signs in through the provider keeps their name
    (assignments keep working); the provider's role replaces the stored one."""
    await sso_stack.services.staff_members.add_staff("sue", "reviewer")
    sue = StaffBrowser(sso_stack)
    try:
        assert (await sue.sso(issuer, "sue")).status_code == 303
        with Session(sso_stack.engine) as session:
            rows = session.exec(Staff.__table__.select()).all()  # type: ignore[attr-defined]
        assert len(rows) == 1
        members = await sso_stack.services.staff_members.staff()
        assert (members[0].name, members[0].role) == ("sue", "supervisor")
    finally:
        await sue.aclose()


async def test_a_provider_that_does_not_answer_is_said_in_words(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(
        oidc_issuer=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        oidc_client_id=CLIENT_ID,
    )
    async with running_stack(settings, engine, mail, sms, worker=False) as stack:
        someone = StaffBrowser(stack)
        try:
            answer = await someone.http.get("/console/signin/sso")

            assert answer.status_code == 503
            assert "The identity provider is not answering right now" in answer.text
            assert "Nothing was done." in answer.text
        finally:
            await someone.aclose()


def test_oidc_settings_that_cannot_work_stop_the_start_in_one_line():
    from reclaim.settings import CannotStart, Settings
    from reclaim.support.oidc import oidc_provider

    for values, said in (
        ({"oidc_issuer": "https://login.example"}, "needs RECLAIM_OIDC_CLIENT_ID"),
        ({"oidc_issuer": "http://login.example", "oidc_client_id": "r"}, "must be an https://"),
        (
            {
                "oidc_issuer": "https://login.example",
                "oidc_client_id": "r",
                "oidc_reviewer_value": "staff",
                "oidc_supervisor_value": "staff",
            },
            "must differ",
        ),
    ):
        with pytest.raises(CannotStart, match=said):
            oidc_provider(Settings(**values))
    assert oidc_provider(Settings()) is None
