"""docs/operating.md stays true: every list query it offers operators is accepted by a real
Temporal server with Reclaim's search attributes, and finds the cases it describes."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from tests.conftest import StackParts
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack

DOC = Path(__file__).resolve().parents[2] / "docs" / "operating.md"


def _doc_queries() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.DOTALL)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("--")
    ]


async def test_every_list_query_in_the_operating_doc_runs(stack: Stack):
    queries = _doc_queries()
    assert len(queries) >= 10

    for query in queries:
        # Scoped to this test's task queue; a query the server cannot parse raises here.
        scoped = f'({query}) AND TaskQueue="{stack.settings.task_queue}"'
        found = [w async for w in stack.client.list_workflows(scoped, limit=5)]
        assert found == [], (query, found)  # nothing runs on this fresh queue


async def test_the_escalated_claims_query_finds_a_claim_nobody_picked_up(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(first_response_sla=1)
    query = _doc_queries()[0]
    assert "RecoveryEscalated=true" in query
    async with running_stack(settings, engine, mail, sms) as stack:
        filed = await stack.http.post(
            "/v1/support-cases",
            json={"username": "xavier", "contact_email": "x@example.net", "reason": "lost_contact"},
        )
        assert filed.status_code == 202, filed.text
        scoped = f'({query}) AND TaskQueue="{settings.task_queue}"'
        deadline = time.monotonic() + 20
        while True:
            found = [w.id async for w in stack.client.list_workflows(scoped)]
            if found or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)

    assert found == [filed.json()["case_id"]]
