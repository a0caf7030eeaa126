"""`/metrics` for Prometheus: the API's own requests, and the service's domain figures (the
whole deployment's, `reclaim.store.figures`).

One process (`reclaim api`): its own registry, with the process's CPU and memory. Several
(`reclaim api --workers N`): `reclaim api` points `PROMETHEUS_MULTIPROC_DIR` at a directory of
its own before the processes start, each writes its requests there, and whichever answers a
scrape sums them all (prometheus_client's multiprocess mode); the per-process CPU and memory
figures are then left out, since one scrape would only show the process that answered."""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reclaim.logs import bound_case
from reclaim.store.figures import DomainCollector

# Self-service steps answer in milliseconds; a claim submission hashes for seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """One registry per app (tests run several apps in one process). The domain figures
    join once the app has its database (`watch`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        own = self.registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Every process's figures from the shared directory; this process's metrics are
            # written there (through a registry of their own, so none is counted twice).
            multiprocess.MultiProcessCollector(self.registry)
            own = CollectorRegistry()
        else:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self._domain: DomainCollector | None = None
        self.requests = Histogram(
            "reclaim_http_request_duration_seconds",
            "HTTP requests by method, route template and status, and how long they took.",
            labelnames=["method", "route", "status"],
            buckets=BUCKETS,
            registry=own,
        )
        self.refused = Counter(
            "reclaim_http_refused",
            "Requests answered 503 `overloaded` by admission control, without being served: "
            "`json` (the API) or `page` (a person's browser).",
            labelnames=["form"],
            registry=own,
        )

    def watch(self, engine: Engine) -> None:
        self.forget()
        self._domain = DomainCollector(engine)
        self.registry.register(self._domain)

    def forget(self) -> None:
        if self._domain is not None:
            self.registry.unregister(self._domain)
            self._domain = None

    def exposition(self, accounts: dict[str, int]) -> tuple[bytes, str]:
        """The text Prometheus reads, with the directory's account counts."""
        if self._domain is not None:
            self._domain.accounts = accounts
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestObserver:
    """Around every request: the case id its path names bound to each log line, and its
    duration recorded under the route's template (`/v1/recovery/{case_id}/code`), never
    the raw path, so ids and typos do not become label values."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            with bound_case(scope.get("path", "")):
                await self.app(scope, receive, observing_send)
        finally:
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )
