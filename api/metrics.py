"""`/metrics` for Prometheus: the API's own requests, and the service's domain figures read
from SQL at each scrape.

Request metrics are this process's. Domain figures (cases, codes, deliveries, claims,
accounts) are totals over the whole deployment, read from the database that every worker
writes to, so every API replica reports the same numbers: aggregate them with `max`, never
`sum`. They are counters while rows are kept (a purge wipes contacts, not rows).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reclaim.logs import bound_case
from reclaim.models import (
    Account,
    Notification,
    NotificationKind,
    RecoveryCase,
    SupportClaim,
)

SELF_SERVICE = "self_service"
SUPPORT_CLAIM = "support_claim"
CLAIM_CHANNEL = "email"  # a claimant is answered at the address they gave

# Self-service steps answer in milliseconds; a claim submission hashes for seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DomainCollector(Collector):
    """Domain figures from SQL, a handful of grouped counts per scrape."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        with self._engine.connect() as db:
            yield from self._cases(db)
            yield from self._notifications(db)
            yield from self._claims(db)
            yield from self._accounts(db)

    def _cases(self, db: Connection) -> Iterator[Metric]:
        opened = CounterMetricFamily(
            "reclaim_cases_opened",
            "Recovery cases opened, by kind and channel.",
            labels=["kind", "channel"],
        )
        closed = CounterMetricFamily(
            "reclaim_cases_closed",
            "Recovery cases closed, by kind, channel and final state (completed, expired, "
            "locked, superseded, cancelled; approved, rejected, abandoned).",
            labels=["kind", "channel", "state"],
        )
        still_open = GaugeMetricFamily(
            "reclaim_cases_open", "Recovery cases open now, by kind.", labels=["kind"]
        )
        self_service = db.execute(
            select(col(RecoveryCase.channel), col(RecoveryCase.state), func.count()).group_by(
                col(RecoveryCase.channel), col(RecoveryCase.state)
            )
        ).all()
        claims = db.execute(
            select(col(SupportClaim.state), func.count()).group_by(col(SupportClaim.state))
        ).all()
        for kind, rows in (
            (SELF_SERVICE, self_service),
            (SUPPORT_CLAIM, [(CLAIM_CHANNEL, state, n) for state, n in claims]),
        ):
            per_channel: dict[str, int] = {}
            open_now = 0
            for channel, state, count in rows:
                per_channel[channel] = per_channel.get(channel, 0) + count
                if state is None:
                    open_now += count
                else:
                    closed.add_metric([kind, channel, state], count)
            for channel, count in per_channel.items():
                opened.add_metric([kind, channel], count)
            still_open.add_metric([kind], open_now)
        yield from (opened, closed, still_open)

    def _notifications(self, db: Connection) -> Iterator[Metric]:
        codes = CounterMetricFamily(
            "reclaim_codes_sent", "One-time codes delivered, by channel.", labels=["channel"]
        )
        sent = CounterMetricFamily(
            "reclaim_notifications_sent",
            "Messages delivered, by kind (code, password_changed, ...) and channel.",
            labels=["kind", "channel"],
        )
        failed = CounterMetricFamily(
            "reclaim_delivery_failures",
            "Delivery attempts the mail server or SMS provider refused or never answered.",
            labels=["kind", "channel"],
        )
        pending = GaugeMetricFamily(
            "reclaim_notifications_pending",
            "Messages owed and not delivered yet (a rising figure is an outage).",
            labels=["kind", "channel"],
        )
        rows = db.execute(
            select(
                col(Notification.kind),
                col(Notification.channel),
                func.count(col(Notification.sent_at)),
                func.sum(col(Notification.failures)),
                func.count(),
            ).group_by(col(Notification.kind), col(Notification.channel))
        ).all()
        for kind, channel, delivered_count, failures, count in rows:
            delivered_count, failures = int(delivered_count or 0), int(failures or 0)
            sent.add_metric([kind, channel], delivered_count)
            failed.add_metric([kind, channel], failures)
            pending.add_metric([kind, channel], count - delivered_count)
            if kind == NotificationKind.CODE:
                codes.add_metric([channel], delivered_count)
        yield from (codes, sent, failed, pending)

    def _claims(self, db: Connection) -> Iterator[Metric]:
        opened = CounterMetricFamily(
            "reclaim_claims_opened", "Support claims opened, by reason.", labels=["reason"]
        )
        escalated = CounterMetricFamily(
            "reclaim_claims_escalated",
            "Support claims that passed a deadline with nobody acting, by reason.",
            labels=["reason"],
        )
        rows = db.execute(
            select(
                col(SupportClaim.reason),
                func.count(),
                func.count(col(SupportClaim.escalated_at)),
            ).group_by(col(SupportClaim.reason))
        ).all()
        for reason, count, escalated_count in rows:
            opened.add_metric([reason], count)
            escalated.add_metric([reason], escalated_count)
        yield from (opened, escalated)

    def _accounts(self, db: Connection) -> Iterator[Metric]:
        accounts = GaugeMetricFamily("reclaim_accounts", "Accounts by status.", labels=["status"])
        for status, count in db.execute(
            select(col(Account.status), func.count()).group_by(col(Account.status))
        ).all():
            accounts.add_metric([status], count)
        yield accounts


class ApiMetrics:
    """One registry per app (tests run several apps in one process). The domain figures
    join once the app has its database (`watch`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._domain: DomainCollector | None = None
        self.requests = Histogram(
            "reclaim_http_request_duration_seconds",
            "HTTP requests by method, route template and status, and how long they took.",
            labelnames=["method", "route", "status"],
            buckets=BUCKETS,
            registry=self.registry,
        )

    def watch(self, engine: Engine) -> None:
        self.forget()
        self._domain = DomainCollector(engine)
        self.registry.register(self._domain)

    def forget(self) -> None:
        if self._domain is not None:
            self.registry.unregister(self._domain)
            self._domain = None

    def exposition(self) -> tuple[bytes, str]:
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
