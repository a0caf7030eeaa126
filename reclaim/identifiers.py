"""What people type to name their account (email, phone number or username), made canonical,
and the masked form a destination is shown in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import phonenumbers
from email_validator import EmailNotValidError, validate_email

if TYPE_CHECKING:
    from reclaim.security import Keys

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,31}$")
_PHONE_CHARS = re.compile(r"^\+?[0-9 ()./-]{6,32}$")


class IdentifierKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    USERNAME = "username"


class InvalidIdentifier(ValueError):
    """The text is neither a valid email address, phone number nor username."""


@dataclass(frozen=True)
class Identifier:
    kind: IdentifierKind
    value: str  # canonical: lower-case email, E.164 phone, lower-case username

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.value}"


def identifier_digest(keys: Keys, kind: IdentifierKind, value: str) -> str:
    """The keyed digest an identifier (or a contact address) is stored as when only its
    equality matters: rate limits, reserved usernames, past contacts."""
    return keys.identifier_digest(Identifier(kind, value).key)


def normalize_email(raw: str) -> str:
    try:
        info = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as err:
        raise InvalidIdentifier(str(err)) from err
    return info.normalized.lower()


def normalize_phone(raw: str, default_region: str | None = None) -> str:
    text = raw.strip()
    if not _PHONE_CHARS.match(text):
        raise InvalidIdentifier("not a phone number")
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as err:
        raise InvalidIdentifier(
            "not a phone number (write it with its country code, e.g. +14155550123)"
        ) from err
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentifier("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_username(raw: str) -> str:
    name = raw.strip().lower()
    if not USERNAME_PATTERN.match(name):
        raise InvalidIdentifier(
            "a username is 3 to 32 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def parse_identifier(raw: str, default_region: str | None = None) -> Identifier:
    text = raw.strip()
    if "@" in text:
        return Identifier(IdentifierKind.EMAIL, normalize_email(text))
    if text.startswith("+") or (text and text[0].isdigit() and _PHONE_CHARS.match(text)):
        try:
            return Identifier(IdentifierKind.PHONE, normalize_phone(text, default_region))
        except InvalidIdentifier:
            if text.startswith("+"):
                raise
    return Identifier(IdentifierKind.USERNAME, normalize_username(text))


def mask_email(email: str) -> str:
    """`jane.doe@example.com` → `j•••@e•••.com`: enough to recognise, too little to harvest."""
    local, _, domain = email.partition("@")
    host, _, tld = domain.rpartition(".")
    return f"{local[:1]}•••@{host[:1]}•••.{tld}"


def mask_phone(phone: str) -> str:
    """`+14155550123` → `+1•••••••23`: the country code and the last two digits."""
    number = phonenumbers.parse(phone, None)
    country = str(number.country_code)
    national = str(number.national_number)
    return f"+{country}{'•' * max(len(national) - 2, 1)}{national[-2:]}"


_DECOY_LETTERS = "abcdefghijklmnoprstvw"
_DECOY_TLDS = ("com", "com", "com", "com", "net", "org")


def decoy_email(seed: bytes) -> str:
    """A believable masked address for an identifier that names no account."""
    local = _DECOY_LETTERS[seed[0] % len(_DECOY_LETTERS)]
    host = _DECOY_LETTERS[seed[1] % len(_DECOY_LETTERS)]
    return f"{local}•••@{host}•••.{_DECOY_TLDS[seed[2] % len(_DECOY_TLDS)]}"


def decoy_phone(seed: bytes, region: str | None = None) -> str:
    """A believable masked mobile number of the deployment's region (US when none is set)."""
    mobile = phonenumbers.PhoneNumberType.MOBILE
    example = phonenumbers.example_number_for_type(region or "US", mobile)
    if example is None:
        example = phonenumbers.example_number_for_type("US", mobile)
    assert example is not None
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    return mask_phone(e164[:-2] + f"{seed[3] % 100:02d}")
