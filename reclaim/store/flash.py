"""Flashes: what a refused form showed, kept for the page the browser is redirected to.

The pages answer every post with a redirect (post/redirect/get), refused ones too, so that a
reload never asks to send a form again. The refusal (its problem, its status, and what the
person typed, never a password or a code) waits here for that page: sealed with a key of the
server secret for that page's path and this flash alone, kept `ttl` at most, and read once.
Rows live in SQL, not in the API process, so any API host can show the page the redirect
leads to; a cookie scoped to that page carries only the flash's random id.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from reclaim.security import Keys
from reclaim.store.engine import in_session
from reclaim.store.models import PageFlash

FLASH_TTL = timedelta(minutes=10)


class Flashes:
    def __init__(self, engine: Engine, keys: Keys, ttl: timedelta = FLASH_TTL) -> None:
        self._engine = engine
        self._keys = keys
        self.ttl = ttl

    async def keep(self, page: str, facts: dict[str, Any]) -> str:
        """Keep `facts` (JSON) for `page`; the id to hand the browser."""
        flash_id = secrets.token_urlsafe(16)
        sealed = self._keys.seal(json.dumps(facts, separators=(",", ":")), _context(page, flash_id))
        now = datetime.now(UTC)

        def work(session: Session) -> None:
            # The flashes nobody came back for go as new ones come.
            session.execute(delete(PageFlash).where(col(PageFlash.expires_at) <= now))
            session.add(PageFlash(flash_id=flash_id, sealed=sealed, expires_at=now + self.ttl))
            session.commit()

        await in_session(self._engine, work)
        return flash_id

    async def take(self, page: str, flash_id: str) -> dict[str, Any] | None:
        """The facts kept for `page` under `flash_id`, once; None if there are none (never
        kept, already shown, expired, or kept for another page)."""
        if not flash_id or len(flash_id) > 32:
            return None
        now = datetime.now(UTC)

        def work(session: Session) -> bytes | None:
            sealed = session.execute(
                delete(PageFlash)
                .where(col(PageFlash.flash_id) == flash_id, col(PageFlash.expires_at) > now)
                .returning(col(PageFlash.sealed))
            ).scalar()
            session.commit()
            return sealed

        sealed = await in_session(self._engine, work)
        if sealed is None:
            return None
        try:
            facts = json.loads(self._keys.unseal(sealed, _context(page, flash_id)))
        except (InvalidTag, ValueError):
            return None
        return facts if isinstance(facts, dict) else None


def _context(page: str, flash_id: str) -> str:
    return f"page-flash:{page}:{flash_id}"
