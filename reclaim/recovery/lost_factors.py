"""The second factors an approved lost-authenticator claim removes: named by kind (`totp`,
`recovery_code`) or, for one passkey, `webauthn:<its key>` (the credential id, base64url).
Names only, never a secret: they travel through the claim's history into the recovery case's
row, and are removed when the case's held new password takes effect.
"""

from __future__ import annotations

import re

from reclaim.directory import CapabilityMissing, Directory
from reclaim.directory.port import FactorKind, FactorSummary, passkey_id
from reclaim.errors import Refused

PASSKEY = f"{FactorKind.WEBAUTHN.value}:"
# A credential id as `passkey_key` writes it (base64url, no padding; WebAuthn allows 1023 bytes).
PASSKEY_KEY = re.compile(r"[A-Za-z0-9_-]{2,1364}")


def choice_key(factor: FactorSummary) -> str:
    """How a factor is named in a reviewer's choice."""
    if factor.kind is FactorKind.WEBAUTHN and factor.key is not None:
        return PASSKEY + factor.key
    return factor.kind.value


def choices(factors: list[FactorSummary]) -> list[str]:
    """Every factor of the account, as a choice names it (the default: remove them all)."""
    return [choice_key(factor) for factor in factors]


def is_choice(key: str) -> bool:
    if key.startswith(PASSKEY):
        return PASSKEY_KEY.fullmatch(key.removeprefix(PASSKEY)) is not None
    return key in (FactorKind.TOTP.value, FactorKind.RECOVERY_CODE.value)


def check_choice(keys: list[str] | None) -> None:
    """A reviewer's choice names factors, nothing else (None: all of them)."""
    wrong = [key for key in keys or [] if not is_choice(key)]
    if wrong:
        raise Refused("invalid_factor", f"No second factor is named {wrong[0][:80]}.")


async def remove_chosen(
    directory: Directory, account_id: int, chosen: tuple[str, ...]
) -> list[str]:
    """Remove the chosen factors the account still has; each chosen one, said for its holder
    (`totp`, `recovery_code`, a passkey's name, or `webauthn` for a passkey gone already: a
    retry after the removal still says what went). Running it again removes nothing."""
    have = {choice_key(factor): factor for factor in await directory.factors(account_id)}
    said: list[str] = []
    for key in chosen:
        factor = have.get(key)
        if key.startswith(PASSKEY):
            said.append(factor.name if factor is not None and factor.name else "webauthn")
        else:
            said.append(key)
        if factor is None:
            continue
        try:
            if factor.kind is FactorKind.WEBAUTHN and factor.key is not None:
                await directory.remove_passkey(account_id, passkey_id(factor.key))
            else:
                await directory.remove_factor(account_id, factor.kind)
        except CapabilityMissing:
            # A factor the directory shows but keeps elsewhere: its own store removes it.
            said.pop()
    return said
