"""A worker killed mid-case loses nothing: a new worker picks the case up where it was."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from reclaim.db import create_schema, make_engine
from reclaim.delivery.outbox import text_of
from tests.conftest import free_port
from tests.mailbox import CODE_IN_TEXT, MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import running_stack, settings_env, stack_settings

pytestmark = pytest.mark.slow

NEW = "violet tangerine marmalade kayak"


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "reclaim", "worker"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )


async def test_a_case_completes_after_its_worker_is_killed(
    dev_server: str, tmp_path: Path, mail: MailSink, sms: SmsGateway
):
    database_url = f"sqlite:///{tmp_path / 'reclaim.db'}"
    settings = stack_settings(
        temporal=dev_server,
        database_url=database_url,
        state_dir=tmp_path,
        mail=mail,
        sms=sms,
        # Temporal hands the case over once the dead worker's sticky queue times out (10 s),
        # plus the new worker's start: room for a loaded machine.
        temporal_rpc_timeout=60,
    )
    env = settings_env(settings)
    engine = make_engine(database_url)
    create_schema(engine)
    log = tmp_path / "worker.log"
    worker = _start_worker(env, log)
    try:
        async with running_stack(settings, engine, mail, sms, worker=False) as stack:
            await stack.add_account("jane", "jane@example.com", None, "correct horse battery")
            case_id = (await stack.open_case("jane"))["case_id"]
            code = await stack.mail.code_for("jane@example.com")

            worker.send_signal(signal.SIGKILL)
            worker.wait()
            # The user types the code while no worker runs: the update waits in Temporal.
            submitted = asyncio.create_task(
                stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": code}, timeout=90)
            )
            worker = _start_worker(env, log)
            granted = await submitted

            assert granted.status_code == 200, granted.text
            done = await stack.http.post(
                f"/v1/recovery/{case_id}/password",
                json={"reset_token": granted.json()["reset_token"], "new_password": NEW},
            )
            assert done.json()["state"] == "completed"
            assert (await stack.sign_in("jane", NEW)).status_code == 200
            # Killed right after sending, the worker may not have reported it: the retry then
            # re-sends the same code. Never a second, different one.
            sent = {
                CODE_IN_TEXT.search(text_of(m)).group(1)  # type: ignore[union-attr]
                for m in mail.to("jane@example.com")
                if "code" in m["Subject"]
            }
            assert sent == {code}
    finally:
        worker.terminate()
        worker.wait(15)
        engine.dispose()


class HoldingMailSink(MailSink):
    """Receives each message, then keeps the sender waiting for its "250 OK" until released:
    the mail has arrived, but the worker does not know it yet."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
        return answer


async def test_a_worker_killed_before_it_knew_the_mail_left_sends_the_same_code_again(
    dev_server: str, tmp_path: Path, sms: SmsGateway
):
    mail = HoldingMailSink()
    mail.port = free_port()
    controller = Controller(mail, hostname="127.0.0.1", port=mail.port)
    controller.start()
    database_url = f"sqlite:///{tmp_path / 'reclaim.db'}"
    settings = stack_settings(
        temporal=dev_server,
        database_url=database_url,
        state_dir=tmp_path,
        mail=mail,
        sms=sms,
        temporal_rpc_timeout=60,
    )
    env = settings_env(settings)
    engine = make_engine(database_url)
    create_schema(engine)
    log = tmp_path / "worker.log"
    worker = _start_worker(env, log)
    try:
        async with running_stack(settings, engine, mail, sms, worker=False) as stack:
            await stack.add_account("jane", "jane@example.com", None, "correct horse battery")
            case_id = (await stack.open_case("jane"))["case_id"]
            code = await mail.code_for("jane@example.com")  # in the user's inbox...

            worker.send_signal(signal.SIGKILL)  # ...before the worker heard "250 OK"
            worker.wait()
            mail.release.set()
            worker = _start_worker(env, log)

            # Heartbeats stop with the worker: the send is retried within seconds, with the
            # code it had already chosen.
            assert await mail.code_for("jane@example.com", nth=2, timeout=60) == code
            granted = await stack.http.post(
                f"/v1/recovery/{case_id}/code", json={"code": code}, timeout=90
            )
            assert granted.status_code == 200, granted.text
    finally:
        mail.release.set()
        worker.terminate()
        worker.wait(15)
        controller.stop()
        engine.dispose()
