"""axe-core in a real browser on the states a page reaches only after time or someone else
has acted: signed in, a form expired, a request expired, superseded or stopped, a claim
rejected, abandoned or cancelled, a wrong claim token, the service unreachable, and the API
manual. Each page also says, in words, the state it is in."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from reclaim.contracts import Actor, ActorKind
from tests.conftest import StackParts, free_port
from tests.mailbox import MailSink
from tests.pages.browser import accessible, needs_chromium, person
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack, serve_api, stack_settings

pytestmark = needs_chromium

OLD = "correct horse battery staple"
OPERATOR = Actor(ActorKind.OPERATOR, "olivia")
UNKNOWN_CASE = "/recover/rc_AAAAAAAAAAAAAAAAAAAAAA"


async def _state(
    stack: Stack, path: str, wanted: str, token: str | None = None, timeout: float = 20
) -> None:
    """Once the API says the case at `path` is in state `wanted`."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout
    while True:
        view = await stack.http.get(path, headers=headers)
        if view.status_code == 200 and view.json().get("state") == wanted:
            return
        assert time.monotonic() < deadline, f"{path} never {wanted}: {view.text}"
        await asyncio.sleep(0.1)


async def _staff(stack: Stack, key: str, path: str, body: dict[str, object]) -> None:
    response = await stack.http.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 202, response.text


async def _claim(stack: Stack, username: str, contact: str) -> tuple[str, str]:
    filed = await stack.http.post(
        "/v1/support-cases",
        json={"username": username, "contact_email": contact, "reason": "lost_contact"},
    )
    assert filed.status_code == 202, filed.text
    return filed.json()["case_id"], filed.json()["claim_token"]


async def _open_claim(page: Page, case_id: str, token: str) -> None:
    await page.goto(f"/support/claims/{case_id}?token={token}")
    await expect(page).to_have_url(re.compile(rf"/support/claims/{case_id}$"))


async def test_every_state_of_a_request_and_a_claim_is_accessible(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway, browser: Browser
):
    # A request expires after 4 s, a question unanswered for 4 s abandons its claim.
    settings, engine = stack_parts(case_ttl=4, claimant_window=4)
    async with running_stack(settings, engine, mail, sms) as stack:
        for name in ("jane", "joe", "ann", "kim"):
            await stack.add_account(name, f"{name}@example.com", None, OLD)
        _, key = await stack.services.staff_members.add_staff("sam", "supervisor")
        expiring = (await stack.open_case("kim@example.com"))["case_id"]
        superseded = (await stack.open_case("joe@example.com"))["case_id"]
        await stack.approved_claim("joe", "joe.other@example.net", "lost_contact")  # takes over
        stopped = (await stack.open_case("ann@example.com"))["case_id"]
        await stack.services.cancel_case(stopped, OPERATOR, "asked by phone")
        rejected, rejected_token = await _claim(stack, "jane", "jane.new@example.net")
        await _staff(stack, key, f"/v1/staff/cases/{rejected}/assign", {})
        await _staff(stack, key, f"/v1/staff/cases/{rejected}/reject", {"reason": "No proof."})
        cancelled, cancelled_token = await _claim(stack, "joe", "joe.new@example.net")
        await stack.services.cancel_case(cancelled, OPERATOR, "duplicate")
        abandoned, abandoned_token = await _claim(stack, "ann", "ann.new@example.net")
        await _staff(stack, key, f"/v1/staff/cases/{abandoned}/assign", {})
        await _staff(
            stack, key, f"/v1/staff/cases/{abandoned}/request-info", {"questions": ["When?"]}
        )

        async with person(browser, str(stack.http.base_url), width=1280) as page:
            for case_id, words in (
                (superseded, "A newer request was made for this account"),
                (stopped, "This request was stopped."),
            ):
                await page.goto(f"/recover/{case_id}")
                await expect(page.get_by_role("heading", level=1)).to_have_text(
                    "This request is over"
                )
                await expect(page.locator("main .lead")).to_contain_text(words)
                await accessible(page)
            await _state(stack, f"/v1/recovery/{expiring}", "expired")
            await page.goto(f"/recover/{expiring}")
            await expect(page.locator("main .lead")).to_contain_text("waited too long and expired")
            await accessible(page)

            await _state(stack, f"/v1/support-cases/{abandoned}", "abandoned", abandoned_token)
            for case_id, token, words in (
                (rejected, rejected_token, "Your claim was not approved."),
                (cancelled, cancelled_token, "Your claim was closed by our support team."),
                (abandoned, abandoned_token, "it waited for an answer for too long"),
            ):
                await _open_claim(page, case_id, token)
                await expect(page.locator("main .state")).to_contain_text(words)
                await accessible(page)

        # Someone with the claim's address but not its token (another browser): the form
        # that asks for it, then what a wrong one says.
        async with person(browser, str(stack.http.base_url), locale="fr-FR") as page:
            await page.goto(f"/support/claims/{rejected}")
            await expect(page.locator("#token")).to_be_visible()
            await accessible(page)
            await page.locator("#token").fill("not-the-token-of-this-claim")
            await page.locator("form[action$='/token'] button").click()
            await expect(page.get_by_role("alert")).to_contain_text(
                "Cette clé d'accès n'est pas la bonne"
            )
            await expect(page.locator("#token")).to_have_attribute("aria-invalid", "true")
            await expect(page.locator("#token")).to_be_focused()
            await accessible(page)


async def test_signed_in_and_an_expired_form_are_accessible(stack: Stack, browser: Browser):
    await stack.add_account("jane", "jane@example.com", None, OLD)
    async with person(browser, str(stack.http.base_url), locale="es-ES") as page:
        await page.goto("/signin")
        await page.locator("#identifier").fill("jane")
        await page.locator("#password").fill(OLD)
        await page.locator("form[action='/signin'] button").click()

        await expect(page).to_have_url(re.compile(r"/account$"))
        await expect(page.get_by_role("heading", level=1)).to_have_text("Ha iniciado sesión")
        await accessible(page)
        # The page left open while its cookies went (cleared, or expired): its form is stale.
        await page.context.clear_cookies()
        async with page.expect_response(re.compile(r"/signout$")) as answer:
            await page.locator("form[action='/signout'] button").click()
        assert (await answer.value).status == 403
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            "Este formulario ha caducado"
        )
        await accessible(page)


async def test_an_unknown_address_is_a_page_in_the_persons_language(stack: Stack, browser: Browser):
    async with person(browser, str(stack.http.base_url), locale="fr-FR") as page:
        answer = await page.goto("/no-such-page")

        assert answer is not None and answer.status == 404
        await expect(page.get_by_role("heading", level=1)).to_have_text("Cette page n'existe pas")
        await accessible(page)
        await page.get_by_role("link", name="Revenir à l'accueil").click()
        await expect(page).to_have_url(re.compile(r"/$"))


async def test_the_page_when_the_service_is_unreachable_is_accessible(
    tmp_path: Path, mail: MailSink, sms: SmsGateway, browser: Browser
):
    settings = stack_settings(
        temporal=f"127.0.0.1:{free_port()}",  # nothing listens there
        database_url=f"sqlite:///{tmp_path / 'reclaim.db'}",
        state_dir=tmp_path,
        mail=mail,
        sms=sms,
        temporal_rpc_timeout=1,
    )
    async with serve_api(settings) as base_url, person(browser, base_url) as page:
        answer = await page.goto(UNKNOWN_CASE)
        assert answer is not None and answer.status == 503
        await expect(page.get_by_role("heading", level=1)).to_have_text("Please try again")
        await accessible(page)
        await page.get_by_role("link", name="Try again").click()
        await expect(page).to_have_url(re.compile(rf"{UNKNOWN_CASE}$"))


async def test_the_api_manual_is_accessible(stack: Stack, browser: Browser):
    async with person(browser, str(stack.http.base_url), width=1280) as page:
        await page.goto("/docs")
        await expect(page.locator(".opblock").first).to_be_visible()
        await accessible(page)
