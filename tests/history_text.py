"""Reading workflow histories as someone with access to Temporal's database would."""

from __future__ import annotations

import base64
from typing import Any


def payload_texts(node: Any) -> list[str]:
    """Every payload of a history, decoded: what someone reading the database would see."""
    found: list[str] = []
    if isinstance(node, dict):
        data = node.get("data")
        if isinstance(data, str) and "metadata" in node:
            found.append(base64.b64decode(data).decode("utf-8", "replace"))
        for value in node.values():
            found.extend(payload_texts(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(payload_texts(value))
    return found
