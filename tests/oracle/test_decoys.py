"""No existence oracle in the masked destination: an identifier that names nobody is shown a
destination drawn from the real accounts' own (`Directory.decoy`), with the channel a real
account would get, the same one every time.

The attacks of issue 16: decoys used 21 letters and com/net/org only, and phones `+1…NN`, so
`z•••@m•••.de` or `+44•••` proved an account exists; a known account without a phone asked for
SMS answered `channel: email`, an unknown identifier `channel: sms`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bench.people import Person, compare, distributions, fill, people, strangers
from reclaim.contracts import Channel
from reclaim.identifiers import mask_email, mask_phone
from reclaim.services import Services, build_services
from reclaim.settings import Settings
from tests.stack import FAST_ARGON2, TEST_SECRET, Stack

CHANNELS = (None, Channel.EMAIL, Channel.SMS)


class StartsNothing:
    """A Temporal client that keeps the cases it is asked to start and starts none: what
    opening a case answers, without any workflow."""

    def __init__(self) -> None:
        self.started: list[Any] = []

    async def start_workflow(self, workflow: str, arg: Any, **_: Any) -> None:
        self.started.append(arg)


@pytest.fixture
async def services(engine: Engine, tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings(secret_key=TEST_SECRET, state_dir=tmp_path, **FAST_ARGON2)
    built = build_services(settings, StartsNothing(), engine)  # type: ignore[arg-type]
    try:
        yield built
    finally:
        await built.aclose()


def _identifier(person: Person, index: int) -> str:
    """Usernames, emails and phone numbers in turn (a username for someone without a phone)."""
    kind = index % 3
    if kind == 1:
        return person.email
    if kind == 2 and person.phone:
        return person.phone
    return person.username


def _destinations(everyone: list[Person]) -> set[str]:
    return {mask_email(p.email) for p in everyone} | {
        mask_phone(p.phone) for p in everyone if p.phone
    }


async def test_decoys_come_from_the_real_destinations_distribution(
    engine: Engine, services: Services
):
    everyone = people(400)
    fill(engine, everyone, "not-a-hash")
    known, unknown = everyone[:300], strangers(300, everyone)

    async def answers(group: list[Person]) -> list[tuple[str, str, str]]:
        found = []
        for index, person in enumerate(group):
            identifier = _identifier(person, index)
            case = await services.recovery.open(identifier, CHANNELS[(index // 3) % 3])
            found.append((identifier, case.channel.value, case.destination))
        return found

    real, decoys = await answers(known), await answers(unknown)

    # Every destination an unknown username is shown is one a real account shows.
    shown = {d for i, _, d in decoys if "@" not in i and not i.startswith("+")}
    assert len(shown) > 20
    assert shown <= _destinations(everyone)
    # And over a few hundred requests of each, no feature of the answers tells them apart.
    real_seen = distributions((c, d) for _, c, d in real)
    decoy_seen = distributions((c, d) for _, c, d in decoys)
    assert set(real_seen) == set(decoy_seen)
    for feature in real_seen:
        result = compare(real_seen[feature], decoy_seen[feature], feature)
        assert result.p_value > 0.01, result
    # The same unknown identifier gets the same destination every time.
    again = [
        (await services.recovery.open(i, CHANNELS[(n // 3) % 3])).destination
        for n, (i, _, _) in enumerate(decoys[:30])
    ]
    assert again == [d for _, _, d in decoys[:30]]


async def test_an_empty_directory_invents_destinations_that_look_real(services: Services):
    """Nothing to lend (an LDAP or HTTP directory, or no account yet): invented contacts from
    a worldwide mix, not three TLDs and one country code."""
    answers = [await services.recovery.open(f"ghost{n:03d}", CHANNELS[n % 3]) for n in range(300)]

    seen = distributions((a.channel.value, a.destination) for a in answers)
    assert {"email", "sms"} <= set(seen["channel"])
    assert len(seen["tld"]) >= 10 and len(seen["local_letter"]) >= 20
    assert len(seen["country"]) >= 3


# -- the attacks, over HTTP ------------------------------------------------------------------

OLD = "correct horse battery staple"


async def test_decoys_are_not_recognisable(stack: Stack):
    """A directory whose people are in Germany and Britain: an unknown username is shown a
    German or British address too, never an invented `.com` one."""
    people_here = [
        ("zoe", "zoe.muller@mail.de", "+4915112345678"),
        ("ingrid", "ingrid@uni-heidelberg.de", "+4915212345679"),
        ("quentin", "quentin@ox.ac.uk", "+447400123456"),
        ("yannick", "yannick@web.de", None),
    ]
    for username, email, phone in people_here:
        await stack.add_account(username, email, phone, OLD)
    real = {mask_email(e) for _, e, _ in people_here} | {
        mask_phone(p) for _, _, p in people_here if p
    }

    for n in range(12):
        for channel in ("email", "sms"):
            case = await stack.open_case(f"ghost{n:02d}", channel)
            assert case["destination"] in real, case


async def test_sms_asked_for_a_known_account_without_a_phone_or_an_unknown_one(stack: Stack):
    """Nobody here has a phone: a known account asked for SMS answers by email, and so does
    an identifier that names nobody."""
    await stack.add_account("jane", "jane@example.com", None, OLD)
    await stack.add_account("bob", "bob@example.org", None, OLD)

    known = await stack.open_case("jane", "sms")
    unknowns = [await stack.open_case(f"ghost{n}", "sms") for n in range(6)]

    assert (known["channel"], known["destination"]) == ("email", "j•••@e•••.com")
    for unknown in unknowns:
        assert unknown["channel"] == "email"
        assert unknown["destination"] in {"j•••@e•••.com", "b•••@e•••.org"}
