"""The rules of opening a self-service case outside the workflow: which channel and which
masked destination. The limits that run inside the case (code lifetime, wrong codes, resend
cooldown) are `RecoveryRules`, enforced by the workflow.

Unknown identifiers go through exactly the same steps as known ones and produce the same kind
of answer, so nothing a caller sees tells whether an account exists: an identifier that names
nobody is answered as if it were one of a real account's (`Directory.decoy`), so its masked
destination and its channel come from the real accounts' own distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

from reclaim.contracts import Channel
from reclaim.directory import AccountRecord
from reclaim.identifiers import (
    Identifier,
    IdentifierKind,
    decoy_contacts,
    mask_email,
    mask_phone,
)


@dataclass(frozen=True)
class CasePlan:
    account_id: int | None
    channel: Channel
    destination: str  # masked
    unknown_address: str | None  # where to say "no account here", for unknown addresses


def plan_case(
    account: AccountRecord | None,
    identifier: Identifier,
    requested: Channel | None,
    sample: AccountRecord | None,
    seed: bytes,
    region: str | None = None,
) -> CasePlan:
    """`account`: the one the identifier names, if any. `sample`: the real account the
    directory picked for `seed` (`Directory.decoy`), None if it cannot pick one; `seed`: the
    identifier's keyed seed (`Keys.decoy_seed`), which also invents contacts when there is no
    sample."""
    channel = requested or (
        Channel.SMS if identifier.kind is IdentifierKind.PHONE else Channel.EMAIL
    )
    if account is not None and account.contacts:
        channel, address = _route(account.email, account.phone, channel)
        return CasePlan(account.id, channel, _masked(channel, address), None)
    # Nobody has this identifier (or its account has no contact at all). Answer as the
    # sample would if the identifier were its own: the same channel rule (no phone: email),
    # the address typed when it is the one the code would go to (shown masked, exactly what
    # a known account shows, and told that nobody has an account there), else the sample's.
    if sample is not None and sample.contacts:
        email, phone = sample.email, sample.phone
    else:
        email, phone = decoy_contacts(seed, region)
    if identifier.kind is IdentifierKind.EMAIL:
        email = identifier.value
    elif identifier.kind is IdentifierKind.PHONE:
        phone = identifier.value
    channel, address = _route(email, phone, channel)
    typed = address if address == identifier.value else None
    return CasePlan(None, channel, _masked(channel, address), typed)


def _route(email: str | None, phone: str | None, channel: Channel) -> tuple[Channel, str]:
    """The channel the code goes by, and the address: the one asked for, else the other."""
    address = phone if channel is Channel.SMS else email
    if address is None:
        channel = Channel.EMAIL if channel is Channel.SMS else Channel.SMS
        address = phone if channel is Channel.SMS else email
    assert address is not None
    return channel, address


def _masked(channel: Channel, address: str) -> str:
    return mask_phone(address) if channel is Channel.SMS else mask_email(address)
