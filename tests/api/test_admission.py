"""Admission control: past RECLAIM_API_MAX_IN_FLIGHT requests a process answers 503
`overloaded` with Retry-After (JSON for the API, the "try again" page for a browser) without
serving the request; health, metrics and assets are never held; and every request's Temporal
calls end by its deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from sqlmodel import Session, select

from api.admission import Slots
from api.app import create_app
from reclaim.store.models import RecoveryCase
from reclaim.temporal.deadline import remaining, request_deadline
from tests.stack import Stack

PUBLIC = "https://reclaim.example"


@dataclass
class Held:
    """A test route that holds its slot until `release` is set."""

    entered: asyncio.Event
    release: asyncio.Event
    holders: int = 0


@asynccontextmanager
async def one_slot_app(
    stack: Stack, *, queue_timeout: float = 0.05, slots: int = 1
) -> AsyncIterator[tuple[httpx.AsyncClient, Held]]:
    """The API on the stack's services, serving one request at a time, with a route that
    keeps its slot busy for as long as the test wants."""
    settings = stack.settings.model_copy(
        update={"api_max_in_flight": slots, "api_queue_timeout": queue_timeout}
    )
    app: FastAPI = create_app(settings, stack.services)
    held = Held(asyncio.Event(), asyncio.Event())

    @app.post("/v1/test-hold")
    async def hold() -> dict[str, str]:
        held.holders += 1
        held.entered.set()
        await held.release.wait()
        return {"held": "done"}

    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=PUBLIC, timeout=30) as http,
    ):
        yield http, held


async def _busy(http: httpx.AsyncClient, held: Held) -> asyncio.Task[httpx.Response]:
    holder = asyncio.create_task(http.post("/v1/test-hold"))
    await asyncio.wait_for(held.entered.wait(), 10)
    return holder


async def test_a_burst_past_the_limit_is_told_to_come_back_while_the_slot_is_busy(stack: Stack):
    async with one_slot_app(stack) as (http, held):
        holder = await _busy(http, held)
        burst = await asyncio.gather(
            *(http.get(f"/v1/recovery/rc_{n:022d}") for n in range(5)), return_exceptions=True
        )
        # All five were answered while the one slot was still taken.
        assert not holder.done()
        held.release.set()
        assert (await holder).status_code == 200

    for response in burst:
        assert isinstance(response, httpx.Response)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"] == "overloaded"
        assert "Try again in a moment" in response.json()["message"]
        assert response.headers["content-security-policy"].startswith("default-src 'self'")


async def test_a_browser_gets_the_try_again_page_with_the_pages_headers(stack: Stack):
    async with one_slot_app(stack) as (http, held):
        holder = await _busy(http, held)
        page = await http.get("/recover", headers={"Accept": "text/html,*/*;q=0.8"})
        held.release.set()
        await holder

    assert page.status_code == 503
    assert page.headers["retry-after"] == "1"
    assert page.headers["content-type"].startswith("text/html")
    assert "Please try again" in page.text
    assert "Try again in a few seconds" in page.text
    assert 'href="/recover"' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["cache-control"] == "no-store"


async def test_health_metrics_and_assets_answer_while_the_process_is_full(stack: Stack):
    async with one_slot_app(stack) as (http, held):
        holder = await _busy(http, held)
        refused = await http.get("/v1/recovery/rc_0000000000000000000000")
        health = await http.get("/healthz")
        ready = await http.get("/readyz")
        asset = await http.get("/assets/app.css")
        metrics = await http.get("/metrics")
        held.release.set()
        await holder

    assert refused.status_code == 503
    assert health.status_code == 200
    assert ready.status_code == 200
    assert asset.status_code == 200
    assert metrics.status_code == 200
    assert 'reclaim_http_refused_total{form="json"} 1.0' in metrics.text


async def test_a_refused_recovery_request_opened_no_case_and_sent_nothing(stack: Stack):
    await stack.add_account("ada", "ada@example.com", None, "correct horse battery staple")

    async with one_slot_app(stack) as (http, held):
        holder = await _busy(http, held)
        refused = await http.post("/v1/recovery", json={"identifier": "ada@example.com"})
        with Session(stack.engine) as db:
            cases_while_full = db.exec(select(RecoveryCase)).all()
        held.release.set()
        await holder
        # Told to come back, the person does, and gets one case and one code.
        again = await http.post("/v1/recovery", json={"identifier": "ada@example.com"})
        code = await stack.mail.code_of_case(again.json()["case_id"])

    assert refused.status_code == 503
    assert refused.json()["error"] == "overloaded"
    assert cases_while_full == []
    assert again.status_code == 202
    with Session(stack.engine) as db:
        assert [c.case_id for c in db.exec(select(RecoveryCase)).all()] == [again.json()["case_id"]]
    assert len(stack.mail.to("ada@example.com")) == 1
    assert len(code) == 6


async def test_a_request_past_its_deadline_gets_503_and_the_case_is_unharmed(stack: Stack):
    await stack.add_account("bo", "bo@example.com", None, "correct horse battery staple")
    opened = await stack.open_case("bo@example.com")
    settings = stack.settings.model_copy(update={"api_request_timeout": 1e-9})
    app = create_app(settings, stack.services)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=PUBLIC) as late,
    ):
        answer = await late.get(f"/v1/recovery/{opened['case_id']}")

    assert answer.status_code == 503
    assert answer.json()["error"] == "temporarily_unavailable"
    assert "retry-after" in answer.headers
    status = await stack.http.get(f"/v1/recovery/{opened['case_id']}")
    assert status.status_code == 200
    assert status.json()["state"] == "awaiting_code"


async def _waiting(slots: Slots, count: int) -> None:
    """Once `count` acquirers wait (they start at the next turns of the loop)."""
    for _ in range(1000):
        if slots.waiting >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{slots.waiting} waiting, not {count}")


async def test_slots_go_to_waiters_in_order_and_a_wait_runs_out():
    slots = Slots(1, max_waiting=2)
    assert await slots.acquire(0)
    assert not await slots.acquire(0)  # full, and no wait allowed

    first = asyncio.create_task(slots.acquire(30))
    second = asyncio.create_task(slots.acquire(30))
    await _waiting(slots, 2)
    assert not await slots.acquire(30)  # two wait already: refused at once
    slots.release()
    assert await first
    assert not second.done()
    slots.release()
    assert await second
    slots.release()
    assert slots.in_flight == 0

    assert await slots.acquire(0)
    assert not await slots.acquire(0.01)  # the wait ran out: refused
    assert slots.waiting == 0
    slots.release()
    assert slots.in_flight == 0


async def test_a_client_that_leaves_while_waiting_does_not_keep_a_slot():
    slots = Slots(1)
    assert await slots.acquire(0)
    gone = asyncio.create_task(slots.acquire(30))
    await _waiting(slots, 1)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    slots.release()
    assert slots.in_flight == 0 and slots.waiting == 0


def test_the_deadline_shortens_what_is_left_and_never_below_a_millisecond():
    assert remaining() is None  # outside a request: calls keep their own timeout
    token = request_deadline.set(0.0)  # long past
    try:
        left = remaining()
        assert left is not None and left.total_seconds() == 0.001
    finally:
        request_deadline.reset(token)


async def test_past_three_quarters_of_the_slots_new_cases_wait_and_cases_under_way_go_on(
    stack: Stack,
):
    await stack.add_account("ada", "ada@example.com", None, "correct horse battery staple")
    async with one_slot_app(stack, slots=4) as (http, held):
        opened = await http.post("/v1/recovery", json={"identifier": "ada@example.com"})
        code = await stack.mail.code_of_case(opened.json()["case_id"])
        holders = [asyncio.create_task(http.post("/v1/test-hold")) for _ in range(3)]
        deadline = asyncio.get_running_loop().time() + 10
        while held.holders < 3:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        # Three of four slots taken: a new case is turned away, the case under way goes on.
        refused = await http.post("/v1/recovery", json={"identifier": "ada@example.com"})
        step = await http.post(f"/v1/recovery/{opened.json()['case_id']}/code", json={"code": code})
        held.release.set()
        await asyncio.gather(*holders)

    assert (refused.status_code, refused.json()["error"]) == (503, "overloaded")
    assert refused.headers["retry-after"] == "1"
    assert step.status_code == 200 and step.json()["reset_token"]
