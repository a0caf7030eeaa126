"""The password policy itself (reclaim/password_policy.py): what a person choosing a new
password is told. Through the API: tests/e2e/test_self_service.py."""

from __future__ import annotations

from reclaim.password_policy import check_password

# The local part (jane.doe) is not the username (jdoe): only the email rule can refuse it.
ACCOUNT = {"username": "jdoe", "email": "Jane.Doe@example.com", "phone": "+14155550123"}
STRONG = "violet tangerine marmalade kayak"


def test_a_password_containing_the_emails_local_part_is_refused_for_it():
    verdict = check_password("violet jane.DOE tangerine marmalade", **ACCOUNT)

    assert "contains_email" in verdict.reasons, verdict.reasons
    assert not verdict.ok
    assert "contains_username" not in verdict.reasons
    # The control: the same kind of password without the local part is taken.
    assert check_password(STRONG, **ACCOUNT).reasons == []


def test_a_password_containing_the_username_is_refused_for_it():
    verdict = check_password("violet JDOE tangerine marmalade", **ACCOUNT)

    assert "contains_username" in verdict.reasons, verdict.reasons
    assert "contains_email" not in verdict.reasons
