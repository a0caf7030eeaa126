"""Take the screenshots of the support console (docs/console.md) from a real `reclaim dev`.

    apt-get install chromium          # Debian's Chromium; never a downloaded browser
    .venv/bin/python docs/console_screenshots.py

Starts `reclaim dev` on free ports in a temporary directory, adds accounts, claims and two
members of staff (keys: `reclaim dev` has no identity provider), works the claims in headless
Chromium as a reviewer and a supervisor would, and writes PNGs to docs/img/console-*.png.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright
from screenshots import OUT, PASSWORD, Dev

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PEOPLE = [
    ("jane", "jane@example.com", "+14155550123"),
    ("joe", "joe@example.com", None),
    ("ann", "ann@example.com", None),
    ("bob", "bob@example.com", None),
]


async def shoot(page: Page, name: str) -> None:
    await page.screenshot(path=str(OUT / f"console-{name}.png"), full_page=True)
    print(f"wrote docs/img/console-{name}.png")


def file(dev: Dev, username: str, reason: str, **evidence: object) -> tuple[str, str]:
    body = {
        "username": username,
        "contact_email": f"{username}.new@example.net",
        "reason": reason,
        **evidence,
    }
    answer = dev.http.post("/v1/support-cases", json=body)
    answer.raise_for_status()
    return answer.json()["case_id"], answer.json()["claim_token"]


async def signed_in(browser: Browser, dev: Dev, key: str) -> Page:
    context = await browser.new_context(
        base_url=dev.api, viewport={"width": 1280, "height": 900}, locale="en-US"
    )
    page = await context.new_page()
    await page.goto("/console/signin")
    await page.get_by_label("Staff key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="Claim queue").wait_for()
    return page


async def walk(dev: Dev, rita: str, sam: str) -> None:
    jane, jane_token = file(
        dev,
        "jane",
        "compromised",
        registered_email="jane@example.com",
        previous_passwords=[PASSWORD],
        description="Someone changed my email and phone on Monday; I still have my laptop.",
    )
    file(dev, "joe", "lost_contact", registered_email="joe@example.com")
    ann, _ = file(dev, "ann", "banned", description="I was banned by mistake.")
    file(dev, "bob", "deleted", previous_passwords=[PASSWORD])
    file(dev, "nobody", "compromised")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=FLAGS
        )
        first = await browser.new_context(
            base_url=dev.api, viewport={"width": 1280, "height": 900}, locale="en-US"
        )
        start = await first.new_page()
        await start.goto("/console/signin")
        await shoot(start, "signin")

        page = await signed_in(browser, dev, rita)
        await page.goto(f"/console/cases/{jane}")
        await page.get_by_role("button", name="Assign to me").click()
        await page.get_by_label("Ask the claimant").fill("Which city did you last sign in from?")
        await page.get_by_role("button", name="Send the questions").click()
        await page.get_by_role("status").wait_for()
        dev.http.post(
            f"/v1/support-cases/{jane}/info",
            json={"answer": "Lyon, from my laptop, on Sunday evening."},
            headers={"Authorization": f"Bearer {jane_token}"},
        ).raise_for_status()
        await page.goto(f"/console/cases/{ann}")
        await page.get_by_role("button", name="Assign to me").click()
        await page.get_by_label("Approval note (optional)").fill("The ban was a false positive.")
        await page.get_by_role("button", name="Approve, to be confirmed").click()
        await page.get_by_role("status").wait_for()
        await page.goto("/console")
        await page.wait_for_timeout(1500)  # visibility catches up with the last change
        await page.reload()
        await shoot(page, "queue")
        await page.goto(f"/console/cases/{jane}")
        await shoot(page, "case")
        await page.get_by_role("button", name="Approve", exact=True).click()
        await page.get_by_role("status").wait_for()
        await page.goto(f"/console/cases/{jane}/audit")
        await shoot(page, "audit")

        supervisor = await signed_in(browser, dev, sam)
        await supervisor.goto(f"/console/cases/{ann}")
        await shoot(supervisor, "confirm")
        await browser.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        dev = Dev(Path(scratch) / "state", first_response_sla=86_400)
        try:
            dev.wait_ready()
            for username, email, phone in PEOPLE:
                extra = ["--phone", phone] if phone else []
                dev.cli(
                    "accounts", "add", "--username", username, "--email", email,
                    "--password", PASSWORD, *extra,
                )  # fmt: skip
            dev.cli("accounts", "ban", "ann", "--reason", "spam")
            rita = dev.cli("staff", "add", "--name", "rita", "--role", "reviewer").split()[-1]
            sam = dev.cli("staff", "add", "--name", "sam", "--role", "supervisor").split()[-1]
            asyncio.run(walk(dev, rita, sam))
        finally:
            dev.stop()


if __name__ == "__main__":
    main()
