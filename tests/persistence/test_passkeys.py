"""Passkeys in the built-in directory, on SQLite and (with RECLAIM_TEST_POSTGRES_URL)
PostgreSQL: kept, listed, used (the counter recorded once per case, a counter gone back
refused and not recorded), removed one by one or all; a credential id registered once; the
account's record and factors naming them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reclaim.contracts import Actor, ActorKind, PurgeAccount, StatusChange
from reclaim.directory import (
    AccountGone,
    FactorKind,
    Passkey,
    PasskeyTaken,
    passkey_id,
    passkey_key,
)
from reclaim.directory.sql import SqlDirectory
from reclaim.directory.tables import AccountPasskey
from reclaim.identifiers import Identifier, IdentifierKind
from tests.stack import sql_directory

T0 = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)
# The largest counter an authenticator may send: past a 32-bit signed column.
TOP_COUNT = 2**32 - 1


def _passkey(credential_id: bytes, name: str = "Laptop", sign_count: int = 0) -> Passkey:
    return Passkey(
        credential_id=credential_id,
        public_key=b"\xa5\x01\x02\x03\x26" + credential_id,
        sign_count=sign_count,
        transports=("internal", "hybrid"),
        name=name,
        created_at=T0,
    )


async def _account(directory: SqlDirectory, username: str = "jane") -> int:
    account = await directory.create(
        username=username, email=f"{username}@example.com", phone=None, password="first password"
    )
    return account.id


async def test_passkeys_are_kept_listed_and_removed_one_by_one(engine: Engine):
    directory = sql_directory(engine)
    jane = await _account(directory)
    laptop, phone = _passkey(b"\x00laptop\xff" * 8), _passkey(b"phone", "Phone", 7)

    await directory.add_passkey(jane, laptop)
    await directory.add_passkey(jane, phone)

    assert await directory.passkeys(jane) == [laptop, phone]
    assert await directory.remove_passkey(jane, laptop.credential_id) is True
    assert await directory.remove_passkey(jane, laptop.credential_id) is False
    assert await directory.passkeys(jane) == [phone]


async def test_a_passkey_records_its_counter_and_a_clone_is_refused_unrecorded(engine: Engine):
    directory = sql_directory(engine)
    jane = await _account(directory)
    key = _passkey(b"key", sign_count=5)
    await directory.add_passkey(jane, key)

    up = await directory.use_passkey(jane, key.credential_id, 8, case_id="rc_1", at=T0)
    back = await directory.use_passkey(jane, key.credential_id, 6, case_id="rc_2", at=LATER)
    same = await directory.use_passkey(jane, key.credential_id, 8, case_id="rc_3", at=LATER)
    top = await directory.use_passkey(jane, key.credential_id, TOP_COUNT, case_id="rc_4", at=LATER)

    assert (up, back, same, top) == (True, False, False, True)
    [kept] = await directory.passkeys(jane)
    assert (kept.sign_count, kept.last_used_at) == (TOP_COUNT, LATER)
    with Session(engine) as session:
        row = session.exec(select(AccountPasskey)).one()
    assert row.last_case_id == "rc_4"


async def test_a_retried_use_by_the_same_case_is_answered_as_the_first(engine: Engine):
    directory = sql_directory(engine)
    jane = await _account(directory)
    key = _passkey(b"key", sign_count=1)
    await directory.add_passkey(jane, key)

    first = await directory.use_passkey(jane, key.credential_id, 2, case_id="rc_1", at=T0)
    retried = await directory.use_passkey(jane, key.credential_id, 2, case_id="rc_1", at=LATER)
    replayed = await directory.use_passkey(jane, key.credential_id, 2, case_id="rc_2", at=LATER)

    assert (first, retried, replayed) == (True, True, False)
    [kept] = await directory.passkeys(jane)
    assert (kept.sign_count, kept.last_used_at) == (2, T0)


async def test_a_passkey_without_a_counter_is_accepted_each_time(engine: Engine):
    directory = sql_directory(engine)
    jane = await _account(directory)
    key = _passkey(b"key")
    await directory.add_passkey(jane, key)

    answers = [
        await directory.use_passkey(jane, key.credential_id, 0, case_id=f"rc_{n}", at=T0)
        for n in range(2)
    ]

    assert answers == [True, True]


async def test_another_accounts_or_an_unknown_passkey_is_not_used(engine: Engine):
    directory = sql_directory(engine)
    jane, john = await _account(directory), await _account(directory, "john")
    key = _passkey(b"janes key")
    await directory.add_passkey(jane, key)

    by_john = await directory.use_passkey(john, key.credential_id, 1, case_id="rc_1", at=T0)
    unknown = await directory.use_passkey(jane, b"no such key", 1, case_id="rc_2", at=T0)
    nobody = await directory.use_passkey(999_999, key.credential_id, 1, case_id="rc_3", at=T0)
    removed_by_john = await directory.remove_passkey(john, key.credential_id)

    assert (by_john, unknown, nobody, removed_by_john) == (False, False, False, False)
    [kept] = await directory.passkeys(jane)
    assert (kept.sign_count, kept.last_used_at) == (0, None)


async def test_a_credential_is_registered_once_across_accounts(engine: Engine):
    directory = sql_directory(engine)
    jane, john = await _account(directory), await _account(directory, "john")
    await directory.add_passkey(jane, _passkey(b"shared"))

    with pytest.raises(PasskeyTaken):
        await directory.add_passkey(jane, _passkey(b"shared", "Again"))
    with pytest.raises(PasskeyTaken):
        await directory.add_passkey(john, _passkey(b"shared", "Stolen"))

    assert [p.name for p in await directory.passkeys(jane)] == ["Laptop"]
    assert await directory.passkeys(john) == []


async def test_the_record_and_the_factors_name_the_passkeys(engine: Engine):
    directory = sql_directory(engine)
    jane = await _account(directory)
    laptop, phone = _passkey(b"\xfb\xff laptop"), _passkey(b"phone", "Phone")
    await directory.add_passkey(jane, laptop)
    await directory.add_passkey(jane, phone)
    await directory.use_passkey(jane, phone.credential_id, 1, case_id="rc_1", at=LATER)

    found = await directory.find(Identifier(IdentifierKind.USERNAME, "jane"))
    got = await directory.get(jane)
    summaries = await directory.factors(jane)

    assert found is not None and found.factors == (FactorKind.WEBAUTHN,)
    assert got is not None and got.factors == (FactorKind.WEBAUTHN,)
    assert [(s.kind, s.name, s.key, s.enrolled_at, s.last_used_at) for s in summaries] == [
        (FactorKind.WEBAUTHN, "Laptop", passkey_key(laptop.credential_id), T0, None),
        (FactorKind.WEBAUTHN, "Phone", passkey_key(phone.credential_id), T0, LATER),
    ]
    assert "=" not in summaries[0].key and "+" not in summaries[0].key  # type: ignore[operator]
    assert passkey_id(summaries[0].key or "") == laptop.credential_id


async def test_removing_the_webauthn_factor_removes_every_passkey(engine: Engine):
    directory = sql_directory(engine)
    jane, john = await _account(directory), await _account(directory, "john")
    await directory.add_passkey(jane, _passkey(b"one"))
    await directory.add_passkey(jane, _passkey(b"two"))
    await directory.add_passkey(john, _passkey(b"johns"))
    await directory.enrol_totp(jane, T0)

    removed = await directory.remove_factor(jane, FactorKind.WEBAUTHN)
    again = await directory.remove_factor(jane, FactorKind.WEBAUTHN)

    assert (removed, again) == (True, False)
    assert await directory.passkeys(jane) == []
    assert len(await directory.passkeys(john)) == 1
    record = await directory.get(jane)
    assert record is not None and record.factors == (FactorKind.TOTP,)


async def test_a_purge_takes_the_passkeys_and_a_gone_account_gets_none(engine: Engine):
    directory = sql_directory(engine)
    jane, john = await _account(directory), await _account(directory, "john")
    await directory.add_passkey(jane, _passkey(b"janes"))
    await directory.add_passkey(john, _passkey(b"johns"))
    operator = Actor(ActorKind.OPERATOR, "olivia")
    until = T0 + timedelta(days=30)
    assert (
        await directory.deactivate(StatusChange("del_1", jane, T0, operator, until=until))
    ).applied

    purged = await directory.purge(PurgeAccount("del_1", jane, until, quarantine=86_400))

    assert purged.applied
    assert await directory.passkeys(jane) == []
    with pytest.raises(AccountGone):
        await directory.add_passkey(jane, _passkey(b"after"))
    assert len(await directory.passkeys(john)) == 1


async def test_no_code_proves_a_passkey(engine: Engine):
    directory = sql_directory(engine)
    jane = await _account(directory)
    await directory.add_passkey(jane, _passkey(b"key"))
    codes = await directory.new_recovery_codes(jane, T0)

    as_passkey = await directory.verify_factor(
        jane, FactorKind.WEBAUTHN, codes[0], case_id="rc_1", at=T0
    )
    as_code = await directory.verify_factor(
        jane, FactorKind.RECOVERY_CODE, codes[0], case_id="rc_2", at=T0
    )

    assert (as_passkey.accepted, as_code.accepted, as_code.recovery_codes_left) == (False, True, 9)
