"""The reviewers' queue in the database (`claim_queue_row`), on SQLite and (with
RECLAIM_TEST_POSTGRES_URL) PostgreSQL: upserts retried and delivered out of order end at the
newest version, the counts are exact, and keyset pages neither skip nor repeat a claim."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.client import Client

from reclaim.errors import Refused
from reclaim.settings import Settings
from reclaim.support.contracts import QueueRowChange, Reviewer, StaffRole
from reclaim.support.queue import (
    ClaimQueue,
    QueueFilter,
    decode_cursor,
    encode_cursor,
    page_after,
)
from reclaim.support.queue_rows import QueueRows
from tests.stack import TEST_SECRET

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RITA = Reviewer(1, "rita", StaffRole.REVIEWER)


def change(case_id: str, version: int, **fields: object) -> QueueRowChange:
    values: dict[str, object] = {
        "state": "submitted",
        "reason": "compromised",
        "risk": "low",
        "assignee": None,
        "escalated": False,
        "opened_at": T0,
        "next_deadline": T0 + timedelta(hours=4),
    }
    values.update(fields)
    return QueueRowChange(case_id=case_id, version=version, **values)  # type: ignore[arg-type]


@pytest.fixture
async def queue(engine: Engine, tmp_path: Path) -> ClaimQueue:
    client = await Client.connect("127.0.0.1:9", lazy=True)  # never used: no rebuild here
    settings = Settings(secret_key=TEST_SECRET, state_dir=tmp_path, console_queue_limit=5)
    return ClaimQueue(client, QueueRows(engine), settings)


async def test_retried_and_out_of_order_upserts_end_at_the_newest_version(engine: Engine):
    rows = QueueRows(engine)
    versions = [
        change("c1", 0),
        change("c1", 1, state="in_review", assignee="rita"),
        change("c1", 2, state="awaiting_claimant"),
        change("c1", 3, state="in_review", escalated=True),
        change("c1", 4, state="approved", next_deadline=None),
    ]
    delivered = versions * 3  # every one retried
    random.Random(7).shuffle(delivered)
    for one in delivered:
        await rows.upsert(one)
    row = await rows.get("c1")
    assert row is not None
    assert (row.version, row.state, row.is_open, row.next_deadline) == (4, "approved", False, None)
    assert (row.assignee, row.escalated) == (None, False)

    await rows.upsert(versions[2])  # late: changes nothing
    again = await rows.get("c1")
    assert again is not None and (again.version, again.state) == (4, "approved")

    # Concurrent deliveries of every version: the newest wins all the same.
    await asyncio.gather(*(rows.upsert(change("c2", v, assignee=f"r{v}")) for v in range(20)))
    c2 = await rows.get("c2")
    assert c2 is not None and (c2.version, c2.assignee) == (19, "r19")


async def test_counts_are_exact_and_the_page_is_nearest_deadline_first(
    engine: Engine, queue: ClaimQueue
):
    rows = QueueRows(engine)
    plan = [
        ("a", {"state": "submitted", "risk": "high"}),
        ("b", {"state": "in_review", "assignee": "rita"}),
        ("c", {"state": "in_review", "assignee": "sam", "reason": "banned"}),
        ("d", {"state": "awaiting_claimant", "assignee": "rita", "escalated": True}),
        ("e", {"state": "submitted", "escalated": True, "next_deadline": None}),
        ("f", {"state": "approved", "next_deadline": None, "risk": "high"}),  # closed
        ("g", {"state": "awaiting_confirmation", "assignee": "rita", "risk": "high"}),
    ]
    for n, (case_id, fields) in enumerate(plan):
        fields.setdefault("next_deadline", T0 + timedelta(hours=10 - n))
        await rows.upsert(change(case_id, 1, **fields))

    page = await queue.console_queue(RITA, QueueFilter())
    counts = page.counts
    assert counts["all"] == 6
    assert (counts["mine"], counts["unassigned"]) == (3, 2)
    assert (counts["escalated"], counts["high_risk"]) == (2, 2)
    assert (counts["reason:compromised"], counts["reason:banned"]) == (5, 1)
    assert counts["state:submitted"] == 2 and counts["state:in_review"] == 2
    assert counts["state:awaiting_claimant"] == 1 and counts["state:awaiting_confirmation"] == 1
    assert "state:approved" not in counts
    # At most 5 shown, the nearest deadline first, none last.
    assert [c.case_id for c in page.claims] == ["g", "d", "c", "b", "a"]
    assert (page.matching, page.truncated) == (6, True)

    mine = await queue.console_queue(RITA, QueueFilter(view="mine", state="in_review"))
    assert [c.case_id for c in mine.claims] == ["b"] and mine.matching == 1
    assert mine.counts == counts

    # The API's filters: a closed state lists closed claims.
    assert [c.case_id for c in await queue.queue({"state": "approved"}, 10)] == ["f"]
    assert [c.case_id for c in await queue.queue({"escalated": True}, 10)] == ["d", "e"]
    assert [c.case_id for c in await queue.queue({"assignee": "rita"}, 10)] == ["g", "d", "b"]


async def test_keyset_pages_neither_skip_nor_repeat_while_others_change(
    engine: Engine, queue: ClaimQueue
):
    rows = QueueRows(engine)
    rng = random.Random(11)
    version: dict[str, int] = {}
    for n in range(1000):
        case_id = f"case-{n:04d}"
        due = None if n % 10 == 0 else T0 + timedelta(minutes=rng.randrange(300))  # ties too
        version[case_id] = 1
        await rows.upsert(change(case_id, 1, next_deadline=due))

    seen: list[str] = []
    changed: set[str] = set()
    after = None
    while True:
        page = await queue.queue({}, 37, after)
        seen.extend(c.case_id for c in page)
        if len(page) < 37:
            break
        after = decode_cursor(encode_cursor(page_after(page[-1])))
        # Between pages, others move: deadlines change, some claims close, new ones open.
        for _ in range(5):
            case_id = f"case-{rng.randrange(1000):04d}"
            version[case_id] += 1
            changed.add(case_id)
            if rng.random() < 0.3:
                await rows.upsert(change(case_id, version[case_id], state="rejected"))
            else:
                due = T0 + timedelta(minutes=rng.randrange(300))
                await rows.upsert(change(case_id, version[case_id], next_deadline=due))
        new = f"new-{len(seen):04d}"
        changed.add(new)
        await rows.upsert(change(new, 1, next_deadline=T0 + timedelta(minutes=rng.randrange(300))))

    unchanged = [c for c in version if c not in changed]
    twice = {c for c in seen if seen.count(c) > 1}
    assert twice <= changed, f"a claim that did not change was listed twice: {twice - changed}"
    assert set(unchanged) <= set(seen), "a claim that did not change was skipped"
    assert len(unchanged) > 800


def test_a_cursor_the_queue_did_not_give_is_refused():
    for bad in ("", "!!!", "e30", "bm90IGpzb24", encode_cursor_of({"d": "x", "id": "a"})):
        with pytest.raises(Refused) as refused:
            decode_cursor(bad)
        assert refused.value.code == "invalid_cursor"
    naive = encode_cursor_of({"d": "2026-12-01T09:00:00", "id": "a"})
    with pytest.raises(Refused):
        decode_cursor(naive)
    assert decode_cursor(encode_cursor_of({"d": None, "id": "a"})).case_id == "a"


def encode_cursor_of(place: dict[str, object]) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(place).encode()).decode().rstrip("=")


async def test_due_soon_keeps_the_claims_due_within_a_day_or_overdue(
    engine: Engine, queue: ClaimQueue
):
    rows = QueueRows(engine)
    now = datetime.now(UTC)
    plan = {
        "overdue": now - timedelta(hours=5),
        "today": now + timedelta(hours=3),
        "tomorrow-ish": now + timedelta(hours=23),
        "later": now + timedelta(days=2),
        "no-deadline": None,
    }
    for case_id, deadline in plan.items():
        await rows.upsert(change(case_id, 1, next_deadline=deadline))
    await rows.upsert(change("closed", 2, state="rejected", next_deadline=None))

    page = await queue.console_queue(RITA, QueueFilter(view="due_soon"))

    assert page.counts["due_soon"] == 3 and page.matching == 3
    assert [c.case_id for c in page.claims] == ["overdue", "today", "tomorrow-ish"]
