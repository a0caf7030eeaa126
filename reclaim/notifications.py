"""Sending what a case owes people, exactly once per case, kind and attempt.

Each send first claims a row in the `notification` table (a code is generated then, and kept
there sealed with a key derived from the server secret), then hands the message to the
courier, then marks the row sent. An activity retried after a crash therefore finds the row
and sends the same message again at most: never a second, different code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from reclaim import messages
from reclaim.contracts import Channel, IssueCode, NoticeKind
from reclaim.delivery.courier import Courier
from reclaim.delivery.errors import Undeliverable
from reclaim.messages import Message
from reclaim.models import (
    Account,
    AccountStatus,
    Notification,
    NotificationKind,
    RecoveryCase,
    utcnow,
)
from reclaim.security import Keys, new_code, new_token
from reclaim.settings import Settings

log = structlog.get_logger(__name__)

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
    def __init__(self, engine: Engine, courier: Courier, keys: Keys, settings: Settings) -> None:
        self._engine = engine
        self._courier = courier
        self._keys = keys
        self._product = settings.product_name
        self._webotp_domain = settings.resolved_webotp_domain
        self._public_url = settings.public_url
        self._notify_unknown = settings.notify_unknown
        self._support_url = settings.resolved_support_url

    async def issue_code(self, request: IssueCode, now: datetime) -> str:
        """Deliver the code of `request.attempt` and return its digest. For a case without an
        account, tell the address typed that no account uses it (first attempt only), and
        return the digest of a code nobody will ever receive."""
        if request.account_id is None:
            address = await asyncio.to_thread(self._unknown_address, request)
            if address is not None:
                await self._send_once(
                    request.case_id,
                    NotificationKind.NO_ACCOUNT,
                    0,
                    Contact(request.channel, address),
                    lambda _code: messages.no_account(product=self._product),
                )
            return self._keys.code_digest(request.case_id, new_code())

        account = await asyncio.to_thread(self._account, request.account_id)
        contact = self._contact(account, request.channel)
        if account.status == AccountStatus.BANNED:
            # No code for a banned account: its holder learns why, until when, and how to
            # appeal (once per case), while the person asking sees the usual answer.
            if request.attempt == 0:
                await self._send_once(
                    request.case_id,
                    NotificationKind.BANNED,
                    0,
                    contact,
                    lambda _code: messages.banned(
                        product=self._product,
                        username=account.username,
                        until=account.status_until,
                        reason=account.status_reason,
                        appeal_url=self._support_url,
                    ),
                )
            # The digest of something no 6-digit code can ever match.
            return self._keys.code_digest(request.case_id, new_token())
        valid_for = (request.expires_at - now).total_seconds()
        code = await self._send_once(
            request.case_id,
            NotificationKind.CODE,
            request.attempt,
            contact,
            lambda code: messages.recovery_code(
                product=self._product,
                code=code or "",
                valid_for_seconds=valid_for,
                webotp_domain=self._webotp_domain,
            ),
            with_code=True,
        )
        assert code is not None
        return self._keys.code_digest(request.case_id, code)

    async def password_changed(self, case_id: str, account: Account, at: datetime) -> None:
        message = messages.password_changed(
            product=self._product, username=account.username, at=at, public_url=self._public_url
        )
        await self._tell_every_contact(case_id, NotificationKind.PASSWORD_CHANGED, account, message)

    async def account_notice(
        self, case_id: str, account: Account, kind: NoticeKind, until: datetime | None
    ) -> None:
        """A lifecycle case tells the holder: deactivated (and when the purge will be), or
        the ban is over."""
        if kind is NoticeKind.ACCOUNT_DEACTIVATED:
            assert until is not None
            message = messages.account_deactivated(
                product=self._product,
                username=account.username,
                purge_at=until,
                public_url=self._public_url,
            )
        else:
            message = messages.ban_ended(
                product=self._product, username=account.username, public_url=self._public_url
            )
        await self._tell_every_contact(case_id, kind.value, account, message)

    async def tell(
        self, case_id: str, kind: str, attempt: int, contact: Contact, message: Message
    ) -> None:
        """Send one message, once for this (case, kind, attempt, channel)."""
        await self._send_once(case_id, kind, attempt, contact, lambda _c: message)

    async def tell_claimant(
        self,
        case_id: str,
        kind: str,
        attempt: int,
        address: str,
        compose: Callable[[], Message],
    ) -> None:
        """A claim's notice: composed only if it was not sent already (the first one carries
        the claim token, which can be read only once)."""
        await self._send_once(
            case_id, kind, attempt, Contact(Channel.EMAIL, address), lambda _c: compose()
        )

    def queue(self, session: Session, case_id: str, kind: str, contacts: list[Contact]) -> None:
        """Claim messages inside the caller's transaction: they leave with `flush`, and a
        retried activity finds them still owed (the outbox pattern)."""
        for contact in contacts:
            if self._find(session, case_id, kind, 0, contact.channel) is None:
                session.add(
                    Notification(
                        case_id=case_id,
                        kind=kind,
                        attempt=0,
                        channel=contact.channel.value,
                        recipient=contact.address,
                    )
                )

    async def flush(self, case_id: str, kind: str, message: Message) -> None:
        """Send what `queue` left owed for this case and kind; an address that refuses for
        good is skipped, an outage propagates so the caller retries."""
        rows = await asyncio.to_thread(self._owed, case_id, kind)
        for row in rows:
            contact = Contact(Channel(row.channel), row.recipient)
            try:
                await self._send_once(case_id, kind, 0, contact, lambda _c: message)
            except Undeliverable:
                log.warning("notice_undeliverable", case_id=case_id, kind=kind, channel=row.channel)

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

    async def _tell_every_contact(
        self, case_id: str, kind: str, account: Account, message: Message
    ) -> None:
        """Tell every contact of the account. A contact that refuses for good is skipped
        (the others must still hear of it); an outage propagates so the caller retries."""
        contacts = [Contact(Channel.EMAIL, account.email)]
        if account.phone:
            contacts.append(Contact(Channel.SMS, account.phone))
        for contact in contacts:
            try:
                await self._send_once(case_id, kind, 0, contact, lambda _c: message)
            except Undeliverable:
                log.warning(
                    "notice_undeliverable", case_id=case_id, kind=kind, channel=contact.channel
                )

    def _account(self, account_id: int) -> Account:
        with Session(self._engine) as session:
            account = session.get(Account, account_id)
        if account is None or account.status == AccountStatus.PURGED:
            raise Undeliverable("the account no longer exists")
        return account

    @staticmethod
    def _contact(account: Account, channel: Channel) -> Contact:
        address = account.phone if channel is Channel.SMS else account.email
        if not address:
            raise Undeliverable(f"the account has no {channel} contact")
        return Contact(channel, address)

    def _unknown_address(self, request: IssueCode) -> str | None:
        if not self._notify_unknown or request.attempt != 0:
            return None
        with Session(self._engine) as session:
            row = session.get(RecoveryCase, request.case_id)
        return row.unknown_address if row is not None else None

    async def _send_once(
        self,
        case_id: str,
        kind: str,
        attempt: int,
        contact: Contact,
        compose: Callable[[str | None], Message],
        *,
        with_code: bool = False,
    ) -> str | None:
        claim = await asyncio.to_thread(self._claim, case_id, kind, attempt, contact, with_code)
        if not claim.sent:
            message_id = f"<{case_id}.{kind}.{attempt}.{contact.channel}@{self._webotp_domain}>"
            try:
                provider_id = await self._courier.deliver(
                    contact.channel, contact.address, compose(claim.code), message_id
                )
            except Exception:
                await asyncio.to_thread(self._count_failure, claim.row_id)
                raise
            await asyncio.to_thread(self._mark_sent, claim.row_id, provider_id)
            log.info("notification_sent", case_id=case_id, kind=kind, channel=contact.channel)
        return claim.code

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
