"""The LDAP directory against a real OpenLDAP (tests/ldap_server.py): finding people by what
they type, stable ids, the new password through the server's policy, lock states, contacts,
and a server that stops answering."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ldap3 import Connection
from ldap3.extend import MicrosoftExtendedOperations
from sqlalchemy.engine import Engine

from reclaim.contracts import ACCOUNT_HOLDER, AccountStatus, CaseError
from reclaim.directory import (
    AccountExists,
    AccountGone,
    Capability,
    CapabilityMissing,
    Directory,
    DirectoryUnavailable,
    PasswordRejected,
    directory_for,
)
from reclaim.directory.ldap import LdapDirectory, _phone_forms
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.security import Keys
from reclaim.settings import Settings
from reclaim.store.engine import make_engine
from reclaim.store.migrations import create_schema
from tests.conftest import LDAP_OLD
from tests.ldap_server import PEOPLE, Slapd, slapd_missing
from tests.stack import FAST_ARGON2, TEST_PASSWORDS, TEST_SECRET

NEW = "violet tangerine marmalade kayak"
JANE_DN = f"uid=jane,{PEOPLE}"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _username(value: str) -> Identifier:
    return Identifier(IdentifierKind.USERNAME, value)


def _email(value: str) -> Identifier:
    return Identifier(IdentifierKind.EMAIL, value)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'reclaim.db'}")
    create_schema(engine)
    yield engine  # type: ignore[misc]
    engine.dispose()


def _directory(slapd: Slapd, engine: Engine, **overrides: Any) -> Directory:
    settings = Settings(
        secret_key=TEST_SECRET, **FAST_ARGON2, **{**slapd.reclaim_settings(), **overrides}
    )
    return directory_for(settings, engine, Keys(TEST_SECRET.encode()), TEST_PASSWORDS)


@pytest.fixture
async def ldap(slapd: Slapd, sqlite_engine: Engine) -> AsyncIterator[Directory]:
    directory = _directory(slapd, sqlite_engine)
    yield directory
    await directory.aclose()


async def _set(directory: Directory, account_id: int, password: str, case_id: str) -> None:
    prepared = await directory.new_password(case_id, password)
    await directory.set_password(account_id, prepared, case_id=case_id, at=NOW)


async def test_people_are_found_by_username_email_or_phone_with_one_stable_id(ldap: Directory):
    by_name = await ldap.find(_username("jane"))
    by_mail = await ldap.find(_email("jane@example.com"))
    by_phone = await ldap.find(Identifier(IdentifierKind.PHONE, "+14155550123"))

    assert by_name is not None and by_mail is not None and by_phone is not None
    assert by_name.id == by_mail.id == by_phone.id
    assert (by_name.username, by_name.email, by_name.phone) == (
        "jane",
        "jane@example.com",
        "+14155550123",  # "+1 415 555 0123" in the directory, E.164 here
    )
    assert by_name.status is AccountStatus.ACTIVE and by_name.created_at is not None
    assert await ldap.get(by_name.id) == by_name
    bob = await ldap.find(_username("bob"))
    assert bob is not None and bob.id != by_name.id and bob.phone is None
    assert await ldap.find(_username("nobody")) is None
    assert await ldap.get(by_name.id + 1000) is None


async def test_an_entry_renamed_in_the_directory_keeps_its_id(ldap: Directory, slapd: Slapd):
    jane = await ldap.find(_username("jane"))
    assert jane is not None
    with slapd.admin() as admin:
        assert admin.modify_dn(JANE_DN, "uid=janet")
        assert admin.modify(f"uid=janet,{PEOPLE}", {"uid": [("MODIFY_REPLACE", ["janet"])]}), (
            admin.result
        )

    renamed = await ldap.find(_username("janet"))

    assert renamed is not None and renamed.id == jane.id and renamed.username == "janet"
    assert await ldap.find(_username("jane")) is None


@pytest.mark.parametrize(
    "identifier",
    [
        _username("*"),
        _username("*)(uid=*"),
        _username("jane)(|(uid=*"),
        _username("j*"),
        _username("jane\\"),
        _email("*@example.com"),
        _email("j*@example.com"),
        Identifier(IdentifierKind.PHONE, "+1*"),
    ],
)
async def test_an_injection_shaped_identifier_finds_nobody_and_breaks_nothing(
    ldap: Directory, identifier: Identifier
):
    assert await ldap.find(identifier) is None
    assert (await ldap.find(_username("jane"))) is not None  # the server still answers


async def test_a_new_password_goes_through_the_server_and_the_old_one_stops_working(
    ldap: Directory, slapd: Slapd
):
    jane = await ldap.find(_username("jane"))
    assert jane is not None
    prepared = await ldap.new_password("rc_one", NEW)
    assert prepared.hash == "" and prepared.sealed and NEW not in prepared.sealed

    await ldap.set_password(jane.id, prepared, case_id="rc_one", at=NOW)
    # A retried activity (the answer was lost): applied once, no refusal.
    await ldap.set_password(jane.id, prepared, case_id="rc_one", at=NOW)

    assert slapd.binds(JANE_DN, NEW)
    assert not slapd.binds(JANE_DN, LDAP_OLD)
    # The history is readable by the service account: reuse is seen before the server's say.
    assert await ldap.password_reused(jane.id, LDAP_OLD)
    assert await ldap.password_reused(jane.id, NEW)
    assert not await ldap.password_reused(jane.id, "an entirely different one 42")
    # Under a spent reset token: the password now (a bind), not one of the history.
    assert await ldap.is_current_password(jane.id, NEW)
    assert not await ldap.is_current_password(jane.id, LDAP_OLD)
    assert await ldap.matching_passwords(jane.id, [LDAP_OLD, "never used it 1", NEW]) == 2
    assert await ldap.matching_passwords(None, [LDAP_OLD]) == 0
    changed = await ldap.get(jane.id)
    assert changed is not None and changed.password_changed_at is not None


async def test_the_servers_history_refuses_a_reused_password(ldap: Directory, slapd: Slapd):
    jane = await ldap.find(_username("jane"))
    assert jane is not None
    await _set(ldap, jane.id, NEW, "rc_first")

    with pytest.raises(PasswordRejected) as refused:
        await _set(ldap, jane.id, LDAP_OLD, "rc_second")

    assert refused.value.error is CaseError.PASSWORD_REUSED
    assert slapd.binds(JANE_DN, NEW)


async def test_the_servers_length_rule_refuses_a_short_password(ldap: Directory, slapd: Slapd):
    sam = await ldap.find(_username("sam"))
    assert sam is not None

    with pytest.raises(PasswordRejected) as refused:
        await _set(ldap, sam.id, NEW, "rc_short")  # 32 characters, the policy wants 40

    assert refused.value.error is CaseError.WEAK_PASSWORD
    assert refused.value.reasons == ["too short for the directory's policy"]
    assert slapd.binds(f"uid=sam,{PEOPLE}", LDAP_OLD)
    await _set(ldap, sam.id, NEW + " and eight more", "rc_long")
    assert slapd.binds(f"uid=sam,{PEOPLE}", NEW + " and eight more")


async def test_a_lockout_after_failed_binds_is_recoverable_and_cleared(
    ldap: Directory, slapd: Slapd
):
    for _ in range(3):
        assert not slapd.binds(JANE_DN, "not her password")
    assert "pwdAccountLockedTime" in slapd.read(JANE_DN, "pwdAccountLockedTime")
    assert not slapd.binds(JANE_DN, LDAP_OLD)  # locked
    jane = await ldap.find(_username("jane"))
    assert jane is not None and jane.status is AccountStatus.ACTIVE

    await _set(ldap, jane.id, NEW, "rc_unlock")

    assert "pwdAccountLockedTime" not in slapd.read(JANE_DN, "pwdAccountLockedTime")
    assert slapd.binds(JANE_DN, NEW)


async def test_an_account_locked_by_an_administrator_reads_as_banned(ldap: Directory, slapd: Slapd):
    slapd.replace(JANE_DN, pwdAccountLockedTime=["000001010000Z"])

    jane = await ldap.find(_username("jane"))

    assert jane is not None and jane.status is AccountStatus.BANNED
    assert jane.status_reason == "locked by the directory's administrators"
    with pytest.raises(AccountGone):
        await _set(ldap, jane.id, NEW, "rc_banned")
    with pytest.raises(AccountGone):
        await ldap.reactivate(jane.id, NOW, ACCOUNT_HOLDER)
    assert not slapd.binds(JANE_DN, NEW)


async def test_an_approved_claim_writes_the_new_email_and_removes_the_phone(
    ldap: Directory, slapd: Slapd
):
    jane = await ldap.find(_username("jane"))
    assert jane is not None
    given = {"case_id": "sc_1", "at": NOW, "actor": ACCOUNT_HOLDER, "reason": "claim"}

    with pytest.raises(AccountExists):
        await ldap.replace_contacts(jane.id, email="bob@example.com", **given)
    await ldap.replace_contacts(jane.id, email="jane@new.example", **given)
    await ldap.replace_contacts(jane.id, email="jane@new.example", **given)  # retried: same

    assert slapd.read(JANE_DN, "mail", "mobile") == {"mail": ["jane@new.example"]}
    assert await ldap.find(_email("jane@new.example")) is not None
    assert not await ldap.was_contact(jane.id, *("email", "jane@example.com"))  # type: ignore[arg-type]


async def test_what_the_directory_does_not_do_is_refused_by_capability(ldap: Directory):
    assert ldap.capabilities == {Capability.CONTACTS, Capability.PASSWORD_HISTORY}
    with pytest.raises(CapabilityMissing, match="people sign in to the applications"):
        await ldap.sign_in(_username("jane"), LDAP_OLD)
    jane = await ldap.find(_username("jane"))
    assert jane is not None
    overview = await ldap.overview(jane.id)
    assert overview is not None and overview.active_sessions is None
    assert await ldap.revoke_sessions(jane.id, NOW) == 0


async def test_a_server_that_stops_answering_is_unavailable_then_back(
    ldap: Directory, slapd: Slapd
):
    await ldap.ping()
    jane = await ldap.find(_username("jane"))  # a pooled connection is now kept
    assert jane is not None

    slapd.stop()
    with pytest.raises(DirectoryUnavailable, match="does not answer"):
        await ldap.ping()
    with pytest.raises(DirectoryUnavailable):
        await ldap.get(jane.id)
    slapd.start()

    assert await ldap.get(jane.id) == jane
    await ldap.ping()


async def test_a_refused_service_account_says_which_settings_to_check(
    slapd: Slapd, sqlite_engine: Engine
):
    directory = _directory(slapd, sqlite_engine, ldap_bind_password="not the password")

    with pytest.raises(DirectoryUnavailable, match="RECLAIM_LDAP_BIND_DN and RECLAIM_LDAP_BIND"):
        await directory.ping()
    await directory.aclose()


@pytest.fixture
def tls_slapd(tmp_path: Path) -> AsyncIterator[Slapd]:
    missing = slapd_missing()
    if missing:
        pytest.skip(missing)
    server = Slapd(tmp_path / "tls-slapd", tls=True)
    server.add_user("jane", LDAP_OLD, mail="jane@example.com")
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


@pytest.mark.parametrize("how", ["ldaps", "starttls"])
async def test_an_encrypted_connection_checks_the_servers_certificate(
    tls_slapd: Slapd, sqlite_engine: Engine, how: str
):
    where = (
        {"ldap_url": tls_slapd.tls_url}
        if how == "ldaps"
        else {"ldap_url": tls_slapd.url, "ldap_starttls": True}
    )
    trusting = _directory(tls_slapd, sqlite_engine, ldap_ca_file=tls_slapd.ca_file, **where)
    unknown_ca = _directory(tls_slapd, sqlite_engine, **where)  # the system's CAs only

    await trusting.ping()
    jane = await trusting.find(_username("jane"))
    assert jane is not None
    await _set(trusting, jane.id, NEW, f"rc_{how}")
    assert tls_slapd.binds(JANE_DN, NEW)
    with pytest.raises(DirectoryUnavailable):
        await unknown_ca.ping()
    await trusting.aclose()
    await unknown_ca.aclose()


@pytest.mark.parametrize("refusal", ["raised", "answered"])
async def test_a_password_check_never_binds_in_clear_when_starttls_is_refused(
    slapd: Slapd, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch, refusal: str
):
    """A claim's candidate password (or a retried reset's new one) is checked by a bind of
    its own: when the server (or someone in between) refuses StartTLS, nothing is sent,
    whether ldap3 raises (this slapd has no TLS) or answers False."""
    directory = _directory(slapd, sqlite_engine, ldap_starttls=True)
    assert isinstance(directory, LdapDirectory)
    binds: list[str] = []
    real_bind = Connection.bind

    def bind(connection: Connection, *args: Any, **kwargs: Any) -> Any:
        binds.append(connection.user)
        return real_bind(connection, *args, **kwargs)

    monkeypatch.setattr(Connection, "bind", bind)
    if refusal == "answered":
        monkeypatch.setattr(Connection, "start_tls", lambda *args, **kwargs: False)

    with pytest.raises(DirectoryUnavailable, match="refused StartTLS"):
        await directory._binds(JANE_DN, LDAP_OLD)
    assert JANE_DN not in binds
    await directory.aclose()


class _RecordingAd:
    """Just enough of an ldap3 connection for ldap3's AD password reset: what it was asked,
    and the answer a domain controller would give."""

    check_names = False
    raise_exceptions = False

    def __init__(self, result: int = 0, message: str = "") -> None:
        self.strategy = SimpleNamespace(sync=True, thread_safe=False)
        self.result: dict[str, Any] = {"result": result, "message": message, "description": ""}
        self.extend = SimpleNamespace(microsoft=MicrosoftExtendedOperations(self))
        self.modified: list[tuple[str, dict[str, Any], Any]] = []

    def modify(self, dn: str, changes: dict[str, Any], controls: Any = None) -> bool:
        self.modified.append((dn, changes, controls))
        return self.result["result"] == 0


def _active_directory(sqlite_engine: Engine) -> LdapDirectory:
    settings = Settings(
        secret_key=TEST_SECRET,
        **FAST_ARGON2,
        directory="ldap",
        ldap_flavor="ad",
        ldap_url="ldaps://dc.example.org",
        ldap_bind_dn="CN=reclaim,OU=Services,DC=example,DC=org",
        ldap_bind_password="secret",
        ldap_user_base="OU=People,DC=example,DC=org",
    )
    directory = directory_for(settings, sqlite_engine, Keys(TEST_SECRET.encode()), TEST_PASSWORDS)
    assert isinstance(directory, LdapDirectory)
    return directory


def _ad_entry() -> Any:
    record = SimpleNamespace(id=7)
    return SimpleNamespace(dn="CN=Jane,OU=People,DC=example,DC=org", record=record, hashes=())


def test_an_active_directory_reset_asks_for_the_domains_history_and_policy(
    sqlite_engine: Engine,
):
    """An administrator's reset skips AD's password history unless the request carries the
    policy hints control: with it, a reused password is refused as a user's own change is."""
    directory = _active_directory(sqlite_engine)
    server = _RecordingAd()

    assert directory._modify_password(server, _ad_entry(), NEW) is None  # type: ignore[arg-type]

    [(dn, changes, controls)] = server.modified
    assert dn == "CN=Jane,OU=People,DC=example,DC=org"
    assert list(changes) == ["unicodePwd"]
    assert ("1.2.840.113556.1.4.2239", False, b"\x30\x03\x02\x01\x01") in controls


@pytest.mark.parametrize(
    ("result", "message", "answer"),
    [
        # Samba's domain controller says which rule.
        (
            19,
            "0000052D: Constraint violation - check_password_restrictions: the password was "
            "already used (in history)!",
            CaseError.PASSWORD_REUSED,
        ),
        # Windows says only 0000052D, whichever rule it was.
        (
            53,
            "0000052D: SvcErr: DSID-03190F80, problem 5003 (WILL_NOT_PERFORM), data 0",
            CaseError.WEAK_PASSWORD,
        ),
    ],
)
def test_an_active_directory_refusal_is_the_same_answer_as_reclaims_own(
    sqlite_engine: Engine, result: int, message: str, answer: CaseError
):
    directory = _active_directory(sqlite_engine)

    refusal = directory._modify_password(
        _RecordingAd(result, message),  # type: ignore[arg-type]
        _ad_entry(),
        NEW,
    )

    assert isinstance(refusal, PasswordRejected)
    assert refusal.error is answer
    if answer is CaseError.WEAK_PASSWORD:
        assert "used before" in " ".join(refusal.reasons)


def test_an_active_directory_phone_search_tries_the_ways_a_number_is_written():
    """AD compares `mobile` as a whole string (no telephoneNumber matching): the forms people
    type into it, the national ones only for a number of the default region."""
    assert _phone_forms("+14155550123", "US") == [
        "+14155550123",
        "+1 415-555-0123",
        "+1 415 555 0123",
        "(415) 555-0123",
        "4155550123",
    ]
    assert _phone_forms("+33612345678", "US") == ["+33612345678", "+33 6 12 34 56 78"]
