"""The account directory: the port every feature reaches accounts through (`port`), and its
implementations (`sql`, the built-in one). `directory_for` builds the one the settings name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reclaim.directory.port import (
    AccountChange,
    AccountExists,
    AccountGone,
    AccountOverview,
    AccountRecord,
    Capability,
    CapabilityMissing,
    Directory,
    DirectoryUnavailable,
    NewPassword,
    PasswordRejected,
    SessionView,
    SignIn,
    UsernameReserved,
    require,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from reclaim.security import Keys, Passwords
    from reclaim.settings import Settings

__all__ = [
    "AccountChange",
    "AccountExists",
    "AccountGone",
    "AccountOverview",
    "AccountRecord",
    "Capability",
    "CapabilityMissing",
    "Directory",
    "DirectoryUnavailable",
    "NewPassword",
    "PasswordRejected",
    "SessionView",
    "SignIn",
    "UsernameReserved",
    "directory_for",
    "require",
]


def directory_for(
    settings: Settings, engine: Engine, keys: Keys, passwords: Passwords
) -> Directory:
    """The directory the deployment uses. Only the built-in SQL one so far
    (docs/architecture.md, "Adding a directory")."""
    from reclaim.directory.sql import SqlDirectory

    return SqlDirectory(engine, keys, passwords)
