"""The console in a real browser (Debian's Chromium through Playwright), as reviewers use it:
a reviewer signs in through the identity provider and works a claim from the queue to its
approval with a round of questions; a reviewer's approval of a high-risk claim waits for a
supervisor, who confirms it; and one nobody confirms lapses back to review (the timer skipped
on the time-skipping server). axe-core finds no WCAG 2.1 AA violation on any console page:
those above, and the ones a reviewer meets when something is wrong (a refused sign-in, a
claim that does not exist, Temporal not answering) or done (a rejected claim's case file)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from reclaim.directory import Passkey
from reclaim.notify.outbox import text_of
from reclaim.services import build_services
from reclaim.support.audit import Origin
from reclaim.support.contracts import ClaimReason
from tests.conftest import StackParts, free_port
from tests.console.desk import CONTACT, PASSWORD, STRONG, file_claim
from tests.mailbox import MailSink
from tests.oidc_issuer import TestIssuer
from tests.pages.browser import accessible, chromium, needs_chromium, person
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack
from tests.workflows.lifecycle_harness import lifecycle_stack

pytestmark = needs_chromium
WIDE = 1280


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


async def sign_in(page: Page, user: str) -> None:
    """Through the test identity provider, as a person would."""
    await page.goto("/console")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Sign in to the support console"
    )
    await accessible(page)
    await page.get_by_role("link", name=re.compile(r"^Sign in with 127\.0\.0\.1")).click()
    await page.get_by_label("Username").fill(user)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Claim queue")
    await expect(page.locator("header .who")).to_contain_text(f"Signed in as {user}")


async def open_from_queue(page: Page, case_id: str) -> None:
    """The claim's row in the queue (visibility lags a little: reload until it shows)."""
    link = page.get_by_role("link", name=case_id)
    for _ in range(100):
        if await link.count():
            break
        await page.wait_for_timeout(100)  # a poll interval, not a wait for a state
        await page.reload()
    await link.click()
    await expect(page.locator("h1 .case-ref")).to_have_text(case_id)


async def test_a_reviewer_works_a_claim_from_the_queue_to_approval_with_a_question(
    sso_stack: Stack, issuer: TestIssuer, browser: Browser
):
    await sso_stack.add_account("jane", "jane@example.com", "+14155550123", PASSWORD)
    case_id, claim_token = await file_claim(
        sso_stack, description="Someone changed my email on Monday.", **STRONG
    )
    async with person(browser, str(sso_stack.http.base_url), width=WIDE) as page:
        await sign_in(page, "rita")
        await accessible(page)
        await open_from_queue(page, case_id)
        await expect(page.locator("dd.state")).to_have_text("Waiting for a reviewer")
        await expect(page.get_by_text("Someone changed my email on Monday.")).to_be_visible()
        checks = page.locator("table.checks tbody tr")
        await expect(checks.nth(0)).to_contain_text("matched")
        await expect(checks.nth(2)).to_contain_text("not given")
        await expect(page.get_by_text("Low: a previous password and a registered")).to_be_visible()
        await expect(page.get_by_text(CONTACT)).to_be_visible()
        await accessible(page)

        # Not assigned yet: the refusal in words, where she acted.
        await page.get_by_role("button", name="Approve").click()
        await expect(page.get_by_role("alert")).to_contain_text(
            "Nobody has taken this claim yet: assign it to yourself first."
        )
        await accessible(page)
        await page.get_by_role("button", name="Assign to me").click()
        await expect(page.get_by_role("status")).to_have_text("The claim is assigned.")
        await page.get_by_label("Ask the claimant").fill("Which city do you live in?")
        await page.get_by_role("button", name="Send the questions").click()
        await expect(page.get_by_role("status")).to_contain_text("mailed to the claimant")
        await expect(page.locator("dd.state")).to_have_text("Waiting for the claimant")
        await accessible(page)

        answered = await sso_stack.http.post(
            f"/v1/support-cases/{case_id}/info",
            json={"answer": "Lyon, since 2019."},
            headers={"Authorization": f"Bearer {claim_token}"},
        )
        assert answered.status_code == 202
        await page.reload()
        await expect(page.get_by_text("Lyon, since 2019.")).to_be_visible()
        await expect(page.locator("dd.state")).to_have_text("In review")
        await page.get_by_label("Approval note (optional)").fill("Evidence and answer agree.")
        await page.get_by_role("button", name="Approve", exact=True).click()
        await expect(page.get_by_role("status")).to_contain_text("Approved")
        await expect(page.locator("dd.state")).to_have_text("Approved")
        await expect(page.get_by_text("«Evidence and answer agree.»")).to_be_visible()
        await expect(page.get_by_text("This claim is closed")).to_be_visible()
        await accessible(page)

        await page.get_by_role("link", name=re.compile("audit")).click()
        rows = page.locator("table.grid tbody tr")
        await expect(rows).to_have_count(4)
        await expect(rows.first).to_contain_text("approve")
        await expect(rows.last).to_contain_text("refused: invalid_state")
        await expect(rows.first).to_contain_text("console (127.0.0.1)")
        await accessible(page)

        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            "Sign in to the support console"
        )
        await page.goto(f"/console/cases/{case_id}")
        await expect(page).to_have_url(re.compile(r"/console/signin$"))
    mail = await sso_stack.mail.wait_for(
        lambda m: m["To"] == CONTACT and "approved" in text_of(m).lower()
    )
    assert case_id in text_of(mail)


async def test_a_reviewers_high_risk_approval_waits_for_a_supervisor_who_confirms_it(
    sso_stack: Stack, issuer: TestIssuer, browser: Browser
):
    account_id = await sso_stack.add_account("jane", "jane@example.com", None, PASSWORD)
    case_id, _ = await file_claim(sso_stack)  # no evidence at all: high risk
    base = str(sso_stack.http.base_url)
    async with person(browser, base, width=WIDE) as rita:
        await sign_in(rita, "rita")
        await rita.goto("/console?view=high_risk")
        await open_from_queue(rita, case_id)
        await expect(rita.get_by_text("High: neither a previous password")).to_be_visible()
        await rita.get_by_role("button", name="Assign to me").click()
        await expect(rita.get_by_text("your approval waits for a supervisor")).to_be_visible()
        await rita.get_by_label("Approval note (optional)").fill("The claimant called us.")
        await rita.get_by_role("button", name="Approve, to be confirmed").click()
        await expect(rita.get_by_role("status")).to_contain_text("waits for a supervisor")
        await expect(rita.locator("dd.state")).to_have_text(
            "Waiting for a supervisor's confirmation"
        )
        await expect(rita.get_by_text("Waiting for a supervisor other than rita")).to_be_visible()
        await expect(rita.get_by_role("button", name="Confirm the approval")).to_have_count(0)
        await accessible(rita)

    async with person(browser, base, width=WIDE) as sam:
        await sign_in(sam, "sam")
        await sam.goto("/console?state=awaiting_confirmation")
        await open_from_queue(sam, case_id)
        await expect(sam.get_by_text("rita approved this high-risk claim")).to_be_visible()
        await accessible(sam)
        await sam.get_by_role("button", name="Confirm the approval").click()
        await expect(sam.get_by_role("status")).to_contain_text("Confirmed")
        await expect(sam.locator("dd.state")).to_have_text("Approved")
        await expect(sam.get_by_text("by supervisor:sam")).to_be_visible()
        await accessible(sam)
    view = await sso_stack.services.claims.case_file(case_id)
    assert view.view.decision is not None and view.view.decision.note == "The claimant called us."
    assert view.account is not None and view.account.id == account_id


async def test_the_queue_counts_its_filters_and_refreshes_itself(
    sso_stack: Stack, issuer: TestIssuer, browser: Browser
):
    await sso_stack.add_account("jane", "jane@example.com", None, PASSWORD)
    first, _ = await file_claim(sso_stack, **STRONG)
    async with person(browser, str(sso_stack.http.base_url), width=WIDE) as page:
        await sign_in(page, "sam")
        await open_from_queue(page, first)
        await page.get_by_role("button", name="Assign to me").click()
        await (
            page.get_by_role("navigation", name="Console").get_by_role("link", name="Queue").click()
        )
        mine = page.get_by_role("link", name=re.compile(r"^Mine"))
        await expect(mine).to_contain_text("1")
        await expect(page.get_by_role("link", name=re.compile(r"^Unassigned"))).to_contain_text("0")
        await expect(page.locator("#queue-results")).to_have_attribute("data-refresh", "2")
        second, _ = await file_claim(sso_stack, registered_email="jane@example.com")
        await expect(page.get_by_role("link", name=second)).to_be_visible(timeout=20_000)
        await expect(page.get_by_role("link", name=re.compile(r"^Unassigned"))).to_contain_text("1")
        rows = page.locator("table.queue tbody tr")
        await expect(rows).to_have_count(2)
        await accessible(page)
        await page.get_by_label("Reason").select_option("compromised")
        await page.get_by_role("button", name="Filter").click()
        await expect(page).to_have_url(re.compile(r"reason=compromised"))
        await page.goto("/console?view=escalated")
        await expect(page.get_by_text("No open claim matches these filters.")).to_be_visible()
        await accessible(page)


async def test_an_approval_nobody_confirms_lapses_back_to_review(
    time_env: WorkflowEnvironment,
    tmp_path: Path,
    mail: MailSink,
    sms: SmsGateway,
    browser: Browser,
):
    """On the time-skipping server: the confirmation window is skipped, not waited for."""
    from tests.console.timeskip import console_on

    async with (
        lifecycle_stack(time_env, tmp_path, mail, sms) as life,
        console_on(life) as base,
    ):
        await life.add_account()
        filed = await life.services.claims.file(
            username="jane", contact_email=CONTACT, reason=ClaimReason.BANNED
        )
        _, key = await life.services.staff_members.add_staff("rita", "reviewer")
        async with person(browser, base, width=WIDE) as page:
            await page.goto("/console/signin")
            await page.get_by_label("Staff key").fill(key)
            await page.get_by_role("button", name="Sign in").click()
            await page.goto(f"/console/cases/{filed.case_id}")
            await page.get_by_role("button", name="Assign to me").click()
            await page.get_by_role("button", name="Approve, to be confirmed").click()
            await expect(page.locator("dd.state")).to_have_text(
                "Waiting for a supervisor's confirmation"
            )

            await time_env.sleep(86_400 + 60)  # RECLAIM_APPROVAL_CONFIRM_WINDOW passes

            await page.reload()
            await expect(page.locator("dd.state")).to_have_text("In review")
            await expect(page.locator("ol.timeline li").last).to_contain_text(
                "system approval lapsed: no supervisor confirmed reviewer:rita's approval in time"
            )
            await expect(
                page.get_by_role("button", name="Approve, to be confirmed")
            ).to_be_visible()
            await accessible(page)


async def sign_in_with_key(page: Page, key: str) -> None:
    await page.goto("/console/signin")
    await page.get_by_label("Staff key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).not_to_have_text(
        "Sign in to the support console"
    )


async def test_a_refused_sign_in_a_missing_claim_and_a_rejected_claim_are_accessible(
    stack: Stack, browser: Browser
):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    case_id, _ = await file_claim(stack, **STRONG)
    claims, members = stack.services.claims, stack.services.staff_members
    _, key = await members.add_staff("rita", "reviewer")
    rita = await members.staff_member(key)
    await claims.assign(case_id, rita, None, Origin("console"))
    await claims.reject(case_id, rita, "The evidence is someone else's.", Origin("console"))
    async with person(browser, str(stack.http.base_url), width=WIDE) as page:
        await page.goto("/console/signin")
        await page.get_by_label("Staff key").fill(key[:-2] + "xx")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("This staff key does not work")
        await accessible(page)

        await sign_in_with_key(page, key)
        await page.goto(f"/console/cases/{case_id}")
        await expect(page.locator("dd.state")).to_have_text("Rejected")
        await expect(page.get_by_text("«The evidence is someone else's.»")).to_be_visible()
        await expect(page.get_by_text("This claim is closed")).to_be_visible()
        await accessible(page)

        gone = await page.goto("/console/cases/sc_" + "A" * 22)
        assert gone is not None and gone.status == 404
        await expect(page.get_by_role("heading", level=1)).to_have_text("No such claim")
        await accessible(page)


async def test_the_page_said_when_temporal_does_not_answer_is_accessible(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway, browser: Browser
):
    """The API's services talk to a Temporal server that is not there (the database is): the
    queue still shows, a claim's page says it cannot be read."""
    settings, engine = stack_parts()
    nowhere = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    services = build_services(settings, nowhere, engine)
    _, key = await services.staff_members.add_staff("rita", "reviewer")
    try:
        async with (
            running_stack(settings, engine, mail, sms, worker=False, api_services=services) as st,
            person(browser, str(st.http.base_url), width=WIDE) as page,
        ):
            await sign_in_with_key(page, key)
            # The queue is read from the database: it still shows.
            await expect(page.get_by_role("heading", level=1)).to_have_text("Claim queue")
            unavailable = await page.goto("/console/cases/sc_" + "A" * 22)
            assert unavailable is not None and unavailable.status == 503
            await expect(page.get_by_role("heading", level=1)).to_have_text(
                "The claims cannot be read right now"
            )
            await expect(page.get_by_role("alert")).to_contain_text("Nothing was done.")
            await accessible(page)
    finally:
        await services.aclose()


IN = {
    "fr": {
        "key": "Clé d'équipe",
        "sign_in": "Se connecter",
        "queue": "File des demandes",
        "state": "En attente d'un examinateur",
        "assign": "Me l'attribuer",
        "assigned": "La demande est attribuée.",
        "in_review": "En examen",
    },
    "es": {
        "key": "Clave de personal",
        "sign_in": "Iniciar sesión",
        "queue": "Cola de solicitudes",
        "state": "Esperando a un revisor",
        "assign": "Asignármela",
        "assigned": "La solicitud está asignada.",
        "in_review": "En revisión",
    },
}


@pytest.mark.parametrize("language", ["fr", "es"])
async def test_the_console_in_french_and_spanish_is_accessible(
    stack: Stack, browser: Browser, language: str
):
    """The browser asks for the language: the sign-in page, the queue and a case file speak it,
    `<html lang>` says so, and axe finds nothing in any of them."""
    words = IN[language]
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    case_id, _ = await file_claim(stack, **STRONG)
    _, key = await stack.services.staff_members.add_staff("rita", "reviewer")
    base = str(stack.http.base_url)
    async with person(browser, base, width=WIDE, locale=language) as page:
        await page.goto("/console/signin")
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await accessible(page)
        await page.get_by_label(words["key"]).fill(key)
        await page.get_by_role("button", name=words["sign_in"], exact=True).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(words["queue"])
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await expect(page.locator("table.queue tbody tr").first).to_contain_text(words["state"])
        await accessible(page)

        await open_from_queue(page, case_id)
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await expect(page.locator("dd.state")).to_have_text(words["state"])
        await accessible(page)
        await page.get_by_role("button", name=words["assign"]).click()
        await expect(page.get_by_role("status")).to_have_text(words["assigned"])
        await expect(page.locator("dd.state")).to_have_text(words["in_review"])
        await accessible(page)

        # The language links: English from here on, whatever the browser asks.
        await page.get_by_role("link", name="English").click()
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await expect(page.locator("dd.state")).to_have_text("In review")
        await page.goto("/console")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Claim queue")


async def _jane_with_lost_factors(stack: Stack) -> str:
    """Jane with an authenticator app and two passkeys, and her lost-authenticator claim
    written from her own address with a password she knew."""
    jane = await stack.add_account("jane", "jane@example.com", "+14155550123", PASSWORD)
    directory, now = stack.services.directory, datetime.now(UTC)
    await directory.enrol_totp(jane, now)
    for name in ("Laptop", "Phone"):
        await directory.add_passkey(jane, Passkey(name.encode(), b"cose key", 0, (), name, now))
    response = await stack.http.post(
        "/v1/support-cases",
        json={
            "username": "jane",
            "contact_email": "jane@example.com",
            "reason": "lost_authenticator",
            "registered_email": "jane@example.com",
            "previous_passwords": [PASSWORD],
        },
    )
    assert response.status_code == 202, response.text
    case_id: str = response.json()["case_id"]
    return case_id


async def test_a_lost_authenticator_claim_shows_the_factors_and_the_reviewer_chooses_them(
    stack: Stack, browser: Browser
):
    case_id = await _jane_with_lost_factors(stack)
    _, rita_key = await stack.services.staff_members.add_staff("rita", "reviewer")
    _, sam_key = await stack.services.staff_members.add_staff("sam", "supervisor")
    base = str(stack.http.base_url)
    async with person(browser, base, width=WIDE) as rita:
        await sign_in_with_key(rita, rita_key)
        await rita.goto("/console?reason=lost_authenticator")
        await open_from_queue(rita, case_id)
        await expect(rita.get_by_text("Lost second factors")).to_be_visible()
        factors = rita.locator("dt", has_text="Second factors").locator(
            "xpath=following-sibling::dd"
        )
        await expect(factors).to_contain_text("authenticator app (TOTP)")
        await expect(factors).to_contain_text("passkey “Laptop”")
        await expect(factors).to_contain_text("passkey “Phone”")
        await expect(factors).to_contain_text("last used never")
        proved = rita.get_by_role("row", name=re.compile("The claim's mail, at the account's"))
        await expect(proved).to_contain_text("the claimant wrote from it and reads its mail")
        await expect(
            rita.get_by_role("row", name=re.compile("A previous password"))
        ).to_contain_text("1 of 1 among the account's recent passwords")
        await expect(rita.locator("dd", has_text="high").first).to_be_visible()
        await accessible(rita)
        await rita.get_by_role("button", name="Assign to me").click()
        await expect(rita.get_by_role("group", name="Second factors to remove")).to_be_visible()
        phone = rita.get_by_role("checkbox", name="passkey “Phone”")
        await expect(phone).to_be_checked()  # every factor, unless the reviewer says otherwise
        await expect(rita.get_by_role("checkbox", name="authenticator app (TOTP)")).to_be_checked()
        await accessible(rita)
        await phone.uncheck()
        await rita.get_by_role("button", name="Approve, to be confirmed").click()
        await expect(rita.get_by_role("status")).to_contain_text("waits for a supervisor")
        await expect(
            rita.get_by_text("Second factors removed when the recovery's hold ends:")
        ).to_contain_text("authenticator app (TOTP); passkey “Laptop”")
        await accessible(rita)

    async with person(browser, base, width=WIDE) as sam:
        await sign_in_with_key(sam, sam_key)
        await sam.goto(f"/console/cases/{case_id}")
        removing = sam.get_by_text("Second factors removed when the recovery's hold ends:")
        await expect(removing).not_to_contain_text("Phone")
        await accessible(sam)
        await sam.get_by_role("button", name="Confirm the approval").click()
        await expect(sam.locator("dd.state")).to_have_text("Approved")
        await accessible(sam)
    found = await stack.services.claims.case_file(case_id)
    assert found.view.decision is not None and found.view.decision.recovery_case_id is not None
    # Nothing is removed before the hold ends (tests/workflows/test_lost_authenticator.py).
    assert found.account is not None and len(found.account.factors) == 3
