"""Wrong codes for tests: distinct (the same wrong code typed again is answered the same and
not counted twice) and never the right one."""

from __future__ import annotations


def wrong_codes(right: str, count: int) -> list[str]:
    candidates = (f"{n:06d}" for n in range(100_000, 1_000_000, 111_111))
    found = [code for code in candidates if code != right][:count]
    assert len(found) == count
    return found
