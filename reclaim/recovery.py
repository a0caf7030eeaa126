"""The rules of opening a self-service case and of choosing its new password, outside the
workflow: which channel, which masked destination, the rate limit, the password policy.

Unknown identifiers go through exactly the same steps as known ones and produce the same
kind of answer, so nothing a caller sees tells whether an account exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from reclaim import accounts, cases
from reclaim.contracts import Channel
from reclaim.identifiers import (
    Identifier,
    IdentifierKind,
    decoy_email,
    decoy_phone,
    mask_email,
    mask_phone,
)
from reclaim.models import Account, RecoveryCase
from reclaim.passwords import PolicyVerdict, check_password
from reclaim.security import Keys, Passwords


@dataclass(frozen=True)
class CasePlan:
    account_id: int | None
    channel: Channel
    destination: str  # masked
    unknown_address: str | None  # where to say "no account here", for unknown addresses


def plan_case(
    account: Account | None,
    identifier: Identifier,
    requested: Channel | None,
    keys: Keys,
    region: str | None = None,
) -> CasePlan:
    channel = requested or (
        Channel.SMS if identifier.kind is IdentifierKind.PHONE else Channel.EMAIL
    )
    if account is not None:
        if channel is Channel.SMS and not account.phone:
            channel = Channel.EMAIL  # no phone on file: the code goes to the email
        destination = (
            mask_phone(account.phone)
            if channel is Channel.SMS and account.phone
            else mask_email(account.email)
        )
        return CasePlan(account.id, channel, destination, None)
    # Nobody has this identifier. When the person typed an address of the channel asked
    # for, show it masked (exactly what a known account would show) and tell that address;
    # otherwise invent a destination, the same one every time for this identifier.
    if channel is Channel.EMAIL and identifier.kind is IdentifierKind.EMAIL:
        return CasePlan(None, channel, mask_email(identifier.value), identifier.value)
    if channel is Channel.SMS and identifier.kind is IdentifierKind.PHONE:
        return CasePlan(None, channel, mask_phone(identifier.value), identifier.value)
    seed = keys.decoy_seed(identifier.key)
    decoy = decoy_phone(seed, region) if channel is Channel.SMS else decoy_email(seed)
    return CasePlan(None, channel, decoy, None)


@dataclass(frozen=True)
class Opening:
    plan: CasePlan
    outcome: cases.CaseOpened | cases.RateLimited


def open_recovery_case(
    engine: Engine,
    keys: Keys,
    *,
    case_id: str,
    identifier: Identifier,
    requested: Channel | None,
    opened_at: datetime,
    per_hour: int,
    region: str | None = None,
) -> Opening:
    with Session(engine) as session:
        account = accounts.find_account(session, identifier)
        plan = plan_case(account, identifier, requested, keys, region)
        outcome = cases.open_case(
            session,
            RecoveryCase(
                case_id=case_id,
                account_id=plan.account_id,
                identifier_digest=keys.identifier_digest(identifier.key),
                channel=plan.channel.value,
                unknown_address=plan.unknown_address,
                opened_at=opened_at,
            ),
            per_hour=per_hour,
        )
        return Opening(plan, outcome)


def forget_case(engine: Engine, case_id: str) -> None:
    with Session(engine) as session:
        cases.forget_case(session, case_id)


class PasswordRefused(Exception):
    def __init__(self, error: str, verdict: PolicyVerdict | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.verdict = verdict


def prepare_new_password(
    engine: Engine, passwords: Passwords, account_id: int, password: str
) -> str:
    """Check the policy and the last passwords, then hash: the argon2 hash is all that
    leaves this function (and all that reaches the workflow)."""
    with Session(engine) as session:
        account = session.get(Account, account_id)
        if account is None:
            raise PasswordRefused("invalid_state")
        recent = accounts.recent_password_hashes(session, account_id)
    verdict = check_password(
        password, username=account.username, email=account.email, phone=account.phone
    )
    if not verdict.ok:
        raise PasswordRefused("weak_password", verdict)
    if any(passwords.verify(old, password) for old in recent):
        raise PasswordRefused("password_reused")
    return passwords.hash(password)
