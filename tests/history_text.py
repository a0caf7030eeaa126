"""Reading workflow histories as someone with access to Temporal's database would, and as an
operator does through the codec endpoint."""

from __future__ import annotations

import base64
from typing import Any

from temporalio.api.common.v1 import Payload

from reclaim.temporal.codec import ENCODING, EncryptionCodec, derived_key
from tests.stack import TEST_SECRET

# The codec of every test stack (its key derived from the tests' secret, as a deployment without
# RECLAIM_CODEC_KEYS derives it): recorded histories are encrypted with it.
TEST_CODEC = EncryptionCodec([derived_key(TEST_SECRET.encode())])
PATCH_MARKER = "core_patch"


def payloads(node: Any) -> list[Payload]:
    """Every payload in a history (as `fetch_history().to_json()` gives it, parsed), except
    search attributes (indexed in clear by design, no personal data) and the markers of
    `workflow.patched` (the SDK writes a patch's id in clear, never through the codec).

    A payload is anything with a `metadata` object. Its `data` may be absent: the JSON form
    leaves out empty bytes, so a `binary/null` payload (an activity that returns None, an
    update without a result) is only metadata, and must be looked at all the same."""
    found: list[Payload] = []
    if isinstance(node, dict):
        if node.get("markerName") == PATCH_MARKER:
            return found
        metadata = node.get("metadata")
        if isinstance(metadata, dict):
            found.append(
                Payload(
                    metadata={k: base64.b64decode(v) for k, v in metadata.items()},
                    data=base64.b64decode(node.get("data") or ""),
                )
            )
        for key, value in node.items():
            if key != "searchAttributes":
                found.extend(payloads(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(payloads(value))
    return found


def search_attribute_texts(node: Any) -> list[str]:
    """Every search attribute a history sets, as `Name=value` (they are indexed in clear)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "searchAttributes" and isinstance(value, dict):
                for name, payload in value.get("indexedFields", {}).items():
                    text = base64.b64decode(payload.get("data") or "").decode("utf-8", "replace")
                    found.append(f"{name}={text}")
            else:
                found.extend(search_attribute_texts(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(search_attribute_texts(value))
    return found


def payload_texts(node: Any, codec: EncryptionCodec | None = None) -> list[str]:
    """Every payload's bytes as text: what the database holds, or (with the codec) what an
    operator reads."""
    return [
        (codec.decrypt(p) if codec else p).data.decode("utf-8", "replace") for p in payloads(node)
    ]


def all_encrypted(node: Any) -> bool:
    found = payloads(node)
    return bool(found) and all(p.metadata.get("encoding") == ENCODING for p in found)
