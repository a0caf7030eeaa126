"""A software WebAuthn authenticator for the tests: an EC P-256 key (ES256) that answers a
registration (attestation "none") and assertions with the JSON a browser hands a page
(`PublicKeyCredential.toJSON()`: base64url fields).

Its signature counter goes up by one per assertion; set `sign_count` back to play a cloned
authenticator, or make it with `counter=False` to play one that keeps no counter (always 0).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

# Authenticator data flags (W3C WebAuthn §6.1).
UP, UV, AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SoftAuthenticator:
    def __init__(
        self,
        rp_id: str,
        origin: str,
        *,
        credential_id: bytes | None = None,
        counter: bool = True,
    ) -> None:
        self.rp_id = rp_id
        self.origin = origin
        self.credential_id = credential_id or os.urandom(32)
        self.user_handle = os.urandom(16)
        self.counter = counter
        self.sign_count = 0
        self._key = ec.generate_private_key(ec.SECP256R1())

    def register(
        self, challenge: bytes, *, origin: str | None = None, rp_id: str | None = None
    ) -> dict[str, Any]:
        """What `navigator.credentials.create()` answers: attestation "none", the credential's
        COSE key in the authenticator data."""
        client_data = self._client_data("webauthn.create", challenge, origin)
        auth_data = (
            self._rp_hash(rp_id)
            + bytes([UP | UV | AT])
            + struct.pack(">I", self.sign_count)
            + bytes(16)  # AAGUID: none
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + cbor2.dumps(self._cose_key())
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return self._credential(
            {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            }
        )

    def assertion(
        self, challenge: bytes, *, origin: str | None = None, rp_id: str | None = None
    ) -> dict[str, Any]:
        """What `navigator.credentials.get()` answers: authenticator data (counter one up) and
        an ECDSA signature over it and the client data's SHA-256."""
        if self.counter:
            self.sign_count += 1
        client_data = self._client_data("webauthn.get", challenge, origin)
        auth_data = self._rp_hash(rp_id) + bytes([UP | UV]) + struct.pack(">I", self.sign_count)
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self._key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return self._credential(
            {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(self.user_handle),
            }
        )

    def _client_data(self, kind: str, challenge: bytes, origin: str | None) -> bytes:
        data = {
            "type": kind,
            "challenge": b64url(challenge),
            "origin": origin or self.origin,
            "crossOrigin": False,
        }
        return json.dumps(data, separators=(",", ":")).encode()

    def _rp_hash(self, rp_id: str | None) -> bytes:
        return hashlib.sha256((rp_id or self.rp_id).encode()).digest()

    def _cose_key(self) -> dict[int, Any]:
        numbers = self._key.public_key().public_numbers()
        # kty EC2, alg ES256, crv P-256, x, y (RFC 9053).
        return {
            1: 2,
            3: -7,
            -1: 1,
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }

    def _credential(self, response: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }
