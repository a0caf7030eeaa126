"""Support claims in the database: the claim's row (what the claimant wrote and where to reach
them, out of workflow history; once closed, its decision and whole timeline), the answers to
reviewers' questions, and the claim token, sealed only until the mail carrying it has gone.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reclaim.security import Keys, new_case_id
from reclaim.store.engine import in_session
from reclaim.store.models import FORGOTTEN, ClaimAnswer, SupportClaim
from reclaim.support.contracts import ClaimClosing

RATE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class ClaimLimited:
    retry_after: int


class SupportLedger:
    def __init__(self, engine: Engine, keys: Keys) -> None:
        self._engine = engine
        self._keys = keys

    async def open(self, claim: SupportClaim, *, per_hour: int) -> ClaimLimited | None:
        """Record a new claim, unless its contact address already filed `per_hour` in the
        last hour (a claim mails that address: nobody may use Reclaim to flood a mailbox)."""

        def work(session: Session) -> ClaimLimited | None:
            since = claim.opened_at - RATE_WINDOW
            recent = list(
                session.exec(
                    select(SupportClaim.opened_at)
                    .where(
                        SupportClaim.contact_digest == claim.contact_digest,
                        col(SupportClaim.opened_at) > since,
                    )
                    .order_by(col(SupportClaim.opened_at).desc())
                )
            )
            if len(recent) >= per_hour:
                oldest = recent[per_hour - 1]
                wait = int((oldest + RATE_WINDOW - claim.opened_at).total_seconds())
                return ClaimLimited(max(1, wait))
            session.add(claim)
            session.commit()
            return None

        return await in_session(self._engine, work)

    async def forget(self, case_id: str) -> None:
        """Undo `open` when the workflow could not be started."""

        def work(session: Session) -> None:
            row = session.get(SupportClaim, case_id)
            if row is not None:
                session.delete(row)
                session.commit()

        await in_session(self._engine, work)

    async def get(self, case_id: str) -> SupportClaim | None:
        return await in_session(self._engine, lambda s: s.get(SupportClaim, case_id))

    async def claims_of(self, account_id: int, limit: int = 10) -> list[SupportClaim]:
        """The account's claims, newest first."""

        def work(session: Session) -> list[SupportClaim]:
            return list(
                session.exec(
                    select(SupportClaim)
                    .where(SupportClaim.account_id == account_id)
                    .order_by(col(SupportClaim.opened_at).desc())
                    .limit(limit)
                )
            )

        return await in_session(self._engine, work)

    # -- the claim token ---------------------------------------------------------------------

    def seal_token(self, case_id: str, token: str) -> bytes:
        """The claim token, kept sealed only until the mail that carries it has gone."""
        return self._keys.seal(token, _token_context(case_id))

    def unseal_token(self, claim: SupportClaim) -> str:
        assert claim.sealed_token is not None
        return self._keys.unseal(claim.sealed_token, _token_context(claim.case_id))

    def token_digest(self, token: str) -> str:
        return self._keys.scoped_digest("claim", token)

    def token_matches(self, claim: SupportClaim | None, token: str) -> bool:
        """Constant time, and the same work whether or not the claim exists."""
        digest = self.token_digest(token)
        expected = claim.claim_token_digest if claim is not None else digest[::-1]
        return hmac.compare_digest(expected, digest) and claim is not None

    async def forget_token(self, case_id: str) -> None:
        def work(session: Session) -> None:
            claim = session.get(SupportClaim, case_id)
            if claim is not None and claim.sealed_token is not None:
                claim.sealed_token = None
                session.add(claim)
                session.commit()

        await in_session(self._engine, work)

    # -- answers -----------------------------------------------------------------------------

    async def add_answer(self, case_id: str, text: str, at: datetime) -> int:
        """Keep the claimant's answer; returns its round (1 for the first)."""

        def work(session: Session) -> int:
            count = session.exec(
                select(func.count()).select_from(ClaimAnswer).where(ClaimAnswer.case_id == case_id)
            ).one()
            answer = ClaimAnswer(case_id=case_id, round=count + 1, text=text, at=at)
            session.add(answer)
            session.commit()
            return answer.round

        return await in_session(self._engine, work)

    async def withdraw_answer(self, case_id: str, round_: int) -> None:
        def work(session: Session) -> None:
            answer = session.exec(
                select(ClaimAnswer).where(
                    ClaimAnswer.case_id == case_id, ClaimAnswer.round == round_
                )
            ).first()
            if answer is not None:
                session.delete(answer)
                session.commit()

        await in_session(self._engine, work)

    async def answers(self, case_id: str) -> list[ClaimAnswer]:
        def work(session: Session) -> list[ClaimAnswer]:
            return list(
                session.exec(
                    select(ClaimAnswer)
                    .where(ClaimAnswer.case_id == case_id)
                    .order_by(col(ClaimAnswer.round))
                )
            )

        return await in_session(self._engine, work)

    # -- what an approval and the end of a claim write ---------------------------------------

    async def handover_case_id(self, case_id: str) -> str:
        """The id of the recovery case an approved takeover or lost-contact claim opens,
        chosen once: a retried approval opens the same case."""

        def work(session: Session) -> str:
            claim = session.exec(
                select(SupportClaim).where(SupportClaim.case_id == case_id).with_for_update()
            ).one()
            if claim.recovery_case_id is None:
                claim.recovery_case_id = new_case_id()
                session.add(claim)
                session.commit()
            assert claim.recovery_case_id is not None
            return claim.recovery_case_id

        return await in_session(self._engine, work)

    async def mark_escalated(self, case_id: str, at: datetime) -> None:
        """Remember the first escalation of a claim (a second level keeps the first time)."""

        def work(session: Session) -> None:
            claim = session.get(SupportClaim, case_id)
            if claim is not None and claim.escalated_at is None:
                claim.escalated_at = at
                session.add(claim)
                session.commit()

        await in_session(self._engine, work)

    async def record_closing(self, closing: ClaimClosing) -> None:
        """The claim's end, its decision and whole timeline, kept for good (idempotent)."""

        def work(session: Session) -> None:
            claim = session.get(SupportClaim, closing.case_id)
            if claim is None or claim.closed_at is not None:
                return
            claim.state = closing.state.value
            claim.closed_at = closing.at
            decision = closing.decision
            claim.decision = json.dumps(asdict(decision), default=str) if decision else None
            claim.timeline = json.dumps([asdict(entry) for entry in closing.timeline], default=str)
            claim.sealed_token = None
            session.add(claim)
            session.commit()

        await in_session(self._engine, work)

    async def forget_account(self, account_id: int) -> list[str]:
        """The account was purged: its claims forget the claimant's address, words and
        answers. Returns the claims, whose messages must forget their recipients too."""

        def work(session: Session) -> list[str]:
            claims = list(
                session.exec(
                    select(SupportClaim.case_id).where(SupportClaim.account_id == account_id)
                )
            )
            if claims:
                session.execute(delete(ClaimAnswer).where(col(ClaimAnswer.case_id).in_(claims)))
                session.execute(
                    update(SupportClaim)
                    .where(col(SupportClaim.account_id) == account_id)
                    .values(contact_email=FORGOTTEN, description=None, sealed_token=None)
                )
                session.commit()
            return claims

        return await in_session(self._engine, work)


def _token_context(case_id: str) -> str:
    return f"{case_id}/claim-token"
