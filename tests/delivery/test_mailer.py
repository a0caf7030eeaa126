"""The mailer against real SMTP servers on loopback (aiosmtpd): what arrives, and which
refusals are final (`Undeliverable`) and which are outages the caller retries."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from reclaim.i18n import Text
from reclaim.notify import messages
from reclaim.notify.errors import Undeliverable
from reclaim.notify.mail import Mailer
from reclaim.notify.messages import Links
from reclaim.notify.outbox import parse_mail
from reclaim.settings import Settings
from tests.mailbox import CODE_IN_TEXT, MailSink

SENDER = "Reclaim <no-reply@reclaim.test>"
TO = "jane@example.com"
MESSAGE_ID = "<rc_abc.code.0.email@reclaim.test>"
CODE = "482913"


def _code_message() -> messages.Message:
    return messages.recovery_code(
        Text("en"),
        product="Reclaim",
        code=CODE,
        valid_for_seconds=600,
        webotp_domain="reclaim.test",
        links=Links("https://reclaim.test"),
        case_id="rc_abc",
        proof="p" * 43,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtp_server(handler: Any) -> Iterator[int]:
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


class Scripted:
    """An SMTP server that answers RCPT TO and DATA as told, and keeps what it accepted."""

    def __init__(self, rcpt: str = "250 OK", data: str = "250 OK") -> None:
        self.rcpt_reply, self.data_reply = rcpt, data
        self.recipients: list[str] = []
        self.accepted: list[EmailMessage] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.recipients.append(address)
        if self.rcpt_reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.rcpt_reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply.startswith("250"):
            self.accepted.append(parse_mail(envelope.original_content or envelope.content))
        return self.data_reply


async def test_a_mail_has_text_and_html_parts_headers_and_the_message_id_given(mail: MailSink):
    mailer = Mailer("127.0.0.1", mail.port, sender=SENDER, timeout=5)

    returned = await mailer.send(TO, _code_message(), MESSAGE_ID)

    assert returned == MESSAGE_ID
    [received] = mail.messages
    assert received["From"] == SENDER
    assert received["To"] == TO
    assert received["Subject"] == "Your Reclaim recovery code"
    assert received["Message-ID"] == MESSAGE_ID
    assert received["Date"]
    assert received.get_content_type() == "multipart/alternative"
    text = received.get_body(preferencelist=("plain",))
    html = received.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert text.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    assert CODE_IN_TEXT.findall(text.get_content()) == [CODE]
    assert "<html" not in text.get_content()
    assert CODE in html.get_content()
    assert "<h2>Your Reclaim recovery code</h2>" in html.get_content()


async def test_a_resent_mail_carries_the_same_message_id(mail: MailSink):
    mailer = Mailer("127.0.0.1", mail.port, sender=SENDER, timeout=5)

    await mailer.send(TO, _code_message(), MESSAGE_ID)
    await mailer.send(TO, _code_message(), MESSAGE_ID)

    assert [m["Message-ID"] for m in mail.messages] == [MESSAGE_ID, MESSAGE_ID]


async def test_a_recipient_the_server_does_not_know_is_undeliverable():
    server = Scripted(rcpt="550 5.1.1 no such user")
    with smtp_server(server) as port:
        mailer = Mailer("127.0.0.1", port, sender=SENDER, timeout=5)
        with pytest.raises(Undeliverable, match="refused the recipient"):
            await mailer.send("nobody@example.com", _code_message(), MESSAGE_ID)

    assert server.recipients == ["nobody@example.com"]
    assert server.accepted == []


@pytest.mark.parametrize(
    "reply", ["450 4.2.0 mailbox busy", "451 4.7.1 greylisted, try again later"]
)
async def test_a_recipient_refused_for_now_is_retried_not_undeliverable(reply: str):
    """Greylisting and busy mailboxes answer RCPT TO with 4xx: the next try gets through."""
    server = Scripted(rcpt=reply)
    with smtp_server(server) as port:
        mailer = Mailer("127.0.0.1", port, sender=SENDER, timeout=5)
        with pytest.raises(Exception) as caught:
            await mailer.send(TO, _code_message(), MESSAGE_ID)

        assert not isinstance(caught.value, Undeliverable)
        server.rcpt_reply = "250 OK"
        await mailer.send(TO, _code_message(), MESSAGE_ID)

    [received] = server.accepted
    assert received["Message-ID"] == MESSAGE_ID


@pytest.mark.parametrize(
    ("reply", "final"),
    [("554 5.7.1 message rejected as spam", True), ("451 4.3.0 local error, try later", False)],
)
async def test_a_message_refused_after_data_is_undeliverable_only_when_final(
    reply: str, final: bool
):
    server = Scripted(data=reply)
    with smtp_server(server) as port:
        mailer = Mailer("127.0.0.1", port, sender=SENDER, timeout=5)
        with pytest.raises(Exception) as caught:
            await mailer.send(TO, _code_message(), MESSAGE_ID)

    assert isinstance(caught.value, Undeliverable) is final
    assert server.accepted == []


async def test_a_mail_server_that_is_down_is_retried_not_undeliverable():
    with socket.socket() as closed:  # bound, not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        mailer = Mailer("127.0.0.1", closed.getsockname()[1], sender=SENDER, timeout=5)
        with pytest.raises(Exception) as caught:
            await mailer.send(TO, _code_message(), MESSAGE_ID)

    assert not isinstance(caught.value, Undeliverable)


async def test_the_mailer_from_settings_sends_through_the_configured_server_and_sender(
    mail: MailSink, tmp_path: Path
):
    settings = Settings(
        secret_key="x" * 32,
        state_dir=tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=mail.port,
        mail_from="Support <support@reclaim.test>",
    )

    await Mailer.from_settings(settings).send(TO, _code_message(), MESSAGE_ID)

    [received] = mail.messages
    assert received["From"] == "Support <support@reclaim.test>"
    assert received["To"] == TO


class Counting(Scripted):
    """Scripted, and counts the connections (each one greets with EHLO)."""

    def __init__(self, rcpt: str = "250 OK") -> None:
        super().__init__(rcpt=rcpt)
        self.connections = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses


async def test_a_wave_of_codes_shares_a_few_connections():
    server = Counting()
    with smtp_server(server) as port:
        mailer = Mailer("127.0.0.1", port, sender=SENDER, timeout=5, pool_size=2)
        await asyncio.gather(
            *(
                mailer.send(f"user{i}@example.com", _code_message(), f"<m{i}@reclaim.test>")
                for i in range(20)
            )
        )
        await mailer.aclose()

    assert sorted(server.recipients) == sorted(f"user{i}@example.com" for i in range(20))
    assert len(server.accepted) == 20
    assert server.connections <= 2


async def test_a_connection_the_server_dropped_is_replaced_and_the_message_goes():
    first = Counting()
    port = _free_port()
    controller = Controller(first, hostname="127.0.0.1", port=port)
    controller.start()
    mailer = Mailer("127.0.0.1", port, sender=SENDER, timeout=5)
    await mailer.send(TO, _code_message(), MESSAGE_ID)
    controller.stop()  # the server goes away with our idle connection
    second = Counting()
    controller = Controller(second, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        await mailer.send(TO, _code_message(), "<again@reclaim.test>")
    finally:
        await mailer.aclose()
        controller.stop()

    assert len(first.accepted) == 1 and len(second.accepted) == 1
    assert second.connections == 1


async def test_a_refusal_does_not_spoil_the_next_message():
    server = Counting(rcpt="550 No such user")
    with smtp_server(server) as port:
        mailer = Mailer("127.0.0.1", port, sender=SENDER, timeout=5)
        with pytest.raises(Undeliverable):
            await mailer.send(TO, _code_message(), MESSAGE_ID)
        server.rcpt_reply = "250 OK"
        await mailer.send("other@example.com", _code_message(), "<next@reclaim.test>")
        await mailer.aclose()

    assert [m["To"] for m in server.accepted] == ["other@example.com"]
