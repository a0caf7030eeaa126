"""The security page in a real browser: reached and used by keyboard alone (Tab to the link
or button, Enter), an authenticator app enrolled from the key the page shows, then recovery
codes shown once; axe-core finds nothing on the page in either state."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
from playwright.async_api import Browser, Page, expect

from tests.pages.browser import accessible, needs_chromium, person
from tests.stack import Stack

pytestmark = needs_chromium

PASSWORD = "correct horse battery staple"


def _read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


async def _tab_to(page: Page, selector: str, limit: int = 40) -> None:
    """Press Tab until `selector` has the focus, as a person without a mouse does."""
    target = page.locator(selector)
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"Tab never reached {selector}")


async def test_the_security_page_by_keyboard_with_an_app_and_codes(stack: Stack, browser: Browser):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    async with person(browser, str(stack.http.base_url)) as page:
        await page.goto("/signin")
        await page.locator("#identifier").fill("jane")
        await page.locator("#password").fill(PASSWORD)
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(re.compile(r"/account$"))

        await _tab_to(page, "a[href='/account/security']")
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(re.compile(r"/account/security$"))
        await expect(page.get_by_role("heading", level=1)).to_have_text("Security")
        await accessible(page)

        await _tab_to(page, "form[action='/account/security/totp'] button")
        await page.keyboard.press("Enter")
        await expect(
            page.get_by_role("img", name="QR code for your authenticator app")
        ).to_be_visible()
        await accessible(page)
        key = (await page.locator("code.secret").inner_text()).replace(" ", "")
        await _tab_to(page, "#code")
        await page.keyboard.type(pyotp.TOTP(key).now())
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("status").first).to_contain_text(
            "Your authenticator app is added."
        )

        await _tab_to(page, "form[action='/account/security/codes'] button")
        await page.keyboard.press("Enter")
        await expect(page.locator(".codes li")).to_have_count(10)
        await expect(page.get_by_role("link", name="Download as a text file")).to_have_attribute(
            "download", "recovery-codes.txt"
        )
        await accessible(page)
        # The link downloads the codes as a file, without a script, under the pages' CSP.
        shown = [code.strip() for code in await page.locator(".codes li").all_inner_texts()]
        async with page.expect_download() as started:
            await page.get_by_role("link", name="Download as a text file").click()
        download = await started.value
        assert download.suggested_filename == "recovery-codes.txt"
        saved = await asyncio.to_thread(_read, str(await download.path()))
        assert all(code in saved for code in shown) and "somewhere safe" in saved

        await page.reload()
        await expect(page.locator(".codes li")).to_have_count(0)
        await expect(page.get_by_text("10 codes left.")).to_be_visible()


async def _recover_past_the_code(page: Page, stack: Stack, nth: int) -> None:
    await page.goto("/recover")
    await page.locator("#identifier").fill("jane")
    await page.locator("button[type=submit]").first.click()
    await page.wait_for_url(re.compile(r"/recover/rc_[\w-]{22}$"))
    await page.locator("#code").fill(await stack.mail.code_for("jane@example.com", nth=nth))
    await page.locator("form[action$='/code'] button").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("One more step")


async def _new_password(page: Page, password: str) -> None:
    await expect(page.get_by_role("heading", level=1)).to_have_text("Choose a new password")
    await page.locator("#password").fill(password)
    await page.locator("#confirm").fill(password)
    await page.locator("form[action$='/password'] button").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your password is changed")


async def test_what_was_enrolled_on_the_page_recovers_the_account_through_the_pages(
    stack: Stack, browser: Browser
):
    """The app enrolled from the key the page shows, then the downloaded recovery codes: each
    proves the second step of a recovery in the pages alone, and the count of codes left is
    said after the recovery and on the security page."""
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    async with person(browser, str(stack.http.base_url)) as page:
        await page.goto("/signin")
        await page.locator("#identifier").fill("jane")
        await page.locator("#password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.goto("/account/security")
        await page.get_by_role("button", name="Add an authenticator app").click()
        app = pyotp.TOTP((await page.locator("code.secret").inner_text()).replace(" ", ""))
        await page.get_by_label("The 6-digit code from your app").fill(app.now())
        await page.get_by_role("button", name="Add the app").click()
        await expect(page.get_by_role("status").first).to_contain_text("app is added")
        await page.get_by_role("button", name="Create recovery codes").click()
        async with page.expect_download() as started:
            await page.get_by_role("link", name="Download as a text file").click()
        saved = await asyncio.to_thread(_read, str(await (await started.value).path()))
        codes = re.findall(r"^([a-z0-9]{5}-[a-z0-9]{5})$", saved, re.M)
        assert len(codes) == 10, saved

        # The app: its enrolment spent the current step's code, the next step's works.
        await _recover_past_the_code(page, stack, nth=1)
        await expect(page.get_by_label("Code from your authenticator app")).to_be_visible()
        next_step = datetime.now(UTC) + timedelta(seconds=30)
        await page.get_by_label("Code from your authenticator app").fill(app.at(next_step))
        await page.get_by_role("button", name="Continue").click()
        await _new_password(page, "violet tangerine marmalade kayak")
        await expect(page.get_by_text("You used a recovery code")).to_have_count(0)

        # A downloaded recovery code, chosen with the link.
        await _recover_past_the_code(page, stack, nth=2)
        await page.get_by_role("link", name="Use a recovery code instead").click()
        await page.get_by_label("Recovery code").fill(codes[4])
        await page.get_by_role("button", name="Continue").click()
        await _new_password(page, "amber lighthouse pocket walrus")
        await expect(page.get_by_text("You used a recovery code: 9 are left.")).to_be_visible()
        await accessible(page)
        await page.get_by_role("link", name="Make new recovery codes on your security page").click()
        await page.locator("#identifier").fill("jane")
        await page.locator("#password").fill("amber lighthouse pocket walrus")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(re.compile(r"/account/security$"))  # back where it led
        await expect(page.get_by_text("9 codes left.")).to_be_visible()
