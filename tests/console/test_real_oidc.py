"""The console's sign-in against a real OpenID Connect provider, not only the tests' own:
panva's certified oidc-provider (tests/peers/oidc.py, run with the machine's Node.js), in
Chromium. Staff sign in with the authorization code flow and PKCE and get the role the
provider's groups claim gives; the provider rotates its signing keys and the next sign-in
still works; its JWT access tokens open the codec endpoint; a member removed at the provider
cannot sign in again."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import StackParts, free_port
from tests.mailbox import MailSink
from tests.pages.browser import accessible, chromium, needs_chromium, person
from tests.peers.oidc import (
    CLIENT_ID,
    CLIENT_SECRET,
    RESOURCE,
    REVIEWERS,
    SCOPES,
    SUPERVISORS,
    OidcPeer,
)
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack

pytestmark = needs_chromium
WIDE = 1280


@pytest.fixture(scope="module")
def console_port() -> int:
    """The console's port, known before the provider starts (its redirect URI is registered
    there, as an operator would)."""
    return free_port()


@pytest.fixture(scope="module")
def peer(console_port: int) -> Iterator[OidcPeer]:
    """One provider for the module (installed on first use; skipped without Node.js)."""
    provider = OidcPeer(
        redirect_uris=[f"http://127.0.0.1:{console_port}/console/oidc/callback"],
        accounts={
            "rita": [REVIEWERS],
            "sam": [SUPERVISORS, "everyone"],
            "kai": [REVIEWERS],
            "leaver": [REVIEWERS],
            "visitor": ["everyone"],
        },
    )
    provider.start()
    try:
        yield provider
    finally:
        provider.close()


@pytest.fixture
async def real_stack(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway, peer: OidcPeer, console_port: int
) -> AsyncIterator[Stack]:
    settings, engine = stack_parts(
        public_url=f"http://127.0.0.1:{console_port}",
        oidc_issuer=peer.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_scopes=SCOPES,
    )
    async with running_stack(settings, engine, mail, sms, port=console_port) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


async def at_provider(page: Page, user: str) -> None:
    """From the console's sign-in page to the provider's form, and signed in there."""
    await page.goto("/console")
    await page.get_by_role("link", name=re.compile(r"^Sign in with 127\.0\.0\.1")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Sign in to the test organisation"
    )
    await page.get_by_label("Username").fill(user)
    await page.get_by_role("button", name="Sign in").click()


async def sign_in(page: Page, user: str, role: str) -> None:
    await at_provider(page, user)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Claim queue")
    await expect(page.locator("header .who")).to_contain_text(f"Signed in as {user} ({role})")


@pytest.mark.parametrize(("user", "role"), [("sam", "supervisor"), ("rita", "reviewer")])
async def test_staff_sign_in_through_oidc_provider_with_the_role_its_groups_give(
    real_stack: Stack, peer: OidcPeer, browser: Browser, user: str, role: str
):
    async with person(browser, str(real_stack.http.base_url), width=WIDE) as page:
        await sign_in(page, user, role)
        await accessible(page)

    members = {m.name: m for m in await real_stack.services.staff_members.staff()}
    assert members[user].role == role and members[user].oidc_subject == user


async def test_a_member_the_groups_claim_gives_no_role_is_refused(
    real_stack: Stack, peer: OidcPeer, browser: Browser
):
    async with person(browser, str(real_stack.http.base_url), width=WIDE) as page:
        await at_provider(page, "visitor")
        await expect(page.get_by_text("gives you no role in the support console")).to_be_visible()
        await page.goto("/console")
        await expect(page).to_have_url(re.compile(r"/console/signin$"))


async def test_the_next_sign_in_works_after_the_provider_rotates_its_signing_keys(
    real_stack: Stack, peer: OidcPeer, browser: Browser
):
    base = str(real_stack.http.base_url)
    async with person(browser, base, width=WIDE) as page:
        await sign_in(page, "sam", "supervisor")  # Reclaim has the provider's keys now
    before = peer.signing_kid

    peer.rotate_keys()  # a new key signs; the old one is still published

    assert peer.signing_kid != before
    async with person(browser, base, width=WIDE) as page:
        await sign_in(page, "kai", "reviewer")


def access_token(peer: OidcPeer, redirect_uri: str, user: str) -> str:
    """An access token for Reclaim's codec endpoint, from the provider's own code flow (as the
    Temporal Web UI behind the same single sign-on would get one)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    with httpx.Client(base_url=peer.url, timeout=10) as http:
        started = http.get(
            "/auth",
            params={
                "client_id": CLIENT_ID,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": f"{SCOPES} codec",
                "resource": RESOURCE,
                "state": secrets.token_urlsafe(16),
                "nonce": secrets.token_urlsafe(16),
                "code_challenge": base64.urlsafe_b64encode(digest).rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            },
        )
        assert started.status_code in (302, 303), started.text
        interaction = started.headers["location"]
        signed = http.post(interaction, data={"username": user})
        assert signed.status_code in (302, 303), signed.text
        back = http.get(signed.headers["location"])
        assert back.status_code in (302, 303), back.text
        code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
        tokens = http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
                "resource": RESOURCE,
            },
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
        assert tokens.status_code == 200, tokens.text
        return str(tokens.json()["access_token"])


async def test_the_providers_jwt_access_tokens_open_the_codec_endpoint(
    real_stack: Stack, peer: OidcPeer
):
    redirect = peer.redirect_uris[0]  # the client's, as the Web UI would have its own
    body = {"payloads": [{"metadata": {"encoding": "YmluYXJ5L3BsYWlu"}, "data": "aGk="}]}

    async def codec(token: str) -> int:
        answer = await real_stack.http.post(
            "/codec/encode", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        return answer.status_code

    sams = access_token(peer, redirect, "sam")
    assert sams.count(".") == 2  # a JWT (oidc-provider's default is opaque)
    assert await codec(sams) == 200
    assert await codec(access_token(peer, redirect, "rita")) == 403  # a reviewer's
    assert await codec(access_token(peer, redirect, "visitor")) == 401  # no role
    assert await codec(sams[:-4] + "AAAA") == 401


async def test_a_member_removed_at_the_provider_cannot_sign_in_again(
    real_stack: Stack, peer: OidcPeer, browser: Browser
):
    base = str(real_stack.http.base_url)
    signin = "Sign in to the support console"
    async with person(browser, base, width=WIDE) as page:
        await sign_in(page, "leaver", "reviewer")
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(signin)

        peer.remove("leaver")

        # The same browser, still signed in at the provider as an account that is gone: the
        # provider answers an error (oidc-provider 9 fails on the session of an account that
        # is gone), and no session opens here.
        await page.get_by_role("link", name=re.compile(r"^Sign in with 127\.0\.0\.1")).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in failed")
        await page.goto("/console")
        await expect(page.get_by_role("heading", level=1)).to_have_text(signin)
    async with person(browser, base, width=WIDE) as page:  # a new browser: the form refuses
        await at_provider(page, "leaver")
        await expect(page.get_by_role("heading", level=1)).to_have_text("No such account")
        await page.goto("/console")
        await expect(page.get_by_role("heading", level=1)).to_have_text(signin)
