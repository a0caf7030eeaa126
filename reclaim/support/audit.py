"""The staff audit: every action of a member of staff, in the console, over the API or from the
command line, with who, when, from where (the client's address), on which claim, what, and how
it ended. Read per claim in the console and by `reclaim staff audit`.

It never holds a key, a token, a session or a password: actions and the reviewers' own words.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reclaim.store.engine import in_session
from reclaim.store.models import StaffAudit, utcnow
from reclaim.temporal.proofs import RefusedAction

log = structlog.get_logger(__name__)

DETAIL_MAX = 2000


@dataclass(frozen=True)
class Origin:
    """Where an action comes from: the channel and the client's address."""

    channel: str  # "console", "api" or "cli"
    address: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    staff_name: str
    role: str | None
    channel: str
    address: str | None
    case_id: str | None
    action: str
    detail: str | None
    outcome: str


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def record(
        self,
        *,
        who: str,
        role: str | None,
        origin: Origin,
        action: str,
        outcome: str,
        case_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        entry = StaffAudit(
            at=utcnow(),
            staff_name=who[:64],
            role=role,
            channel=origin.channel,
            address=origin.address[:64] if origin.address else None,
            case_id=case_id,
            action=action[:32],
            detail=detail[:DETAIL_MAX] if detail else None,
            outcome=outcome[:64],
        )

        def work(session: Session) -> None:
            session.add(entry)
            session.commit()

        await in_session(self._engine, work)

    async def entries(
        self, *, case_id: str | None = None, by: str | None = None, limit: int = 200
    ) -> list[AuditEntry]:
        """Newest first."""

        def work(session: Session) -> list[AuditEntry]:
            query = select(StaffAudit)
            if case_id is not None:
                query = query.where(StaffAudit.case_id == case_id)
            if by is not None:
                query = query.where(StaffAudit.staff_name == by)
            rows = session.exec(
                query.order_by(col(StaffAudit.at).desc(), col(StaffAudit.id).desc()).limit(limit)
            ).all()
            return [
                AuditEntry(
                    r.at,
                    r.staff_name,
                    r.role,
                    r.channel,
                    r.address,
                    r.case_id,
                    r.action,
                    r.detail,
                    r.outcome,
                )
                for r in rows
            ]

        return await in_session(self._engine, work)


class RefusalRecorder:
    """Writes the worker's refusals of unproven updates (reclaim/temporal/proofs.py) to the
    audit, as sent "over temporal": the request reached a workflow without passing a door.

    Called from workflow code's thread, it only queues; one thread of its own writes, so a
    flood of forged updates never holds up a workflow task (beyond `BACKLOG` waiting, the
    rest are logged and not written)."""

    BACKLOG = 1000

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queue: queue.Queue[RefusedAction] = queue.Queue(self.BACKLOG)
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()

    def __call__(self, refused: RefusedAction) -> None:
        log.warning(
            "update refused: no proof of who sent it",
            case_id=refused.case_id,
            update=refused.update,
            claimed_by=refused.claimed_by,
            claimed_role=refused.claimed_role,
            problem=refused.problem,
        )
        try:
            self._queue.put_nowait(refused)
        except queue.Full:
            return
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_forever, name="reclaim-refusals", daemon=True
                )
                self._writer.start()

    def _write_forever(self) -> None:
        while True:
            refused = self._queue.get()
            entry = StaffAudit(
                at=utcnow(),
                staff_name=refused.claimed_by,
                role=refused.claimed_role,
                channel="temporal",
                address=None,
                case_id=refused.case_id,
                action=refused.update[:32],
                detail=refused.problem[:DETAIL_MAX],
                outcome="refused: forged_actor",
            )
            try:
                with Session(self._engine) as session:
                    session.add(entry)
                    session.commit()
            except Exception:  # the database is away: the log line above stays
                log.exception("could not record a refused update in the audit")
            finally:
                self._queue.task_done()
