"""`notice_address`: the mailbox an address reaches, as its provider reads it, for counting the
"no account here" notices sent to it."""

from __future__ import annotations

import pytest

from reclaim.identifiers import notice_address


@pytest.mark.parametrize(
    "spelt",
    [
        "stranger@gmail.com",
        "Stranger@GMail.com",
        "s.t.r.anger@gmail.com",
        "stranger+x@gmail.com",
        "S.Tranger+promo+more@gmail.com",
        "stranger@googlemail.com",
        "st.ranger+x@GoogleMail.com",
        "  stranger@gmail.com ",
    ],
)
def test_gmail_ignores_case_dots_and_tags_and_googlemail_is_gmail(spelt: str):
    assert notice_address(spelt) == "stranger@gmail.com"


@pytest.mark.parametrize(
    "domain",
    [
        "outlook.com",
        "hotmail.com",
        "live.com",
        "icloud.com",
        "me.com",
        "fastmail.com",
        "protonmail.com",
        "proton.me",
    ],
)
def test_providers_that_ignore_tags_only_keep_the_dots(domain: str):
    assert notice_address(f"Jane.Doe+shop@{domain.upper()}") == f"jane.doe@{domain}"


@pytest.mark.parametrize(
    ("spelt", "reaches"),
    [
        # Elsewhere a "+tag" or a dot may name another mailbox: only the case goes.
        ("Jane.Doe+x@Example.org", "jane.doe+x@example.org"),
        ("jane.doe@example.org", "jane.doe@example.org"),
        ("janedoe@example.org", "janedoe@example.org"),
        # A provider's name as a subdomain is not the provider.
        ("s.t+x@mail.gmail.com.example", "s.t+x@mail.gmail.com.example"),
        # Outlook and Hotmail are other mailboxes, not aliases of each other.
        ("jane@hotmail.com", "jane@hotmail.com"),
    ],
)
def test_other_domains_keep_their_dots_and_tags(spelt: str, reaches: str):
    assert notice_address(spelt) == reaches


def test_a_phone_number_is_the_number():
    assert notice_address("+14155550199") == "+14155550199"


def test_different_people_stay_different():
    assert notice_address("stranger@gmail.com") != notice_address("stranger@outlook.com")
    assert notice_address("jane.doe@outlook.com") != notice_address("janedoe@outlook.com")
