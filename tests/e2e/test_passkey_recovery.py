"""A passkey as the second proof of a recovery, over HTTP on the real Temporal dev server and
the built-in SQL directory, signed by the tests' software authenticator: the options hand out
a challenge the case keeps (as a digest) for one answer; the registered passkey opens the new
password; one never registered, an answer to an older challenge and a copied passkey (its
counter gone back) are each a wrong proof, and a copy is told to every contact."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from reclaim import passkeys
from reclaim.notify.outbox import text_of
from tests.conftest import Seen
from tests.soft_authenticator import SoftAuthenticator
from tests.stack import Stack

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"


def _challenge(options: dict[str, object]) -> bytes:
    text = str(options["challenge"])
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def _jane_with_a_passkey(stack: Stack) -> tuple[int, SoftAuthenticator]:
    settings = stack.services.settings
    jane = await stack.add_account("jane", "jane@example.com", "+14155550100", OLD)
    key = SoftAuthenticator(settings.resolved_webauthn_rp_id, settings.resolved_webauthn_origins[0])
    challenge = b"registration-challenge-for-tests"
    passkey = passkeys.verify_registration(
        settings, key.register(challenge), challenge, "Laptop", datetime.now(UTC)
    )
    await stack.services.directory.add_passkey(jane, passkey)
    return jane, key


async def _second_step(stack: Stack, nth: int = 1) -> str:
    case = await stack.open_case("jane@example.com")
    code = await stack.mail.code_for("jane@example.com", nth=nth)
    answer = await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
    assert answer.json() == {"state": "awaiting_second_factor", "factors": ["webauthn"]}
    return str(case["case_id"])


async def _options(stack: Stack, case_id: str) -> dict[str, object]:
    answer = await stack.http.get(f"/v1/recovery/{case_id}/second-factor/webauthn")
    assert answer.status_code == 200, answer.text
    options: dict[str, object] = answer.json()
    return options


async def test_the_registered_passkey_opens_the_new_password(stack: Stack):
    jane, key = await _jane_with_a_passkey(stack)
    case_id = await _second_step(stack)
    url = f"/v1/recovery/{case_id}/second-factor"

    options = await _options(stack, case_id)

    assert options["rpId"] == stack.services.settings.resolved_webauthn_rp_id
    assert [c["id"] for c in options["allowCredentials"]] == [  # type: ignore[attr-defined]
        base64.urlsafe_b64encode(key.credential_id).rstrip(b"=").decode()
    ]
    assertion = key.assertion(_challenge(options))
    granted = await stack.http.post(url, json={"method": "webauthn", "assertion": assertion})
    again = await stack.http.post(url, json={"method": "webauthn", "assertion": assertion})

    assert granted.status_code == 200, granted.text
    assert again.json()["reset_token"] == granted.json()["reset_token"]  # a lost answer
    changed = await stack.http.post(
        f"/v1/recovery/{case_id}/password",
        json={"reset_token": granted.json()["reset_token"], "new_password": NEW},
    )
    assert changed.json()["state"] == "completed"
    assert (await stack.sign_in("jane", NEW)).status_code == 200
    view = (await stack.http.get(f"/v1/recovery/{case_id}")).json()
    assert view["second_factor"] == "webauthn"
    [summary] = await stack.services.directory.factors(jane)
    assert (summary.kind.value, summary.name) == ("webauthn", "Laptop")
    assert summary.last_used_at is not None


async def test_a_stranger_key_a_spent_challenge_and_a_copy_are_wrong_proofs(
    stack: Stack, comparisons: Seen
):
    _, key = await _jane_with_a_passkey(stack)
    settings = stack.services.settings
    case_id = await _second_step(stack)
    url = f"/v1/recovery/{case_id}/second-factor"

    # A key that was never registered, though its owner answers the case's own challenge.
    stranger = SoftAuthenticator(settings.resolved_webauthn_rp_id, key.origin)
    first = await _options(stack, case_id)
    refused = await stack.http.post(
        url, json={"method": "webauthn", "assertion": stranger.assertion(_challenge(first))}
    )
    assert (refused.status_code, refused.json()["error"], refused.json()["attempts_left"]) == (
        400,
        "invalid_code",
        4,
    )
    # The right key on the challenge that answer spent: refused too (one answer each).
    spent = await stack.http.post(
        url, json={"method": "webauthn", "assertion": key.assertion(_challenge(first))}
    )
    assert (spent.status_code, spent.json()["attempts_left"]) == (400, 3)
    # An older challenge after a newer one was handed out: refused.
    older = await _options(stack, case_id)
    await _options(stack, case_id)
    stale = await stack.http.post(
        url, json={"method": "webauthn", "assertion": key.assertion(_challenge(older))}
    )
    assert (stale.status_code, stale.json()["attempts_left"]) == (400, 2)

    # A copy of the key: its counter went back below what the directory recorded.
    fresh = await _options(stack, case_id)
    good = await stack.http.post(
        url, json={"method": "webauthn", "assertion": key.assertion(_challenge(fresh))}
    )
    assert good.status_code == 200, good.text
    later = await _second_step(stack, nth=2)
    key.sign_count = 0
    copied = await stack.http.post(
        f"/v1/recovery/{later}/second-factor",
        json={
            "method": "webauthn",
            "assertion": key.assertion(_challenge(await _options(stack, later))),
        },
    )
    assert (copied.status_code, copied.json()["error"]) == (400, "invalid_code")
    told = await stack.mail.wait_for(
        lambda m: m["To"] == "jane@example.com" and "copy of your passkey" in str(m["Subject"])
    )
    assert "Laptop" in " ".join(text_of(told).split())
    texted = await stack.sms.wait_for("+14155550100", "copy of your passkey")
    assert "Laptop" in texted
    # The challenge signed was compared with the one kept in constant time, both ways.
    assert comparisons[("reclaim/recovery/factors.py", "is_the_challenge")] == {True, False}


async def test_the_options_answer_only_at_the_second_step_of_an_account_with_a_passkey(
    stack: Stack,
):
    await _jane_with_a_passkey(stack)
    case = await stack.open_case("jane@example.com")
    before = await stack.http.get(f"/v1/recovery/{case['case_id']}/second-factor/webauthn")
    assert (before.status_code, before.json()["error"]) == (409, "invalid_state")
    bad = await stack.http.post(
        f"/v1/recovery/{case['case_id']}/second-factor",
        json={"method": "webauthn", "code": "123456"},
    )
    assert bad.status_code == 422
    await stack.add_account("joe", "joe@example.com", None, OLD)
    other = await stack.open_case("joe@example.com")
    code = await stack.mail.code_for("joe@example.com")
    await stack.http.post(f"/v1/recovery/{other['case_id']}/code", json={"code": code})
    none = await stack.http.get(f"/v1/recovery/{other['case_id']}/second-factor/webauthn")
    assert none.status_code == 409
