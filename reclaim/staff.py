"""Support staff and their API keys.

A key is `rk_<id>_<secret>` and is shown once, when the member of staff is added; only a
keyed digest of the secret is stored. Checking a key looks the member up by id and compares
digests in constant time.
"""

from __future__ import annotations

import hmac

from sqlmodel import Session, select

from reclaim.contracts import Reviewer, StaffRole
from reclaim.models import Staff
from reclaim.security import Keys, new_token

KEY_PREFIX = "rk_"
_SCOPE = "staff"


class StaffExists(ValueError):
    pass


def add_staff(session: Session, keys: Keys, name: str, role: StaffRole) -> tuple[Staff, str]:
    if session.exec(select(Staff.id).where(Staff.name == name)).first() is not None:
        raise StaffExists(f"there is already a member of staff named {name}")
    secret = new_token()
    member = Staff(name=name, role=role.value, key_digest=keys.scoped_digest(_SCOPE, secret))
    session.add(member)
    session.commit()
    session.refresh(member)
    return member, f"{KEY_PREFIX}{member.id}_{secret}"


def authenticate(session: Session, keys: Keys, key: str) -> Reviewer | None:
    """The member of staff a key belongs to, or None (unknown, disabled, malformed)."""
    member_id, _, secret = key.removeprefix(KEY_PREFIX).partition("_")
    digest = keys.scoped_digest(_SCOPE, secret)
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


def find(session: Session, name: str) -> Staff | None:
    return session.exec(select(Staff).where(Staff.name == name)).first()
