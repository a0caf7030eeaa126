"""The WebAuthn ceremonies of passkeys, through py_webauthn: the options a browser is given
(`navigator.credentials.create` / `.get`), and the check of what it answers. No I/O: the
caller keeps the challenge (its digest, in a case) and the passkeys (the directory).

A registration answers a `Passkey` to hand to `Directory.add_passkey`; an assertion answers the
authenticator's new signature counter, for `Directory.use_passkey` (which records it once per
case). A counter that did not go up (while either is non-zero) means two authenticators hold
one credential: `PasskeyCloned`, told apart from a response that is merely wrong or forged
(`PasskeyRefused`), and raised only once the signature is known good.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from reclaim.directory.port import Passkey
from reclaim.errors import Refused

if TYPE_CHECKING:
    from reclaim.settings import Settings

# How long the browser gives the person to use an authenticator (a hint, in milliseconds).
CEREMONY_TIMEOUT_MS = 120_000
NAME_LENGTH = 64

# What a response that does not hold together may raise besides py_webauthn's own errors
# (malformed JSON, base64 or CBOR).
_MALFORMED = (WebAuthnException, ValueError, KeyError, TypeError)


class PasskeyRefused(Refused):
    """A passkey response that is malformed, forged, for another site or challenge, or from a
    passkey that is not the one expected. Says no more why: the reason goes to no one."""

    def __init__(self, message: str = "This passkey could not be verified.") -> None:
        super().__init__("passkey_refused", message)


class PasskeyCloned(PasskeyRefused):
    """A well-signed assertion whose counter did not go up: the credential was copied."""

    def __init__(self) -> None:
        Refused.__init__(
            self, "passkey_cloned", "This passkey's counter went back: it may have been copied."
        )


def registration_options(
    settings: Settings,
    *,
    user_id: bytes,
    username: str,
    exclude: list[Passkey],
    challenge: bytes,
) -> dict[str, Any]:
    """The JSON-ready options for `navigator.credentials.create`: a discoverable credential
    preferred, user verification preferred, no attestation, the account's passkeys excluded."""
    options = generate_registration_options(
        rp_id=settings.resolved_webauthn_rp_id,
        rp_name=settings.resolved_webauthn_rp_name,
        user_id=user_id,
        user_name=username,
        challenge=challenge,
        timeout=CEREMONY_TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[_descriptor(p) for p in exclude],
    )
    return _json(options_to_json(options))


def verify_registration(
    settings: Settings,
    response_json: str | dict[str, Any],
    challenge: bytes,
    name: str,
    at: datetime,
) -> Passkey:
    """The passkey a `navigator.credentials.create` response registers, once its challenge,
    origin, relying party and attestation check out; `PasskeyRefused` otherwise."""
    named = " ".join(name.split())
    if not 0 < len(named) <= NAME_LENGTH:
        raise PasskeyRefused(f"A passkey's name is 1 to {NAME_LENGTH} characters.")
    try:
        credential = parse_registration_credential_json(response_json)
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=settings.resolved_webauthn_rp_id,
            expected_origin=settings.resolved_webauthn_origins,
        )
    except _MALFORMED as error:
        raise PasskeyRefused() from error
    transports = credential.response.transports or []
    return Passkey(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=tuple(AuthenticatorTransport(t).value for t in transports),
        name=named,
        created_at=at,
    )


def assertion_options(
    settings: Settings, *, allow: list[Passkey], challenge: bytes
) -> dict[str, Any]:
    """The JSON-ready options for `navigator.credentials.get`, limited to `allow` (the
    account's passkeys)."""
    options = generate_authentication_options(
        rp_id=settings.resolved_webauthn_rp_id,
        challenge=challenge,
        timeout=CEREMONY_TIMEOUT_MS,
        allow_credentials=[_descriptor(p) for p in allow],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return _json(options_to_json(options))


def verify_assertion(
    settings: Settings, response_json: str | dict[str, Any], challenge: bytes, passkey: Passkey
) -> int:
    """The authenticator's new signature counter once the response is `passkey`'s, signed by
    its key over this challenge, origin and relying party. `PasskeyRefused` for anything else;
    `PasskeyCloned` for a good signature whose counter did not go up."""
    try:
        credential = parse_authentication_credential_json(response_json)
        if credential.raw_id != passkey.credential_id:
            raise PasskeyRefused()
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=settings.resolved_webauthn_rp_id,
            expected_origin=settings.resolved_webauthn_origins,
            credential_public_key=passkey.public_key,
            # The counter is compared below, after the signature: a clone told apart.
            credential_current_sign_count=0,
        )
    except PasskeyRefused:
        raise
    except _MALFORMED as error:
        raise PasskeyRefused() from error
    counter = int(verified.new_sign_count)
    if (counter or passkey.sign_count) and counter <= passkey.sign_count:
        raise PasskeyCloned()
    return counter


def challenge_of(response_json: str | dict[str, Any]) -> bytes:
    """The challenge a response's clientDataJSON carries, unverified: enough for a caller to
    find the challenge it kept (by its digest) before calling a `verify_…`."""
    try:
        parsed = json.loads(response_json) if isinstance(response_json, str) else response_json
        client_data = parsed["response"]["clientDataJSON"]
        return parse_client_data_json(base64url_to_bytes(client_data)).challenge
    except _MALFORMED as error:
        raise PasskeyRefused() from error


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = [AuthenticatorTransport(t) for t in passkey.transports if _known(t)]
    return PublicKeyCredentialDescriptor(id=passkey.credential_id, transports=transports or None)


def _known(transport: str) -> bool:
    return transport in {t.value for t in AuthenticatorTransport}


def _json(text: str) -> dict[str, Any]:
    options: dict[str, Any] = json.loads(text)
    return options
