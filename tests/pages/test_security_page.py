"""The security page as a person uses it without a browser: signed out it leads to signing
in; an authenticator app added by scanning (here: reading the key the page shows) and proving
a first code; recovery codes shown once; a factor removed only with the password; every change
told to every contact of the account."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pyotp
import pytest

from reclaim.directory import FactorKind
from reclaim.notify.outbox import text_of
from tests.pages.people import Person
from tests.soft_authenticator import SoftAuthenticator
from tests.stack import Stack

PASSWORD = "correct horse battery staple"
PAGE = "/account/security"
EMAIL, PHONE = "jane@example.com", "+14155550123"
CODE = re.compile(r"\b([a-z0-9]{5}-[a-z0-9]{5})\b")


@pytest.fixture
async def jane(stack: Stack) -> AsyncIterator[Person]:
    """Jane, signed in, on her security page."""
    await stack.add_account("jane", EMAIL, PHONE, PASSWORD)
    someone = Person(str(stack.http.base_url))
    await someone.open("/signin")
    await someone.submit("/signin", identifier="jane", password=PASSWORD)
    await someone.open("/account")
    assert "Security" in someone.text
    await someone.open(PAGE)
    yield someone
    await someone.aclose()


def _secret(person: Person) -> str:
    found = re.search(r"Type this key in your app instead: ((?:[A-Z2-7]{4} ?)+)", person.text)
    assert found is not None, person.text
    return found.group(1).replace(" ", "")


async def _told(stack: Stack, words: str, count: int = 1) -> None:
    """Every contact got `count` messages saying `words`."""
    await stack.mail.wait_for(
        lambda m: len([x for x in stack.mail.to(EMAIL) if words in text_of(x)]) >= count
    )
    assert len([m for m in stack.mail.to(EMAIL) if words in text_of(m)]) == count
    assert len([s for s in stack.sms.to(PHONE) if "second factors of jane changed" in s]) >= count


async def test_signed_out_the_security_page_leads_to_signing_in_and_back(stack: Stack):
    await stack.add_account("jane", EMAIL, PHONE, PASSWORD)
    person = Person(str(stack.http.base_url))
    try:
        await person.open(PAGE)
        assert person.url.endswith("/signin?then=security")
        assert (await person.http.get(PAGE, follow_redirects=False)).status_code == 303
        (await person.open("/signin"))
        posted = await person.http.post(
            PAGE + "/codes", data={"csrf": person.form_token("/signin")}
        )
        assert posted.url.path == "/signin"
        # Signing in from there comes back to the security page, after a wrong password too;
        # a destination the page does not know leads to the account.
        await person.open(PAGE)
        kept = '<input type="hidden" name="then" value="security">'
        assert kept in person.page
        await person.submit("/signin", identifier="jane", password="not it", then="security")
        assert "The identifier or the password is not right." in person.text
        assert kept in person.page  # the form sent back keeps where it leads
        await person.submit("/signin", identifier="jane", password=PASSWORD, then="security")
        assert (person.response.url.path if person.response else "") == PAGE
        assert "Security" in person.text
        await person.open("/signin?then=https://evil.example")
        assert 'name="then"' not in person.page
        await person.submit(
            "/signin", identifier="jane", password=PASSWORD, then="https://evil.example"
        )
        assert (person.response.url.path if person.response else "") == "/account"
    finally:
        await person.aclose()


async def test_an_authenticator_app_is_added_after_a_right_first_code(stack: Stack, jane: Person):
    assert "You have no second factor yet." in jane.text
    await jane.submit(PAGE + "/totp")
    assert "Scan this QR code with your authenticator app" in jane.text
    assert "<svg" in jane.page
    secret = _secret(jane)
    totp = pyotp.TOTP(secret)
    # The secret is in no address and no cookie in clear.
    assert secret not in jane.url
    assert all(secret not in (c.value or "") for c in jane.http.cookies.jar)

    wrong = "000000" if totp.now() != "000000" else "111111"
    refused = await jane.submit(PAGE + "/totp/confirm", code=wrong)
    assert refused.status_code == 400
    assert "That code is not right. Type the code your app shows now." in jane.text
    assert _secret(jane) == secret  # the same enrolment, still pending
    assert (await stack.services.directory.factors(1)) == []

    first = totp.now()
    await jane.submit(PAGE + "/totp/confirm", code=first)
    assert "Your authenticator app is added." in jane.text
    # The first code was spent by the enrolment: a recovery cannot use it again.
    check = await stack.services.directory.verify_factor(
        1, FactorKind.TOTP, first, case_id="rc_other", at=datetime.now(UTC)
    )
    assert not check.accepted
    assert "Authenticator app Added on" in jane.text
    assert "Type this key" not in jane.text
    await _told(stack, "an authenticator app was added as a second factor")

    # Replacing it says the old one stops working.
    assert "makes the codes of the current one stop working" in jane.text
    await jane.submit(PAGE + "/totp")
    assert "codes from your current one stop working" in jane.text


async def test_recovery_codes_are_shown_once_and_counted(stack: Stack, jane: Person):
    await jane.submit(PAGE + "/codes")
    codes = CODE.findall(jane.text)
    assert len(set(codes)) == 10
    assert "This is the only time they are shown" in jane.text
    link = re.search(r'<a download="recovery-codes.txt" href="([^"]+)"', jane.page)
    assert link is not None and link.group(1).startswith("data:text/plain;charset=utf-8,")
    assert all(code in unquote(link.group(1)) for code in codes)
    assert "10 codes left." in jane.text
    await _told(stack, "a set of ten recovery codes was created")

    await jane.open(PAGE)
    assert CODE.findall(jane.text) == []
    assert "10 codes left." in jane.text
    assert "Once new codes are made, the old ones stop working." in jane.text

    await jane.submit(PAGE + "/codes")
    assert len(set(CODE.findall(jane.text)) - set(codes)) == 10
    await _told(stack, "the old codes no longer work")


async def test_a_factor_is_removed_only_with_the_password(stack: Stack, jane: Person):
    await jane.submit(PAGE + "/codes")
    await jane.open(PAGE)

    refused = await jane.submit(
        PAGE + "/remove", kind="recovery_code", **{"password-recovery_code": "not it"}
    )
    assert refused.status_code == 401
    assert "The password is not right: the second factor was not removed." in jane.text
    assert 'aria-invalid="true"' in jane.page
    assert "10 codes left." in jane.text

    await jane.submit(
        PAGE + "/remove", kind="recovery_code", **{"password-recovery_code": PASSWORD}
    )
    assert "Your recovery codes are removed." in jane.text
    assert "You have no second factor yet." in jane.text
    await _told(stack, "the recovery codes were removed")


async def test_the_page_and_its_mail_speak_the_persons_language(stack: Stack):
    await stack.add_account("jane", EMAIL, None, PASSWORD)
    marie = Person(str(stack.http.base_url), language="fr")
    try:
        await marie.open("/signin")
        await marie.submit("/signin", identifier="jane", password=PASSWORD)
        await marie.open(PAGE)
        assert "Vos seconds facteurs" in marie.text
        await marie.submit(PAGE + "/codes")
        assert "C'est la seule fois qu'ils sont affichés" in marie.text
        assert "Il reste 10 codes." in marie.text
        told = await stack.mail.wait_for(lambda m: m["To"] == EMAIL)
        assert "une série de dix codes de secours a été créée" in text_of(told)
        assert f"{stack.settings.links.recover()}" in text_of(told)
    finally:
        await marie.aclose()


def _sealed(stack: Stack, account_id: int, secret: str, at: datetime) -> str:
    payload = json.dumps({"secret": secret, "at": at.isoformat()})
    sealed = stack.services.keys.seal(payload, f"totp-pending:{account_id}")
    return base64.urlsafe_b64encode(sealed).decode()


async def test_an_enrolment_older_than_ten_minutes_or_of_another_account_is_not_taken(
    stack: Stack, jane: Person
):
    secret = pyotp.random_base32()
    other = await stack.add_account("john", "john@example.com", None, PASSWORD)
    for sealed in (
        _sealed(stack, 1, secret, datetime.now(UTC) - timedelta(minutes=11)),
        _sealed(stack, other, secret, datetime.now(UTC)),
    ):
        jane.http.cookies.set("reclaim_totp", sealed, path=PAGE)
        await jane.open(PAGE)
        assert "Type this key in your app instead" not in jane.text
        jane.http.cookies.set("reclaim_totp", sealed, path=PAGE)
        # The form of a page left open (its own form gone from today's page): the same token.
        csrf = jane.form_token(PAGE + "/totp")
        code = pyotp.TOTP(secret).now()
        refused = await jane.http.post(PAGE + "/totp/confirm", data={"csrf": csrf, "code": code})
        jane.back_to(refused)
        assert refused.status_code == 400
        assert "The time to set up the app ran out. Start again." in jane.text
    assert await stack.services.directory.factors(1) == []


async def test_the_authenticator_app_is_removed_with_the_password_and_every_contact_told(
    stack: Stack, jane: Person
):
    await stack.services.directory.enrol_totp(1, datetime.now(UTC))
    await jane.open(PAGE)
    assert "Authenticator app Added on" in jane.text

    refused = await jane.submit(PAGE + "/remove", kind="totp", **{"password-totp": "wrong"})
    assert refused.status_code == 401
    assert "The password is not right." in jane.text
    assert re.search(r'<details class="remove" open>', jane.page)
    await jane.submit(PAGE + "/remove", kind="totp", **{"password-totp": PASSWORD})

    assert "Your authenticator app is removed." in jane.text
    assert "Add an authenticator app" in jane.text
    assert await stack.services.directory.factors(1) == []
    await _told(stack, "the authenticator app was removed as a second factor")


async def test_a_passkey_is_added_named_and_removed_with_the_password(stack: Stack, jane: Person):
    """The browser's part played by the tests' software authenticator: the options the page
    hands out, its answer posted with a name; a stale or foreign answer is refused."""
    settings = stack.services.settings
    key = SoftAuthenticator(settings.resolved_webauthn_rp_id, settings.resolved_webauthn_origins[0])
    csrf = jane.form_token(PAGE + "/passkey")
    # The form's own fields are posted for the options, its CSRF token with them.
    refused = await jane.http.post(PAGE + "/passkey/options", data={"name": "x"})
    assert refused.status_code == 403  # no CSRF token: nothing handed out
    asked = await jane.http.post(PAGE + "/passkey/options", data={"csrf": csrf, "name": ""})
    assert asked.status_code == 200, asked.text
    options = asked.json()
    assert options["rp"]["id"] == settings.resolved_webauthn_rp_id
    assert options["user"]["name"] == "jane"
    assert "jane" not in base64.urlsafe_b64decode(options["user"]["id"] + "==").decode(
        errors="ignore"
    )
    challenge = base64.urlsafe_b64decode(
        options["challenge"] + "=" * (-len(options["challenge"]) % 4)
    )

    await jane.submit(PAGE + "/passkey", name="", credential=json.dumps(key.register(challenge)))
    assert "Give the passkey a name of 1 to 64 characters." in jane.text
    foreign = SoftAuthenticator(settings.resolved_webauthn_rp_id, "https://elsewhere.example")
    await jane.submit(
        PAGE + "/passkey", name="Laptop", credential=json.dumps(foreign.register(challenge))
    )
    assert "The passkey was not added: it could not be checked. Try again." in jane.text
    await jane.submit(
        PAGE + "/passkey", name="Laptop", credential=json.dumps(key.register(challenge))
    )

    assert "Your passkey is added." in jane.text
    assert "Laptop" in jane.text
    await _told(stack, "a passkey was added")
    [summary] = await stack.services.directory.factors(1)
    assert (summary.kind, summary.name) == (FactorKind.WEBAUTHN, "Laptop")
    # Its challenge went with it: the same answer again is not taken twice.
    await jane.submit(
        PAGE + "/passkey", name="Again", credential=json.dumps(key.register(challenge))
    )
    assert "The time to add the passkey ran out. Try again." in jane.text

    await jane.submit(PAGE + "/remove", kind="webauthn", key=summary.key or "", place="1",
                      **{"password-webauthn-1": "wrong password"})  # fmt: skip
    assert "The password is not right: the second factor was not removed." in jane.text
    await jane.submit(PAGE + "/remove", kind="webauthn", key=summary.key or "", place="1",
                      **{"password-webauthn-1": PASSWORD})  # fmt: skip
    assert "The passkey is removed." in jane.text
    assert await stack.services.directory.factors(1) == []
    await _told(stack, "a passkey was removed")
