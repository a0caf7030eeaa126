"""The proof of work that lets a person past the per-identifier rate limit (ALTCHA v1).

Beyond `RECLAIM_CASES_PER_HOUR` cases for one identifier, a new case is not refused outright:
it costs a proof of work, so the owner of an account whose identifiers a stranger hammers still
gets a code, and the stranger pays for each further mail.

- **The challenge** (`altcha.create_challenge_v1`): find n in [0, `maxNumber`] with
  SHA-256(salt + n) = `challenge`. `maxNumber` depends only on how far over the limit the
  identifier is (`level`, 1 for the first case over it): `RECLAIM_CHALLENGE_BASE` doubled at
  each level, at most `RECLAIM_CHALLENGE_CAP`. Nothing in it depends on the account: a known
  and an unknown identifier with the same count get challenges alike.
- **Bound to the identifier**: it is signed with a key derived from the server secret and the
  identifier (`Keys.challenge_key`): a solution for one identifier is worth nothing for
  another, and the challenge does not name the identifier.
- **Bound to its level**: the salt carries the level it was made for (signed with it); a
  solution opens a case only while the identifier is at most that far over the limit, so
  challenges fetched while the count was low cannot be hoarded and spent later.
- **Single use, short-lived**: it expires after `RECLAIM_CHALLENGE_TTL` seconds; a solution
  that opened a case is remembered until then (`spent_challenge`, in the ledger's transaction).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from altcha import ChallengeOptionsV1, PayloadV1, create_challenge_v1, verify_solution_v1
from altcha.v1 import hmac_hex

from reclaim.security import Keys
from reclaim.settings import Settings

# The longest payload a client may send (a solution is about 300 characters).
MAX_PAYLOAD = 2048
_ALGORITHMS = ("SHA-1", "SHA-256", "SHA-512")
_FIELDS = {"algorithm": str, "challenge": str, "number": int, "salt": str, "signature": str}


class MalformedProof(ValueError):
    """The text given as a solution is not an ALTCHA payload at all."""


@dataclass(frozen=True)
class Proof:
    """A solution whose signature and expiry are good: the challenge it solved (its key in
    `spent_challenge`), the level it was made for, and when it expires."""

    challenge: str
    level: int
    expires_at: datetime


class Challenges:
    def __init__(self, keys: Keys, settings: Settings) -> None:
        self._keys = keys
        self._base = settings.challenge_base
        self._cap = max(settings.challenge_cap, settings.challenge_base)
        self._ttl = timedelta(seconds=settings.challenge_ttl)

    def max_number(self, level: int) -> int:
        """How far the search goes at `level` (1: the first case over the limit)."""
        return min(self._base << min(max(level - 1, 0), 40), self._cap)

    def issue(self, identifier: str, level: int, now: datetime) -> dict[str, Any]:
        """A new challenge for `identifier` (an `Identifier.key`), as JSON."""
        challenge = create_challenge_v1(
            ChallengeOptionsV1(
                hmac_key=self._keys.challenge_key(identifier),
                max_number=self.max_number(level),
                expires=now + self._ttl,
                params={"level": str(level)},
            )
        )
        return dict(challenge.to_dict())

    def check(self, identifier: str, payload: str) -> Proof | None:
        """The proof `payload` carries for `identifier`, or None when it is not one (a wrong
        or another identifier's signature, an expired challenge). Raises `MalformedProof`
        when the text is not a payload at all."""
        solution = parse(payload)
        key = self._keys.challenge_key(identifier)
        if solution["algorithm"] not in _ALGORITHMS:
            return None
        # The signature is checked here in constant time first: the library compares it with
        # `==`, and it then only ever sees a signature that is ours.
        signature = hmac_hex(solution["algorithm"], solution["challenge"].encode(), key)
        if not hmac.compare_digest(signature.encode(), solution["signature"].encode()):
            return None
        fields = (solution[name] for name in _FIELDS)
        good, _ = verify_solution_v1(PayloadV1(*fields), key)
        if not good:
            return None
        params = parse_qs(solution["salt"].partition("?")[2])
        try:
            level = int(params["level"][0])
            expires = datetime.fromtimestamp(int(params["expires"][0]), UTC)
        except (KeyError, IndexError, ValueError):
            return None  # signed by us, so never: but a proof without a level is none
        return Proof(solution["challenge"], level, expires)


def parse(payload: str) -> dict[str, Any]:
    """The fields of an ALTCHA payload (base64 of a JSON object), checked for their types."""
    if len(payload) > MAX_PAYLOAD:
        raise MalformedProof("too long")
    try:
        solution = json.loads(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError) as err:
        raise MalformedProof("not base64 of a JSON object") from err
    if not isinstance(solution, dict):
        raise MalformedProof("not base64 of a JSON object")
    for name, kind in _FIELDS.items():
        value = solution.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise MalformedProof(f"`{name}` is missing or not a {kind.__name__}")
    if not 0 <= solution["number"] < 2**53:
        raise MalformedProof("`number` is out of range")
    return {name: solution[name] for name in _FIELDS}
