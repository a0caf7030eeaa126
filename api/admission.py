"""Admission control: a process serves at most `RECLAIM_API_MAX_IN_FLIGHT` requests at once.

Past that, a request waits for a slot in arrival order for at most `RECLAIM_API_QUEUE_TIMEOUT`
seconds (not at all when as many already wait as are served), then is answered at once,
without being served (so nothing was done: no case opened, no code counted): 503 with
`Retry-After`, as JSON `{"error": "overloaded", ...}` for the API, or the "please try again"
page for a person's browser. Under a wave of requests the process keeps serving the ones it
took at the speed it can, instead of taking them all and answering every one late; the others
hear at once that they should come back.

Every request also gets a deadline when it arrives, `RECLAIM_API_REQUEST_TIMEOUT` later: the
Temporal calls made for it are cut to what is left (`reclaim/temporal/deadline.py`), so time
spent waiting for a slot is taken from the time it may then wait on a workflow.

A request that opens a new case is admitted only while a quarter of the slots are free and
nothing waits: past saturation the steps of the cases under way go first.

Health checks, `/metrics` and static assets are never held: they must answer while the
process is busy, and cost next to nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import ApiError, wants_page
from api.metrics import ApiMetrics
from api.pages.render import render, text_for
from api.pages.words import Problem
from reclaim.settings import Settings
from reclaim.temporal.deadline import request_deadline

# Seconds a refused client is asked to wait before trying again: a slot frees up in well
# under a second at saturation, and a longer wait would leave the process idle after a wave.
RETRY_AFTER = 1
BYPASS_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/favicon.ico"})
BYPASS_PREFIXES = ("/assets/",)
OVERLOADED = (
    "The service is busy with other requests right now and did not start yours: nothing was "
    "done. Try again in a moment."
)


class Slots:
    """At most `limit` holders; the others wait in arrival order, each for up to a timeout.
    A freed slot goes straight to the oldest waiter, so a newcomer cannot jump the queue.
    With `max_waiting` already waiting a newcomer is refused at once: behind that many it
    would most likely wait out its timeout for nothing."""

    def __init__(self, limit: int, max_waiting: int | None = None) -> None:
        self.limit = limit
        self.max_waiting = limit if max_waiting is None else max_waiting
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, wait: float, *, below: int | None = None) -> bool:
        """True once a slot is held (then `release` it), False after `wait` seconds. With
        `below`, only while fewer than that many are held, and without waiting."""
        if self.in_flight < min(self.limit, below or self.limit) and not self._waiters:
            self.in_flight += 1
            return True
        if below is not None or wait <= 0 or len(self._waiters) >= self.max_waiting:
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(wait):
                await waiter
            return True
        except TimeoutError:
            # Handed a slot in the same instant the wait ran out: keep it.
            return waiter.done() and not waiter.cancelled()
        except asyncio.CancelledError:
            # The client went away: a slot handed over meanwhile goes to the next one.
            if waiter.done() and not waiter.cancelled():
                self.release()
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands; in_flight stays
                return
        self.in_flight -= 1

    @property
    def waiting(self) -> int:
        return len(self._waiters)


# Requests that open a new case (a recovery, a support claim), from the API or a page. Past
# saturation they are the first turned away: the steps of cases already under way keep a
# quarter of the slots and may wait for one, so a wave slows the arrival of new cases instead
# of every case at once (more cases in flight cost every process more per case).
OPENERS = frozenset({"/v1/recovery", "/v1/support-cases", "/recover", "/support"})


def opens_a_case(scope: Scope) -> bool:
    return scope.get("method") == "POST" and scope.get("path", "").rstrip("/") in OPENERS


def exempt(path: str) -> bool:
    return path in BYPASS_PATHS or path.startswith(BYPASS_PREFIXES)


class Admission:
    """The ASGI middleware; `create_app` installs it inside the security headers (a refusal
    page carries the same CSP as every page) and the request metrics (a refusal is counted
    there too, as route `unmatched`, status 503)."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: ApiMetrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.slots = Slots(settings.api_max_in_flight)
        self.openers_below = max(1, settings.api_max_in_flight * 3 // 4)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or exempt(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        deadline = request_deadline.set(time.monotonic() + self.settings.api_request_timeout)
        try:
            below = self.openers_below if opens_a_case(scope) else None
            if not await self.slots.acquire(self.settings.api_queue_timeout, below=below):
                await self._refuse(scope, receive, send)
                return
            try:
                await self.app(scope, receive, send)
            finally:
                self.slots.release()
        finally:
            request_deadline.reset(deadline)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {"Retry-After": str(RETRY_AFTER), "Cache-Control": "no-store"}
        response: Response
        if wants_page(scope):
            self.metrics.refused.labels("page").inc()
            response = self._page(Request(scope, receive))
            response.headers.update(headers)
        else:
            self.metrics.refused.labels("json").inc()
            response = ApiError(503, "overloaded", OVERLOADED, headers=headers).response()
        await response(scope, receive, send)

    def _page(self, request: Request) -> HTMLResponse:
        t = text_for(request, self.settings)
        problem = Problem(t("We cannot answer right now. Try again in a few seconds."))
        return render(request, self.settings, "unavailable.html", 503, problem=problem)
