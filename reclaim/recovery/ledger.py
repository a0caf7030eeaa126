"""The ledger of self-service cases (`recovery_case`): one row per case, written when it opens
(it counts toward the rate limit from then on) and completed when the workflow closes it.

Unknown identifiers get rows like known ones, so the rate limit tells nothing about accounts.
Over the limit, a proof of work (`reclaim.recovery.challenge`) lets a case in, and is spent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, literal, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from reclaim.contracts import seconds_until
from reclaim.recovery.challenge import Proof
from reclaim.recovery.contracts import CaseClosing, CaseState
from reclaim.store.engine import in_session
from reclaim.store.models import (
    CodeGuess,
    NoAccountNotice,
    RecoveryCase,
    SpentChallenge,
    UTCDateTime,
)

RATE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class CaseOpened:
    # For a case that takes the account over (an approved claim's): the account's other open
    # cases, which must stop. A self-service case stops nobody's: each case is its opener's.
    superseded: list[str]


@dataclass(frozen=True)
class RateLimited:
    retry_after: int  # seconds until a request without a proof of work goes through
    level: int  # how far over the limit a new case would be (1: the first over it)


@dataclass(frozen=True)
class CaseFacts:
    unknown_address: str | None
    locale: str | None
    # The case an approved claim opened with a hold: the claim's verified address (None once
    # the case closed) and the claim.
    handover_email: str | None = None
    handover_claim: str | None = None
    # The case an approved lost-authenticator claim opened: the factors its end removes.
    remove_factors: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CaseRow:
    case_id: str
    opened_at: datetime
    channel: str
    state: str | None  # None while open
    second_factor: str | None = None  # proven before the new password


class RecoveryLedger:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def open(
        self, case: RecoveryCase, *, per_hour: int | None, proof: Proof | None = None
    ) -> CaseOpened | RateLimited:
        """Record a new case, unless its identifier already opened `per_hour` cases in the
        last hour and `proof` (a proof of work, spent here) does not cover how far over.
        `per_hour=None` is a case a support claim opens: no limit, and it takes over the
        account: its other open cases are closed as superseded (`superseded`)."""
        return await in_session(
            self._engine, lambda s: open_case(s, case, per_hour=per_hour, proof=proof)
        )

    async def forget(self, case_id: str) -> None:
        """Undo `open` when the workflow could not be started."""

        def work(session: Session) -> None:
            row = session.get(RecoveryCase, case_id)
            if row is not None:
                session.delete(row)
                session.commit()

        await in_session(self._engine, work)

    async def exists(self, case_id: str) -> bool:
        return await in_session(self._engine, lambda s: s.get(RecoveryCase, case_id) is not None)

    async def completed(self, case_id: str) -> bool:
        def work(session: Session) -> bool:
            row = session.get(RecoveryCase, case_id)
            return row is not None and row.state == CaseState.COMPLETED

        return await in_session(self._engine, work)

    async def reserve_guess(
        self,
        case_id: str,
        guess: str,
        at: datetime,
        per_hour: int,
        budget_of: Callable[[str], str],
    ) -> int | None:
        """Count a code typed for this case against its account's guess budget (a case
        without an account: its identifier's, so both do the same work) and return the
        reservation, or None when the last hour's budget is spent (the code is then not
        compared). The same code for the same case again is the same reservation: a retry
        after a lost answer costs nothing more. On PostgreSQL, guesses for one account queue
        on an advisory lock, so parallel guesses cannot slip past the budget together.
        `budget_of` turns `account:<id>` or `identifier:<digest>` into the budget's key."""

        def work(session: Session) -> int | None:
            row = session.get(RecoveryCase, case_id)
            if row is None:
                return None  # no such case: nothing to count
            if row.account_id is not None:
                subject = f"account:{row.account_id}"
            else:
                subject = f"identifier:{row.identifier_digest}"
            budget = budget_of(subject)
            if session.get_bind().dialect.name == "postgresql":
                session.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": budget}
                )
            since = at - RATE_WINDOW
            # What left the window is of no use any more (whichever account it counted for).
            session.execute(delete(CodeGuess).where(col(CodeGuess.at) <= since))
            again = session.execute(
                select(col(CodeGuess.id)).where(
                    col(CodeGuess.budget) == budget,
                    col(CodeGuess.case_id) == case_id,
                    col(CodeGuess.guess) == guess,
                )
            ).scalar()
            if again is not None:
                session.commit()
                return int(again)
            spent = (
                select(func.count())
                .select_from(CodeGuess)
                .where(col(CodeGuess.budget) == budget)
                .scalar_subquery()
            )
            values = select(
                literal(budget).label("budget"),
                literal(case_id).label("case_id"),
                literal(guess).label("guess"),
                literal(at, type_=UTCDateTime()).label("at"),
            ).where(spent < per_hour)
            inserted = session.execute(
                insert(CodeGuess)
                .from_select(["budget", "case_id", "guess", "at"], values)
                .returning(col(CodeGuess.id))
            ).first()
            session.commit()
            return int(inserted[0]) if inserted is not None else None

        return await in_session(self._engine, work)

    async def forgive_guess(self, guess_id: int) -> None:
        """A right code costs no budget."""

        def work(session: Session) -> None:
            session.execute(delete(CodeGuess).where(col(CodeGuess.id) == guess_id))
            session.commit()

        await in_session(self._engine, work)

    async def account_of(self, case_id: str) -> int | None:
        def work(session: Session) -> int | None:
            row = session.get(RecoveryCase, case_id)
            return row.account_id if row is not None else None

        return await in_session(self._engine, work)

    async def superseded(self, case_id: str) -> bool:
        """Whether an approved claim took the account over after this case opened: it may
        then no longer change the password."""

        def work(session: Session) -> bool:
            row = session.get(RecoveryCase, case_id)
            return row is not None and row.state == CaseState.SUPERSEDED

        return await in_session(self._engine, work)

    async def close(self, closing: CaseClosing) -> None:
        """Record how a case ended (idempotent: the first recorded ending stands)."""

        def work(session: Session) -> None:
            row = session.get(RecoveryCase, closing.case_id)
            if row is not None and row.closed_at is None:
                row.state, row.closed_at = closing.state.value, closing.at
                row.wrong_codes, row.resends = closing.wrong_codes, closing.resends
                row.second_factor = closing.second_factor
                row.unknown_address = row.handover_email = None
                session.add(row)
                session.commit()

        await in_session(self._engine, work)

    async def facts(self, case_id: str) -> CaseFacts:
        """What the case's messages need from its row: where to say that no account uses
        the address typed (unknown email addresses and phone numbers only), the language, and
        for the case an approved claim opened with a hold, the address the account moves to."""

        def work(session: Session) -> CaseFacts:
            row = session.get(RecoveryCase, case_id)
            if row is None:
                return CaseFacts(None, None)
            return CaseFacts(
                row.unknown_address,
                row.locale,
                row.handover_email,
                row.handover_claim,
                tuple(row.remove_factors.split()) if row.remove_factors is not None else None,
            )

        return await in_session(self._engine, work)

    async def claim_no_account_notice(
        self, address_digest: str, case_id: str, now: datetime, interval: timedelta
    ) -> bool:
        """Whether case `case_id` may tell the address (under its digest) that no account
        uses it: yes if the address was never told, or last told `interval` ago or more (the
        case takes the turn, in one statement: of two concurrent cases one only gets it), or
        if this very case took the turn (a retried activity sends its notice again)."""

        def work(session: Session) -> bool:
            dialect = session.get_bind().dialect.name
            upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            statement = upsert(NoAccountNotice).values(
                address_digest=address_digest, case_id=case_id, sent_at=now
            )
            taken = session.execute(
                statement.on_conflict_do_update(
                    index_elements=[col(NoAccountNotice.address_digest)],
                    set_={
                        "case_id": statement.excluded.case_id,
                        "sent_at": statement.excluded.sent_at,
                    },
                    where=col(NoAccountNotice.sent_at) <= now - interval,
                ).returning(col(NoAccountNotice.case_id))
            ).first()
            # The rows of addresses that may hear it again are of no more use.
            session.execute(
                delete(NoAccountNotice).where(col(NoAccountNotice.sent_at) <= now - interval)
            )
            session.commit()
            if taken is not None:
                return True
            holder = session.execute(
                select(col(NoAccountNotice.case_id)).where(
                    col(NoAccountNotice.address_digest) == address_digest
                )
            ).scalar()
            return holder == case_id

        return await in_session(self._engine, work)

    async def forget_account(self, account_id: int) -> None:
        """The account was purged: its cases forget the addresses they were to move it to."""

        def work(session: Session) -> None:
            session.execute(
                update(RecoveryCase)
                .where(col(RecoveryCase.account_id) == account_id)
                .values(handover_email=None)
            )
            session.commit()

        await in_session(self._engine, work)

    async def cases_of(self, account_id: int, limit: int | None = None) -> list[CaseRow]:
        """The account's cases, newest first."""

        def work(session: Session) -> list[CaseRow]:
            query = (
                select(RecoveryCase)
                .where(col(RecoveryCase.account_id) == account_id)
                .order_by(col(RecoveryCase.opened_at).desc())
            )
            if limit is not None:
                query = query.limit(limit)
            return [
                CaseRow(row.case_id, row.opened_at, row.channel, row.state, row.second_factor)
                for row in session.execute(query).scalars()
            ]

        return await in_session(self._engine, work)


def open_case(
    session: Session, case: RecoveryCase, *, per_hour: int | None, proof: Proof | None = None
) -> CaseOpened | RateLimited:
    """The count and the insert are one statement (`INSERT ... SELECT ... WHERE count < n`),
    and on PostgreSQL concurrent openings for one identifier also queue on an advisory lock,
    so parallel requests cannot slip past the limit together. Over the limit, a `proof` of
    work made for a level at least the identifier's lets the case in once: it is spent in the
    same transaction (a proof that opens nothing stays unspent)."""
    since = case.opened_at - RATE_WINDOW
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": case.identifier_digest}
        )
    inserted = _insert_below(session, case, per_hour)
    if not inserted and proof is not None:
        assert per_hour is not None
        inserted = _spend(session, proof) and _insert_below(session, case, per_hour + proof.level)
        if inserted:
            session.execute(
                delete(SpentChallenge).where(col(SpentChallenge.expires_at) < case.opened_at)
            )
    if not inserted:
        session.rollback()
        assert per_hour is not None
        return _limited(session, case.identifier_digest, since, case.opened_at, per_hour)
    superseded: list[str] = []
    if per_hour is None and case.account_id is not None:
        superseded = list(
            session.execute(
                select(col(RecoveryCase.case_id)).where(
                    col(RecoveryCase.account_id) == case.account_id,
                    col(RecoveryCase.closed_at).is_(None),
                    col(RecoveryCase.case_id) != case.case_id,
                )
            ).scalars()
        )
        if superseded:
            session.execute(
                update(RecoveryCase)
                .where(col(RecoveryCase.case_id).in_(superseded))
                .values(state=CaseState.SUPERSEDED.value, closed_at=case.opened_at)
            )
    session.commit()
    return CaseOpened(superseded=superseded)


def _insert_below(session: Session, case: RecoveryCase, limit: int | None) -> bool:
    """Insert the case if its identifier opened fewer than `limit` cases in the window (any
    number: `limit` None), in one statement."""
    since = case.opened_at - RATE_WINDOW
    in_window = (
        select(func.count())
        .select_from(RecoveryCase)
        .where(
            col(RecoveryCase.identifier_digest) == case.identifier_digest,
            col(RecoveryCase.opened_at) > since,
        )
        .scalar_subquery()
    )
    table = RecoveryCase.__table__.c  # type: ignore[attr-defined]
    values = {
        "case_id": case.case_id,
        "account_id": case.account_id,
        "identifier_digest": case.identifier_digest,
        "channel": case.channel,
        "unknown_address": case.unknown_address,
        "locale": case.locale,
        "opened_at": case.opened_at,
        "handover_email": case.handover_email,
        "handover_claim": case.handover_claim,
        "remove_factors": case.remove_factors,
        "wrong_codes": 0,
        "resends": 0,
    }
    row = select(
        *(
            literal(value, type_=UTCDateTime() if name == "opened_at" else table[name].type).label(
                name
            )
            for name, value in values.items()
        )
    )
    if limit is not None:
        row = row.where(in_window < limit)
    inserted = session.execute(
        insert(RecoveryCase).from_select(list(values), row).returning(col(RecoveryCase.case_id))
    ).first()
    return inserted is not None


def _spend(session: Session, proof: Proof) -> bool:
    """Remember the proof as spent; False when it was spent already."""
    dialect = session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    spent = session.execute(
        upsert(SpentChallenge)
        .values(challenge=proof.challenge, expires_at=proof.expires_at)
        .on_conflict_do_nothing()
        .returning(col(SpentChallenge.challenge))
    ).first()
    return spent is not None


def _limited(
    session: Session,
    digest: str,
    since: datetime,
    now: datetime,
    per_hour: int,
) -> RateLimited:
    """How far over the limit the identifier is, and when a request without a proof goes
    through again: when the oldest of its last `per_hour` cases leaves the window."""
    recent = (
        col(RecoveryCase.identifier_digest) == digest,
        col(RecoveryCase.opened_at) > since,
    )
    count = session.execute(
        select(func.count()).select_from(RecoveryCase).where(*recent)
    ).scalar_one()
    oldest_counted = session.execute(
        select(col(RecoveryCase.opened_at))
        .where(*recent)
        .order_by(col(RecoveryCase.opened_at).desc())
        .offset(per_hour - 1)
        .limit(1)
    ).scalar()
    # None: a case was forgotten meanwhile (its workflow did not start): try again at once.
    wait = 1 if oldest_counted is None else seconds_until(oldest_counted + RATE_WINDOW, now)
    return RateLimited(wait, level=max(int(count) - per_hour + 1, 1))
