"""A second factor's code on its way through a recovery case: sealed for the case in the
`submit_second_factor` update, so neither workflow history nor the codec endpoint that shows
histories to staff holds it in clear; only the `verify_second_factor` activity opens it, to
ask the directory. A passkey's challenge travels as a keyed digest: the workflow keeps the
latest one handed out, the activity checks the signed one against it."""

from __future__ import annotations

import base64
import hmac

from reclaim.security import Keys

# A passkey's answer (WebAuthn assertion JSON) is a few hundred bytes; longer is not one.
MAX_ASSERTION = 8192


def seal_factor_code(keys: Keys, case_id: str, code: str) -> str:
    return base64.b64encode(keys.seal(code, f"{case_id}/second-factor")).decode()


def open_factor_code(keys: Keys, case_id: str, sealed: str) -> str:
    return keys.unseal(base64.b64decode(sealed), f"{case_id}/second-factor")


def passkey_challenge_digest(keys: Keys, case_id: str, challenge: bytes) -> str:
    return keys.code_digest(case_id, "passkey-challenge:" + challenge.hex())


def is_the_challenge(keys: Keys, case_id: str, challenge: bytes, digest: str | None) -> bool:
    return digest is not None and hmac.compare_digest(
        passkey_challenge_digest(keys, case_id, challenge), digest
    )
