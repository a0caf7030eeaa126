"""The HTTP directory's side of the contract, against a host played by the test: what it signs
and sends, and how each answer the contract allows becomes the port's result."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from standardwebhooks import Webhook

from reclaim.contracts import (
    ACCOUNT_HOLDER,
    AccountState,
    AccountStatus,
    Actor,
    ActorKind,
    CaseError,
    PurgeAccount,
    StatusChange,
)
from reclaim.directory import (
    AccountExists,
    AccountGone,
    Capability,
    DirectoryUnavailable,
    PasswordRejected,
    directory_for,
)
from reclaim.directory.http import HttpDirectory
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.security import Keys
from reclaim.settings import Settings
from reclaim.store.engine import make_engine
from reclaim.store.migrations import create_schema
from tests.host_app import HOST_SECRET
from tests.stack import TEST_PASSWORDS, TEST_SECRET

NOW = datetime(2026, 12, 1, tzinfo=UTC)
BAN_TIMER = Actor(ActorKind.SYSTEM, "ban timer")
JANE = {"id": "u-17", "username": "jane", "email": "jane@example.com", "phone": None}
Answer = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'reclaim.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()


class Host:
    """Answers with `answer`, after checking the signature; keeps every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answer: Answer = lambda request: httpx.Response(200, json=JANE)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        Webhook(HOST_SECRET).verify(request.content, dict(request.headers), json_parse=False)
        self.requests.append(request)
        return self.answer(request)


@pytest.fixture
def host() -> Host:
    return Host()


@pytest.fixture
async def directory(engine: Engine, host: Host) -> HttpDirectory:
    settings = Settings(
        secret_key=TEST_SECRET,
        directory="http",
        http_directory_url="https://app.example.org/reclaim",
        http_directory_secret=HOST_SECRET,
    )
    made = directory_for(settings, engine, Keys(TEST_SECRET.encode()), TEST_PASSWORDS)
    assert isinstance(made, HttpDirectory)
    made._client = httpx.AsyncClient(transport=httpx.MockTransport(host))
    return made


async def _jane(directory: HttpDirectory) -> int:
    found = await directory.find(Identifier(IdentifierKind.EMAIL, "jane@example.com"))
    assert found is not None
    return found.id


def _body(request: httpx.Request) -> Any:
    return json.loads(request.content)


async def test_lookups_are_signed_posts_with_nothing_private_in_the_url(
    directory: HttpDirectory, host: Host
):
    account_id = await _jane(directory)

    [lookup] = host.requests
    assert (lookup.method, lookup.url.path) == ("POST", "/reclaim/accounts/lookup")
    assert _body(lookup) == {"kind": "email", "value": "jane@example.com"}
    assert "jane" not in str(lookup.url)
    assert await directory.get(account_id) is not None
    assert host.requests[-1].url.path == "/reclaim/accounts/u-17"
    assert await _jane(directory) == account_id  # the same id every time


async def test_a_new_password_carries_one_idempotency_key_per_change(
    directory: HttpDirectory, host: Host
):
    account_id = await _jane(directory)
    host.answer = lambda request: httpx.Response(200, json={"applied": True})
    first = await directory.new_password("rc_1", "violet tangerine marmalade kayak")
    second = await directory.new_password("rc_1", "orchid lantern pebble saxophone")

    for prepared in (first, first, second):
        await directory.set_password(account_id, prepared, case_id="rc_1", at=NOW)

    sent = host.requests[-3:]
    keys = [r.headers["idempotency-key"] for r in sent]
    assert [r.headers["webhook-id"] for r in sent] == keys
    assert keys[0] == keys[1] != keys[2] and keys[0].startswith("pw_rc_1_")
    assert _body(sent[0]) == {"password": "violet tangerine marmalade kayak", "case_id": "rc_1"}
    assert "violet" not in str(sent[0].url)


@pytest.mark.parametrize(
    ("status", "body", "raised", "detail"),
    [
        (422, {"error": "password_reused"}, PasswordRejected, CaseError.PASSWORD_REUSED),
        (422, {"error": "weak_password", "reasons": ["12+"]}, PasswordRejected, ["12+"]),
        (409, {"error": "account_gone"}, AccountGone, None),
        (404, {"error": "not_found"}, AccountGone, None),
        (503, {"error": "maintenance"}, DirectoryUnavailable, "answered 503"),
        (401, {"error": "bad_signature"}, DirectoryUnavailable, "RECLAIM_HTTP_DIRECTORY_SECRET"),
        (418, {"error": "teapot"}, DirectoryUnavailable, "answered 418 to a new password"),
    ],
)
async def test_each_answer_to_a_new_password_becomes_the_ports_result(
    directory: HttpDirectory,
    host: Host,
    status: int,
    body: dict[str, Any],
    raised: type[Exception],
    detail: Any,
):
    account_id = await _jane(directory)
    host.answer = lambda request: httpx.Response(status, json=body)
    prepared = await directory.new_password("rc_2", "violet tangerine marmalade kayak")

    with pytest.raises(raised) as caught:
        await directory.set_password(account_id, prepared, case_id="rc_2", at=NOW)

    if isinstance(caught.value, PasswordRejected):
        assert detail in (caught.value.error, caught.value.reasons)
    elif detail:
        assert detail in str(caught.value)


async def test_a_taken_email_and_a_gone_account_are_told_apart(
    directory: HttpDirectory, host: Host
):
    account_id = await _jane(directory)
    given = {"case_id": "sc_1", "at": NOW, "actor": ACCOUNT_HOLDER, "reason": "claim"}

    host.answer = lambda request: httpx.Response(409, json={"error": "email_taken"})
    with pytest.raises(AccountExists):
        await directory.replace_contacts(account_id, email="bob@example.com", **given)
    host.answer = lambda request: httpx.Response(409, json={"error": "account_gone"})
    with pytest.raises(AccountGone):
        await directory.replace_contacts(account_id, email="new@example.com", **given)
    assert host.requests[-1].headers["idempotency-key"] == "ct_sc_1"


async def test_a_host_that_times_out_or_answers_garbage_is_unavailable(
    directory: HttpDirectory, host: Host
):
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    host.answer = slow
    with pytest.raises(DirectoryUnavailable, match="did not answer in time"):
        await directory.ping()
    host.answer = lambda request: httpx.Response(200, content=b"<html>hello</html>")
    with pytest.raises(DirectoryUnavailable, match="not the contract's"):
        await directory.find(Identifier(IdentifierKind.USERNAME, "jane"))
    host.answer = lambda request: httpx.Response(200, json={"username": "no id"})
    with pytest.raises(DirectoryUnavailable, match="account is not the contract's"):
        await directory.find(Identifier(IdentifierKind.USERNAME, "jane"))
    host.answer = lambda request: httpx.Response(200, json={**JANE, "status": "disabled"})
    disabled = await directory.find(Identifier(IdentifierKind.USERNAME, "jane"))
    assert disabled is not None and disabled.status.value == "banned"


def _status_answer(request: httpx.Request) -> httpx.Response:
    """A host that applies the status it is sent (the ban replaced `del_old`)."""
    sent = _body(request)
    banned = sent["status"] == "banned"
    return httpx.Response(
        200,
        json={
            **JANE,
            "status": sent["status"],
            "status_until": sent["until"] if banned else None,
            "status_case": sent["case_id"] if banned else None,
            "previous_case": "del_old" if banned else None,
        },
    )


async def test_a_ban_and_its_lift_are_status_calls_with_one_key_per_change(
    directory: HttpDirectory, host: Host
):
    account_id = await _jane(directory)
    host.answer = _status_answer
    olivia = Actor(ActorKind.OPERATOR, "olivia")
    ban = StatusChange("ban_1", account_id, NOW, olivia, "spam", NOW + timedelta(days=2))

    first = await directory.ban(ban)
    again = await directory.ban(ban)  # the activity, retried
    lifted = await directory.lift_ban(StatusChange("ban_1", account_id, NOW, BAN_TIMER, "time"))

    assert (
        first
        == again
        == AccountState(
            applied=True,
            status=AccountStatus.BANNED,
            until=NOW + timedelta(days=2),
            case_id="ban_1",
            previous_case="del_old",
        )
    )
    assert lifted == AccountState(applied=True, status=AccountStatus.ACTIVE)
    sent = host.requests[-3:]
    assert [(r.method, r.url.path) for r in sent] == [("POST", "/reclaim/accounts/u-17/status")] * 3
    keys = [r.headers["idempotency-key"] for r in sent]
    assert [r.headers["webhook-id"] for r in sent] == keys
    assert keys == ["st_ban_1_banned", "st_ban_1_banned", "st_ban_1_active"]
    assert _body(sent[0]) == {
        "status": "banned",
        "case_id": "ban_1",
        "since": NOW.isoformat(),
        "until": (NOW + timedelta(days=2)).isoformat(),
        "reason": "spam",
        "actor": {"kind": "operator", "name": "olivia"},
    }
    assert _body(sent[2])["actor"] == {"kind": "system", "name": "ban timer"}


async def test_a_ban_no_case_is_in_charge_of_is_lifted_under_a_key_of_its_own(
    directory: HttpDirectory, host: Host
):
    account_id = await _jane(directory)
    host.answer = _status_answer
    change = StatusChange("", account_id, NOW, Actor(ActorKind.OPERATOR, "olivia"))

    await directory.lift_ban(change)

    assert _body(host.requests[-1])["case_id"] is None
    key = host.requests[-1].headers["idempotency-key"]
    assert key == f"st_{account_id}_{int(NOW.timestamp())}_active"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            409,
            {**JANE, "error": "not_in_charge", "status": "banned", "status_case": "ban_2"},
            AccountState(applied=False, status=AccountStatus.BANNED, case_id="ban_2"),
        ),
        (404, {"error": "not_found"}, AccountState(applied=False, status=AccountStatus.PURGED)),
    ],
)
async def test_a_lift_the_host_refuses_is_not_applied(
    directory: HttpDirectory, host: Host, status: int, body: dict[str, Any], expected: Any
):
    account_id = await _jane(directory)
    host.answer = lambda request: httpx.Response(status, json=body)

    lifted = await directory.lift_ban(StatusChange("ban_1", account_id, NOW, BAN_TIMER))

    assert lifted == expected


@pytest.mark.parametrize(
    ("status", "body"),
    [(503, {"error": "maintenance"}), (409, {"error": "something else"}), (200, {"no": "status"})],
)
async def test_a_status_answer_outside_the_contract_is_retried(
    directory: HttpDirectory, host: Host, status: int, body: dict[str, Any]
):
    account_id = await _jane(directory)
    host.answer = lambda request: httpx.Response(status, json=body)

    with pytest.raises(DirectoryUnavailable):
        await directory.ban(StatusChange("ban_1", account_id, NOW, BAN_TIMER, "spam"))


async def test_a_deactivation_and_its_purge_are_sent_under_keys_of_their_case(
    directory: HttpDirectory, host: Host
):
    account_id = await _jane(directory)
    until = NOW + timedelta(days=30)
    deactivated = {**JANE, "status": "deactivated", "status_case": "del_1"}
    deactivated["status_until"] = until.isoformat()
    host.answer = lambda request: httpx.Response(200, json=deactivated)

    state = await directory.deactivate(
        StatusChange("del_1", account_id, NOW, ACCOUNT_HOLDER, until=until)
    )

    assert state == AccountState(True, AccountStatus.DEACTIVATED, until, "del_1")
    sent = host.requests[-1]
    assert (
        sent.url.path.endswith("/status")
        and sent.headers["idempotency-key"] == "st_del_1_deactivated"
    )
    assert (_body(sent)["status"], _body(sent)["until"]) == ("deactivated", until.isoformat())

    purged = {**JANE, "username": "purged:u-17", "status": "purged", "status_case": "del_1"}
    host.answer = lambda request: httpx.Response(200, json=purged)
    state = await directory.purge(PurgeAccount("del_1", account_id, until, 86_400))

    assert (state.applied, state.status) == (True, AccountStatus.PURGED)
    sent = host.requests[-1]
    assert sent.url.path == "/reclaim/accounts/u-17/purge"
    assert sent.headers["idempotency-key"] == "pg_del_1"
    assert _body(sent) == {"case_id": "del_1", "at": until.isoformat(), "quarantine": 86_400}
    assert {Capability.STATUS, Capability.PURGE} <= directory.capabilities

    host.answer = lambda request: httpx.Response(
        409, json={**JANE, "error": "not_in_charge", "status": "active"}
    )
    refused = await directory.purge(PurgeAccount("del_1", account_id, until, 86_400))
    assert (refused.applied, refused.status) == (False, AccountStatus.ACTIVE)


async def test_a_ban_reads_back_with_its_end_reason_and_case(directory: HttpDirectory, host: Host):
    until = NOW + timedelta(days=2)
    host.answer = lambda request: httpx.Response(
        200,
        json={
            **JANE,
            "status": "banned",
            "status_since": NOW.isoformat(),
            "status_until": until.isoformat(),
            "status_reason": "spam",
            "status_case": "ban_1",
        },
    )

    found = await directory.find(Identifier(IdentifierKind.USERNAME, "jane"))

    assert found is not None
    assert (found.status, found.status_since, found.status_until) == ("banned", NOW, until)
    assert (found.status_reason, found.status_case) == ("spam", "ban_1")
