"""A real browser for the page tests: Debian's Chromium driven by Playwright (never a
downloaded browser), and axe-core (bundled by axe-playwright-python) to check each page
against WCAG 2.1 AA."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
MISSING = "Chromium is not installed: `apt-get install chromium` to run the browser tests"
# The flags of a headless Chromium on a machine without network or sandbox (root).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

needs_chromium = pytest.mark.skipif(
    not (CHROMIUM.exists() or shutil.which("chromium")), reason=MISSING
)


def _executable() -> str:
    return str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=_executable(),
            headless=True,
            args=FLAGS,
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def person(
    browser: Browser,
    base_url: str,
    *,
    locale: str = "en-US",
    javascript: bool = True,
    width: int = 390,
) -> AsyncIterator[Page]:
    """A new person: their own cookies, language and screen (a phone's width by default)."""
    context: BrowserContext = await browser.new_context(
        base_url=base_url,
        locale=locale,
        extra_http_headers={"Accept-Language": locale},
        java_script_enabled=javascript,
        viewport={"width": width, "height": 844},
    )
    page = await context.new_page()
    try:
        yield page
    finally:
        await context.close()


async def accessible(page: Page) -> None:
    """axe-core finds nothing against WCAG 2.1 A and AA on the page as it is now."""
    results = await Axe().run(
        page, options={"runOnly": {"type": "tag", "values": WCAG_AA}, "resultTypes": ["violations"]}
    )
    assert results.violations_count == 0, f"{page.url}\n{results.generate_report()}"
