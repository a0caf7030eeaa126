"""Take the screenshots of the pages (docs/pages.md) from a real `reclaim dev`.

    apt-get install chromium          # Debian's Chromium; never a downloaded browser
    .venv/bin/python docs/page_screenshots.py

Starts `reclaim dev` on free ports in a temporary directory, creates an account, walks the
pages in headless Chromium as a person who lost access would (a code read from the dev outbox,
a weak password first, a support claim), and writes PNGs to docs/img/pages-*.png.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

from playwright.async_api import Page, async_playwright
from screenshots import NEW, OUT, PASSWORD, Dev, _poll

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


async def shoot(page: Page, name: str) -> None:
    await page.screenshot(path=str(OUT / f"pages-{name}.png"), full_page=True)
    print(f"wrote docs/img/pages-{name}.png")


async def walk(dev: Dev) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=FLAGS
        )
        context = await browser.new_context(
            base_url=dev.api, viewport={"width": 900, "height": 800}, locale="en-US"
        )
        page = await context.new_page()
        await page.goto("/")
        await shoot(page, "home")
        await page.goto("/recover")
        await page.locator("#identifier").fill("jane@example.com")
        await shoot(page, "recover")
        await page.locator("button[type=submit]").click()
        await page.wait_for_url(re.compile(r"/recover/rc_"))
        code = _poll(lambda: dev.outbox_code("jane@example.com"), 30, "the code mail")
        await page.reload()
        await shoot(page, "code")
        await page.locator("#code").fill(code)
        await page.locator("form[action$='/code'] button").click()
        await page.locator("#password").fill("jane1234")
        await page.locator("#confirm").fill("jane1234")
        await page.locator("form[action$='/password'] button").click()
        await shoot(page, "weak-password")
        await page.locator("#password").fill(NEW)
        await page.locator("#confirm").fill(NEW)
        await page.locator("form[action$='/password'] button").click()
        await shoot(page, "done")
        french = await browser.new_context(
            base_url=dev.api, viewport={"width": 390, "height": 844}, locale="fr-FR"
        )
        phone = await french.new_page()
        await phone.goto("/support?reason=lost_contact")
        await shoot(phone, "support-phone-fr")
        await phone.locator("#username").fill("jane")
        await phone.locator("#contact_email").fill("jane.new@example.net")
        await phone.locator("button[type=submit]").click()
        await phone.wait_for_url(re.compile(r"/support/claims/sc_"))
        await shoot(phone, "claim-phone-fr")
        await browser.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        dev = Dev(Path(scratch) / "state", first_response_sla=86_400)
        try:
            dev.wait_ready()
            dev.cli(
                "accounts", "add", "--username", "jane", "--email", "jane@example.com",
                "--phone", "+14155550123", "--password", PASSWORD,
            )  # fmt: skip
            asyncio.run(walk(dev))
        finally:
            dev.stop()


if __name__ == "__main__":
    main()
