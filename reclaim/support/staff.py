"""Support staff, their API keys and their console sessions.

A key is `rk_<id>_<secret>` and is shown once, when the member of staff is added or their key
rotated; only a keyed digest of the secret is stored. Checking a key looks the member up by id
and compares digests in constant time, with the same work for an unknown id. A member who signs
in through the organisation's identity provider is added at their first sign-in (by name, with
the provider's subject) and has no key.

A console session is a random token in a cookie; only its keyed digest is stored, with whose
it is and until when. Each request reads the member's row again: disabling a member, or
rotating the key a session was opened with, ends it at once.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reclaim.security import Keys, new_token
from reclaim.store.engine import in_session
from reclaim.store.models import ConsoleSession, Staff, utcnow
from reclaim.support.contracts import Reviewer, StaffRole

KEY_PREFIX = "rk_"
_SCOPE = "staff"
_SESSION_SCOPE = "console-session"
NO_KEY = ""  # the key digest of a member who signs in through the identity provider only


class StaffExists(ValueError):
    pass


class UnknownStaff(LookupError):
    pass


class NameTaken(ValueError):
    """The identity provider's name for someone is a member of staff signed in otherwise."""


@dataclass(frozen=True)
class SignedIn:
    """Who a console session belongs to, as of this request."""

    member: Reviewer
    via: str  # "oidc" or "key"
    expires_at: datetime


class StaffRoster:
    def __init__(self, engine: Engine, keys: Keys) -> None:
        self._engine = engine
        self._keys = keys

    async def add(self, name: str, role: StaffRole) -> tuple[Staff, str]:
        """The new member and their key (shown once)."""

        def work(session: Session) -> tuple[Staff, str]:
            if session.exec(select(Staff.id).where(Staff.name == name)).first() is not None:
                raise StaffExists(f"there is already a member of staff named {name}")
            secret = new_token()
            member = Staff(
                name=name, role=role.value, key_digest=self._keys.scoped_digest(_SCOPE, secret)
            )
            session.add(member)
            session.commit()
            session.refresh(member)
            return member, f"{KEY_PREFIX}{member.id}_{secret}"

        return await in_session(self._engine, work)

    async def authenticate(self, key: str) -> Reviewer | None:
        """The member of staff a key belongs to, or None (unknown, disabled, malformed)."""
        member_id, _, secret = key.removeprefix(KEY_PREFIX).partition("_")
        digest = self._keys.scoped_digest(_SCOPE, secret)

        def work(session: Session) -> Reviewer | None:
            member = (
                session.get(Staff, int(member_id))
                if key.startswith(KEY_PREFIX) and member_id.isdigit() and len(member_id) < 10
                else None
            )
            expected = member.key_digest if member is not None else digest[::-1]
            if not hmac.compare_digest(expected, digest) or member is None or member.disabled_at:
                return None
            assert member.id is not None
            return Reviewer(member.id, member.name, StaffRole(member.role))

        return await in_session(self._engine, work)

    async def exists(self, name: str) -> bool:
        def work(session: Session) -> bool:
            return session.exec(select(Staff.id).where(Staff.name == name)).first() is not None

        return await in_session(self._engine, work)

    async def members(self) -> list[Staff]:
        def work(session: Session) -> list[Staff]:
            return list(session.exec(select(Staff).order_by(col(Staff.id))).all())

        return await in_session(self._engine, work)

    async def get(self, name: str) -> Staff | None:
        def work(session: Session) -> Staff | None:
            return session.exec(select(Staff).where(Staff.name == name)).first()

        return await in_session(self._engine, work)

    async def disable(self, name: str, at: datetime) -> Staff:
        """The member's key stops working and their console sessions end, at once."""

        def work(session: Session) -> Staff:
            member = session.exec(select(Staff).where(Staff.name == name)).first()
            if member is None:
                raise UnknownStaff(name)
            member.disabled_at = member.disabled_at or at
            session.add(member)
            session.execute(delete(ConsoleSession).where(col(ConsoleSession.staff_id) == member.id))
            session.commit()
            session.refresh(member)
            return member

        return await in_session(self._engine, work)

    async def rotate(self, name: str, at: datetime) -> tuple[Staff, str]:
        """A new key for the member (shown once): the old one stops working at once, and so
        do the console sessions it opened."""

        def work(session: Session) -> tuple[Staff, str]:
            member = session.exec(select(Staff).where(Staff.name == name)).first()
            if member is None:
                raise UnknownStaff(name)
            secret = new_token()
            member.key_digest = self._keys.scoped_digest(_SCOPE, secret)
            member.key_rotated_at = at
            session.add(member)
            session.execute(
                delete(ConsoleSession).where(
                    col(ConsoleSession.staff_id) == member.id, col(ConsoleSession.via) == "key"
                )
            )
            session.commit()
            session.refresh(member)
            return member, f"{KEY_PREFIX}{member.id}_{secret}"

        return await in_session(self._engine, work)

    async def from_provider(self, subject: str, name: str, role: StaffRole) -> Staff:
        """The member the identity provider vouches for: found by subject, else the member
        of that name who has no subject yet (linked now), else added. The provider's role
        replaces the stored one. A disabled member stays disabled."""

        def work(session: Session) -> Staff:
            member = session.exec(select(Staff).where(Staff.oidc_subject == subject)).first()
            if member is None:
                member = session.exec(select(Staff).where(Staff.name == name)).first()
                if member is not None and member.oidc_subject is not None:
                    raise NameTaken(name)
                if member is None:
                    member = Staff(name=name, role=role.value, key_digest=NO_KEY)
                member.oidc_subject = subject
            member.role = role.value
            session.add(member)
            session.commit()
            session.refresh(member)
            return member

        return await in_session(self._engine, work)

    # -- console sessions --------------------------------------------------------------------

    async def open_session(
        self, member: Reviewer, via: str, address: str | None, lifetime: timedelta
    ) -> str:
        """A new console session for `member`; its token (the cookie) is returned once."""
        token = new_token()
        now = utcnow()

        def work(session: Session) -> None:
            session.execute(delete(ConsoleSession).where(col(ConsoleSession.expires_at) < now))
            session.add(
                ConsoleSession(
                    token_digest=self._keys.scoped_digest(_SESSION_SCOPE, token),
                    staff_id=member.id,
                    staff_name=member.name,
                    role=member.role.value,
                    via=via,
                    address=address[:64] if address else None,
                    created_at=now,
                    expires_at=now + lifetime,
                )
            )
            session.commit()

        await in_session(self._engine, work)
        return token

    async def session(self, token: str) -> SignedIn | None:
        """Whose session this is now: None when unknown, expired, or the member disabled."""
        if not token or len(token) > 128:
            return None
        digest = self._keys.scoped_digest(_SESSION_SCOPE, token)
        now = utcnow()

        def work(session: Session) -> SignedIn | None:
            found = session.exec(
                select(ConsoleSession, Staff)
                .join(Staff, col(Staff.id) == col(ConsoleSession.staff_id))
                .where(ConsoleSession.token_digest == digest)
            ).first()
            if found is None:
                return None
            row, member = found
            if row.expires_at <= now or member.disabled_at is not None:
                return None
            assert member.id is not None
            return SignedIn(
                Reviewer(member.id, member.name, StaffRole(member.role)), row.via, row.expires_at
            )

        return await in_session(self._engine, work)

    async def close_session(self, token: str) -> None:
        digest = self._keys.scoped_digest(_SESSION_SCOPE, token)

        def work(session: Session) -> None:
            session.execute(
                delete(ConsoleSession).where(col(ConsoleSession.token_digest) == digest)
            )
            session.commit()

        await in_session(self._engine, work)
