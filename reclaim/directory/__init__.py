"""The account directory: the port every feature reaches accounts through (`port`), and its
implementations: `sql`, the built-in one (the default), `ldap` (OpenLDAP or Active Directory)
and `http` (the organisation's own application, docs/directory-http.md). `directory_for`
builds the one `RECLAIM_DIRECTORY` names; `check_settings` refuses settings that cannot work
before anything starts."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

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
    FactorCheck,
    FactorKind,
    FactorSummary,
    NewPassword,
    Passkey,
    PasskeyTaken,
    PasswordRejected,
    SessionView,
    SignIn,
    UsernameReserved,
    passkey_id,
    passkey_key,
    require,
)
from reclaim.settings import CannotStart

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
    "DirectorySettingsError",
    "DirectoryUnavailable",
    "FactorCheck",
    "FactorKind",
    "FactorSummary",
    "NewPassword",
    "Passkey",
    "PasskeyTaken",
    "PasswordRejected",
    "SessionView",
    "SignIn",
    "UsernameReserved",
    "check_settings",
    "directory_for",
    "passkey_id",
    "passkey_key",
    "require",
]

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
# The least a Standard Webhooks secret should hold (the scheme's own generators make 24-32).
MIN_SECRET_BYTES = 16


class DirectorySettingsError(CannotStart):
    """The RECLAIM_DIRECTORY, RECLAIM_LDAP_* or RECLAIM_HTTP_DIRECTORY_* variables cannot
    work."""


def directory_for(
    settings: Settings, engine: Engine, keys: Keys, passwords: Passwords
) -> Directory:
    """The directory the deployment uses (docs/architecture.md, "Adding a directory")."""
    check_settings(settings)
    if settings.directory == "ldap":
        from reclaim.directory.ldap import LdapDirectory
        from reclaim.directory.links import Links

        return LdapDirectory(settings, Links(engine, "ldap"), keys)
    if settings.directory == "http":
        from reclaim.directory.http import HttpDirectory
        from reclaim.directory.links import Links

        return HttpDirectory(settings, Links(engine, "http"), keys)
    from reclaim.directory.sql import SqlDirectory

    return SqlDirectory(engine, keys, passwords, issuer=settings.product_name)


def check_settings(settings: Settings) -> None:
    """Refuse, in one line, directory settings that cannot work."""
    if settings.directory == "ldap":
        _check_ldap(settings)
    elif settings.directory == "http":
        _check_http(settings)


def _missing(settings: Settings, names: dict[str, object]) -> None:
    absent = [name for name, value in names.items() if not value]
    if absent:
        raise DirectorySettingsError(
            f"RECLAIM_DIRECTORY={settings.directory} needs {', '.join(absent)}"
        )


def _check_ldap(s: Settings) -> None:
    _missing(
        s,
        {
            "RECLAIM_LDAP_URL": s.ldap_url,
            "RECLAIM_LDAP_BIND_DN": s.ldap_bind_dn,
            "RECLAIM_LDAP_BIND_PASSWORD": s.ldap_bind_password,
            "RECLAIM_LDAP_USER_BASE": s.ldap_user_base,
        },
    )
    assert s.ldap_url is not None
    url = urlsplit(s.ldap_url)
    if url.scheme not in ("ldap", "ldaps") or not url.hostname:
        raise DirectorySettingsError(
            f"RECLAIM_LDAP_URL={s.ldap_url} is not an LDAP URL: write ldap://host[:port] or "
            "ldaps://host[:port]"
        )
    try:
        url.port  # noqa: B018  (a bad port raises here)
    except ValueError as err:
        raise DirectorySettingsError(f"RECLAIM_LDAP_URL={s.ldap_url}: {err}") from err
    if url.scheme == "ldaps" and s.ldap_starttls:
        raise DirectorySettingsError(
            "RECLAIM_LDAP_STARTTLS is for ldap:// URLs: an ldaps:// connection is encrypted "
            "from the start"
        )
    if s.ldap_flavor == "ad" and url.scheme != "ldaps" and not s.ldap_starttls:
        raise DirectorySettingsError(
            "Active Directory sets passwords only over an encrypted connection: use an "
            "ldaps:// RECLAIM_LDAP_URL or RECLAIM_LDAP_STARTTLS=true"
        )
    if s.ldap_ca_file is not None:
        try:
            s.ldap_ca_file.read_bytes()
        except OSError as err:
            raise DirectorySettingsError(
                f"RECLAIM_LDAP_CA_FILE={s.ldap_ca_file} cannot be read: {err.strerror or err}"
            ) from err
    if not _balanced(s.resolved_ldap_user_filter):
        raise DirectorySettingsError(
            f"RECLAIM_LDAP_USER_FILTER={s.resolved_ldap_user_filter} is not an LDAP filter: "
            "write it in parentheses, e.g. (objectClass=inetOrgPerson)"
        )


def _balanced(text: str) -> bool:
    """One parenthesised filter (values escape parentheses as \\28 and \\29)."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0 or (depth == 0 and index != len(text) - 1):
            return False
    return depth == 0


def _check_http(s: Settings) -> None:
    _missing(
        s,
        {
            "RECLAIM_HTTP_DIRECTORY_URL": s.http_directory_url,
            "RECLAIM_HTTP_DIRECTORY_SECRET": s.http_directory_secret,
        },
    )
    assert s.http_directory_url is not None and s.http_directory_secret is not None
    url = urlsplit(s.http_directory_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise DirectorySettingsError(
            f"RECLAIM_HTTP_DIRECTORY_URL={s.http_directory_url} is not an http(s):// URL"
        )
    if url.scheme == "http" and url.hostname not in _LOOPBACK:
        raise DirectorySettingsError(
            "RECLAIM_HTTP_DIRECTORY_URL must be https:// (new passwords travel in its "
            "requests); http:// is accepted for 127.0.0.1 and localhost only"
        )
    secret_bytes(s.http_directory_secret.get_secret_value())


def secret_bytes(secret: str) -> bytes:
    """The key of a Standard Webhooks secret, `whsec_` and base64."""
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < MIN_SECRET_BYTES:
        raise DirectorySettingsError(
            "RECLAIM_HTTP_DIRECTORY_SECRET must be `whsec_` followed by the base64 of at least "
            f'{MIN_SECRET_BYTES} random bytes (make one with: python -c "import base64, '
            "secrets; print('whsec_' + base64.b64encode(secrets.token_bytes(32)).decode())\")"
        )
    return key
