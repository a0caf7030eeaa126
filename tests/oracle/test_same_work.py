"""Known and unknown identifiers make the API do the same work: the same SQL statements and
the same Temporal calls, in the same order, for opening a case, reading it, a wrong code, a
new code and a password with a token that is not good. Asserted on the structure (statements
and calls recorded for each request), never on a clock; `python -m bench oracle` gives the
timings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from reclaim.services import build_services
from reclaim.store.engine import make_engine
from reclaim.store.migrations import create_schema
from reclaim.temporal.connection import connect
from tests.mailbox import MailSink
from tests.oracle.recorders import SqlStatements, TemporalCalls, recorded
from tests.proof import solved
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack, stack_settings

OLD = "correct horse battery staple"


@dataclass
class Watched:
    stack: Stack
    sql: SqlStatements
    calls: TemporalCalls

    async def request(
        self, send: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
    ) -> tuple[httpx.Response, list[str], list[tuple[str, str]]]:
        """The answer, and the statements and calls the API made for it."""
        self.calls.seen.clear()
        with self.sql.listening():
            response = await send(self.stack.http)
        return response, self.sql.take(), list(self.calls.seen)


@pytest.fixture
async def watched(
    dev_server: str, database_url: str, tmp_path: Path, mail: MailSink, sms: SmsGateway
) -> AsyncIterator[Watched]:
    """A stack whose API runs on an engine and a Temporal client of the test's own, both
    recorded; on SQLite and on PostgreSQL."""
    settings = stack_settings(
        temporal=dev_server,
        database_url=database_url,
        state_dir=tmp_path,
        mail=mail,
        sms=sms,
        resend_cooldown=0,  # a new code at once
    )
    engine, api_engine = make_engine(database_url), make_engine(database_url)
    create_schema(engine)
    calls = TemporalCalls()
    client = recorded(await connect(settings), calls)
    api = build_services(settings, client, api_engine)
    try:
        async with running_stack(settings, engine, mail, sms, api_services=api) as stack:
            yield Watched(stack, SqlStatements(api_engine), calls)
    finally:
        await api.aclose()
        api_engine.dispose()
        engine.dispose()


def _shape(body: Any) -> Any:
    """A JSON answer without the values that differ from case to case anyway."""
    if isinstance(body, dict):
        return {
            k: _shape(v)
            for k, v in body.items()
            if k
            not in ("case_id", "code_expires_at", "resend_available_at", "destination", "challenge")
        }
    return body


async def _until(stack: Stack, case_id: str, ready: Callable[[dict], bool]) -> dict:
    deadline = time.monotonic() + 20
    while True:
        body = (await stack.http.get(f"/v1/recovery/{case_id}")).json()
        if ready(body):
            return dict(body)
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


Step = tuple[int, Any, list[str], list[tuple[str, str]]]


async def _journey(watched: Watched, identifier: str) -> list[Step]:
    """Open a case, read it, a wrong code, a new code, a password with a bad token: each
    answer with the statements and calls it took."""
    stack = watched.stack
    steps: list[Step] = []

    async def step(send: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]) -> Any:
        response, statements, temporal = await watched.request(send)
        steps.append((response.status_code, _shape(response.json()), statements, temporal))
        return response.json()

    opened = await step(lambda h: h.post("/v1/recovery", json={"identifier": identifier}))
    case = f"/v1/recovery/{opened['case_id']}"
    await _until(stack, opened["case_id"], lambda b: b["delivery"] == "sent")
    await step(lambda h: h.get(case))
    await step(lambda h: h.post(f"{case}/code", json={"code": "000000"}))
    await step(lambda h: h.post(f"{case}/resend"))
    bad = {"reset_token": "not-a-token", "new_password": "violet tangerine kayak"}
    await step(lambda h: h.post(f"{case}/password", json=bad))
    return steps


async def test_known_and_unknown_identifiers_do_the_same_sql_and_temporal_work(
    watched: Watched,
):
    await watched.stack.add_account("jane", "jane@example.com", "+14155550123", OLD)
    await watched.stack.open_case("warm.up")  # the first request reads what later ones keep

    known = await _journey(watched, "jane")
    unknown = await _journey(watched, "ghost_user")

    assert [s[0] for s in known] == [202, 200, 400, 202, 403]
    for name, mine, theirs in zip(
        ("open", "status", "code", "resend", "password"), known, unknown, strict=True
    ):
        assert mine[0:2] == theirs[0:2], name  # the same answer
        assert mine[2] == theirs[2], name  # the same SQL statements, in the same order
        assert mine[3] == theirs[3], name  # the same Temporal calls
    # Opening reads the account and the decoy, then writes the case in one statement, and
    # starts the workflow; nothing else.
    assert known[0][3] == [("start_workflow", "RecoveryWorkflow")]
    assert sum(s.startswith("SELECT") for s in known[0][2]) >= 2
    assert any(s.startswith("INSERT INTO recovery_case") for s in known[0][2])


async def test_over_the_limit_known_and_unknown_do_the_same_work(watched: Watched):
    """The challenge and the proof that opens a case past it: the same for both."""
    await watched.stack.add_account("jane", "jane@example.com", "+14155550123", OLD)
    await watched.stack.open_case("warm.up")
    journeys = {}
    for identifier in ("jane", "ghost_user"):
        for _ in range(5):
            await watched.stack.open_case(identifier)
        refused, *refused_work = await watched.request(
            lambda h, i=identifier: h.post("/v1/recovery", json={"identifier": i})
        )
        proof = solved(refused.json()["challenge"])
        opened, *opened_work = await watched.request(
            lambda h, i=identifier, p=proof: h.post(
                "/v1/recovery", json={"identifier": i, "altcha": p}
            )
        )
        journeys[identifier] = [
            (refused.status_code, _shape(refused.json()), *refused_work),
            (opened.status_code, _shape(opened.json()), *opened_work),
        ]

    known, unknown = journeys["jane"], journeys["ghost_user"]
    assert [s[0] for s in known] == [429, 202]
    for mine, theirs in zip(known, unknown, strict=True):
        assert mine[0] == theirs[0]
        assert mine[2] == theirs[2]  # SQL
        assert mine[3] == theirs[3]  # Temporal
    assert known[0][3] == []  # refused before any workflow
    assert any(s.startswith("INSERT INTO spent_challenge") for s in known[1][2])


async def test_a_recovery_asks_temporal_only_what_each_step_needs(watched: Watched):
    """What the engine is asked per recovery (its load per case): one start, one update for
    the code, one for the password. The reset token is a pass the API checks itself: no
    query before the hashing, and an expired or forged pass costs the engine nothing."""
    stack = watched.stack
    await stack.add_account("jane", "jane@example.com", None, OLD)
    opened, _, started = await watched.request(
        lambda h: h.post("/v1/recovery", json={"identifier": "jane"})
    )
    case_id = opened.json()["case_id"]
    code = await stack.mail.code_for("jane@example.com")
    granted, _, proved = await watched.request(
        lambda h: h.post(f"/v1/recovery/{case_id}/code", json={"code": code})
    )
    token = granted.json()["reset_token"]
    keys = stack.services.keys
    inner, expires_at = keys.open_reset_pass(case_id, token) or ("", 0)
    new = {"new_password": "violet tangerine marmalade kayak"}
    late = keys.reset_pass(case_id, inner, int(time.time()) - 1)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    expired, _, expired_calls = await watched.request(
        lambda h: h.post(f"/v1/recovery/{case_id}/password", json={**new, "reset_token": late})
    )
    done, _, changed = await watched.request(
        lambda h: h.post(f"/v1/recovery/{case_id}/password", json={**new, "reset_token": token})
    )

    assert opened.status_code == 202 and started == [("start_workflow", "RecoveryWorkflow")]
    assert granted.status_code == 200 and proved == [("start_workflow_update", "submit_code")]
    assert (
        abs(expires_at - datetime.fromisoformat(granted.json()["reset_expires_at"]).timestamp()) < 1
    )
    assert (expired.status_code, expired.json()["error"]) == (410, "reset_expired")
    assert expired_calls == []
    assert (done.status_code, done.json()["state"]) == (200, "completed")
    assert changed == [("start_workflow_update", "set_password")]
    # A pass whose signature is not ours is asked of the workflow (as a token handed out before
    # passes were signed would be), and refused there before any hashing.
    refused = await stack.http.post(
        f"/v1/recovery/{case_id}/password", json={**new, "reset_token": forged}
    )
    assert (refused.status_code, refused.json()["error"]) == (403, "invalid_token")
