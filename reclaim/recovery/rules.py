"""The rules of opening a self-service case outside the workflow: which channel and which
masked destination. The limits that run inside the case (code lifetime, wrong codes, resend
cooldown) are `RecoveryRules`, enforced by the workflow.

Unknown identifiers go through exactly the same steps as known ones and produce the same kind
of answer, so nothing a caller sees tells whether an account exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from reclaim.contracts import Channel
from reclaim.directory import AccountRecord
from reclaim.identifiers import (
    Identifier,
    IdentifierKind,
    decoy_email,
    decoy_phone,
    mask_email,
    mask_phone,
)
from reclaim.security import Keys


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
    keys: Keys,
    region: str | None = None,
) -> CasePlan:
    channel = requested or (
        Channel.SMS if identifier.kind is IdentifierKind.PHONE else Channel.EMAIL
    )
    if account is not None and account.contacts:
        if account.address(channel) is None:
            # No address of that kind on file: the code goes to the other one.
            channel = Channel.EMAIL if channel is Channel.SMS else Channel.SMS
        address = account.address(channel)
        assert address is not None
        destination = mask_phone(address) if channel is Channel.SMS else mask_email(address)
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
