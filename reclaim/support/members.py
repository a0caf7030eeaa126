"""The members of staff, as the CLI and the API's staff key check see them: add, list,
disable, a new key; who a staff key belongs to; and the audit of what staff did.
"""

from __future__ import annotations

import re

from reclaim.errors import Refused, Unauthorized
from reclaim.store.models import Staff, utcnow
from reclaim.support.audit import AuditEntry, AuditLog, Origin
from reclaim.support.contracts import Reviewer, StaffRole
from reclaim.support.staff import StaffExists, StaffRoster, UnknownStaff

STAFF_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
INVALID_STAFF_KEY = Unauthorized(
    "invalid_key",
    "Send a staff API key as `Authorization: Bearer rk_…` (from `reclaim staff add`).",
)


class StaffMembers:
    """The staff roster's rules and the audit's reading, for the CLI and the API."""

    def __init__(self, staff: StaffRoster, audit: AuditLog) -> None:
        self._staff = staff
        self._audit = audit

    async def staff_member(self, key: str) -> Reviewer:
        member = await self._staff.authenticate(key)
        if member is None:
            raise INVALID_STAFF_KEY
        return member

    async def add_staff(self, name: str, role: str) -> tuple[Staff, str]:
        """A new member of staff and their API key (shown once, only a digest is kept)."""
        if not STAFF_NAME.fullmatch(name):
            raise Refused("invalid_request", "a name is 1 to 64 letters, digits, '.', '_' or '-'")
        try:
            staff_role = StaffRole(role)
        except ValueError as err:
            raise Refused("invalid_request", "the role is reviewer or supervisor") from err
        try:
            return await self._staff.add(name, staff_role)
        except StaffExists as err:
            raise Refused("staff_exists", str(err)) from err

    async def staff(self) -> list[Staff]:
        return await self._staff.members()

    async def disable_staff(self, name: str, by: str, origin: Origin) -> Staff:
        """The member's key and console sessions stop working at once."""
        try:
            member = await self._staff.disable(name, utcnow())
        except UnknownStaff as err:
            raise Refused("unknown_staff", f"No member of staff is named {name}.") from err
        await self._audit.record(
            who=by, role=None, origin=origin, action="disable staff", outcome="done", detail=name
        )
        return member

    async def rotate_staff_key(self, name: str, by: str, origin: Origin) -> tuple[Staff, str]:
        """A new key (shown once); the old one, and the console sessions it opened, stop
        working at once."""
        try:
            member, key = await self._staff.rotate(name, utcnow())
        except UnknownStaff as err:
            raise Refused("unknown_staff", f"No member of staff is named {name}.") from err
        await self._audit.record(
            who=by, role=None, origin=origin, action="rotate key", outcome="done", detail=name
        )
        return member, key

    async def audit_entries(
        self, *, case_id: str | None = None, by: str | None = None, limit: int = 200
    ) -> list[AuditEntry]:
        return await self._audit.entries(case_id=case_id, by=by, limit=limit)
