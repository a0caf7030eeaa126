"""The reviewers' queue, read from Reclaim's own database (`claim_queue_row`, kept by each
claim's workflow, `reclaim.support.queue_rows`): the claims the API lists (`GET
/v1/staff/cases`, a page at a time) and the console's queue page with its exact counts. A
refresh is two SQL statements, whatever the number of claims; Temporal visibility is read only
by `rebuild`, which fills the table in for claims begun before it existed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement
from temporalio.client import Client

from reclaim.errors import NotFound, Refused, Unauthorized
from reclaim.settings import Settings
from reclaim.store.models import ClaimQueueRow, utcnow
from reclaim.support.claims import NOT_FOUND, Claims
from reclaim.support.contracts import ClaimReason, ClaimState, QueueRowChange, Reviewer, Risk
from reclaim.support.members import STAFF_NAME
from reclaim.support.queue_rows import After, QueueRows, due_by, equals, is_open, unassigned
from reclaim.temporal import calls
from reclaim.temporal import search_attributes as sa

QUEUE_VIEWS = ("mine", "unassigned", "escalated", "high_risk", "due_soon")
# "Due soon": the claims whose next deadline (first response, decision, the claimant's answer,
# a confirmation) falls within this, or has passed.
DUE_SOON = timedelta(days=1)
REBUILD_AT_ONCE = 16  # claims queried at once by `rebuild`


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


def page_after(claim: QueuedClaim) -> After:
    """The place in the queue just past `claim`."""
    return After(claim.next_deadline, claim.case_id)


def encode_cursor(after: After) -> str:
    """The opaque `after` of the next page: base64url JSON of the last claim's place."""
    place = {
        "d": after.next_deadline.isoformat() if after.next_deadline else None,
        "id": after.case_id,
    }
    raw = json.dumps(place, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> After:
    """A cursor `encode_cursor` made, or `invalid_cursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        place = json.loads(raw)
        due, case_id = place["d"], place["id"]
        if not isinstance(case_id, str) or not 0 < len(case_id) <= 40 or set(place) != {"d", "id"}:
            raise ValueError(case_id)
        deadline = None if due is None else datetime.fromisoformat(due)
        if deadline is not None and deadline.tzinfo is None:
            raise ValueError(due)
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError) as err:
        raise Refused("invalid_cursor", "This page cursor is not one the queue gave.") from err
    return After(deadline, case_id)


def _claim(row: ClaimQueueRow) -> QueuedClaim:
    return QueuedClaim(
        case_id=row.case_id,
        state=row.state,
        reason=row.reason,
        risk=row.risk,
        assignee=row.assignee,
        escalated=row.escalated,
        opened_at=row.opened_at,
        next_deadline=row.next_deadline,
    )


class ClaimQueue:
    """The open (or chosen) support claims of this deployment, from `claim_queue_row`."""

    def __init__(self, client: Client, rows: QueueRows, settings: Settings) -> None:
        self._client = client
        self._rows = rows
        self._settings = settings
        self._timeout = timedelta(seconds=settings.temporal_rpc_timeout)

    async def queue(
        self, filters: dict[str, str | bool], limit: int, after: After | None = None
    ) -> list[QueuedClaim]:
        """At most `limit` claims `filters` keep (open ones unless a state is asked for), the
        nearest deadline first (none last), then by case id; with `after`, the claims past
        that place (a page of the API). `filters` hold values already checked against their
        enums or patterns."""
        where = [equals(name, value) for name, value in filters.items()]
        if "state" not in filters:
            where.append(is_open())
        return [_claim(row) for row in await self._rows.page(where, limit, after)]

    async def console_queue(self, member: Reviewer, chosen: QueueFilter) -> QueuePage:
        """The open claims `chosen` keeps, the nearest deadline first (none last), at most
        `RECLAIM_CONSOLE_QUEUE_LIMIT` of them; and the exact count of each filter over every
        open claim: one statement counts them all, one lists the page."""
        views = {name: self._view_clause(name, member) for name in QUEUE_VIEWS}
        filters: dict[str, list[ColumnElement[bool]]] = {"all": []}
        filters.update({name: [clause] for name, clause in views.items()})
        filters.update({f"reason:{r.value}": [equals("reason", r.value)] for r in ClaimReason})
        filters.update(
            {f"state:{s.value}": [equals("state", s.value)] for s in ClaimState if s.is_open}
        )
        kept = [
            *([views[chosen.view]] if chosen.view else []),
            *([equals("reason", chosen.reason)] if chosen.reason else []),
            *([equals("state", chosen.state)] if chosen.state else []),
        ]
        counts = await self._rows.counts({**filters, "": kept})
        matching = counts.pop("")
        limit = self._settings.console_queue_limit
        rows = await self._rows.page([is_open(), *kept], limit)
        return QueuePage([_claim(r) for r in rows], counts, matching=matching, limit=limit)

    async def rebuild(self, claims: Claims) -> int:
        """Fill `claim_queue_row` in from Temporal: every claim workflow of this deployment
        (open and closed, as long as Temporal keeps them), each one's state read through the
        claims' door and written with its version, so a rebuild racing live changes never
        takes a row backwards. How many rows were written (or already as new)."""
        ids = await self._claim_ids()
        gate = asyncio.Semaphore(REBUILD_AT_ONCE)

        async def one(case_id: str) -> bool:
            async with gate:
                try:
                    view = await claims.staff_view(case_id)
                except NotFound:  # gone since it was listed (purged, out of retention)
                    return False
                await self._rows.upsert(
                    QueueRowChange(
                        case_id=view.case_id,
                        version=view.version,
                        state=view.state.value,
                        reason=view.reason.value,
                        risk=view.risk.value,
                        assignee=view.assignee,
                        escalated=view.escalated,
                        opened_at=view.opened_at,
                        next_deadline=view.next_deadline,
                    )
                )
                return True

        written = await asyncio.gather(*(one(case_id) for case_id in ids))
        return sum(written)

    @staticmethod
    def _view_clause(name: str, member: Reviewer) -> ColumnElement[bool]:
        if name == "mine":
            if not STAFF_NAME.match(member.name):  # names are checked where they are made
                raise Unauthorized("invalid_name", "This staff name cannot be searched for.")
            return equals("assignee", member.name)
        return {
            "unassigned": unassigned(),
            "escalated": equals("escalated", True),
            "high_risk": equals("risk", Risk.HIGH.value),
            "due_soon": due_by(utcnow() + DUE_SOON),
        }[name]

    async def _claim_ids(self) -> list[str]:
        query = f'{sa.CASE_KIND.name} = "{sa.SUPPORT_CLAIM}" AND TaskQueue = "{self._queue}"'

        async def fetch() -> list[str]:
            return [
                execution.id
                async for execution in self._client.list_workflows(query, rpc_timeout=self._timeout)
            ]

        return await calls.call(fetch, NOT_FOUND)

    @property
    def _queue(self) -> str:
        return self._settings.task_queue
