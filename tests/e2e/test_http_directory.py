"""Recovering the users of a host application, end to end: the real API and worker, the
reference host (examples/host_directory/app.py) as a process of its own with its own user
table, every request signed, a host that answers 503 for a while."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.conftest import StackParts
from tests.host_app import HOST_SECRET, HostApp, Proxy, serve_proxy
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"
OTHER = "orchid lantern pebble saxophone"


@pytest.fixture
def host(tmp_path: Path) -> AsyncIterator[HostApp]:
    app = HostApp(tmp_path / "host")
    app.add_user("jane", "jane@example.com", "+14155550123", OLD)
    app.add_user("bob", "bob@example.com", None, OLD)
    app.start()
    yield app  # type: ignore[misc]
    app.stop()


def _settings(url: str, **more: Any) -> dict[str, Any]:
    return {
        "directory": "http",
        "http_directory_url": f"{url}/reclaim",
        "http_directory_secret": HOST_SECRET,
        **more,
    }


async def _poll(read: Callable[[], Awaitable[Any]], until: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + 30
    while True:
        answer = await read()
        if until(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"never came: {answer}")
        await asyncio.sleep(0.1)


async def _token(stack: Stack, case_id: str, code: str) -> str:
    granted = await stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": code})
    assert granted.status_code == 200, granted.text
    return str(granted.json()["reset_token"])


async def _choose(stack: Stack, case_id: str, token: str, password: str) -> httpx.Response:
    return await stack.http.post(
        f"/v1/recovery/{case_id}/password", json={"reset_token": token, "new_password": password}
    )


async def test_a_host_user_recovers_by_email_and_by_phone(
    host: HostApp, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(**_settings(host.origin))
    async with running_stack(settings, engine, mail, sms) as stack:
        ready = await stack.http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["directory_kind"] == "http"
        signed_in = await host.login("jane", OLD)
        assert signed_in.status_code == 200

        case = await stack.open_case("jane@example.com")
        assert (case["channel"], case["destination"]) == ("email", "j•••@e•••.com")
        token = await _token(stack, case["case_id"], await mail.code_for("jane@example.com"))
        reused = await _choose(stack, case["case_id"], token, OLD)
        assert (reused.status_code, reused.json()["error"]) == (422, "password_reused")
        done = await _choose(stack, case["case_id"], token, NEW)
        assert done.status_code == 200, done.text

        assert (await host.login("jane", NEW)).status_code == 200
        assert (await host.login("jane", OLD)).status_code == 401
        # The host signed her out everywhere: the session from before is revoked.
        assert host.query(
            "SELECT revoked FROM sessions WHERE token = ?", signed_in.json()["session"]
        ) == [(1,)]
        await sms.wait_for("+14155550123", "password of jane was changed")

        by_phone = await stack.open_case("+1 415 555 0123")
        code = await sms.code_for("+14155550123")
        token = await _token(stack, by_phone["case_id"], code)
        assert (await _choose(stack, by_phone["case_id"], token, OTHER)).status_code == 200
        assert (await host.login("jane", OTHER)).status_code == 200

        # Nobody else was touched; sessions and account creation stay the host's.
        assert (await host.login("bob", OLD)).status_code == 200
        refused = await stack.sign_in("jane", OTHER)
        assert (refused.status_code, refused.json()["error"]) == (501, "not_supported")


async def test_a_host_answering_503_for_a_while_loses_nothing_and_applies_once(
    host: HostApp, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    proxy = Proxy(host.origin)
    async with serve_proxy(proxy) as proxied:
        settings, engine = stack_parts(**_settings(proxied))
        async with running_stack(settings, engine, mail, sms) as stack:
            proxy.down = True
            ready = await stack.http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["directory"] == ("unavailable (the host application answered 503)")
            refused = await stack.http.post("/v1/recovery", json={"identifier": "jane"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "temporarily_unavailable"
            proxy.down = False

            case = await stack.open_case("jane")
            token = await _token(stack, case["case_id"], await mail.code_for("jane@example.com"))
            # The host applies the change twice more than it can answer: the activity retries
            # with the same idempotency key, the host answers what it did the first time.
            proxy.lose["/password"] = 2
            done = await _choose(stack, case["case_id"], token, NEW)

            assert done.status_code == 200, done.text
            sent = [key for path, key in proxy.seen if path.endswith("/password")]
            assert len(sent) == 3 and len(set(sent)) == 1, sent
            assert sent[0].startswith(f"pw_{case['case_id']}_")
            changes = host.query(
                "SELECT count(*) FROM passwords WHERE case_id = ?", case["case_id"]
            )
            assert changes == [(1,)]  # applied once
            assert (await host.login("jane", NEW)).status_code == 200
            final = await _poll(
                lambda: stack.http.get(f"/v1/recovery/{case['case_id']}"),
                lambda r: r.json()["state"] == "completed",
            )
            assert final.status_code == 200


async def test_requests_are_signed_and_a_wrong_secret_is_named(
    host: HostApp, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    async with httpx.AsyncClient(base_url=host.origin) as http:
        unsigned = await http.post("/reclaim/accounts/lookup", json={"kind": "username"})
        other = Webhook("whsec_" + "b3RoZXIgc2VjcmV0IG9mIDMyIGJ5dGVzIGxvbmcgISE=")
        forged = {"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time()))}
        forged["webhook-signature"] = other.sign("msg_1", datetime.now(UTC), "")
        wrong = await http.get("/reclaim/health", headers=forged)
    assert (unsigned.status_code, wrong.status_code) == (401, 401)

    wrong_secret = "whsec_" + "b3RoZXIgc2VjcmV0IG9mIDMyIGJ5dGVzIGxvbmcgISE="
    settings, engine = stack_parts(**_settings(host.origin, http_directory_secret=wrong_secret))
    async with running_stack(settings, engine, mail, sms) as stack:
        ready = await stack.http.get("/readyz")
        opened = await stack.http.post("/v1/recovery", json={"identifier": "jane"})

    assert ready.status_code == 503
    assert (
        "refused Reclaim's signature (401): check RECLAIM_HTTP_DIRECTORY_SECRET"
        in (ready.json()["directory"])
    )
    assert (opened.status_code, opened.json()["error"]) == (503, "temporarily_unavailable")
