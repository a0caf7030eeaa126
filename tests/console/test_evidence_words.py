"""What the case file says of each evidence check, including what the directory could not
check (an LDAP entry keeps no former addresses; Active Directory no readable history)."""

from __future__ import annotations

from api.console.view import evidence_checks
from reclaim.i18n import Text
from reclaim.support.contracts import ContactMatch, Evidence


def _evidence(**overrides: object) -> Evidence:
    values: dict[str, object] = {
        "account_found": True,
        "account_status": "active",
        "account_age_days": 400,
        "passwords_given": 2,
        "passwords_matched": 0,
        "registered_email": ContactMatch.NO_MATCH,
        "registered_phone": ContactMatch.NOT_GIVEN,
    }
    values.update(overrides)
    return Evidence(**values)  # type: ignore[arg-type]


def _details(evidence: Evidence) -> dict[str, tuple[str, str]]:
    return {c["check"]: (c["result"], c["detail"]) for c in evidence_checks(Text("en"), evidence)}


def test_a_directory_that_checks_everything_says_plainly_what_did_not_match():
    said = _details(_evidence())

    assert said["A previous password"] == ("not matched", "none of the 2 given")
    assert said["A registered email address"] == ("not matched", "not an address of this account")


def test_what_the_directory_could_not_check_is_said_where_a_match_failed():
    said = _details(_evidence(previous_passwords_checked=False, past_addresses_checked=False))

    result, detail = said["A previous password"]
    assert result == "not matched"
    assert "is the current password" in detail and "no readable history" in detail
    result, detail = said["A registered email address"]
    assert result == "not matched"
    assert "keeps no former addresses" in detail
    assert said["A registered phone number"][0] == "not given"


def test_a_current_password_matched_where_only_it_can_be_checked():
    said = _details(_evidence(passwords_matched=1, previous_passwords_checked=False))

    assert said["A previous password"] == ("matched", "the account's current password")
