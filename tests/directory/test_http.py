"""The HTTP directory's side of the contract, against a host played by the test: what it signs
and sends, and how each answer the contract allows becomes the port's result."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from standardwebhooks import Webhook

from reclaim.contracts import ACCOUNT_HOLDER, CaseError
from reclaim.directory import (
    AccountExists,
    AccountGone,
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
