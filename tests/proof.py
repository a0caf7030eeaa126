"""Solving a proof-of-work challenge as a client would (ALTCHA v1, with the library's own
solver)."""

from __future__ import annotations

import base64
import json
from typing import Any

from altcha import solve_challenge_v1


def solved(challenge: dict[str, Any]) -> str:
    """What a client that solves `challenge` sends as `altcha`."""
    solution = solve_challenge_v1(
        challenge["challenge"], challenge["salt"], challenge["algorithm"], challenge["maxNumber"]
    )
    assert solution is not None
    payload = {k: v for k, v in challenge.items() if k != "maxNumber"}
    payload["number"] = solution.number
    return base64.b64encode(json.dumps(payload).encode()).decode()
