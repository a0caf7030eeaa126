"""The factors a lost-authenticator claim's recovery removes, on the built-in directory: only the
chosen ones, named for the message; removing them again changes nothing and still names them
(a retried activity tells the contacts not told yet)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine

from reclaim.directory import Passkey, passkey_key
from reclaim.errors import Refused
from reclaim.recovery.lost_factors import check_choice, choices, remove_chosen
from tests.stack import sql_directory

AT = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


async def test_only_the_chosen_factors_go_and_a_second_run_removes_nothing(engine: Engine):
    directory = sql_directory(engine)
    jane = (
        await directory.create(
            username="jane", email="jane@example.com", phone=None, password="first password"
        )
    ).id
    await directory.enrol_totp(jane, AT)
    await directory.new_recovery_codes(jane, AT)
    for name in ("Laptop", "Phone"):
        await directory.add_passkey(jane, Passkey(name.encode(), b"cose key", 0, (), name, AT))
    laptop = f"webauthn:{passkey_key(b'Laptop')}"
    assert sorted(choices(await directory.factors(jane))) == sorted(
        ["totp", "recovery_code", laptop, f"webauthn:{passkey_key(b'Phone')}"]
    )

    said = await remove_chosen(directory, jane, ("totp", laptop))

    assert said == ["totp", "Laptop"]
    left = await directory.factors(jane)
    assert sorted(f.name or f.kind.value for f in left) == ["Phone", "recovery_code"]
    again = await remove_chosen(directory, jane, ("totp", laptop))
    assert again == ["totp", "webauthn"]  # gone already: still said, as a passkey
    assert len(await directory.factors(jane)) == 2


def test_a_choice_names_a_factor_and_nothing_else():
    check_choice(None)
    check_choice(["totp", "recovery_code", f"webauthn:{passkey_key(b'x')}"])
    for wrong in ("sms", "webauthn:", "webauthn:***", "password"):
        with pytest.raises(Refused):
            check_choice([wrong])
