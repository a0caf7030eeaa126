"""A worker killed mid-case loses nothing: a new worker picks the case up where it was."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reclaim.notify.outbox import text_of
from reclaim.settings import Settings
from tests.conftest import StackParts
from tests.mailbox import CODE_IN_TEXT, MailSink, smtp_server
from tests.sms_gateway import SmsGateway
from tests.stack import WorkerProcess, running_stack

pytestmark = pytest.mark.slow

NEW = "violet tangerine marmalade kayak"
# Temporal hands a dead worker's cases over once its sticky queue times out (10 s), plus the
# new worker's start: room for a loaded machine.
PATIENT = {"temporal_rpc_timeout": 60, "api_request_timeout": 60}


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def _worker(settings: Settings, tmp_path: Path, workers: list[WorkerProcess]) -> WorkerProcess:
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    workers.append(worker)
    worker.start()
    return worker


async def test_a_case_completes_after_its_worker_is_killed(
    stack_parts: StackParts,
    mail: MailSink,
    sms: SmsGateway,
    tmp_path: Path,
    workers: list[WorkerProcess],
):
    settings, engine = stack_parts(**PATIENT)
    worker = _worker(settings, tmp_path, workers)
    async with running_stack(settings, engine, mail, sms, worker=False) as stack:
        await stack.add_account("jane", "jane@example.com", None, "correct horse battery")
        case_id = (await stack.open_case("jane"))["case_id"]
        code = await stack.mail.code_for("jane@example.com")

        worker.kill()
        # The user types the code while no worker runs: the update waits in Temporal.
        submitted = asyncio.create_task(
            stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": code}, timeout=90)
        )
        worker.start()
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


@pytest.fixture
def holding_mail() -> Iterator[HoldingMailSink]:
    with smtp_server(HoldingMailSink()) as sink:
        try:
            yield sink
        finally:
            sink.release.set()  # a held sender would keep the server from stopping


async def test_a_worker_killed_before_it_knew_the_mail_left_sends_the_same_code_again(
    stack_parts: StackParts,
    holding_mail: HoldingMailSink,
    sms: SmsGateway,
    tmp_path: Path,
    workers: list[WorkerProcess],
):
    settings, engine = stack_parts(mail=holding_mail, **PATIENT)
    worker = _worker(settings, tmp_path, workers)
    async with running_stack(settings, engine, holding_mail, sms, worker=False) as stack:
        await stack.add_account("jane", "jane@example.com", None, "correct horse battery")
        case_id = (await stack.open_case("jane"))["case_id"]
        code = await holding_mail.code_for("jane@example.com")  # in the user's inbox...

        worker.kill()  # ...before the worker heard "250 OK"
        holding_mail.release.set()
        worker.start()

        # Heartbeats stop with the worker: the send is retried within seconds, with the
        # code it had already chosen.
        assert await holding_mail.code_for("jane@example.com", nth=2, timeout=60) == code
        granted = await stack.http.post(
            f"/v1/recovery/{case_id}/code", json={"code": code}, timeout=90
        )
        assert granted.status_code == 200, granted.text


async def _until(what: str, check: Callable[[], Awaitable[Any]], timeout: float = 90) -> Any:
    """Poll `check` until it answers something truthy (a deadline, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not (answer := await check()):
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.2)
    return answer


async def test_a_right_code_whose_answer_was_lost_works_when_sent_again(
    stack_parts: StackParts,
    mail: MailSink,
    sms: SmsGateway,
    tmp_path: Path,
    workers: list[WorkerProcess],
):
    """The worker is killed (-9) with the code on its way: the user's request times out (503),
    yet the case goes on to verify it when a worker is back, with a reset token nobody
    received. The same code again gets that token."""
    settings, engine = stack_parts(temporal_rpc_timeout=3)
    worker = _worker(settings, tmp_path, workers)
    async with running_stack(settings, engine, mail, sms, worker=False) as stack:
        jane = await stack.add_account("jane", "jane@example.com", None, "correct horse battery")
        case_id = (await stack.open_case("jane"))["case_id"]
        code = await stack.mail.code_for("jane@example.com")
        url = f"/v1/recovery/{case_id}/code"
        wrong = "000000" if code != "000000" else "111111"

        worker.kill()
        lost_wrong = await stack.http.post(url, json={"code": wrong})
        lost_right = await stack.http.post(url, json={"code": code})
        assert (lost_wrong.status_code, lost_right.status_code) == (503, 503)
        worker.start()

        async def verified() -> bool:
            case = await stack.http.get(f"/v1/recovery/{case_id}")
            return case.status_code == 200 and case.json()["state"] == "verified"

        await _until("the waiting code verified the case", verified)
        again = await stack.http.post(url, json={"code": code})
        assert again.status_code == 200, again.text
        done = await stack.http.post(
            f"/v1/recovery/{case_id}/password",
            json={"reset_token": again.json()["reset_token"], "new_password": NEW},
        )
        assert done.json()["state"] == "completed"
        # The password request's answer is lost too: sent again, it says it was done.
        retried = await stack.http.post(
            f"/v1/recovery/{case_id}/password",
            json={"reset_token": again.json()["reset_token"], "new_password": NEW},
        )
        assert (retried.status_code, retried.json()["state"]) == (200, "completed")
        assert (await stack.sign_in("jane", NEW)).status_code == 200
        closing = await _until(
            "the case recorded", lambda: stack.services.recovery.cases_of(jane, 1)
        )
        assert closing[0].state == "completed"


async def test_a_wrong_code_whose_answer_was_lost_is_counted_once(
    stack_parts: StackParts,
    mail: MailSink,
    sms: SmsGateway,
    tmp_path: Path,
    workers: list[WorkerProcess],
):
    settings, engine = stack_parts(temporal_rpc_timeout=3)
    worker = _worker(settings, tmp_path, workers)
    async with running_stack(settings, engine, mail, sms, worker=False) as stack:
        await stack.add_account("jane", "jane@example.com", None, "correct horse battery")
        case_id = (await stack.open_case("jane"))["case_id"]
        code = await stack.mail.code_for("jane@example.com")
        wrong = "000000" if code != "000000" else "111111"
        url = f"/v1/recovery/{case_id}/code"

        worker.kill()
        lost = await stack.http.post(url, json={"code": wrong})
        assert lost.status_code == 503
        worker.start()

        async def answered() -> Any:
            answer = await stack.http.post(url, json={"code": wrong})
            return answer if answer.status_code != 503 else None

        again = await _until("an answer", answered)

        # Whether the lost request reached the case or not: one wrong code, counted once.
        assert (again.status_code, again.json()["attempts_left"]) == (400, 4)
        view = (await stack.http.get(f"/v1/recovery/{case_id}")).json()
        assert view["attempts_left"] == 4
