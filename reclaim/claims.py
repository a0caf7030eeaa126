"""Support claims outside the workflow: checking the evidence before a case starts, the
claim's row (where the claimant's own words and address live, out of workflow history), the
answers to reviewers' questions, and what an approval changes in the database.

Synchronous SQL; callers on the event loop run these in a thread.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from reclaim import accounts, cases, lifecycle
from reclaim.contracts import (
    AccountStatus,
    Actor,
    ActorKind,
    Channel,
    ClaimClosing,
    ClaimReason,
    ContactMatch,
    Evidence,
    ResolveClaim,
    Risk,
)
from reclaim.identifiers import Identifier, IdentifierKind, mask_email
from reclaim.models import (
    Account,
    ClaimAnswer,
    NotificationKind,
    PastContact,
    RecoveryCase,
    ReservedUsername,
    SupportClaim,
)
from reclaim.notifications import Contact, Notifier
from reclaim.security import Keys, Passwords, new_case_id

MAX_PREVIOUS_PASSWORDS = 5
RATE_WINDOW = timedelta(hours=1)
# Every submitted password is compared with this many hashes, padded with a decoy when the
# account has fewer (or does not exist): the time taken says nothing about the account.
PASSWORD_EVIDENCE_DEPTH = accounts.PASSWORD_HISTORY_DEPTH
# An approval opens its recovery case whatever the self-service rate limit says.
UNLIMITED = 1_000_000


@dataclass(frozen=True)
class ClaimRequest:
    """What the claimant submitted, already normalised (addresses canonical)."""

    username: str
    contact_email: str
    reason: ClaimReason
    registered_email: str | None = None
    registered_phone: str | None = None
    previous_passwords: tuple[str, ...] = ()
    description: str | None = None


@dataclass(frozen=True)
class Assessment:
    account_id: int | None
    evidence: Evidence
    risk: Risk


def contact_digest(keys: Keys, kind: IdentifierKind, address: str) -> str:
    return keys.identifier_digest(Identifier(kind, address).key)


def assess(
    session: Session, keys: Keys, passwords: Passwords, request: ClaimRequest, now: datetime
) -> Assessment:
    """Check the evidence against the account the username names (a purged account is found
    through its reserved username, so a claim for it can be told why it cannot be restored).
    Only the results leave this function."""
    account = accounts.find_account(session, Identifier(IdentifierKind.USERNAME, request.username))
    if account is None:
        reserved = session.get(ReservedUsername, accounts.username_digest(keys, request.username))
        if reserved is not None and reserved.account_id is not None:
            account = session.get(Account, reserved.account_id)
    hashes: list[str | None] = []
    past: set[tuple[str, str]] = set()
    if account is not None and account.id is not None:
        hashes += accounts.recent_password_hashes(session, account.id, PASSWORD_EVIDENCE_DEPTH)
        past = {
            (row.kind, row.digest)
            for row in session.exec(select(PastContact).where(PastContact.account_id == account.id))
        }
    hashes += [None] * (PASSWORD_EVIDENCE_DEPTH - len(hashes))
    matched = sum(
        1
        for password in request.previous_passwords[:MAX_PREVIOUS_PASSWORDS]
        # Every comparison is made, even after a match: constant work per password.
        if [passwords.verify(h, password) for h in hashes].count(True) > 0
    )

    def compare(kind: IdentifierKind, given: str | None, current: str | None) -> ContactMatch:
        if given is None:
            return ContactMatch.NOT_GIVEN
        if account is None:
            return ContactMatch.NO_MATCH
        if current is not None and hmac.compare_digest(given, current):
            return ContactMatch.CURRENT
        if (kind.value, contact_digest(keys, kind, given)) in past:
            return ContactMatch.PAST
        return ContactMatch.NO_MATCH

    evidence = Evidence(
        account_found=account is not None,
        account_status=account.status if account is not None else None,
        account_age_days=(now - account.created_at).days if account is not None else None,
        passwords_given=min(len(request.previous_passwords), MAX_PREVIOUS_PASSWORDS),
        passwords_matched=matched,
        registered_email=compare(
            IdentifierKind.EMAIL, request.registered_email, account.email if account else None
        ),
        registered_phone=compare(
            IdentifierKind.PHONE, request.registered_phone, account.phone if account else None
        ),
    )
    return Assessment(account.id if account is not None else None, evidence, risk_of(evidence))


def risk_of(evidence: Evidence) -> Risk:
    """Low when the claimant knew a password and an address, medium with one of them, high
    with nothing (or no account)."""
    if not evidence.account_found:
        return Risk.HIGH
    known = (ContactMatch.CURRENT, ContactMatch.PAST)
    score = 2 if evidence.passwords_matched else 0
    score += evidence.registered_email in known
    score += evidence.registered_phone in known
    if score >= 3:
        return Risk.LOW
    return Risk.MEDIUM if score >= 1 else Risk.HIGH


@dataclass(frozen=True)
class ClaimLimited:
    retry_after: int


def open_claim(session: Session, claim: SupportClaim, *, per_hour: int) -> ClaimLimited | None:
    """Record a new claim, unless its contact address already filed `per_hour` in the last
    hour (a claim mails that address: nobody may use Reclaim to flood a mailbox)."""
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
        return ClaimLimited(max(1, int((oldest + RATE_WINDOW - claim.opened_at).total_seconds())))
    session.add(claim)
    session.commit()
    return None


def forget_claim(session: Session, case_id: str) -> None:
    """Undo `open_claim` when the workflow could not be started."""
    row = session.get(SupportClaim, case_id)
    if row is not None:
        session.delete(row)
        session.commit()


def _token_context(case_id: str) -> str:
    return f"{case_id}/claim-token"


def seal_claim_token(keys: Keys, case_id: str, token: str) -> bytes:
    """The claim token, kept sealed only until the mail that carries it has gone."""
    return keys.seal(token, _token_context(case_id))


def unseal_claim_token(keys: Keys, claim: SupportClaim) -> str:
    assert claim.sealed_token is not None
    return keys.unseal(claim.sealed_token, _token_context(claim.case_id))


def token_matches(claim: SupportClaim | None, keys: Keys, token: str) -> bool:
    digest = keys.scoped_digest("claim", token)
    expected = claim.claim_token_digest if claim is not None else digest[::-1]
    return hmac.compare_digest(expected, digest) and claim is not None


def add_answer(session: Session, case_id: str, text: str, at: datetime) -> int:
    """Keep the claimant's answer; returns its round (1 for the first)."""
    count = session.exec(
        select(func.count()).select_from(ClaimAnswer).where(ClaimAnswer.case_id == case_id)
    ).one()
    answer = ClaimAnswer(case_id=case_id, round=count + 1, text=text, at=at)
    session.add(answer)
    session.commit()
    return answer.round


def withdraw_answer(session: Session, case_id: str, round_: int) -> None:
    answer = session.exec(
        select(ClaimAnswer).where(ClaimAnswer.case_id == case_id, ClaimAnswer.round == round_)
    ).first()
    if answer is not None:
        session.delete(answer)
        session.commit()


def answers(session: Session, case_id: str) -> list[ClaimAnswer]:
    return list(
        session.exec(
            select(ClaimAnswer)
            .where(ClaimAnswer.case_id == case_id)
            .order_by(col(ClaimAnswer.round))
        )
    )


def reviewer_actor(request: ResolveClaim) -> Actor:
    return Actor(ActorKind.OPERATOR, request.by.name)


@dataclass(frozen=True)
class Handover:
    """An approved takeover or lost-contact claim: the account now answers to the verified
    contact, and a recovery case is open to it."""

    recovery_case_id: str
    destination: str
    superseded: tuple[str, ...] = ()
    reactivated: str | None = None


class Unresolvable(Exception):
    """The approval cannot be applied; the message says why, for the reviewer."""


def hand_over(session: Session, keys: Keys, notifier: Notifier, request: ResolveClaim) -> Handover:
    """Replace the account's addresses with the claim's verified contact (the phone goes too:
    the claim did not verify one), sign every session out, owe the old addresses a notice,
    and open a recovery case to the new address, in one transaction. Applying it again
    returns what the first time did."""
    claim = session.exec(
        select(SupportClaim).where(SupportClaim.case_id == request.case_id).with_for_update()
    ).one()
    if claim.recovery_case_id is not None:
        return Handover(claim.recovery_case_id, mask_email(claim.contact_email))
    account = session.exec(
        select(Account).where(Account.id == request.account_id).with_for_update()
    ).first()
    if account is None or account.status == AccountStatus.PURGED:
        raise Unresolvable("The account was deleted for good: it cannot be handed over.")
    if account.status == AccountStatus.BANNED:
        raise Unresolvable("The account is banned: lift the ban first, or decide the appeal.")
    new_email = claim.contact_email
    taken = session.exec(
        select(Account.id).where(Account.email == new_email, Account.id != account.id)
    ).first()
    if taken is not None:
        raise Unresolvable("Another account uses the claim's contact address.")
    assert account.id is not None
    old_email = account.email if account.email != new_email else None
    old_phone = account.phone
    owed = [Contact(Channel.EMAIL, old_email)] if old_email else []
    owed += [Contact(Channel.SMS, old_phone)] if old_phone else []
    notifier.queue(session, request.case_id, NotificationKind.CONTACT_REPLACED, owed)
    for kind, old in ((IdentifierKind.EMAIL, old_email), (IdentifierKind.PHONE, old_phone)):
        if old is not None:
            session.add(
                PastContact(
                    account_id=account.id,
                    kind=kind.value,
                    digest=contact_digest(keys, kind, old),
                    replaced_at=request.at,
                    case_id=request.case_id,
                )
            )
    account.email, account.phone = new_email, None
    actor = reviewer_actor(request)
    reactivated = lifecycle.reactivate(session, account, request.at, actor, case_id=request.case_id)
    session.add(account)
    accounts.revoke_all_sessions(session, account.id, request.at)
    lifecycle.record(
        session,
        account,
        lifecycle.Action.CONTACT_REPLACED,
        actor,
        request.at,
        reason=f"support claim ({request.reason.value}) approved",
        case_id=request.case_id,
    )
    recovery_case_id = new_case_id()
    claim.recovery_case_id = recovery_case_id
    session.add(claim)
    opened = cases.open_case(  # commits everything above with it
        session,
        RecoveryCase(
            case_id=recovery_case_id,
            account_id=account.id,
            identifier_digest=contact_digest(keys, IdentifierKind.EMAIL, new_email),
            channel="email",
            opened_at=request.at,
        ),
        per_hour=UNLIMITED,
    )
    assert isinstance(opened, cases.CaseOpened)
    return Handover(recovery_case_id, mask_email(new_email), tuple(opened.superseded), reactivated)


def restore(session: Session, request: ResolveClaim) -> str | None:
    """An approved `deleted` claim: reactivate the account if it is still inside its grace
    period. Returns the deletion case that must stop waiting."""
    account = session.exec(
        select(Account).where(Account.id == request.account_id).with_for_update()
    ).first()
    if account is None:
        raise Unresolvable("No account to restore.")
    if account.status == AccountStatus.PURGED:
        when = f" on {account.status_since:%Y-%m-%d}" if account.status_since else ""
        raise Unresolvable(
            f"The account's grace period ended and it was purged{when}: it cannot be restored."
        )
    if account.status == AccountStatus.BANNED:
        raise Unresolvable("The account is banned: decide the appeal instead.")
    deletion = lifecycle.reactivate(
        session, account, request.at, reviewer_actor(request), case_id=request.case_id
    )
    session.commit()
    return deletion


def mark_escalated(session: Session, case_id: str, at: datetime) -> None:
    """Remember the first escalation of a claim (a second level keeps the first time)."""
    claim = session.get(SupportClaim, case_id)
    if claim is not None and claim.escalated_at is None:
        claim.escalated_at = at
        session.add(claim)
        session.commit()


def record_closing(session: Session, closing: ClaimClosing) -> None:
    """The claim's end, its decision and whole timeline, kept for good (idempotent)."""
    claim = session.get(SupportClaim, closing.case_id)
    if claim is None or claim.closed_at is not None:
        return
    claim.state = closing.state.value
    claim.closed_at = closing.at
    claim.decision = json.dumps(asdict(closing.decision), default=str) if closing.decision else None
    claim.timeline = json.dumps([asdict(entry) for entry in closing.timeline], default=str)
    claim.sealed_token = None
    session.add(claim)
    session.commit()
