"""Every payload Reclaim puts in Temporal (workflow inputs and results, activity arguments,
update and signal arguments, query answers, memos, summaries) is encrypted with AES-GCM
before it leaves the process, so Temporal's database and anyone reading it hold ciphertext.

Keys come from `RECLAIM_CODEC_KEYS` (`id:base64key,id:base64key`, 16, 24 or 32 bytes each):
the first encrypts, all of them decrypt, so a key can be rotated by putting a new one first
and dropping the old one once no open case needs it. Without that setting, one key is derived
from the server secret. The key id travels in each payload's metadata.

Search attributes are not payloads and are never encrypted: they hold no personal data.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence

import structlog
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

ENCODING = b"binary/encrypted"
# What the worker and our clients take unsealed: nothing but "no value", which names no one
# and says nothing (an update or signal without arguments from the `temporal` CLI). A payload
# anyone on the Temporal network could have written is refused before any workflow sees it.
UNSEALED_ALLOWED = frozenset({b"binary/null"})
KEY_ID = "encryption-key-id"
DERIVED_KEY_ID = "derived-1"

log = structlog.get_logger(__name__)


class CodecKeyError(ValueError):
    pass


# What an unsealed payload becomes: an encoding no converter reads, so the value it carried
# never reaches a handler. Raising in the codec instead would fail the whole workflow task,
# again at every retry, and hold the case (and every update after it) until the sender gave
# up; failing where the value is read instead rejects the update, drops the signal, and the
# case goes on. On a client, reading one is an error just the same.
REFUSED = b"binary/refused-unsealed"


def parse_keys(spec: str) -> list[tuple[str, bytes]]:
    """`id:base64key,...` → [(id, key)], in order (the first encrypts)."""
    keys: list[tuple[str, bytes]] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        key_id, _, encoded = item.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as err:
            raise CodecKeyError(f"codec key {key_id!r} is not base64") from err
        if not key_id or len(key) not in (16, 24, 32):
            raise CodecKeyError(f"codec key {key_id!r} must be id:base64 of 16, 24 or 32 bytes")
        keys.append((key_id, key))
    if not keys:
        raise CodecKeyError("no codec key given")
    if len({key_id for key_id, _ in keys}) != len(keys):
        raise CodecKeyError("two codec keys share an id")
    return keys


def derived_key(secret: bytes) -> tuple[str, bytes]:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"reclaim/v1/payload-codec"
    ).derive(secret)
    return DERIVED_KEY_ID, key


def new_key_spec(key_id: str) -> str:
    """A fresh `id:base64key` entry for RECLAIM_CODEC_KEYS."""
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise CodecKeyError("no codec key given")
        self._encrypt_id = keys[0][0]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """What the worker and the clients read: only payloads this codec sealed (and the
        empty ones in `UNSEALED_ALLOWED`); any other is replaced by one nobody can read
        (`REFUSED`), so its value is an error wherever it is used."""
        return [self._sealed_only(payload) for payload in payloads]

    def _sealed_only(self, payload: Payload) -> Payload:
        encoding = payload.metadata.get("encoding", b"")
        if encoding == ENCODING:
            return self.decrypt(payload)
        if encoding in UNSEALED_ALLOWED:
            return payload
        log.warning("payload_refused", encoding=encoding.decode(errors="replace"))
        return Payload(metadata={"encoding": REFUSED})

    def reveal(self, payloads: Sequence[Payload]) -> list[Payload]:
        """What the codec endpoint shows staff: sealed payloads opened, any other as it is
        (a history may hold what someone on the Temporal network wrote; showing it is how
        it is seen)."""
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = secrets.token_bytes(12)
        key_id = self._encrypt_id.encode()
        sealed = self._ciphers[self._encrypt_id].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        """A payload this codec encrypted, in clear; any other payload as it is (histories
        written before encryption was turned on stay readable)."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"")
        cipher = self._ciphers.get(key_id.decode(errors="replace"))
        if cipher is None:
            raise CodecKeyError(f"no codec key with id {key_id.decode(errors='replace')!r}")
        data = payload.data
        return Payload.FromString(cipher.decrypt(data[:12], data[12:], key_id))


def data_converter(codec: EncryptionCodec) -> DataConverter:
    return DataConverter(payload_codec=codec)
