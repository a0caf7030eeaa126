"""The reviewers' queue in Reclaim's own database: one `claim_queue_row` per support claim,
kept by the claim's workflow (an activity at every change) and read by `ClaimQueue`.

A row carries what the claim's search attributes carry (no personal data) and the workflow's
change counter, `version`. Rows arrive retried, late and out of order (each change's activity
runs in the background): `upsert` is one statement that writes a row only over an older
version, so the table always ends at each claim's newest change, and a rebuild racing live
changes never takes a claim backwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from reclaim.store.engine import in_session
from reclaim.store.models import ClaimQueueRow, utcnow
from reclaim.support.contracts import ClaimState, QueueRowChange

TABLE = ClaimQueueRow.__table__  # type: ignore[attr-defined]
OPEN_STATES = tuple(s.value for s in ClaimState if s.is_open)


@dataclass(frozen=True)
class After:
    """Where a page of the queue ends: the last claim's deadline (None: no deadline, the
    tail of the queue) and case id. The next page starts strictly after it."""

    next_deadline: datetime | None
    case_id: str


def row_of(change: QueueRowChange) -> dict[str, Any]:
    return {
        "case_id": change.case_id,
        "state": change.state,
        "is_open": change.state in OPEN_STATES,
        "reason": change.reason,
        "risk": change.risk,
        "assignee": change.assignee,
        "escalated": change.escalated,
        "opened_at": change.opened_at,
        "next_deadline": change.next_deadline if change.state in OPEN_STATES else None,
        "version": change.version,
        "updated_at": utcnow(),
    }


def upsert_statement(dialect: str, row: dict[str, Any]) -> Any:
    """INSERT … ON CONFLICT (case_id) DO UPDATE … WHERE the stored version is older."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(TABLE).values(**row)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[TABLE.c.case_id],
        set_={name: excluded[name] for name in row if name != "case_id"},
        where=TABLE.c.version < excluded.version,
    )


class QueueRows:
    """The `claim_queue_row` table: written by the claim's activity and the rebuild, read by
    the queue."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def upsert(self, change: QueueRowChange) -> None:
        """Write the claim's row unless it already holds this version or a newer one."""
        statement = upsert_statement(self._engine.dialect.name, row_of(change))

        def work(session: Session) -> None:
            session.execute(statement)
            session.commit()

        await in_session(self._engine, work)

    async def get(self, case_id: str) -> ClaimQueueRow | None:
        return await in_session(self._engine, lambda s: s.get(ClaimQueueRow, case_id))

    async def page(
        self, where: Iterable[ColumnElement[bool]], limit: int, after: After | None = None
    ) -> list[ClaimQueueRow]:
        """At most `limit` rows `where` keeps, the nearest deadline first (none last), then by
        case id; with `after`, those strictly after it in that order (keyset pagination: a
        page neither skips nor repeats a claim that did not move meanwhile)."""
        clauses = list(where)
        if after is not None:
            clauses.append(_beyond(after))
        statement = (
            select(ClaimQueueRow)
            .where(*clauses)
            .order_by(col(ClaimQueueRow.next_deadline).asc().nulls_last(), ClaimQueueRow.case_id)
            .limit(limit)
        )

        def work(session: Session) -> list[ClaimQueueRow]:
            return list(session.scalars(statement))

        return await in_session(self._engine, work)

    async def counts(self, filters: dict[str, list[ColumnElement[bool]]]) -> dict[str, int]:
        """How many open claims each filter keeps: one statement, one filtered count each."""
        columns = [
            func.count().filter(and_(true(), *clauses)).label(f"c{n}")
            for n, clauses in enumerate(filters.values())
        ]
        statement = select(*columns).select_from(TABLE).where(TABLE.c.is_open == true())

        def work(session: Session) -> dict[str, int]:
            found = session.execute(statement).one()
            return {name: int(found[n] or 0) for n, name in enumerate(filters)}

        return await in_session(self._engine, work)

    async def clear(self) -> int:
        """Empty the table (for tests and a rebuild from scratch); how many rows went."""

        def work(session: Session) -> int:
            gone = session.scalar(select(func.count()).select_from(TABLE))
            session.execute(TABLE.delete())
            session.commit()
            return int(gone or 0)

        return await in_session(self._engine, work)


def _beyond(after: After) -> ColumnElement[bool]:
    due, case_id = col(ClaimQueueRow.next_deadline), col(ClaimQueueRow.case_id)
    if after.next_deadline is None:
        return and_(due.is_(None), case_id > after.case_id)
    return or_(
        due > after.next_deadline,
        and_(due == after.next_deadline, case_id > after.case_id),
        due.is_(None),
    )


# The clauses the queue filters on, for `page` and `counts`.
def is_open() -> ColumnElement[bool]:
    return col(ClaimQueueRow.is_open) == true()


def equals(name: str, value: str | bool) -> ColumnElement[bool]:
    column = TABLE.c[name]
    if isinstance(value, bool):
        return column == (true() if value else false())
    return column == value


def due_by(moment: datetime) -> ColumnElement[bool]:
    """A deadline at or before `moment` (overdue ones included); none is never due."""
    deadline = col(ClaimQueueRow.next_deadline)
    return and_(deadline.is_not(None), deadline <= moment)


def unassigned() -> ColumnElement[bool]:
    return col(ClaimQueueRow.assignee).is_(None)
