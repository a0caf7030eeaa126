"""A directory filled with people who look like a real organisation's, and the statistics that
compare the masked destinations Reclaim shows for them with those it shows for identifiers that
name nobody (`python -m bench oracle`, tests/oracle/).

The people are made from a seeded random generator, so the same seed makes the same people:
names from several languages, the large mail providers and organisations' own domains under
many country domains, mobile numbers of a dozen countries (valid for libphonenumber), and a
third of them without a phone.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import phonenumbers
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from reclaim.contracts import AccountStatus

FIRST = (
    "james mary robert patricia john jennifer michael linda david elizabeth william barbara "
    "richard susan joseph jessica thomas sarah charles karen olivia noah emma liam amelia "
    "sophia lucas mia hugo chloe louis lea jonas anna felix lena paul marie lukas hannah "
    "mateo lucia pablo sofia diego valeria giulia marco aarav priya rohan ananya hiroshi yuki "
    "kenji sakura zoe quentin xavier ingrid ulrich yannick wojciech ewa"
).split()
LAST = (
    "smith johnson williams brown jones garcia miller davis rodriguez martinez wilson "
    "anderson taylor thomas moore martin lee thompson white harris muller schmidt schneider "
    "fischer weber meyer dubois lefebvre moreau laurent bernard rossi russo ferrari esposito "
    "fernandez lopez gonzalez sanchez perez kumar sharma patel singh tanaka suzuki takahashi "
    "kowalski nowak zimmermann quinn young"
).split()
PROVIDERS = {
    "gmail.com": 30, "yahoo.com": 6, "hotmail.com": 5, "outlook.com": 5, "icloud.com": 4,
    "gmx.de": 3, "web.de": 3, "orange.fr": 3, "free.fr": 2, "yahoo.co.uk": 2, "libero.it": 1,
    "btinternet.com": 1, "mail.ru": 1, "naver.com": 1, "proton.me": 1,
}  # fmt: skip
ORGANISATIONS = {
    "acme-corp.com": 6, "northwind.io": 3, "uni-heidelberg.de": 3, "ens.fr": 2, "ox.ac.uk": 2,
    "ethz.ch": 2, "kth.se": 1, "unimi.it": 1, "usp.br": 1, "iitb.ac.in": 1, "u-tokyo.ac.jp": 1,
    "example.org": 2, "contoso.net": 2, "zalando.de": 1, "quantum-labs.nl": 1, "vub.be": 1,
}  # fmt: skip
COUNTRIES = {
    "US": 40, "GB": 15, "DE": 12, "FR": 10, "IN": 8, "BR": 5, "JP": 4, "AU": 3, "CH": 3,
    "ES": 3, "IT": 3, "NL": 2, "SE": 1, "PL": 1,
}  # fmt: skip
WITH_PHONE = 0.65


@dataclass(frozen=True)
class Person:
    username: str
    email: str
    phone: str | None


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _mobile(rng: random.Random, region: str) -> str:
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None
    digits = str(example.national_number)
    for _ in range(50):
        candidate = digits[:-4] + f"{rng.randrange(10_000):04d}"
        number = phonenumbers.parse(f"+{example.country_code}{candidate}", None)
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)


def people(count: int, seed: int = 16) -> list[Person]:
    """`count` people with unique usernames, emails and phones."""
    rng = random.Random(seed)
    made: list[Person] = []
    usernames: set[str] = set()
    emails: set[str] = set()
    phones: set[str] = set()
    while len(made) < count:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        username = f"{first}{last[0]}{rng.randrange(1000)}"
        style = rng.randrange(4)
        local = (
            f"{first}.{last}",
            f"{first}{last}",
            f"{first[0]}{last}",
            f"{first}{rng.randrange(100)}",
        )[style]
        pool = PROVIDERS if rng.random() < 0.7 else ORGANISATIONS
        email = f"{local}@{_pick(rng, pool)}"
        phone = _mobile(rng, _pick(rng, COUNTRIES)) if rng.random() < WITH_PHONE else None
        if username in usernames or email in emails or (phone is not None and phone in phones):
            continue
        usernames.add(username)
        emails.add(email)
        if phone is not None:
            phones.add(phone)
        made.append(Person(username, email, phone))
    return made


def strangers(count: int, known: Iterable[Person], seed: int = 61) -> list[Person]:
    """Identifiers of people who have no account among `known`: made the same way, so they
    look the same (what an attacker types is whatever they like)."""
    taken: set[str] = set()
    for person in known:
        taken |= {person.username, person.email} | ({person.phone} if person.phone else set())
    found: list[Person] = []
    for person in people(count * 2, seed):
        mine = {person.username, person.email} | ({person.phone} if person.phone else set())
        if not mine & taken:
            found.append(person)
            taken |= mine
    assert len(found) >= count, "too few strangers: try another seed"
    return found[:count]


def fill(engine: Engine, everyone: Iterable[Person], password_hash: str) -> None:
    """The people as active accounts of the built-in directory, in one statement."""
    from reclaim.directory.tables import Account

    now = datetime.now(UTC)
    rows = [
        {
            "username": p.username,
            "email": p.email,
            "phone": p.phone,
            "status": AccountStatus.ACTIVE.value,
            "password_hash": password_hash,
            "created_at": now,
        }
        for p in everyone
    ]
    with engine.begin() as connection:
        connection.execute(insert(Account), rows)


# -- what an attacker compares ------------------------------------------------------------------


def features(channel: str, destination: str) -> dict[str, str]:
    """What a masked destination shows: the channel, its length, and for an email the two
    letters and the top-level domain, for a phone the country code."""
    found = {"channel": channel, "length": f"{channel}:{len(destination)}"}
    if channel == "email":
        local, _, domain = destination.partition("@")
        found["local_letter"] = local[:1]
        found["host_letter"] = domain[:1]
        found["tld"] = domain.rpartition(".")[2]
    else:
        found["country"] = destination[: destination.index("•")]
    return found


def distributions(answers: Iterable[tuple[str, str]]) -> dict[str, Counter[str]]:
    """Per feature, how often each value was seen among (channel, destination) answers."""
    found: dict[str, Counter[str]] = {}
    for channel, destination in answers:
        for name, value in features(channel, destination).items():
            found.setdefault(name, Counter())[value] += 1
    return found


@dataclass(frozen=True)
class Comparison:
    feature: str
    statistic: float
    dof: int
    p_value: float
    only_real: list[str]  # values seen among real answers only
    only_decoy: list[str]  # values seen among decoys only


def compare(real: Counter[str], decoy: Counter[str], feature: str, pool: int = 10) -> Comparison:
    """Pearson's chi-square test of homogeneity of two samples; values seen fewer than `pool`
    times in both together are pooled into one bin (the test wants expected counts of 5)."""
    values = set(real) | set(decoy)
    rare = {v for v in values if real[v] + decoy[v] < pool}
    bins = sorted(values - rare) + (["(rare)"] if rare else [])

    def binned(sample: Counter[str]) -> list[int]:
        return [sum(sample[v] for v in rare) if b == "(rare)" else sample[b] for b in bins]

    rows = [binned(real), binned(decoy)]
    totals = [sum(row) for row in rows]
    columns = [rows[0][i] + rows[1][i] for i in range(len(bins))]
    grand = sum(totals)
    statistic = 0.0
    for r, row in enumerate(rows):
        for i, seen in enumerate(row):
            expected = totals[r] * columns[i] / grand if grand else 0
            if expected > 0:
                statistic += (seen - expected) ** 2 / expected
    dof = max(len(bins) - 1, 0)
    return Comparison(
        feature,
        round(statistic, 3),
        dof,
        chi_square_survival(statistic, dof),
        sorted(set(real) - set(decoy)),
        sorted(set(decoy) - set(real)),
    )


def chi_square_survival(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X chi-square with `dof` degrees of freedom (1.0 for dof 0)."""
    if dof <= 0 or statistic <= 0:
        return 1.0
    return _upper_gamma(dof / 2, statistic / 2)


def _upper_gamma(a: float, x: float) -> float:
    """The regularised upper incomplete gamma function Q(a, x) (Numerical Recipes' gammq)."""
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:  # the series for P, then Q = 1 - P
        term = total = 1.0 / a
        n = a
        for _ in range(1000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-12:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    # Lentz's continued fraction for Q.
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-12:
            break
    return min(1.0, math.exp(log_front) * h)
