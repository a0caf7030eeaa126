"""The WebAuthn ceremonies (reclaim/passkeys.py) against a software authenticator: options a
browser can use, a registration and assertions verified, and each kind of wrong answer refused
(another site, another relying party id, another challenge, a key never registered, a forged
signature, a counter gone back: a clone)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import pytest

from reclaim.directory import Capability, CapabilityMissing, FactorKind, Passkey
from reclaim.directory.port import WithoutSecondFactors
from reclaim.passkeys import (
    PasskeyCloned,
    PasskeyRefused,
    assertion_options,
    challenge_of,
    registration_options,
    verify_assertion,
    verify_registration,
)
from reclaim.settings import Settings
from tests.soft_authenticator import SoftAuthenticator, b64url

ORIGIN = "https://id.example.com"
RP_ID = "id.example.com"
AT = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings() -> Settings:
    return Settings(public_url=f"{ORIGIN}/", product_name="Acme")


def _registered(settings: Settings, **options: Any) -> tuple[SoftAuthenticator, Passkey]:
    authenticator = SoftAuthenticator(RP_ID, ORIGIN, **options)
    challenge = os.urandom(32)
    passkey = verify_registration(
        settings, json.dumps(authenticator.register(challenge)), challenge, "My laptop", AT
    )
    return authenticator, passkey


def test_the_settings_default_to_the_public_url_and_a_loopback_one_is_localhost():
    public = Settings(public_url="https://id.example.com:8443/reclaim", product_name="Acme")
    local = Settings(public_url="http://127.0.0.1:8000")
    named = Settings(
        webauthn_rp_id="Example.com",
        webauthn_rp_name="Example",
        webauthn_origins="https://a.example.com, https://B.example.com:443",
    )

    assert (public.resolved_webauthn_rp_id, public.resolved_webauthn_rp_name) == (
        "id.example.com",
        "Acme",
    )
    assert public.resolved_webauthn_origins == ["https://id.example.com:8443"]
    assert local.resolved_webauthn_rp_id == "localhost"
    assert local.resolved_webauthn_origins == ["http://127.0.0.1:8000", "http://localhost:8000"]
    assert (named.resolved_webauthn_rp_id, named.resolved_webauthn_rp_name) == (
        "example.com",
        "Example",
    )
    assert named.resolved_webauthn_origins == ["https://a.example.com", "https://b.example.com"]


def test_registration_options_are_what_a_browser_takes(settings: Settings):
    _, kept = _registered(settings)
    challenge = os.urandom(32)

    options = registration_options(
        settings, user_id=b"\x01\x02", username="jane", exclude=[kept], challenge=challenge
    )

    assert options["rp"] == {"name": "Acme", "id": RP_ID}
    assert options["user"] == {"id": b64url(b"\x01\x02"), "name": "jane", "displayName": "jane"}
    assert options["challenge"] == b64url(challenge)
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert {"type": "public-key", "alg": -7} in options["pubKeyCredParams"]
    [excluded] = options["excludeCredentials"]
    assert excluded["id"] == b64url(kept.credential_id)
    assert sorted(excluded["transports"]) == ["hybrid", "internal"]
    json.dumps(options)


def test_assertion_options_allow_the_accounts_passkeys(settings: Settings):
    _, first = _registered(settings)
    _, second = _registered(settings)
    challenge = os.urandom(32)

    options = assertion_options(settings, allow=[first, second], challenge=challenge)

    assert options["rpId"] == RP_ID
    assert options["challenge"] == b64url(challenge)
    assert options["userVerification"] == "preferred"
    assert [c["id"] for c in options["allowCredentials"]] == [
        b64url(first.credential_id),
        b64url(second.credential_id),
    ]


def test_a_registration_then_assertions_each_counting_up(settings: Settings):
    authenticator, passkey = _registered(settings)

    assert passkey.credential_id == authenticator.credential_id
    assert (passkey.sign_count, passkey.name, passkey.created_at) == (0, "My laptop", AT)
    assert sorted(passkey.transports) == ["hybrid", "internal"]
    assert passkey.last_used_at is None
    counts = []
    for _ in range(2):
        challenge = os.urandom(32)
        counts.append(
            verify_assertion(settings, authenticator.assertion(challenge), challenge, passkey)
        )
        passkey = Passkey(**{**passkey.__dict__, "sign_count": counts[-1]})
    assert counts == [1, 2]


def test_a_registration_for_another_site_rp_or_challenge_is_refused(settings: Settings):
    authenticator = SoftAuthenticator(RP_ID, ORIGIN)
    challenge = os.urandom(32)
    answers = {
        "origin": authenticator.register(challenge, origin="https://evil.example.net"),
        "rp id": authenticator.register(challenge, rp_id="evil.example.net"),
        "challenge": authenticator.register(os.urandom(32)),
        "garbage": {"id": "x", "rawId": "x", "response": {}, "type": "public-key"},
    }

    for why, answer in answers.items():
        with pytest.raises(PasskeyRefused) as refused:
            verify_registration(settings, answer, challenge, "key", AT)
        assert type(refused.value) is PasskeyRefused, why
        assert refused.value.code == "passkey_refused"
    good = verify_registration(settings, authenticator.register(challenge), challenge, "key", AT)
    assert good.credential_id == authenticator.credential_id


def test_a_passkey_name_is_one_to_64_characters(settings: Settings):
    authenticator = SoftAuthenticator(RP_ID, ORIGIN)
    challenge = os.urandom(32)
    answer = authenticator.register(challenge)

    for name in ("", "   ", "x" * 65):
        with pytest.raises(PasskeyRefused):
            verify_registration(settings, answer, challenge, name, AT)
    kept = verify_registration(settings, answer, challenge, "  Work \n key ", AT)
    assert kept.name == "Work key"


def test_an_assertion_for_another_site_rp_challenge_or_key_is_refused(settings: Settings):
    authenticator, passkey = _registered(settings)
    stranger = SoftAuthenticator(RP_ID, ORIGIN)
    # Another key answering under the registered credential's id: a forged signature.
    impostor = SoftAuthenticator(RP_ID, ORIGIN, credential_id=authenticator.credential_id)
    challenge = os.urandom(32)
    tampered = authenticator.assertion(challenge)
    signature = bytearray(authenticator.assertion(challenge)["response"]["signature"].encode())
    tampered["response"]["signature"] = signature.decode()[:-4] + "AAAA"
    answers = {
        "origin": authenticator.assertion(challenge, origin="https://evil.example.net"),
        "rp id": authenticator.assertion(challenge, rp_id="evil.example.net"),
        "challenge": authenticator.assertion(os.urandom(32)),
        "never registered": stranger.assertion(challenge),
        "another key, same id": impostor.assertion(challenge),
        "tampered signature": tampered,
        "not json": "{",
    }

    for why, answer in answers.items():
        with pytest.raises(PasskeyRefused) as refused:
            verify_assertion(settings, answer, challenge, passkey)
        assert type(refused.value) is PasskeyRefused, why
    assert verify_assertion(settings, authenticator.assertion(challenge), challenge, passkey) > 0


def test_a_counter_gone_back_is_a_clone_told_apart(settings: Settings):
    authenticator, passkey = _registered(settings)
    for _ in range(5):
        authenticator.assertion(os.urandom(32))
    seen = Passkey(**{**passkey.__dict__, "sign_count": 5})
    challenge = os.urandom(32)

    authenticator.sign_count = 3  # a copy made earlier: its next answer counts 4
    with pytest.raises(PasskeyCloned) as cloned:
        verify_assertion(settings, authenticator.assertion(challenge), challenge, seen)
    authenticator.sign_count = 4  # the same count again: 5, not above what was seen
    with pytest.raises(PasskeyCloned):
        verify_assertion(settings, authenticator.assertion(challenge), challenge, seen)

    assert cloned.value.code == "passkey_cloned"
    assert verify_assertion(settings, authenticator.assertion(challenge), challenge, seen) == 6


def test_an_authenticator_without_a_counter_is_accepted_each_time(settings: Settings):
    authenticator, passkey = _registered(settings, counter=False)

    counts = []
    for _ in range(2):
        challenge = os.urandom(32)
        counts.append(
            verify_assertion(settings, authenticator.assertion(challenge), challenge, passkey)
        )

    assert counts == [0, 0]


def test_challenge_of_reads_the_client_data_and_refuses_garbage(settings: Settings):
    authenticator = SoftAuthenticator(RP_ID, ORIGIN)
    challenge = os.urandom(32)

    assert challenge_of(authenticator.register(challenge)) == challenge
    assert challenge_of(json.dumps(authenticator.assertion(challenge))) == challenge
    for garbage in ("", "[]", '{"response": {"clientDataJSON": "!!"}}', {"response": {}}):
        with pytest.raises(PasskeyRefused):
            challenge_of(garbage)


async def test_a_directory_without_second_factors_has_no_passkey_and_takes_none():
    class Outside(WithoutSecondFactors):
        name = "ldap"

    directory = Outside()
    key = Passkey(b"id", b"key", 0, (), "Laptop", AT)

    assert await directory.passkeys(1) == []
    assert await directory.use_passkey(1, b"id", 1, case_id="rc_1", at=AT) is False
    for refused in (
        directory.add_passkey(1, key),
        directory.remove_passkey(1, b"id"),
        directory.remove_factor(1, FactorKind.WEBAUTHN),
    ):
        with pytest.raises(CapabilityMissing) as missing:
            await refused
        assert missing.value.capability is Capability.SECOND_FACTORS
