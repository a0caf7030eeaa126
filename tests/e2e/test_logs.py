"""What the logs say through a whole case: JSON lines naming cases by id, never an address,
a username, a code, a token or a password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog

from reclaim.logs import configure_logging
from tests.conftest import StackParts
from tests.host_app import HOST_SECRET, HostApp
from tests.ldap_server import Slapd
from tests.mailbox import MailSink
from tests.proof import solved
from tests.sms_gateway import SmsGateway
from tests.stack import running_stack

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"


@pytest.fixture
def json_logs() -> object:
    configure_logging("INFO")
    yield
    structlog.reset_defaults()


async def test_a_whole_case_logs_json_lines_with_case_ids_and_nothing_private(
    stack_parts: StackParts,
    mail: MailSink,
    sms: SmsGateway,
    capfd: pytest.CaptureFixture[str],
    json_logs: object,
):
    settings, engine = stack_parts(sms_webhook_url="http://127.0.0.1:9/unreachable")
    async with running_stack(settings, engine, mail, sms) as stack:
        await stack.add_account("jane", "jane@example.com", "+14155550123", OLD)
        session = (await stack.sign_in("jane", OLD)).json()["session_token"]
        case = await stack.open_case("jane@example.com")
        code = await stack.mail.code_for("jane@example.com")
        wrong = "000000" if code != "000000" else "111111"
        await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": wrong})
        token = (
            await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
        ).json()["reset_token"]
        await stack.http.post(
            f"/v1/recovery/{case['case_id']}/password",
            json={"reset_token": token, "new_password": NEW},
        )
        await mail.wait_for(lambda m: "password was changed" in m["Subject"])
        await stack.open_case("nobody@example.net")
        await mail.wait_for(lambda m: m["To"] == "nobody@example.net")
        for _ in range(4):  # then over the rate limit, through a proof of work
            await stack.open_case("nobody@example.net")
        limited = await stack.http.post("/v1/recovery", json={"identifier": "nobody@example.net"})
        challenge = limited.json()["challenge"]
        proof = solved(challenge)
        body = {"identifier": "nobody@example.net", "altcha": proof}
        assert (await stack.http.post("/v1/recovery", json=body)).status_code == 202

    captured = capfd.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    sent = [r for r in records if r.get("event") == "notification_sent"]
    assert {r["kind"] for r in sent} >= {"code", "password_changed", "no_account"}
    for record in sent:
        assert record["case_id"] == record["workflow_id"] and record["activity"]
    # The SMS provider was down: the failures are logged (without the number, see below).
    deferred = [r for r in records if r.get("event") == "password_changed_notice_deferred"]
    assert deferred and deferred[0]["case_id"] == case["case_id"]
    assert any("Completing activity as failed" in r.get("event", "") for r in records)
    everything = captured.out + captured.err
    for private in (
        "jane@example.com",
        "nobody@example.net",
        "+14155550123",
        "4155550123",
        '"jane"',
        code,
        token,
        session,
        OLD,
        NEW,
        "$argon2id$",
        proof,
        challenge["signature"],
    ):
        assert private not in everything, private


@pytest.mark.parametrize("kind", ["ldap", "http"])
async def test_a_recovery_through_an_outside_directory_logs_nothing_private(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    stack_parts: StackParts,
    mail: MailSink,
    sms: SmsGateway,
    capfd: pytest.CaptureFixture[str],
    json_logs: object,
):
    if kind == "ldap":
        slapd: Slapd = request.getfixturevalue("slapd")
        overrides = slapd.reclaim_settings()
        stop = None
    else:
        host = HostApp(tmp_path / "host")
        host.add_user("jane", "jane@example.com", "+14155550123", OLD)
        host.start()
        overrides = {
            "directory": "http",
            "http_directory_url": f"{host.origin}/reclaim",
            "http_directory_secret": HOST_SECRET,
        }
        stop = host.stop
    try:
        settings, engine = stack_parts(**overrides)
        async with running_stack(settings, engine, mail, sms) as stack:
            case = await stack.open_case("jane@example.com")
            code = await stack.mail.code_for("jane@example.com")
            token = (
                await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
            ).json()["reset_token"]
            reused = await stack.http.post(
                f"/v1/recovery/{case['case_id']}/password",
                json={"reset_token": token, "new_password": OLD},
            )
            assert reused.json()["error"] == "password_reused"
            done = await stack.http.post(
                f"/v1/recovery/{case['case_id']}/password",
                json={"reset_token": token, "new_password": NEW},
            )
            assert done.status_code == 200, done.text
            await mail.wait_for(lambda m: "password was changed" in m["Subject"])
            await stack.open_case("nobody@example.net")
            await mail.wait_for(lambda m: m["To"] == "nobody@example.net")
    finally:
        if stop is not None:
            stop()

    captured = capfd.readouterr()
    records = [json.loads(line) for line in captured.err.splitlines() if line.strip()]
    assert {r["kind"] for r in records if r.get("event") == "notification_sent"} >= {
        "code",
        "password_changed",
        "no_account",
    }
    everything = captured.out + captured.err
    for private in (
        "jane@example.com",
        "nobody@example.net",
        "+14155550123",
        "415 555 0123",
        '"jane"',
        "uid=jane",
        code,
        token,
        OLD,
        NEW,
        HOST_SECRET.removeprefix("whsec_"),
    ):
        assert private not in everything, private


def test_access_lines_keep_the_path_and_drop_the_query_string():
    """A claim link's token passes through the query string once: it never reaches a log."""
    import logging

    from reclaim.logs import NoQueryString

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "h11_impl.py", 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/support/claims/sc_x?token=secret", "1.1", 303), None,
    )  # fmt: skip

    assert NoQueryString().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /support/claims/sc_x HTTP/1.1" 303'
