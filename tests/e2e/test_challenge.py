"""The owner is never locked out by the per-identifier rate limit: beyond it, a proof of work
(an ALTCHA v1 challenge) instead of a flat 429. Issue 16's attack: five requests on each of an
account's identifiers made every request of the owner answer 429 for an hour."""

from __future__ import annotations

import base64

import httpx

from tests.conftest import Seen
from tests.proof import solved
from tests.stack import Stack

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"
JANE = ("jane", "jane@example.com", "+14155550123")


async def _open(stack: Stack, identifier: str, altcha: str | None = None) -> httpx.Response:
    body = {"identifier": identifier} | ({"altcha": altcha} if altcha else {})
    return await stack.http.post("/v1/recovery", json=body)


async def _hammer(stack: Stack, *identifiers: str) -> None:
    """What a stranger who knows the identifiers does: five requests on each."""
    for identifier in identifiers:
        for _ in range(5):
            assert (await _open(stack, identifier)).status_code == 202


async def test_the_owner_locked_out_by_five_requests_on_each_identifier_gets_through(
    stack: Stack,
):
    await stack.add_account(*JANE, OLD)
    await _hammer(stack, *JANE)

    refused = await _open(stack, "jane@example.com")

    assert refused.status_code == 429
    body = refused.json()
    assert body["error"] == "challenge_required"
    assert 3500 < int(refused.headers["Retry-After"]) <= 3600  # a client that cannot solve waits
    challenge = body["challenge"]
    assert set(challenge) == {"algorithm", "challenge", "maxNumber", "salt", "signature"}
    assert (challenge["algorithm"], challenge["maxNumber"]) == ("SHA-256", 10_000)
    opened = await _open(stack, "jane@example.com", solved(challenge))
    assert opened.status_code == 202, opened.text
    case_id = opened.json()["case_id"]
    code = await stack.mail.code_of_case(case_id)
    granted = await stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": code})
    assert granted.status_code == 200, granted.text
    done = await stack.http.post(
        f"/v1/recovery/{case_id}/password",
        json={"reset_token": granted.json()["reset_token"], "new_password": NEW},
    )
    assert done.json()["state"] == "completed"
    assert (await stack.sign_in("jane", NEW)).status_code == 200


async def test_a_solution_opens_one_case_for_its_identifier_and_the_next_costs_more(
    stack: Stack, comparisons: Seen
):
    await _hammer(stack, "ghost_user", "other_ghost")
    first = (await _open(stack, "ghost_user")).json()["challenge"]
    proof = solved(first)

    assert (await _open(stack, "ghost_user", proof)).status_code == 202
    replayed = await _open(stack, "ghost_user", proof)
    elsewhere = await _open(
        stack, "other_ghost", solved((await _open(stack, "ghost_user")).json()["challenge"])
    )

    assert replayed.status_code == 429 and replayed.json()["error"] == "challenge_required"
    assert "not accepted" in replayed.json()["message"]
    assert replayed.json()["challenge"]["maxNumber"] == 2 * first["maxNumber"]  # one more case
    assert elsewhere.status_code == 429  # bound to the identifier it was made for
    # Its signature compared in constant time, right and wrong (tests/e2e/test_constant_time.py).
    assert comparisons[("reclaim/recovery/challenge.py", "Challenges.check")] == {True, False}


async def test_difficulty_grows_with_each_case_over_the_limit_up_to_the_cap(stack: Stack):
    await _hammer(stack, "ghost_user")
    seen = []
    for _ in range(6):
        challenge = (await _open(stack, "ghost_user")).json()["challenge"]
        seen.append(challenge["maxNumber"])
        assert (await _open(stack, "ghost_user", solved(challenge))).status_code == 202

    assert seen == [10_000, 20_000, 40_000, 80_000, 160_000, 160_000]


async def test_a_challenge_fetched_early_cannot_be_spent_later(stack: Stack):
    """Challenges gathered while the identifier was just over the limit do not pay for the
    cases after: each is good only while the identifier is at most that far over."""
    await _hammer(stack, "ghost_user")
    hoard = [solved((await _open(stack, "ghost_user")).json()["challenge"]) for _ in range(3)]

    assert (await _open(stack, "ghost_user", hoard[0])).status_code == 202
    late = await _open(stack, "ghost_user", hoard[1])

    assert late.status_code == 429
    assert late.json()["challenge"]["maxNumber"] == 20_000


async def test_a_malformed_solution_is_a_clear_422(stack: Stack):
    for altcha, error in (
        ("not base64!", "invalid_proof"),
        (base64.b64encode(b"[1, 2]").decode(), "invalid_proof"),
        (base64.b64encode(b'{"number": "1"}').decode(), "invalid_proof"),
        ("A" * 5000, "invalid_request"),
    ):
        response = await _open(stack, "ghost_user", altcha)
        assert (response.status_code, response.json()["error"]) == (422, error), response.text
