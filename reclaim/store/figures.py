"""The service's domain figures for `/metrics`, read from SQL at each scrape: cases opened and
closed, codes and notices sent, delivery failures, claims escalated, and accounts by status
(those from the directory, handed in by the caller).

They are totals over the whole deployment, read from the database every worker writes to, so
every API replica reports the same numbers: aggregate them with `max`, never `sum`. They are
counters while rows are kept (a purge wipes contacts, not rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from reclaim.store.models import Notification, NotificationKind, RecoveryCase, SupportClaim

SELF_SERVICE = "self_service"
SUPPORT_CLAIM = "support_claim"
CLAIM_CHANNEL = "email"  # a claimant is answered at the address they gave


class DomainCollector(Collector):
    """Domain figures from SQL, a handful of grouped counts per scrape."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # Accounts by status, from the directory (which may not be this database): set by
        # the caller before each scrape.
        self.accounts: dict[str, int] = {}

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering the collector reads no SQL (the figures are read at each
        scrape), so an API whose database is restarting still starts."""
        return []

    def collect(self) -> Iterable[Metric]:
        with self._engine.connect() as db:
            yield from self._cases(db)
            yield from self._notifications(db)
            yield from self._claims(db)
        yield self._accounts()

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

    def _accounts(self) -> Metric:
        accounts = GaugeMetricFamily("reclaim_accounts", "Accounts by status.", labels=["status"])
        for status, count in sorted(self.accounts.items()):
            accounts.add_metric([status], count)
        return accounts
