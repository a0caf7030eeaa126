"""The errors the feature services raise. The API turns them into HTTP answers in one table
(`api/errors.py`), the CLI into one line each; nothing above the services sees Temporal's or
SQLAlchemy's own exceptions.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Something the caller is told, in words, with a stable code."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """No such case (or claim): an id that is malformed, unknown or not this kind's."""

    def __init__(self, what: str = "recovery case") -> None:
        super().__init__(f"No {what} has this id.")
        self.what = what


class Unavailable(DomainError):
    """Temporal, a worker, the database or the directory did not answer in time. Nothing was
    lost: the caller may try again in a few seconds."""

    def __init__(
        self, what: str = "The recovery service", retry_after: int = 5, message: str | None = None
    ) -> None:
        super().__init__(
            message or f"{what} is not answering right now. Try again in a few seconds."
        )
        self.retry_after = retry_after


class Refused(DomainError):
    """A rule said no: a wrong code, a rate limit, a weak password, a claim in the wrong state.
    `code` is the `error` the user sees (mostly `reclaim.contracts.CaseError` values), `details`
    the fields that go with it (`attempts_left`, `retry_after_seconds`, `reasons`...)."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.details = details

    @property
    def retry_after(self) -> int | None:
        value = self.details.get("retry_after_seconds")
        return int(value) if value is not None else None


class Unauthorized(DomainError):
    """A session, claim token or staff key that is missing, wrong, revoked or disabled."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
