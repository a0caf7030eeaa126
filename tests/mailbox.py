"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for tests to read."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any, Protocol, TypeVar

from aiosmtpd.controller import Controller

from reclaim.notify.outbox import parse_mail, text_of


class _Handler(Protocol):
    port: int


HandlerT = TypeVar("HandlerT", bound=_Handler)


@contextmanager
def smtp_server(handler: HandlerT) -> Iterator[HandlerT]:
    """Serve `handler` (an aiosmtpd handler with a `port` attribute) on a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        handler.port = int(sock.getsockname()[1])
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


CODE_IN_TEXT = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)


class MailSink:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(parse_mail(envelope.original_content or envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    async def wait_for(
        self, predicate: Callable[[EmailMessage], bool], timeout: float = 20
    ) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages:
                if predicate(message):
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(f"no such mail within {timeout} s; got {self.summary()}")
            await asyncio.sleep(0.02)

    async def code_for(self, address: str, nth: int = 1, timeout: float = 20) -> str:
        """The code in the `nth` recovery-code mail sent to `address`, read as a user would."""
        deadline = time.monotonic() + timeout
        while True:
            # Whatever the language of the mail: the code line is the code alone, indented.
            found = (CODE_IN_TEXT.search(text_of(m)) for m in self.to(address))
            codes = [match.group(1) for match in found if match is not None]
            if len(codes) >= nth:
                return codes[nth - 1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no code #{nth} for {address}; got {self.summary()}")
            await asyncio.sleep(0.02)

    async def code_of_case(self, case_id: str, timeout: float = 20) -> str:
        """The code of the mail about case `case_id` (its link names the case)."""
        mail = await self.wait_for(
            lambda m: f"/recover/{case_id}?" in text_of(m) and CODE_IN_TEXT.search(text_of(m)),
            timeout,
        )
        found = CODE_IN_TEXT.search(text_of(mail))
        assert found is not None
        return found.group(1)

    def summary(self) -> list[tuple[str, str]]:
        return [(str(m["To"]), str(m["Subject"])) for m in self.messages]
