"""A person using the pages without a browser: an HTTP client with its own cookies, that reads
forms the way a browser would (their hidden CSRF field included) and follows redirects."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

FORM = re.compile(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', re.S)
HIDDEN = re.compile(r'<input type="hidden" name="csrf" value="([^"]+)">')
TAGS = re.compile(r"<[^>]+>")


class Person:
    def __init__(self, base_url: str, language: str = "en") -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=30,
            follow_redirects=True,
            headers={"Accept-Language": language},
        )
        self.page = ""
        self.response: httpx.Response | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    async def open(self, url: str) -> httpx.Response:
        response = await self.http.get(url)
        self._read(response)
        return response

    async def submit(self, action: str, **fields: str) -> httpx.Response:
        """Fill the form of the current page that posts to `action`, and send it."""
        csrf = self.form_token(action)
        response = await self.http.post(action, data={"csrf": csrf, **fields})
        self._read(response)
        return response

    def back_to(self, earlier: httpx.Response) -> None:
        """Show an earlier page again, as the back button (or a tab left open) does: its
        forms are the ones `submit` fills."""
        self._read(earlier)

    def form_token(self, action: str) -> str:
        for found_action, body in FORM.findall(self.page):
            if html.unescape(found_action) == action:
                token = HIDDEN.search(body)
                assert token is not None, f"the form to {action} has no CSRF field"
                return token.group(1)
        raise AssertionError(f"no form posts to {action} on {self.url}: {self.text[:400]}")

    @property
    def url(self) -> str:
        return str(self.response.url) if self.response is not None else ""

    @property
    def text(self) -> str:
        """What the page says, without its markup."""
        return " ".join(html.unescape(TAGS.sub(" ", self.page)).split())

    def _read(self, response: httpx.Response) -> None:
        self.response = response
        self.page = response.text

    def __repr__(self) -> str:  # pragma: no cover
        return f"<Person at {self.url}>"


def headers_of(response: httpx.Response) -> dict[str, Any]:
    return {k.lower(): v for k, v in response.headers.items()}
