"""A refused form's flash (`reclaim.store.flash`), on SQLite and (with
RECLAIM_TEST_POSTGRES_URL) PostgreSQL: shown once, on its own page only, never after its time,
and sealed at rest."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reclaim.security import Keys
from reclaim.store.flash import Flashes
from reclaim.store.models import PageFlash
from tests.stack import TEST_SECRET

KEYS = Keys(TEST_SECRET.encode())
FACTS = {"status": 422, "typed": {"contact_email": "jane@new.example"}}


async def test_a_flash_is_shown_once_and_only_on_its_own_page(engine: Engine):
    flashes = Flashes(engine, KEYS)
    flash_id = await flashes.keep("/support", FACTS)

    assert await flashes.take("/signin", flash_id) is None  # another page: nothing, and gone
    again = await flashes.keep("/support", FACTS)
    assert await flashes.take("/support", again) == FACTS
    assert await flashes.take("/support", again) is None  # once
    assert await flashes.take("/support", "never-kept") is None


async def test_a_flash_is_sealed_at_rest_and_gone_after_its_time(engine: Engine):
    flashes = Flashes(engine, KEYS, ttl=timedelta(seconds=-1))  # born expired
    flash_id = await flashes.keep("/support", FACTS)
    with Session(engine) as session:
        [row] = session.exec(select(PageFlash)).all()
    assert b"jane@new.example" not in row.sealed

    assert await flashes.take("/support", flash_id) is None
    await Flashes(engine, KEYS).keep("/support", FACTS)  # a new flash sweeps the old ones
    with Session(engine) as session:
        assert [r.flash_id for r in session.exec(select(PageFlash)).all()] != [flash_id]
        assert len(session.exec(select(PageFlash)).all()) == 1
