"""In a real browser (Chromium), what an attacker's links do: a language link to `//host`
leaves the visitor on Reclaim, and a stop link whose case id carries cookie attributes plants
nothing, so the owner's genuine "Wasn't you? Stop it" link still works."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, expect

from reclaim.notify.outbox import text_of
from tests.pages.browser import needs_chromium, person
from tests.stack import Stack

pytestmark = needs_chromium

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"


@pytest.mark.parametrize("path", ["//evil.example/?lang=fr", "/%2F%2Fevil.example/login?lang=en"])
async def test_a_language_link_to_another_host_stays_on_reclaim(
    stack: Stack, browser: Browser, path: str
):
    base = str(stack.http.base_url).rstrip("/")
    async with person(browser, base) as page:
        await page.goto(base + path)

        assert urlsplit(page.url).hostname == urlsplit(base).hostname, page.url
        assert urlsplit(page.url).port == urlsplit(base).port


async def test_a_cookie_planted_through_the_stop_links_path_does_not_break_the_genuine_link(
    stack: Stack, browser: Browser
):
    await stack.add_account("jane", "jane@example.com", None, OLD)
    recovery_id = await stack.approved_claim("jane", "mallory@example.net", "compromised")
    code = await stack.mail.code_for("mallory@example.net")
    granted = await stack.http.post(f"/v1/recovery/{recovery_id}/code", json={"code": code})
    held = await stack.http.post(
        f"/v1/recovery/{recovery_id}/password",
        json={"reset_token": granted.json()["reset_token"], "new_password": NEW},
    )
    assert held.json()["state"] == "held"
    notice = await stack.mail.wait_for(
        lambda m: m["To"] == "jane@example.com" and "recovering" in m["Subject"]
    )
    stop = re.search(rf"https://\S+/stop/{recovery_id}\?token=[\w-]{{43}}", text_of(notice))
    assert stop is not None
    base = str(stack.http.base_url).rstrip("/")
    genuine = base + stop.group(0).removeprefix(stack.settings.public_url)

    async with person(browser, base) as page:
        # The attacker's link: the case id carries `; Path=/`, to plant a stop cookie of
        # the attacker's for every page of the site.
        attack = await page.goto(f"{base}/stop/{recovery_id};%20Path=/?token={'x' * 43}")
        assert attack is not None and attack.status == 404
        assert not [c for c in await page.context.cookies() if c["name"] == "reclaim_stop"]

        # Later the owner follows the link from their mail, from their webmail.
        await page.set_content(f'<a href="{genuine}">the link</a>')
        await page.get_by_role("link", name="the link").click()
        await expect(page).to_have_url(re.compile(rf"/stop/{recovery_id}$"))
        await expect(page.get_by_role("heading", level=1)).to_have_text("Wasn't you?")
        await page.get_by_role("button", name="Stop it").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("The recovery is stopped")

    view = await stack.http.get(f"/v1/recovery/{recovery_id}")
    assert view.json()["state"] == "cancelled"
