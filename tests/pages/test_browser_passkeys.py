"""Passkeys in Debian's Chromium, through its virtual authenticator (the DevTools protocol's
`WebAuthn` domain, over Playwright's CDP session): registered on the security page, then used
for a recovery's second step, by keyboard alone; a key that was never registered is refused;
with JavaScript off the page says a passkey needs it and a recovery code still works.

WebAuthn takes a domain, never an IP address: these stacks are served at `http://localhost`
(a secure context for browsers), so the relying party is `localhost`."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.async_api import Browser, CDPSession, Page, expect

from reclaim.notify.outbox import text_of
from tests.conftest import StackParts, free_port
from tests.mailbox import MailSink
from tests.pages.browser import accessible, needs_chromium, person
from tests.pages.test_browser_security import _tab_to
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack

pytestmark = needs_chromium

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"


@asynccontextmanager
async def _on_localhost(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
) -> AsyncIterator[Stack]:
    port = free_port()
    settings, engine = stack_parts(
        public_url=f"http://localhost:{port}", allowed_hosts="localhost,127.0.0.1"
    )
    async with running_stack(settings, engine, mail, sms, port=port) as stack:
        yield stack


async def _authenticator(page: Page) -> tuple[CDPSession, str]:
    """A platform authenticator (a laptop's fingerprint reader, say) that says yes at once."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


async def _sign_in(page: Page, base: str) -> None:
    await page.goto(f"{base}/signin")
    await page.locator("#identifier").fill("jane")
    await page.locator("#password").fill(OLD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/account$"))


async def _register(page: Page, base: str, name: str) -> None:
    """By keyboard alone: Tab to the name, type it, Tab to the button, Enter."""
    await page.goto(f"{base}/account/security")
    await _tab_to(page, "#name")
    await page.keyboard.type(name)
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status").first).to_contain_text("Your passkey is added.")


async def _second_step(page: Page, stack: Stack, base: str, nth: int) -> None:
    await page.goto(f"{base}/recover")
    await page.locator("#identifier").fill("jane")
    await page.locator("form[action='/recover'] button[type=submit]").click()
    await page.locator("#code").fill(await stack.mail.code_for("jane@example.com", nth=nth))
    await page.locator("form[action$='/code'] button").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("One more step")


async def test_a_passkey_registered_on_the_security_page_recovers_the_account(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway, browser: Browser
):
    async with _on_localhost(stack_parts, mail, sms) as stack:
        base = str(stack.http.base_url).replace("127.0.0.1", "localhost")
        jane = await stack.add_account("jane", "jane@example.com", None, OLD)
        async with person(browser, base) as page:
            cdp, authenticator = await _authenticator(page)
            await _sign_in(page, base)

            await _register(page, base, "My laptop")

            await expect(page.locator(".factors")).to_contain_text("My laptop")
            await expect(page.locator(".factors")).to_contain_text("Never used yet.")
            await accessible(page)
            told = await mail.wait_for(
                lambda m: m["To"] == "jane@example.com" and "second factors" in str(m["Subject"])
            )
            assert "a passkey was added" in " ".join(text_of(told).split())
            held = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
            assert [c["rpId"] for c in held["credentials"]] == ["localhost"]

            await _second_step(page, stack, base, nth=1)
            await expect(page.get_by_role("heading", name="Use your passkey")).to_be_visible()
            await expect(page.get_by_text("Using a passkey needs JavaScript")).to_be_hidden()
            await accessible(page)
            await _tab_to(page, "[data-passkey-start]")
            await page.keyboard.press("Enter")

            await expect(page.get_by_role("heading", level=1)).to_have_text("Choose a new password")
            await page.locator("#password").fill(NEW)
            await page.locator("#confirm").fill(NEW)
            await page.locator("form[action$='/password'] button").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text(
                "Your password is changed"
            )
        assert (await stack.sign_in("jane", NEW)).status_code == 200
        [passkey] = await stack.services.directory.factors(jane)
        assert (passkey.name, passkey.last_used_at is not None) == ("My laptop", True)


def _stranger_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return base64.b64encode(der).decode()


async def test_a_key_that_was_never_registered_is_refused(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway, browser: Browser
):
    """Another authenticator answering for jane's passkey (its id, not its key) signs the
    case's challenge: the server refuses it, and the page says so with the tries left."""
    async with _on_localhost(stack_parts, mail, sms) as stack:
        base = str(stack.http.base_url).replace("127.0.0.1", "localhost")
        await stack.add_account("jane", "jane@example.com", None, OLD)
        async with person(browser, base) as owner:
            cdp, authenticator = await _authenticator(owner)
            await _sign_in(owner, base)
            await _register(owner, base, "My phone")
            held = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
            [registered] = held["credentials"]

        async with person(browser, base) as stranger:
            cdp, other = await _authenticator(stranger)
            copy: dict[str, Any] = {
                "credentialId": registered["credentialId"],
                "isResidentCredential": False,
                "rpId": "localhost",
                "privateKey": _stranger_key(),
                "signCount": 100,
            }
            await cdp.send("WebAuthn.addCredential", {"authenticatorId": other, "credential": copy})
            await _second_step(stranger, stack, base, nth=1)

            await stranger.get_by_role("button", name="Use my passkey").click()

            await expect(stranger.get_by_role("alert")).to_contain_text(
                "That passkey was not accepted. You have 4 tries left."
            )
            await expect(stranger.get_by_role("heading", level=1)).to_have_text("One more step")
            await accessible(stranger)


async def test_without_javascript_the_page_says_a_passkey_needs_it_and_a_code_still_works(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway, browser: Browser
):
    async with _on_localhost(stack_parts, mail, sms) as stack:
        base = str(stack.http.base_url).replace("127.0.0.1", "localhost")
        jane = await stack.add_account("jane", "jane@example.com", None, OLD)
        async with person(browser, base) as owner:
            await _authenticator(owner)
            await _sign_in(owner, base)
            await _register(owner, base, "My phone")
        codes = await stack.services.directory.new_recovery_codes(jane, datetime.now(UTC))

        async with person(browser, base, javascript=False) as page:
            await _second_step(page, stack, base, nth=1)

            await expect(page.get_by_text("Using a passkey needs JavaScript")).to_be_visible()
            await expect(page.get_by_role("button", name="Use my passkey")).to_be_hidden()
            await page.get_by_label("Recovery code").fill(codes[0])
            await page.get_by_role("button", name="Continue").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Choose a new password")
