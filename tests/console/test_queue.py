"""The queue past one page: with more open claims than `RECLAIM_CONSOLE_QUEUE_LIMIT`, the page
shows those due soonest and says so, each filter's count is exact over every open claim, and a
filter reaches claims the first page does not show (filters are SQL over every open claim,
not a sift through the first page)."""

from __future__ import annotations

import html
import re

import httpx

from tests.conftest import StackParts
from tests.console.desk import PASSWORD, STRONG, Staff, eventually, file_claim
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import running_stack


def shown(page: str) -> list[str]:
    """The claims in the queue's table, top to bottom."""
    return re.findall(r'<th scope="row"><a href="/console/cases/([^"]+)">', page)


def heading(page: str) -> str:
    found = re.search(r'<h2 id="queue-heading">(.*?)</h2>', page)
    assert found, "the queue has no heading"
    return html.unescape(found.group(1))


def counts(page: str) -> dict[str, int]:
    """Each filter as the reviewer reads it: the links' counts and the menus' "(n)"."""
    links = re.findall(r'">([A-Za-z ]+) <span class="count">(\d+)</span></a>', page)
    options = re.findall(r'<option value="([a-z_]+)"[^>]*>[^<]*\((\d+)\)</option>', page)
    return {label: int(n) for label, n in links} | {value: int(n) for value, n in options}


async def test_past_one_page_the_queue_shows_the_soonest_due_and_filters_reach_the_rest(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(console_queue_limit=2, claims_per_hour=100)
    async with running_stack(settings, engine, mail, sms) as stack:
        await stack.add_account("jane", "jane@example.com", None, PASSWORD)
        # Filed one after another: each one's first response is due a little later.
        claims = [
            (await file_claim(stack, reason, contact_email=f"jane{n}@example.net", **evidence))[0]
            for n, (reason, evidence) in enumerate(
                [
                    ("compromised", STRONG),
                    ("compromised", {}),
                    ("lost_contact", {}),
                    ("banned", {}),
                    ("deleted", {}),
                ]
            )
        ]
        _, key = await stack.services.staff_members.add_staff("sam", "supervisor")
        sam = Staff(stack)
        try:
            await sam.with_key(key)
            # The oldest claim taken: its deadline is now the decision's, days away, last.
            taken = await sam.post(f"/console/cases/{claims[0]}/assign")
            assert taken.status_code == 303, taken.text
            page = httpx.Response(0)

            async def settled() -> bool:
                nonlocal page
                page = await sam.http.get("/console")
                return counts(page.text).get("Mine") == 1 and counts(page.text)["All"] == 5

            await eventually(settled, "the queue counts five claims, one of them sam's")

            assert page.status_code == 200
            assert counts(page.text) == {
                "All": 5,
                "Mine": 1,
                "Unassigned": 4,
                "Escalated": 0,
                "High risk": 4,
                # The four first responses are due within the day; the decision in days.
                "Due within a day": 4,
                "compromised": 2,
                "lost_contact": 1,
                "deleted": 1,
                "banned": 1,
                "lost_authenticator": 0,
                "submitted": 4,
                "in_review": 1,
                "awaiting_claimant": 0,
                "awaiting_confirmation": 0,
            }
            assert shown(page.text) == claims[1:3]  # the two first responses due soonest
            assert heading(page.text) == (
                "2 of 5 open claims: those due soonest, the nearest deadline first"
            )
            assert "More claims match than one page shows (at most 2)" in page.text

            mine = await sam.http.get("/console?view=mine")
            assert shown(mine.text) == [claims[0]]
            assert heading(mine.text) == "1 open claim shown, the nearest deadline first"
            assert "More claims match" not in mine.text
            deleted = await sam.http.get("/console?reason=deleted")
            assert shown(deleted.text) == [claims[4]]
            unassigned = await sam.http.get("/console?view=unassigned")
            assert shown(unassigned.text) == claims[1:3]
            assert heading(unassigned.text) == (
                "2 of 4 open claims that match: those due soonest, the nearest deadline first"
            )
            due = await sam.http.get("/console?view=due_soon")
            assert shown(due.text) == claims[1:3] and claims[0] not in due.text
            later = await sam.http.get("/console?view=high_risk&state=submitted&reason=banned")
            assert shown(later.text) == [claims[3]]
            assert counts(later.text)["All"] == 5  # the counts do not follow the filter
        finally:
            await sam.aclose()
