"""The reviewers' queue read from Reclaim's own database (`claim_queue_row`), on the real
Temporal dev server: each claim's workflow keeps its row, so the API and the console show a
change right after it returns (the row is written in the background: polled for a few
seconds at most); the API pages with a cursor; `reclaim cases rebuild-queue` writes the rows
again from Temporal."""

from __future__ import annotations

import asyncio
from typing import Any

from typer.testing import CliRunner

from reclaim.cli import app
from reclaim.support.queue_rows import QueueRows
from tests.conftest import StackParts
from tests.console.desk import PASSWORD, STRONG, Staff, eventually, file_claim
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack, settings_env

SOON = 5.0  # seconds a row may take to land after the change returned


async def _cases(stack: Stack, key: dict[str, str], query: str = "") -> dict[str, Any]:
    response = await stack.http.get(f"/v1/staff/cases{query}", headers=key)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _shows(stack: Stack, key: dict[str, str], query: str, case_ids: list[str]) -> None:
    async def check() -> bool:
        return [c["case_id"] for c in (await _cases(stack, key, query))["cases"]] == case_ids

    await eventually(check, f"the queue{query} lists {case_ids}", timeout=SOON)


async def test_a_change_shows_in_the_queue_right_after_it_returns(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(claims_per_hour=100, first_response_sla=3)
    async with running_stack(settings, engine, mail, sms) as stack:
        await stack.add_account("jane", "jane@example.com", None, PASSWORD)
        _, key = await stack.services.staff_members.add_staff("sam", "supervisor")
        sam_key = {"Authorization": f"Bearer {key}"}
        first, _ = await file_claim(stack, "compromised", **STRONG)
        await _shows(stack, sam_key, "?state=submitted", [first])

        sam = Staff(stack)
        try:
            await sam.with_key(key)
            taken = await sam.post(f"/console/cases/{first}/assign")
            assert taken.status_code == 303, taken.text
            await _shows(stack, sam_key, "?assignee=sam&state=in_review", [first])

            async def mine_in_console() -> bool:
                page = await sam.http.get("/console?view=mine")
                return f"/console/cases/{first}" in page.text

            await eventually(mine_in_console, "the console shows sam's claim", timeout=SOON)

            # Nobody takes the second claim: its first response is late, it is escalated.
            second, _ = await file_claim(stack, "banned", contact_email="jane2@example.net")
            await eventually(
                lambda: _escalated(stack, sam_key, second), "the second claim escalated"
            )

            rejected = await stack.http.post(
                f"/v1/staff/cases/{first}/reject", json={"reason": "Not her."}, headers=sam_key
            )
            assert rejected.status_code == 202, rejected.text
            await _shows(stack, sam_key, "?state=rejected", [first])
            await _shows(stack, sam_key, "", [second])

            async def gone_from_console() -> bool:
                page = await sam.http.get("/console")
                return f"/console/cases/{first}" not in page.text and second in page.text

            await eventually(gone_from_console, "the console drops the decided claim", SOON)
        finally:
            await sam.aclose()


async def _escalated(stack: Stack, key: dict[str, str], case_id: str) -> bool:
    found = (await _cases(stack, key, "?escalated=true"))["cases"]
    return [c["case_id"] for c in found] == [case_id] and found[0]["next_deadline"] is None


async def test_pages_follow_the_cursor_and_a_bad_cursor_is_refused(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(claims_per_hour=100)
    async with running_stack(settings, engine, mail, sms) as stack:
        await stack.add_account("jane", "jane@example.com", None, PASSWORD)
        _, key = await stack.services.staff_members.add_staff("rita", "reviewer")
        rita = {"Authorization": f"Bearer {key}"}
        filed = [
            (await file_claim(stack, "deleted", contact_email=f"j{n}@example.net"))[0]
            for n in range(5)
        ]
        await _shows(stack, rita, "", filed)  # filed in order: each one due a little later

        seen: list[str] = []
        query = "?limit=2"
        while True:
            page = await _cases(stack, rita, query)
            seen += [c["case_id"] for c in page["cases"]]
            if page["next"] is None:
                break
            query = f"?limit=2&after={page['next']}"
        assert seen == filed

        for bad in ("not-a-cursor", "e30", "eyJkIjoxLCJpZCI6MX0"):
            refused = await stack.http.get(f"/v1/staff/cases?after={bad}", headers=rita)
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"] == "invalid_cursor"


async def test_rebuild_queue_restores_the_rows_from_temporal(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(claims_per_hour=100)
    async with running_stack(settings, engine, mail, sms) as stack:
        await stack.add_account("jane", "jane@example.com", None, PASSWORD)
        _, key = await stack.services.staff_members.add_staff("rita", "reviewer")
        rita = {"Authorization": f"Bearer {key}"}
        one, _ = await file_claim(stack, "compromised", **STRONG)
        two, _ = await file_claim(stack, "deleted", contact_email="j2@example.net")
        assigned = await stack.http.post(f"/v1/staff/cases/{two}/assign", headers=rita)
        assert assigned.status_code == 202, assigned.text
        await _shows(stack, rita, "?assignee=rita", [two])
        before = (await _cases(stack, rita))["cases"]
        rows = QueueRows(stack.engine)
        versions = {c: (await rows.get(c)).version for c in (one, two)}  # type: ignore[union-attr]

        assert await rows.clear() == 2
        assert (await _cases(stack, rita))["cases"] == []

        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["cases", "rebuild-queue"], env=settings_env(stack.settings)
        )
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "2 claim queue rows rebuilt"
        assert (await _cases(stack, rita))["cases"] == before
        assert {c: (await rows.get(c)).version for c in (one, two)} == versions  # type: ignore[union-attr]
