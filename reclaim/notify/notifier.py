"""Sending what a case owes people, exactly once per case, kind, attempt and channel.

Each send first claims a row in the `notification` table (a code is generated then, and kept
there sealed with a key derived from the server secret), then hands the message to the
courier, then marks the row sent. An activity retried after a crash therefore finds the row
and sends the same message again at most: never a second, different code.

What to say and to whom is the features' business: they compose the message and name the
contacts; this module only keeps the ledger and delivers.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from reclaim.contracts import Channel
from reclaim.notify.courier import Courier
from reclaim.notify.errors import Undeliverable
from reclaim.notify.messages import Message
from reclaim.security import Keys, new_code
from reclaim.store.models import FORGOTTEN, Notification, utcnow

log = structlog.get_logger(__name__)

SEND_TIMES_KEPT = 50
DEFAULT_SEND_SECONDS = 0.05  # before the first real send of a process
_PROVIDER_ID_LENGTH = Notification.__table__.c.provider_id.type.length  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _Claim:
    row_id: int
    sent: bool
    code: str | None


@dataclass(frozen=True)
class Contact:
    channel: Channel
    address: str


class Notifier:
    def __init__(self, engine: Engine, courier: Courier, keys: Keys, message_domain: str) -> None:
        self._engine = engine
        self._courier = courier
        self._keys = keys
        self._domain = message_domain  # the right-hand side of every Message-ID
        # How long the last sends took, by channel (claim, delivery, record): what a case
        # with nothing to send waits instead, so that it is not done sooner.
        self._send_seconds: dict[Channel, deque[float]] = {
            channel: deque(maxlen=SEND_TIMES_KEPT) for channel in Channel
        }

    def typical_send_seconds(self, channel: Channel) -> float:
        """One of the last real sends' durations on `channel`, drawn at random."""
        kept = self._send_seconds[channel]
        return random.choice(kept) if kept else DEFAULT_SEND_SECONDS

    async def send_once(
        self,
        case_id: str,
        kind: str,
        attempt: int,
        contact: Contact,
        compose: Callable[[str | None], Message],
        *,
        with_code: bool = False,
    ) -> str | None:
        """Send one message, once for this (case, kind, attempt, channel). With `with_code`
        a code is generated the first time, kept sealed, handed to `compose` every time and
        returned, so a retry sends the same code."""
        started = time.monotonic()
        claim = await asyncio.to_thread(self._claim, case_id, kind, attempt, contact, with_code)
        if not claim.sent:
            message_id = f"<{case_id}.{kind}.{attempt}.{contact.channel}@{self._domain}>"
            try:
                provider_id = await self._courier.deliver(
                    contact.channel, contact.address, compose(claim.code), message_id
                )
            except Exception:
                await asyncio.to_thread(self._count_failure, claim.row_id)
                raise
            await asyncio.to_thread(self._mark_sent, claim.row_id, provider_id)
            self._send_seconds[contact.channel].append(time.monotonic() - started)
            log.info("notification_sent", case_id=case_id, kind=kind, channel=contact.channel)
        return claim.code

    async def tell(
        self, case_id: str, kind: str, attempt: int, contact: Contact, message: Message
    ) -> None:
        """Send one message, once for this (case, kind, attempt, channel)."""
        await self.send_once(case_id, kind, attempt, contact, lambda _code: message)

    async def tell_every(
        self, case_id: str, kind: str, contacts: Sequence[Contact], message: Message
    ) -> None:
        """Tell every contact. One that refuses for good is skipped (the others must still
        hear of it); an outage propagates so the caller retries."""
        for contact in contacts:
            try:
                await self.tell(case_id, kind, 0, contact, message)
            except Undeliverable:
                log.warning(
                    "notice_undeliverable", case_id=case_id, kind=kind, channel=contact.channel
                )

    async def queue_once(
        self, case_id: str, kind: str, contacts: Sequence[Contact], *, numbered: bool = False
    ) -> bool:
        """Owe `contacts` a message of this kind, unless one was owed already for the case
        (the outbox pattern: the addresses are kept now, before they change, and `flush`
        sends later). `numbered`: each its own attempt number (two addresses of one channel
        may then be owed; `recipients` gives the numbers, `tell` sends each). Returns whether
        anything was queued."""

        def work() -> bool:
            with Session(self._engine) as session:
                owed = session.exec(
                    select(Notification.id).where(
                        Notification.case_id == case_id, Notification.kind == kind
                    )
                ).first()
                if owed is not None:
                    return False
                for n, contact in enumerate(contacts):
                    session.add(
                        Notification(
                            case_id=case_id,
                            kind=kind,
                            attempt=n if numbered else 0,
                            channel=contact.channel.value,
                            recipient=contact.address,
                        )
                    )
                session.commit()
                return bool(contacts)

        return await asyncio.to_thread(work)

    async def flush(self, case_id: str, kind: str, message: Message) -> None:
        """Send what `queue_once` left owed for this case and kind; an address that refuses
        for good is skipped, an outage propagates so the caller retries."""
        rows = await asyncio.to_thread(self._owed, case_id, kind)
        await self.tell_every(
            case_id, kind, [Contact(Channel(row.channel), row.recipient) for row in rows], message
        )

    async def recipients(self, case_id: str, kind: str) -> list[tuple[int, Contact]]:
        """Whom this case's messages of this kind went (or go) to, with their attempt
        numbers."""

        def work() -> list[tuple[int, Contact]]:
            with Session(self._engine) as session:
                rows = session.exec(
                    select(Notification)
                    .where(
                        Notification.case_id == case_id,
                        Notification.kind == kind,
                        Notification.recipient != FORGOTTEN,
                    )
                    .order_by(col(Notification.id))
                )
                return [(row.attempt, Contact(Channel(row.channel), row.recipient)) for row in rows]

        return await asyncio.to_thread(work)

    async def forget_codes(self, case_id: str) -> None:
        """The codes kept for re-sending are of no use once the case is over."""

        def work() -> None:
            with Session(self._engine) as session:
                session.execute(
                    update(Notification)
                    .where(
                        col(Notification.case_id) == case_id,
                        col(Notification.sealed_code).is_not(None),
                    )
                    .values(sealed_code=None)
                )
                session.commit()

        await asyncio.to_thread(work)

    async def forget_recipients(self, case_ids: Sequence[str]) -> None:
        """Wipe the addresses (and any kept code) of every message these cases sent: the
        account they belonged to was purged."""
        if not case_ids:
            return

        def work() -> None:
            with Session(self._engine) as session:
                session.execute(
                    update(Notification)
                    .where(col(Notification.case_id).in_(list(case_ids)))
                    .values(recipient=FORGOTTEN, sealed_code=None)
                )
                session.commit()

        await asyncio.to_thread(work)

    async def forget_recipients_like(self, prefix: str) -> None:
        """`forget_recipients` for the messages kept under keys that start with `prefix` (a
        notice sent once per account and hour, not per case)."""

        def work() -> None:
            with Session(self._engine) as session:
                session.execute(
                    update(Notification)
                    .where(col(Notification.case_id).startswith(prefix, autoescape=True))
                    .values(recipient=FORGOTTEN, sealed_code=None)
                )
                session.commit()

        await asyncio.to_thread(work)

    def _owed(self, case_id: str, kind: str) -> list[Notification]:
        with Session(self._engine) as session:
            return list(
                session.exec(
                    select(Notification).where(
                        Notification.case_id == case_id,
                        Notification.kind == kind,
                        col(Notification.sent_at).is_(None),
                    )
                )
            )

    def _claim(
        self, case_id: str, kind: str, attempt: int, contact: Contact, with_code: bool
    ) -> _Claim:
        context = f"{case_id}/{kind}/{attempt}"
        with Session(self._engine) as session:
            row = self._find(session, case_id, kind, attempt, contact.channel)
            if row is None:
                code = new_code() if with_code else None
                row = Notification(
                    case_id=case_id,
                    kind=kind,
                    attempt=attempt,
                    channel=contact.channel.value,
                    recipient=contact.address,
                    sealed_code=self._keys.seal(code, context) if code else None,
                )
                session.add(row)
                try:
                    session.commit()
                except IntegrityError:  # a concurrent attempt claimed it first
                    session.rollback()
                    row = self._find(session, case_id, kind, attempt, contact.channel)
                    assert row is not None
                else:
                    session.refresh(row)
                    assert row.id is not None
                    return _Claim(row.id, sent=False, code=code)
            assert row.id is not None
            code = self._keys.unseal(row.sealed_code, context) if row.sealed_code else None
            if with_code and code is None:
                raise Undeliverable("the case closed before its code could be sent")
            return _Claim(row.id, sent=row.sent_at is not None, code=code)

    @staticmethod
    def _find(
        session: Session, case_id: str, kind: str, attempt: int, channel: Channel
    ) -> Notification | None:
        return session.exec(
            select(Notification).where(
                Notification.case_id == case_id,
                Notification.kind == kind,
                Notification.attempt == attempt,
                Notification.channel == channel.value,
            )
        ).first()

    def _count_failure(self, row_id: int) -> None:
        with Session(self._engine) as session:
            row = session.get(Notification, row_id)
            if row is not None:
                row.failures += 1
                session.add(row)
                session.commit()

    def _mark_sent(self, row_id: int, provider_id: str | None) -> None:
        with Session(self._engine) as session:
            row = session.get(Notification, row_id)
            if row is not None and row.sent_at is None:
                row.sent_at = utcnow()
                # The provider chooses the id's length: one too long for the column must not
                # fail this update, or the retried activity would send the message again.
                row.provider_id = provider_id[:_PROVIDER_ID_LENGTH] if provider_id else None
                session.add(row)
                session.commit()
