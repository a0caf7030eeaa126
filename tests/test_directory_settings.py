"""RECLAIM_DIRECTORY and its settings: what cannot work is refused before anything starts, in
one line naming the variable to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reclaim.directory import DirectorySettingsError, check_settings
from reclaim.settings import Settings
from tests.stack import TEST_SECRET

REPO = Path(__file__).resolve().parents[1]
SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="  # 26 bytes
LDAP = {
    "directory": "ldap",
    "ldap_url": "ldap://ldap.example.org",
    "ldap_bind_dn": "cn=reclaim,dc=example,dc=org",
    "ldap_bind_password": "secret",
    "ldap_user_base": "ou=people,dc=example,dc=org",
}
HTTP = {
    "directory": "http",
    "http_directory_url": "https://app.example.org/reclaim",
    "http_directory_secret": SECRET,
}


def _settings(**values: Any) -> Settings:
    return Settings(secret_key=TEST_SECRET, **values)


def test_the_built_in_directory_is_the_default_and_needs_nothing():
    settings = _settings()

    assert settings.directory == "sql"
    check_settings(settings)


def test_complete_ldap_and_http_settings_pass():
    check_settings(_settings(**LDAP))
    check_settings(_settings(**{**LDAP, "ldap_flavor": "ad", "ldap_url": "ldaps://dc.example.org"}))
    check_settings(_settings(**HTTP))
    check_settings(_settings(**{**HTTP, "http_directory_url": "http://127.0.0.1:9000/dir"}))
    assert _settings(**LDAP).resolved_ldap_username_attr == "uid"
    assert _settings(**LDAP, ldap_flavor="ad").resolved_ldap_username_attr == "sAMAccountName"
    assert _settings(**LDAP).resolved_ldap_user_filter == "(objectClass=inetOrgPerson)"
    assert _settings(**LDAP, ldap_flavor="ad").resolved_ldap_user_filter == (
        "(&(objectCategory=person)(objectClass=user))"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"directory": "ldap"},
            "RECLAIM_DIRECTORY=ldap needs RECLAIM_LDAP_URL, RECLAIM_LDAP_BIND_DN, "
            "RECLAIM_LDAP_BIND_PASSWORD, RECLAIM_LDAP_USER_BASE",
        ),
        (
            {**LDAP, "ldap_url": "http://ldap.example.org"},
            "RECLAIM_LDAP_URL=http://ldap.example.org is not an LDAP URL: write "
            "ldap://host[:port] or ldaps://host[:port]",
        ),
        (
            {**LDAP, "ldap_url": "ldaps://ldap.example.org", "ldap_starttls": True},
            "RECLAIM_LDAP_STARTTLS is for ldap:// URLs: an ldaps:// connection is encrypted "
            "from the start",
        ),
        (
            {**LDAP, "ldap_flavor": "ad"},
            "Active Directory sets passwords only over an encrypted connection: use an "
            "ldaps:// RECLAIM_LDAP_URL or RECLAIM_LDAP_STARTTLS=true",
        ),
        (
            {**LDAP, "ldap_ca_file": "/nonexistent/ca.pem"},
            "RECLAIM_LDAP_CA_FILE=/nonexistent/ca.pem cannot be read: No such file or directory",
        ),
        (
            {**LDAP, "ldap_user_filter": "objectClass=person"},
            "RECLAIM_LDAP_USER_FILTER=objectClass=person is not an LDAP filter: write it in "
            "parentheses, e.g. (objectClass=inetOrgPerson)",
        ),
        (
            {**LDAP, "ldap_user_filter": "(objectClass=person))("},
            "RECLAIM_LDAP_USER_FILTER=(objectClass=person))( is not an LDAP filter",
        ),
        (
            {"directory": "http"},
            "RECLAIM_DIRECTORY=http needs RECLAIM_HTTP_DIRECTORY_URL, "
            "RECLAIM_HTTP_DIRECTORY_SECRET",
        ),
        (
            {**HTTP, "http_directory_url": "http://app.example.org/reclaim"},
            "RECLAIM_HTTP_DIRECTORY_URL must be https:// (new passwords travel in its "
            "requests); http:// is accepted for 127.0.0.1 and localhost only",
        ),
        (
            {**HTTP, "http_directory_secret": "whsec_c2hvcnQ="},
            "RECLAIM_HTTP_DIRECTORY_SECRET must be `whsec_` followed by the base64 of at least "
            "16 random bytes",
        ),
        (
            {**HTTP, "http_directory_secret": "not base64 at all!"},
            "RECLAIM_HTTP_DIRECTORY_SECRET must be `whsec_`",
        ),
    ],
)
def test_settings_that_cannot_work_are_refused_in_one_line(values: dict[str, Any], message: str):
    with pytest.raises(DirectorySettingsError) as refused:
        check_settings(_settings(**values))

    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("command", ["worker", "api"])
def test_a_process_with_such_settings_says_so_and_stops(tmp_path: Path, command: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECLAIM_")}
    env.update(
        RECLAIM_SECRET_KEY=TEST_SECRET,
        RECLAIM_DATABASE_URL=f"sqlite:///{tmp_path / 'reclaim.db'}",
        RECLAIM_DIRECTORY="ldap",
        RECLAIM_LDAP_URL="ldap://ldap.example.org",
    )

    done = subprocess.run(
        [sys.executable, "-m", "reclaim", command],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "reclaim: RECLAIM_DIRECTORY=ldap needs RECLAIM_LDAP_BIND_DN, RECLAIM_LDAP_BIND_PASSWORD, "
        "RECLAIM_LDAP_USER_BASE"
    )
