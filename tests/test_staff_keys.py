"""Staff keys and claim tokens: stored as digests, checked in constant time."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from reclaim.security import Keys
from reclaim.store.models import Staff, SupportClaim
from reclaim.support.contracts import Reviewer, StaffRole
from reclaim.support.ledger import SupportLedger
from reclaim.support.staff import StaffExists, StaffRoster

KEYS = Keys(b"staff-key-tests-secret-0123456789")


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """Every constant-time comparison made, in order."""
    seen: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return seen


async def test_a_staff_key_is_shown_once_kept_as_a_digest_and_compared_in_constant_time(
    engine: Engine, comparisons: list[tuple[Any, Any]]
):
    staff = StaffRoster(engine, KEYS)
    member, key = await staff.add("rita", StaffRole.REVIEWER)
    with Session(engine) as session:
        stored = session.get(Staff, member.id)
        assert stored is not None and key.split("_", 2)[2] not in stored.model_dump_json()

    assert await staff.authenticate(key) == Reviewer(member.id or 0, "rita", StaffRole.REVIEWER)
    for wrong in (key[:-1] + ("A" if key[-1] != "A" else "B"), "rk_999_" + key[-20:]):
        before = len(comparisons)
        assert await staff.authenticate(wrong) is None
        assert len(comparisons) == before + 1  # even an unknown id costs a comparison
    for malformed in ("", "rk_", "rk_x_y", key.replace("rk_", "sk_"), "Bearer " + key):
        assert await staff.authenticate(malformed) is None
    with Session(engine) as session:
        stored = session.get(Staff, member.id)
        assert stored is not None
        stored.disabled_at = datetime.now(UTC)
        session.add(stored)
        session.commit()
    assert await staff.authenticate(key) is None
    with pytest.raises(StaffExists):
        await staff.add("rita", StaffRole.SUPERVISOR)


def test_a_claim_token_opens_its_claim_only_and_is_compared_in_constant_time(
    engine: Engine, comparisons: list[tuple[Any, Any]]
):
    claims = SupportLedger(engine, KEYS)
    claim = SupportClaim(
        case_id="sc_x",
        reason="compromised",
        contact_email="a@example.com",
        contact_digest="d",
        claim_token_digest=KEYS.scoped_digest("claim", "the-token"),
        opened_at=datetime.now(UTC),
    )

    assert claims.token_matches(claim, "the-token")
    assert not claims.token_matches(claim, "another-token")
    assert not claims.token_matches(None, "the-token")
    # A staff key or a session token made from the same string never passes for it.
    assert KEYS.scoped_digest("staff", "the-token") != claim.claim_token_digest
    assert KEYS.token_digest("the-token") != claim.claim_token_digest
    assert len(comparisons) == 3
