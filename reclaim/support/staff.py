"""Support staff and their API keys.

A key is `rk_<id>_<secret>` and is shown once, when the member of staff is added; only a keyed
digest of the secret is stored. Checking a key looks the member up by id and compares digests
in constant time, with the same work for an unknown id.
"""

from __future__ import annotations

import hmac

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reclaim.security import Keys, new_token
from reclaim.store.engine import in_session
from reclaim.store.models import Staff
from reclaim.support.contracts import Reviewer, StaffRole

KEY_PREFIX = "rk_"
_SCOPE = "staff"


class StaffExists(ValueError):
    pass


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
