"""A second factor's code on its way through a recovery case: sealed for the case in the
`submit_second_factor` update, so neither workflow history nor the codec endpoint that shows
histories to staff holds it in clear; only the `verify_second_factor` activity opens it, to
ask the directory."""

from __future__ import annotations

import base64

from reclaim.security import Keys


def seal_factor_code(keys: Keys, case_id: str, code: str) -> str:
    return base64.b64encode(keys.seal(code, f"{case_id}/second-factor")).decode()


def open_factor_code(keys: Keys, case_id: str, sealed: str) -> str:
    return keys.unseal(base64.b64decode(sealed), f"{case_id}/second-factor")
