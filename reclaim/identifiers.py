"""What people type to name their account (email, phone number or username), made canonical,
and the masked form a destination is shown in.
"""

from __future__ import annotations

import random
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


# What the large mail providers ignore in the local part of their own addresses: every
# spelling delivers to one mailbox, so a "no account here" notice counts them as one address.
# Only what the provider documents is stripped: another domain's server may deliver
# `jane+x@` and `j.ane@` to other people, so elsewhere only the case goes.
#   Gmail: dots and "+tag" (and googlemail.com is the same mailbox as gmail.com);
#   Outlook.com (outlook/hotmail/live), iCloud (icloud/me/mac), Fastmail, Proton: "+tag".
_SAME_MAILBOX_DOMAIN = {"googlemail.com": "gmail.com"}
_IGNORE_DOTS = frozenset({"gmail.com"})
_IGNORE_TAGS = frozenset(
    {
        "gmail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "fastmail.com",
        "fastmail.fm",
        "protonmail.com",
        "protonmail.ch",
        "proton.me",
        "pm.me",
    }
)


def notice_address(address: str) -> str:
    """The mailbox an email address (or the number a phone number, as given in E.164)
    reaches, for counting the notices sent to it: `Stranger+x@GoogleMail.com` and
    `s.t.r.anger@gmail.com` are both `stranger@gmail.com`; `jane+x@example.org` stays as
    it is, but lower-case."""
    text = address.strip().lower()
    local, at, domain = text.rpartition("@")
    if not at:
        return text  # a phone number
    domain = _SAME_MAILBOX_DOMAIN.get(domain, domain)
    if domain in _IGNORE_TAGS:
        local = local.split("+", 1)[0]
    if domain in _IGNORE_DOTS:
        local = local.replace(".", "")
    return f"{local}@{domain}"


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


# Invented contacts, for an identifier that names nobody when the directory cannot lend a real
# account's (LDAP, HTTP, an empty directory). Drawn from a fixed, worldwide-looking mix: the
# first letters of people's names, the large mail providers, country domains, and mobile
# numbers mostly of the deployment's region. A deployment whose people are unlike this mix
# can be told apart by statistics over many requests (docs/security.md).
_NAME_LETTERS = {
    "a": 80, "b": 50, "c": 70, "d": 60, "e": 40, "f": 20, "g": 30, "h": 30, "i": 10, "j": 100,
    "k": 60, "l": 50, "m": 90, "n": 30, "o": 10, "p": 30, "q": 2, "r": 50, "s": 80, "t": 50,
    "u": 2, "v": 20, "w": 30, "x": 2, "y": 5, "z": 5,
}  # fmt: skip
_PROVIDERS = {
    "gmail.com": 300, "yahoo.com": 60, "hotmail.com": 60, "outlook.com": 50, "icloud.com": 40,
    "aol.com": 10, "proton.me": 10, "gmx.de": 10, "web.de": 10, "orange.fr": 10,
    "yahoo.co.uk": 10, "live.com": 10,
}  # fmt: skip
_OTHER_DOMAINS = 420  # out of 1000: an organisation's own domain
_TLDS = {
    "com": 450, "org": 50, "net": 50, "edu": 30, "de": 50, "uk": 50, "fr": 30, "ca": 30,
    "au": 30, "nl": 20, "it": 20, "es": 20, "io": 20, "ch": 10, "se": 10, "be": 10, "jp": 10,
    "br": 10, "in": 10, "ie": 10,
}  # fmt: skip
_WITH_PHONE = 0.7
_HOME_REGION = 0.75
_ABROAD = ("US", "GB", "DE", "FR", "IN", "CA", "ES", "IT", "BR", "AU", "NL", "MX")


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def decoy_contacts(seed: bytes, region: str | None = None) -> tuple[str, str | None]:
    """An invented email address and mobile number (or none), the same for the same seed."""
    rng = random.Random(seed)
    local = _pick(rng, _NAME_LETTERS) + "x"
    if rng.randrange(1000) < _OTHER_DOMAINS:
        domain = f"{_pick(rng, _NAME_LETTERS)}x.{_pick(rng, _TLDS)}"
    else:
        domain = _pick(rng, _PROVIDERS)
    phone = None
    if rng.random() < _WITH_PHONE:
        home = region or "US"
        phone = _mobile(home if rng.random() < _HOME_REGION else rng.choice(_ABROAD), rng)
    return f"{local}@{domain}", phone


def _mobile(region: str, rng: random.Random) -> str:
    mobile = phonenumbers.PhoneNumberType.MOBILE
    example = phonenumbers.example_number_for_type(region, mobile)
    if example is None:
        example = phonenumbers.example_number_for_type("US", mobile)
    assert example is not None
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    return e164[:-2] + f"{rng.randrange(100):02d}"
