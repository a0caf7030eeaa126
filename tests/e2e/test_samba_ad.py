"""Recovering an account held in Active Directory, end to end over HTTP: the real API and
worker, the session's Temporal dev server, and a real domain controller (Samba, provisioned
once per session in a network namespace of its own: tests/peers/samba_dc.py), reached over
LDAPS with `RECLAIM_LDAP_FLAVOR=ad`. What the person sees, and what the DC then accepts.

The DC is shared by the session's tests: each adds users of its own."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from reclaim.directory import directory_for
from reclaim.directory.ldap import AD_POLICY_HINTS
from reclaim.security import Keys
from reclaim.settings import Settings
from reclaim.store.engine import make_engine
from reclaim.store.migrations import create_schema
from tests.conftest import StackParts
from tests.mailbox import MailSink
from tests.pages.people import Person
from tests.peers.samba_dc import LOCKOUT_THRESHOLD, SambaDC
from tests.sms_gateway import SmsGateway
from tests.stack import FAST_ARGON2, TEST_PASSWORDS, TEST_SECRET, Stack, running_stack

# The domain wants three kinds of character and none of the username.
OLD = "Correct-Horse-Battery-9"
POLICY_HINTS = AD_POLICY_HINTS[0]
NEW = ["Violet-Tangerine-Kayak-1", "Orchid-Lantern-Pebble-2", "Copper-Meadow-Galaxy-3"]


def _someone(dc: SambaDC, **options: object) -> tuple[str, str, str]:
    """A user of this test's own: (sAMAccountName, mail, DN)."""
    name = f"u{secrets.token_hex(5)}"
    mail = f"{name}@example.com"
    return name, mail, dc.add_user(name, OLD, mail=mail, **options)  # type: ignore[arg-type]


def _settings(dc: SambaDC) -> dict[str, object]:
    # Adding the mobile after the user is a change to the entry, which modifyTimestamp cannot
    # tell from a contact change: no recent-contact window here (the hold has its own tests).
    return {**dc.reclaim_settings(), "recent_contact_days": 0}


async def _verify(stack: Stack, case_id: str, code: str) -> str:
    granted = await stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": code})
    assert granted.status_code == 200, granted.text
    return str(granted.json()["reset_token"])


async def _choose(stack: Stack, case_id: str, token: str, password: str) -> httpx.Response:
    return await stack.http.post(
        f"/v1/recovery/{case_id}/password",
        json={"reset_token": token, "new_password": password},
    )


@pytest.fixture
async def ad_stack(
    samba_dc: SambaDC, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
) -> AsyncIterator[Stack]:
    settings, engine = stack_parts(**_settings(samba_dc))
    async with running_stack(settings, engine, mail, sms) as stack:
        yield stack


async def test_an_ad_user_recovers_by_samaccountname_mail_and_mobile(
    samba_dc: SambaDC, ad_stack: Stack, mail: MailSink, sms: SmsGateway
):
    name, address, dn = _someone(samba_dc, mobile="+1 415 555 0199")
    ready = await ad_stack.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["directory_kind"] == "ldap"
    old = OLD
    ways = [(name.upper(), "email"), (address, "email"), ("+1 415 555 0199", "sms")]
    for nth, ((identifier, channel), new) in enumerate(zip(ways, NEW, strict=True), 1):
        case = await ad_stack.open_case(identifier, channel)
        assert (case["state"], case["channel"]) == ("awaiting_code", channel)
        if channel == "email":
            code = await mail.code_for(address, nth=nth)
        else:
            code = await sms.code_for("+14155550199")
        token = await _verify(ad_stack, case["case_id"], code)

        done = await _choose(ad_stack, case["case_id"], token, new)

        assert done.status_code == 200, done.text
        assert done.json() == {"case_id": case["case_id"], "state": "completed"}
        # Set through unicodePwd over LDAPS: the DC opens the account with it alone.
        assert samba_dc.binds(dn, new), f"new password refused after {identifier}"
        assert not samba_dc.binds(dn, old), f"old password still works after {identifier}"
        old = new
    await mail.wait_for(lambda m: m["To"] == address and "password was changed" in m["Subject"])


async def test_a_locked_out_ad_account_is_unlocked_by_its_recovery(
    samba_dc: SambaDC, ad_stack: Stack, mail: MailSink
):
    name, address, dn = _someone(samba_dc)
    for _ in range(LOCKOUT_THRESHOLD):
        assert not samba_dc.binds(dn, "Wrong-Guess-Each-Time-0")
    assert samba_dc.read(dn, "lockoutTime")["lockoutTime"] not in (None, "0")
    assert not samba_dc.binds(dn, OLD)  # locked: even the right password is refused

    case = await ad_stack.open_case(name)
    token = await _verify(ad_stack, case["case_id"], await mail.code_for(address))
    done = await _choose(ad_stack, case["case_id"], token, NEW[0])

    assert done.json() == {"case_id": case["case_id"], "state": "completed"}, done.text
    assert samba_dc.read(dn, "lockoutTime")["lockoutTime"] == "0"
    assert samba_dc.binds(dn, NEW[0])


async def test_a_disabled_ad_account_gets_no_code_and_its_holder_is_told_it_is_suspended(
    samba_dc: SambaDC, ad_stack: Stack, mail: MailSink
):
    name, address, dn = _someone(samba_dc, disabled=True)
    assert int(samba_dc.read(dn, "userAccountControl")["userAccountControl"] or 0) & 0x2
    before = samba_dc.read(dn, "pwdLastSet")

    case = await ad_stack.open_case(name)

    # The usual answer (nobody learns from it which accounts exist or are disabled)...
    assert case["state"] == "awaiting_code"
    # ...and the holder's mail says why no code comes.
    notice = await mail.wait_for(lambda m: m["To"] == address)
    assert "suspended" in notice["Subject"]
    body = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "no recovery code was sent" in body
    assert len(mail.to(address)) == 1
    assert samba_dc.read(dn, "pwdLastSet") == before  # nothing set


@pytest.fixture
async def person(ad_stack: Stack) -> AsyncIterator[Person]:
    someone = Person(str(ad_stack.http.base_url))
    yield someone
    await someone.aclose()


async def test_the_domain_s_password_rules_refuse_on_the_page_and_another_password_works(
    samba_dc: SambaDC, ad_stack: Stack, person: Person, mail: MailSink
):
    """Reclaim's own policy accepts a long all-lowercase passphrase; the domain's complexity
    rule does not (0000052D): the person is told on the page and chooses another."""
    name, address, dn = _someone(samba_dc)
    await person.open("/recover")
    await person.submit("/recover", identifier=name, channel="")
    case_url = person.url.removeprefix(str(ad_stack.http.base_url))
    await person.submit(f"{case_url}/code", code=await mail.code_for(address))
    assert "Choose a new password" in person.text
    simple = "violet tangerine marmalade kayak"

    refused = await person.submit(f"{case_url}/password", password=simple, confirm=simple)

    assert refused.status_code == 422, person.text
    assert "There is a problem Choose a stronger password." in person.text
    assert "Choose a new password" in person.text  # the same form, the case still verified
    await person.submit(f"{case_url}/password", password=NEW[0], confirm=NEW[0])
    assert "Your password is changed" in person.text
    assert samba_dc.binds(dn, NEW[0]) and not samba_dc.binds(dn, simple)


async def test_the_domain_s_password_history_refuses_a_reused_password_on_the_page(
    samba_dc: SambaDC, ad_stack: Stack, person: Person, mail: MailSink
):
    """Reclaim resets with LDAP_SERVER_POLICY_HINTS, which asks the DC to apply the domain's
    history as to a user's own change. A DC that does not know the control applies none to a
    reset (Samba up to at least 4.17; Windows before 2012 R2): nothing to see there."""
    if not samba_dc.supports_control(POLICY_HINTS):
        pytest.skip(
            f"Samba {samba_dc.version} does not support LDAP_SERVER_POLICY_HINTS ({POLICY_HINTS}):"
            " it applies no password history to an administrator's reset"
        )
    name, address, dn = _someone(samba_dc)
    case = await ad_stack.open_case(name)
    token = await _verify(ad_stack, case["case_id"], await mail.code_for(address))
    assert (await _choose(ad_stack, case["case_id"], token, NEW[0])).status_code == 200
    await person.open("/recover")
    await person.submit("/recover", identifier=name, channel="")
    case_url = person.url.removeprefix(str(ad_stack.http.base_url))
    await person.submit(f"{case_url}/code", code=await mail.code_for(address, nth=2))

    reused = await person.submit(f"{case_url}/password", password=OLD, confirm=OLD)

    assert reused.status_code == 422, person.text
    assert "You used this password before on this account" in person.text
    await person.submit(f"{case_url}/password", password=NEW[1], confirm=NEW[1])
    assert "Your password is changed" in person.text
    assert samba_dc.binds(dn, NEW[1]) and not samba_dc.binds(dn, OLD)


async def test_a_dc_that_applies_no_history_to_resets_is_named_in_the_log(
    samba_dc: SambaDC, tmp_path: Path
):
    engine = make_engine(f"sqlite:///{tmp_path / 'reclaim.db'}")
    create_schema(engine)
    settings = Settings(secret_key=TEST_SECRET, **FAST_ARGON2, **_settings(samba_dc))  # type: ignore[arg-type]
    directory = directory_for(settings, engine, Keys(TEST_SECRET.encode()), TEST_PASSWORDS)
    try:
        with capture_logs() as logged:
            await directory.ping()
            await directory.ping()
    finally:
        await directory.aclose()
        engine.dispose()

    warned = [e for e in logged if e["event"] == "ldap_ad_history_not_applied_to_resets"]
    if samba_dc.supports_control(POLICY_HINTS):
        assert warned == []
    else:
        assert len(warned) == 1, logged  # once, however many connections
        assert "not its password history" in warned[0]["message"]
