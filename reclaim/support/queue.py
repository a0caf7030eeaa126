"""The reviewers' queue, read from Temporal visibility: the claims the API lists
(`GET /support/claims`) and the console's queue page with its exact counts. It lists and
counts workflows; it never starts, updates or queries one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import Client
from temporalio.common import SearchAttributeKey

from reclaim.errors import Unauthorized
from reclaim.settings import Settings
from reclaim.store.models import utcnow
from reclaim.support.claims import NOT_FOUND
from reclaim.support.contracts import ClaimReason, ClaimState, Reviewer, Risk
from reclaim.support.members import STAFF_NAME
from reclaim.temporal import calls
from reclaim.temporal import search_attributes as sa

QUEUE_VIEWS = ("mine", "unassigned", "escalated", "high_risk")


@dataclass(frozen=True)
class QueuedClaim:
    case_id: str
    state: str
    reason: str | None
    risk: str | None
    assignee: str | None
    escalated: bool
    opened_at: datetime
    next_deadline: datetime | None


@dataclass(frozen=True)
class QueueFilter:
    """The console queue's filters, each already checked: a view (`QUEUE_VIEWS`), a reason,
    a state."""

    view: str | None = None
    reason: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class QueuePage:
    claims: list[QueuedClaim]  # the `limit` the filter keeps whose deadline is nearest, in order
    counts: dict[str, int]  # "all", each view, "reason:<r>", "state:<s>": exact, every open claim
    matching: int  # how many open claims the filter keeps (more than shown when truncated)
    limit: int  # at most this many are shown (RECLAIM_CONSOLE_QUEUE_LIMIT)

    @property
    def truncated(self) -> bool:
        return self.matching > len(self.claims)


def _equals(key: SearchAttributeKey[str], value: str) -> str:
    """A keyword clause; values come from enums or checked names, never raw from a form."""
    assert '"' not in value and "\\" not in value
    return f'{key.name} = "{value}"'


def _where(clauses: list[str]) -> str:
    return " AND ".join(clauses)


class ClaimQueue:
    """The open (or chosen) support claims of this deployment, from visibility."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._timeout = timedelta(seconds=settings.temporal_rpc_timeout)

    async def queue(self, filters: dict[str, str | bool], limit: int) -> list[QueuedClaim]:
        """This deployment's claims (its task queue) from Temporal visibility, oldest first.
        `filters` hold values already checked against their enums or patterns: nothing typed
        reaches the query raw."""
        clauses = [f'{sa.CASE_KIND.name} = "{sa.SUPPORT_CLAIM}"', f'TaskQueue = "{self._queue}"']
        keys = {"state": sa.CASE_STATE, "reason": sa.REASON, "risk": sa.RISK}
        keys["assignee"] = sa.ASSIGNEE
        for name, value in filters.items():
            if name == "escalated":
                clauses.append(f"{sa.ESCALATED.name} = {'true' if value else 'false'}")
            else:
                clauses.append(f'{keys[name].name} = "{value}"')
        if "state" not in filters:
            clauses.append('ExecutionStatus = "Running"')
        found = await self._list(" AND ".join(clauses), limit)
        return sorted(found, key=lambda c: c.opened_at)

    async def console_queue(self, member: Reviewer, chosen: QueueFilter) -> QueuePage:
        """The open claims `chosen` keeps, the nearest deadline first (none last), at most
        `RECLAIM_CONSOLE_QUEUE_LIMIT` of them; and the exact count of each filter over every
        open claim. Filters and counts are visibility queries: nothing is filtered or counted
        here over a truncated list."""
        base = [
            f'{sa.CASE_KIND.name} = "{sa.SUPPORT_CLAIM}"',
            f'TaskQueue = "{self._queue}"',
            'ExecutionStatus = "Running"',
        ]
        views = {name: self._view_clause(name, member) for name in QUEUE_VIEWS}
        filters: dict[str, list[str]] = {"all": []}
        filters.update({name: [clause] for name, clause in views.items()})
        filters.update({f"reason:{r.value}": [_equals(sa.REASON, r.value)] for r in ClaimReason})
        filters.update(
            {f"state:{s.value}": [_equals(sa.CASE_STATE, s.value)] for s in ClaimState if s.is_open}
        )
        kept = [
            *([views[chosen.view]] if chosen.view else []),
            *([_equals(sa.REASON, chosen.reason)] if chosen.reason else []),
            *([_equals(sa.CASE_STATE, chosen.state)] if chosen.state else []),
        ]
        names = list(filters)
        counted = await asyncio.gather(
            *(self._count(_where(base + filters[name])) for name in names),
            self._count(_where(base + kept)),
        )
        counts = dict(zip(names, counted, strict=False))
        limit = self._settings.console_queue_limit
        claims = await self._soonest(_where(base + kept), counted[-1], limit)
        return QueuePage(claims, counts, matching=counted[-1], limit=limit)

    @staticmethod
    def _view_clause(name: str, member: Reviewer) -> str:
        if name == "mine":
            if not STAFF_NAME.match(member.name):  # names are checked where they are made
                raise Unauthorized("invalid_name", "This staff name cannot be searched for.")
            return _equals(sa.ASSIGNEE, member.name)
        return {
            "unassigned": f"{sa.ASSIGNEE.name} IS NULL",
            "escalated": f"{sa.ESCALATED.name} = true",
            "high_risk": _equals(sa.RISK, Risk.HIGH.value),
        }[name]

    async def _count(self, query: str) -> int:
        async def count() -> int:
            found = await self._client.count_workflows(query, rpc_timeout=self._timeout)
            return found.count

        return await calls.call(count, NOT_FOUND)

    async def _soonest(self, query: str, matching: int, limit: int) -> list[QueuedClaim]:
        """The `limit` claims of `query` whose next deadline is nearest (none last).

        Visibility on SQL (the dev server, PostgreSQL, MySQL) has no ORDER BY and lists the
        newest first, so a list cut at `limit` would drop the oldest, most overdue claims.
        When more than twice `limit` match, counts of `deadline <= t` find a moment whose
        window holds between `limit` and twice `limit` claims; that window is listed whole
        and sorted here."""
        due = sa.NEXT_DEADLINE.name
        if matching <= 2 * limit:
            found = await self._list(query, 2 * limit + 1)
        elif (dated := await self._count(f"{query} AND {due} IS NOT NULL")) <= limit:
            found = await self._list(f"{query} AND {due} IS NOT NULL", dated + limit)
            found += await self._list(f"{query} AND {due} IS NULL", limit)
        else:

            async def within(moment: datetime) -> int:
                return await self._count(f'{query} AND {due} <= "{moment.isoformat()}"')

            # Bounds: fewer than `limit` are due by `low`, `at_high` (at least `limit`) by `high`.
            now, step, longest = utcnow(), timedelta(minutes=1), timedelta(days=36_500)
            high, at_high = now, await within(now)
            low: datetime | None = None
            while low is None:  # back from now, while too many are due by then
                if at_high < limit:
                    low = high
                elif step > longest:
                    low = datetime(1970, 1, 1, tzinfo=now.tzinfo)
                else:
                    seen = await within(now - step)
                    if seen < limit:
                        low = now - step
                    else:
                        high, at_high, step = now - step, seen, step * 2
            step = timedelta(minutes=1)
            while at_high < limit:  # forward from now, while too few are due by then
                if step > longest:
                    high, at_high = datetime(9999, 1, 1, tzinfo=now.tzinfo), dated
                else:
                    low, high, at_high = high, now + step, await within(now + step)
                    step *= 2
            # Halve the window until at most twice `limit` are due by `high`, or it cannot be
            # cut finer (claims due within the same microsecond).
            while at_high > 2 * limit and high - low > timedelta(microseconds=1):
                middle = low + (high - low) / 2
                seen = await within(middle)
                if seen < limit:
                    low = middle
                else:
                    high, at_high = middle, seen
            found = await self._list(f'{query} AND {due} <= "{low.isoformat()}"', limit)
            found += await self._list(
                f'{query} AND {due} > "{low.isoformat()}" AND {due} <= "{high.isoformat()}"',
                2 * limit,
            )
        far = datetime.max.replace(tzinfo=utcnow().tzinfo)
        found.sort(key=lambda c: (c.next_deadline or far, c.opened_at))
        return found[:limit]

    async def _list(self, query: str, limit: int) -> list[QueuedClaim]:
        async def fetch() -> list[QueuedClaim]:
            found: list[QueuedClaim] = []
            async for execution in self._client.list_workflows(
                query, limit=limit, rpc_timeout=self._timeout
            ):
                attrs = execution.typed_search_attributes
                found.append(
                    QueuedClaim(
                        case_id=execution.id,
                        state=attrs.get(sa.CASE_STATE) or ClaimState.SUBMITTED.value,
                        reason=attrs.get(sa.REASON),
                        risk=attrs.get(sa.RISK),
                        assignee=attrs.get(sa.ASSIGNEE),
                        escalated=bool(attrs.get(sa.ESCALATED)),
                        opened_at=execution.start_time,
                        next_deadline=attrs.get(sa.NEXT_DEADLINE),
                    )
                )
            return found

        return await calls.call(fetch, NOT_FOUND)

    @property
    def _queue(self) -> str:
        return self._settings.task_queue
