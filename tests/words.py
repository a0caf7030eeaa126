"""How the English messages write dates and times, written out independently of the code that
formats them, so a test can say what a person reads."""

from __future__ import annotations

from datetime import UTC, datetime


def moment(at: datetime) -> str:
    """`Dec 1, 2026, 9:02 PM UTC` (with the narrow no-break space CLDR puts before PM)."""
    at = at.astimezone(UTC)
    return f"{at:%b} {at.day}, {at:%Y}, {int(f'{at:%I}')}:{at:%M}\u202f{at:%p} UTC"


def day(at: datetime) -> str:
    """`December 29, 2026`."""
    at = at.astimezone(UTC)
    return f"{at:%B} {at.day}, {at:%Y}"
