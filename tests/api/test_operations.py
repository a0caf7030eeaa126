"""Health, a Temporal that does not answer, and the dev outbox."""

from __future__ import annotations

import json
import mailbox
from email.message import EmailMessage
from pathlib import Path

import httpx
from sqlmodel import Session, select

from api.app import services_for
from reclaim.store.engine import make_engine
from reclaim.store.migrations import create_schema
from reclaim.store.models import RecoveryCase
from tests.conftest import StackParts, free_port
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack, serve_api, stack_settings


async def test_healthz_says_ok_when_the_database_and_temporal_answer(stack: Stack):
    response = await stack.http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "temporal": "ok"}


async def test_readyz_adds_the_account_directory_and_a_worker(stack: Stack):
    response = await stack.http.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "temporal": "ok",
        "directory": "ok",
        "worker": "ok",
        "directory_kind": "sql",
    }


async def test_readyz_says_when_no_worker_polls_the_task_queue(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    """Temporal answers but nobody would run a case: the API is not ready, and says why."""
    settings, engine = stack_parts()
    async with running_stack(settings, engine, mail, sms, worker=False) as stack:
        ready = await stack.http.get("/readyz")
        health = await stack.http.get("/healthz")

    assert ready.status_code == 503
    assert ready.json()["worker"] == (
        f"unavailable (no worker polls task queue {settings.task_queue})"
    )
    assert ready.json()["reason"] == (
        f"worker: unavailable (no worker polls task queue {settings.task_queue})"
    )
    assert health.status_code == 200  # alive all the same


async def test_without_temporal_the_api_answers_503_and_keeps_nothing(
    tmp_path: Path, mail: MailSink, sms: SmsGateway
):
    database_url = f"sqlite:///{tmp_path / 'reclaim.db'}"
    settings = stack_settings(
        temporal=f"127.0.0.1:{free_port()}",  # nothing listens there
        database_url=database_url,
        state_dir=tmp_path,
        mail=mail,
        sms=sms,
        temporal_rpc_timeout=2,
    )
    async with serve_api(settings) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        health = await http.get("/healthz")
        ready = await http.get("/readyz")
        opened = await http.post("/v1/recovery", json={"identifier": "jane@example.com"})
        looked_up = await http.get("/v1/recovery/rc_AAAAAAAAAAAAAAAAAAAAAA")

    assert health.status_code == 503
    assert health.json()["database"] == "ok"
    assert health.json()["temporal"].startswith("unavailable")
    assert ready.status_code == 503
    assert ready.json()["reason"].startswith("temporal: unavailable")
    for response in (opened, looked_up):
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "temporarily_unavailable"
        assert response.headers["Retry-After"] == "5"
    # The case that could not start does not count toward the rate limit.
    engine = make_engine(database_url)
    create_schema(engine)
    with Session(engine) as session:
        assert session.exec(select(RecoveryCase)).all() == []
    engine.dispose()


async def test_the_dev_outbox_shows_local_mail_and_sms_in_dev_mode_only(
    dev_server: str, tmp_path: Path, mail: MailSink, sms: SmsGateway
):
    outbox = tmp_path / "outbox"
    message = EmailMessage()
    message["To"], message["Subject"] = "jane@example.com", "Your Reclaim recovery code"
    message["Date"] = "Tue, 24 Nov 2026 10:00:00 +0000"
    message.set_content("    123456\n")
    outbox.mkdir()
    mailbox.Maildir(outbox / "mail", create=True).add(message)
    (outbox / "sms.jsonl").write_text(
        json.dumps({"to": "+14155550123", "body": "hi", "at": "2026-11-24T11:00:00+00:00"}) + "\n"
    )
    settings = stack_settings(
        temporal=dev_server,
        database_url=f"sqlite:///{tmp_path / 'reclaim.db'}",
        state_dir=tmp_path,
        mail=mail,
        sms=sms,
        dev_mode=True,
    )
    async with serve_api(settings) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get("/dev/outbox")

    assert response.status_code == 200
    assert [(m["kind"], m["to"]) for m in response.json()["messages"]] == [
        ("sms", "+14155550123"),
        ("email", "jane@example.com"),
    ]
    assert "123456" in response.json()["messages"][1]["text"]


async def test_readyz_says_when_the_database_does_not_answer(
    tmp_path: Path, mail: MailSink, sms: SmsGateway
):
    """The database stops answering under a running API (here: its engine now points where
    nothing listens): not ready, the reason names it, nothing of the error's insides."""
    settings = stack_settings(
        temporal=f"127.0.0.1:{free_port()}",
        database_url=f"sqlite:///{tmp_path / 'reclaim.db'}",
        state_dir=tmp_path,
        mail=mail,
        sms=sms,
        temporal_rpc_timeout=2,
    )
    schema = make_engine(settings.resolved_database_url)
    create_schema(schema)
    schema.dispose()
    services = await services_for(settings)
    async with (
        serve_api(settings, services) as base_url,
        httpx.AsyncClient(base_url=base_url) as http,
    ):
        services.engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/reclaim")
        ready = await http.get("/readyz")
        health = await http.get("/healthz")

    for response in (ready, health):
        assert response.status_code == 503
        assert response.json()["database"] == "unavailable (OperationalError)"
    assert ready.json()["reason"].startswith("database: unavailable (OperationalError)")
    assert "Connection refused" not in ready.text
