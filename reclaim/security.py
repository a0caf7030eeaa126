"""Codes, tokens, digests and password hashing.

Every key is derived from the one server secret (`RECLAIM_SECRET_KEY`) with HKDF, one key per
purpose, so a digest made for one use can never be replayed as another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CODE_DIGITS = 6
CASE_ID_PREFIX = "rc_"
DELETION_CASE_PREFIX = "del_"
BAN_CASE_PREFIX = "ban_"
CLAIM_CASE_PREFIX = "sc_"


def new_code() -> str:
    """A one-time code: 6 digits from the operating system's CSPRNG."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def new_token() -> str:
    """A bearer token (reset token, session token): 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def new_case_id(prefix: str = CASE_ID_PREFIX) -> str:
    """`rc_` (or another kind's prefix) + 128 random bits: a case id is unguessable, so it
    can sit in a URL."""
    return prefix + secrets.token_urlsafe(16)


_SEAL_BYTES = 16  # a reset pass's signature: 128 bits


def _urlsafe(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


class Keys:
    """The server secret's derived keys and what is done with them."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the secret key must be at least 16 bytes long")
        self._code = _derive(secret, b"reclaim/v1/code-digest")
        self._token = _derive(secret, b"reclaim/v1/token-digest")
        self._identifier = _derive(secret, b"reclaim/v1/identifier-digest")
        self._decoy = _derive(secret, b"reclaim/v1/decoy")
        self._proof = _derive(secret, b"reclaim/v1/proof")
        self._reset = _derive(secret, b"reclaim/v1/reset-token")
        self._stop = _derive(secret, b"reclaim/v1/stop")
        self._challenge = _derive(secret, b"reclaim/v1/proof-of-work")
        self._at_rest = AESGCM(_derive(secret, b"reclaim/v1/at-rest"))
        # Signs who asks for an update (reclaim/temporal/proofs.py): held by the API, the
        # command line and the worker, never by Temporal or the codec endpoint.
        self.actor_proof_key = _derive(secret, b"reclaim/v1/actor-proof")

    @staticmethod
    def _mac(key: bytes, *parts: str) -> str:
        return hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()

    def code_digest(self, case_id: str, code: str) -> str:
        """What travels through workflow history instead of the code: bound to the case, so a
        code of one case is worthless in another."""
        return self._mac(self._code, case_id, code)

    def proof_token(self, case_id: str, code: str) -> str:
        """The unguessable twin of a code (256 bits): a message's link carries it, so the
        person who received the code can prove it without typing, and without a guess budget
        (nobody can guess it). Derived from the code, so a retried send sends the same."""
        return _urlsafe(hmac.new(self._proof, f"{case_id}\x1f{code}".encode(), "sha256").digest())

    def proof_digest(self, case_id: str, proof: str) -> str:
        """What travels through workflow history instead of a proof token."""
        return self._mac(self._code, case_id, "proof", proof)

    def reset_token(self, case_id: str, submitted_digest: str) -> str:
        """The reset token a right code (or proof) earns: derived from it, so submitting the
        same code again after a lost answer earns the same token (and nobody else can)."""
        return _urlsafe(
            hmac.new(self._reset, f"{case_id}\x1f{submitted_digest}".encode(), "sha256").digest()
        )

    def reset_pass(self, case_id: str, token: str, expires_at: int) -> str:
        """The reset token as it is handed out: the token the workflow knows, then when it
        stops working and a signature over both, so the API turns away a forged, foreign or
        expired token itself, before any hashing and without asking the workflow."""
        stamp = expires_at.to_bytes(8, "big")
        return f"{token}.{_urlsafe(stamp + self._reset_seal(case_id, token, stamp))}"

    def open_reset_pass(self, case_id: str, given: str) -> tuple[str, int] | None:
        """The token inside a pass of this case and its expiry (seconds since the epoch), or
        None when it is not one (forged, another case's, or an older token without a seal)."""
        token, dot, sealed = given.partition(".")
        try:
            raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        except ValueError:
            return None
        if not dot or len(raw) != 8 + _SEAL_BYTES:
            return None
        stamp, seal = raw[:8], raw[8:]
        if not hmac.compare_digest(seal, self._reset_seal(case_id, token, stamp)):
            return None
        return token, int.from_bytes(stamp, "big")

    def _reset_seal(self, case_id: str, token: str, stamp: bytes) -> bytes:
        message = f"seal\x1f{case_id}\x1f{token}\x1f".encode() + stamp
        return hmac.new(self._reset, message, "sha256").digest()[:_SEAL_BYTES]

    def stop_token(self, case_id: str, address: str) -> str:
        """The signature in a "Wasn't you? Stop it" link sent to `address` about a held case."""
        return _urlsafe(hmac.new(self._stop, f"{case_id}\x1f{address}".encode(), "sha256").digest())

    def token_digest(self, token: str) -> str:
        return self._mac(self._token, token)

    def scoped_digest(self, scope: str, token: str) -> str:
        """A bearer secret's digest for one use only ("claim", "staff"): a claim token can
        never pass for a staff key, nor either for a session."""
        return self._mac(self._token, scope, token)

    def identifier_digest(self, identifier: str) -> str:
        """Rate-limit key for an identifier, stored instead of the identifier itself."""
        return self._mac(self._identifier, identifier)

    def decoy_seed(self, identifier: str) -> bytes:
        """Stable pseudo-random bytes for an identifier, to invent the same believable masked
        destination every time someone asks about an account that does not exist."""
        return hmac.new(self._decoy, identifier.encode(), hashlib.sha256).digest()

    def challenge_key(self, identifier: str) -> str:
        """The HMAC key the proof-of-work challenges of one identifier are signed with: a
        solution is good for that identifier only, and the challenge names nobody."""
        return self._mac(self._challenge, identifier)

    def seal(self, plaintext: str, context: str) -> bytes:
        """Encrypt a value kept at rest for a short while (a code waiting to be re-sent)."""
        nonce = secrets.token_bytes(12)
        return nonce + self._at_rest.encrypt(nonce, plaintext.encode(), context.encode())

    def unseal(self, sealed: bytes, context: str) -> str:
        return self._at_rest.decrypt(sealed[:12], sealed[12:], context.encode()).decode()


class Passwords:
    """argon2id hashing with a configurable cost."""

    def __init__(self, time_cost: int = 3, memory_cost: int = 65_536, parallelism: int = 4):
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )
        # Verified against when an identifier is unknown, so a login for an account that
        # does not exist costs the same time as one that does.
        self._decoy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._decoy_hash, password) and (
                password_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
