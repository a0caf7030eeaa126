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
from sqlmodel import Session, select

from reclaim import messages
from reclaim.contracts import Channel, IssueCode
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
from reclaim.security import Keys, new_code
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

        contact = await asyncio.to_thread(
            self._account_contact, request.account_id, request.channel
        )
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
        """Tell every contact of the account. A contact that refuses for good is skipped
        (the others must still hear of it); an outage propagates so the caller retries."""
        message = messages.password_changed(
            product=self._product, username=account.username, at=at, public_url=self._public_url
        )
        contacts = [Contact(Channel.EMAIL, account.email)]
        if account.phone:
            contacts.append(Contact(Channel.SMS, account.phone))
        for contact in contacts:
            try:
                await self._send_once(
                    case_id, NotificationKind.PASSWORD_CHANGED, 0, contact, lambda _c: message
                )
            except Undeliverable:
                log.warning(
                    "password_changed_undeliverable", case_id=case_id, channel=contact.channel
                )

    def _account_contact(self, account_id: int, channel: Channel) -> Contact:
        with Session(self._engine) as session:
            account = session.get(Account, account_id)
        if account is None or account.status == AccountStatus.PURGED:
            raise Undeliverable("the account no longer exists")
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
            provider_id = await self._courier.deliver(
                contact.channel, contact.address, compose(claim.code), message_id
            )
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
