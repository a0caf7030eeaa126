"""What the console tests do again and again: file a claim over the API, sign a member of
staff in (through the identity provider or with a key) with a client of their own, read a
page's form token, post a console form."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.oidc_issuer import TestIssuer
from tests.stack import Stack

PASSWORD = "correct horse battery staple"
CONTACT = "jane.new@example.net"
STRONG: dict[str, Any] = {"registered_email": "jane@example.com", "previous_passwords": [PASSWORD]}


async def file_claim(stack: Stack, reason: str = "compromised", **evidence: Any) -> tuple[str, str]:
    body = {"username": "jane", "contact_email": CONTACT, "reason": reason, **evidence}
    response = await stack.http.post("/v1/support-cases", json=body)
    assert response.status_code == 202, response.text
    return response.json()["case_id"], response.json()["claim_token"]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no form token"
    return found.group(1)


class Staff:
    """A member of staff's browser, without a browser: cookies kept, redirects followed by
    hand where the test wants to look at them."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.http = httpx.AsyncClient(base_url=str(stack.http.base_url), timeout=30)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def sso(self, issuer: TestIssuer, user: str) -> httpx.Response:
        """Through the identity provider: the answer of the callback (303 to the queue when
        it worked)."""
        started = await self.http.get("/console/signin/sso")
        assert started.status_code == 303, started.text
        at_provider = started.headers["location"]
        assert at_provider.startswith(issuer.url)
        query = {k: v[0] for k, v in parse_qs(urlsplit(at_provider).query).items()}
        async with httpx.AsyncClient(timeout=30) as browser_at_provider:
            signed = await browser_at_provider.post(
                f"{issuer.url}/authorize", data={**query, "username": user}
            )
        assert signed.status_code == 303, signed.text
        back = urlsplit(signed.headers["location"])
        return await self.http.get(f"{back.path}?{back.query}")

    async def with_key(self, key: str) -> httpx.Response:
        page = await self.http.get("/console/signin")
        return await self.http.post(
            "/console/signin", data={"csrf": csrf_of(page.text), "key": key}
        )

    async def post(self, path: str, **fields: str) -> httpx.Response:
        """A console form, posted with the token of the page it is on."""
        if "reclaim_csrf" not in self.http.cookies:
            await self.http.get("/console/signin", follow_redirects=True)
        token = self.http.cookies["reclaim_csrf"]  # what every form of this browser carries
        return await self.http.post(path, data={"csrf": token, **fields})


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20) -> None:
    """Poll until `check` holds (visibility lags a little behind a claim's updates)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.1)
