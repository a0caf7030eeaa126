"""A claim's evidence, checked before the case starts: what the claimant remembers (previous
passwords, the addresses they registered) against what the directory holds. Only the results
and the risk they make leave this module; what was typed never reaches the workflow.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from reclaim.contracts import Channel
from reclaim.directory import AccountRecord, Capability, Directory
from reclaim.support.contracts import ClaimReason, ContactMatch, Evidence, Risk

MAX_PREVIOUS_PASSWORDS = 5


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


async def assess(directory: Directory, request: ClaimRequest, now: datetime) -> Assessment:
    """Check the evidence against the account the username names (a purged account is found
    through its reserved username, so a claim for it can be told why it cannot be restored).
    Every submitted password costs the same work whether or not the account exists."""
    account = await directory.find_claimed(request.username)
    candidates = list(request.previous_passwords[:MAX_PREVIOUS_PASSWORDS])
    matched = await directory.matching_passwords(
        account.id if account is not None else None, candidates
    )
    evidence = Evidence(
        account_found=account is not None,
        account_status=account.status.value if account is not None else None,
        account_age_days=(now - account.created_at).days
        if account is not None and account.created_at is not None
        else None,
        passwords_given=len(candidates),
        passwords_matched=matched,
        registered_email=await _compare(
            directory, account, Channel.EMAIL, request.registered_email
        ),
        registered_phone=await _compare(directory, account, Channel.SMS, request.registered_phone),
        previous_passwords_checked=Capability.PASSWORD_HISTORY in directory.capabilities,
        past_addresses_checked=Capability.PAST_CONTACTS in directory.capabilities,
        wrote_from_account_email=_from_account_email(account, request)
        if request.reason is ClaimReason.LOST_AUTHENTICATOR
        else None,
    )
    risk = risk_of(evidence)
    if request.reason is ClaimReason.LOST_AUTHENTICATOR:
        # Whoever asks to go without the account's second factors gets two people (the
        # two-person rule), whatever else they knew.
        risk = Risk.HIGH
    return Assessment(account.id if account is not None else None, evidence, risk)


def _from_account_email(account: AccountRecord | None, request: ClaimRequest) -> bool:
    """A lost-authenticator claim's recovery goes through the account's email address: did the
    claim come from it (its mail, the claim's link, is read there)?"""
    if account is None or account.email is None:
        return False
    return hmac.compare_digest(account.email.encode(), request.contact_email.encode())


async def _compare(
    directory: Directory, account: AccountRecord | None, channel: Channel, given: str | None
) -> ContactMatch:
    if given is None:
        return ContactMatch.NOT_GIVEN
    if account is None:
        return ContactMatch.NO_MATCH
    current = account.address(channel)
    if current is not None and hmac.compare_digest(given.encode(), current.encode()):
        return ContactMatch.CURRENT
    if await directory.was_contact(account.id, channel, given):
        return ContactMatch.PAST
    return ContactMatch.NO_MATCH


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
