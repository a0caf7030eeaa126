"""Recovery codes, wherever they are kept (the built-in directory's `recovery_code`, or
`kept_recovery_code` for an outside directory's accounts): how a set is made and how a code is
digested. Ten codes of 10 characters from 31 that cannot be mistaken for one another (no 0/o,
1/i/l), shown as xxxxx-xxxxx: about 49.5 bits each."""

from __future__ import annotations

import secrets

from reclaim.security import Keys

CODES = 10
ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
LENGTH = 10


def new_codes() -> list[str]:
    """A fresh set, as shown to the account holder (xxxxx-xxxxx, sorted)."""
    codes: set[str] = set()
    while len(codes) < CODES:
        codes.add("".join(secrets.choice(ALPHABET) for _ in range(LENGTH)))
    return [f"{c[:5]}-{c[5:]}" for c in sorted(codes)]


def code_digest(keys: Keys, account_id: int, code: str) -> str:
    """A recovery code's keyed HMAC digest, bound to its account; spaces, dashes and case do
    not matter. HMAC rather than argon2: the codes are random, not chosen by people, so there
    is no small dictionary for a slow hash to slow down, and without the server secret the
    table cannot be tried offline at all. A digest is also looked up by value in one indexed
    read, where salted argon2 hashes would cost ten verifications per attempt."""
    normal = "".join(ch for ch in code.lower() if ch not in " -\t")
    return keys.scoped_digest(f"recovery-code:{account_id}", normal)
