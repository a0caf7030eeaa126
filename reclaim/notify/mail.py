"""Email over real SMTP (aiosmtplib), with a plain-text and an HTML part.

Connections are kept and reused: in a wave of recovery requests, a new connection per code
(TCP, EHLO, STARTTLS or TLS, AUTH) would cost more than the message itself. At most
`pool_size` are open at once; one idle longer than `IDLE_SECONDS` or used for
`MESSAGES_PER_CONNECTION` messages is closed, and one the server dropped meanwhile is replaced
once. A connection that saw any error is closed, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from reclaim.notify.errors import Undeliverable
from reclaim.notify.messages import Message
from reclaim.settings import Settings


class Mailer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        start_tls: bool = False,
        use_tls: bool = False,
        timeout: float = 10.0,
        pool_size: int = 4,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self._username, self._password = username, password
        self._start_tls, self._use_tls, self._timeout = start_tls, use_tls, timeout
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[_Connection] = []
        self._closing: set[asyncio.Task[None]] = set()  # held until done (never collected early)

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer:
        return cls(
            settings.smtp_host or "127.0.0.1",
            settings.smtp_port if settings.smtp_host else settings.dev_smtp_port,
            sender=settings.mail_from,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            start_tls=settings.smtp_starttls,
            use_tls=settings.smtp_tls,
            timeout=settings.smtp_timeout,
        )

    def compose(self, to: str, message: Message, message_id: str) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = to
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        # Stable per case, kind and attempt: a message re-sent by a retried activity carries
        # the same id, so mail clients show it once.
        mail["Message-ID"] = message_id
        mail.set_content(message.text)
        mail.add_alternative(message.html, subtype="html")
        return mail

    async def send(self, to: str, message: Message, message_id: str) -> str:
        mail = self.compose(to, message, message_id)
        try:
            async with self._slots:
                await self._send_pooled(mail)
        except aiosmtplib.SMTPRecipientsRefused as err:
            # A 4xx refusal (greylisting, mailbox busy) is temporary: the retry gets through.
            if all(500 <= refusal.code < 600 for refusal in err.recipients):
                raise Undeliverable("the mail server refused the recipient") from err
            raise
        except aiosmtplib.SMTPResponseException as err:
            if 500 <= err.code < 600 and err.code != 530:
                raise Undeliverable(f"the mail server refused the message ({err.code})") from err
            raise
        return message_id

    async def _send_pooled(self, mail: EmailMessage) -> None:
        connection = self._take_idle()
        if connection is not None:
            try:
                await connection.smtp.send_message(mail)
            except aiosmtplib.SMTPServerDisconnected:
                await connection.close()  # dropped while idle: a fresh one below
            except BaseException:
                await connection.close()
                raise
            else:
                self._keep(connection)
                return
        connection = await self._connect()
        try:
            await connection.smtp.send_message(mail)
        except BaseException:
            await connection.close()
            raise
        self._keep(connection)

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable():
                return connection
            self._idle_close(connection)
        return None

    def _keep(self, connection: _Connection) -> None:
        connection.sent += 1
        connection.last_used = time.monotonic()
        if connection.usable():
            self._idle.append(connection)
        else:
            self._idle_close(connection)

    def _idle_close(self, connection: _Connection) -> None:
        task = asyncio.get_running_loop().create_task(connection.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _connect(self) -> _Connection:
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self._username,
            password=self._password,
            start_tls=self._start_tls,
            use_tls=self._use_tls,
            timeout=self._timeout,
        )
        await smtp.connect()
        return _Connection(smtp)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


IDLE_SECONDS = 30.0
MESSAGES_PER_CONNECTION = 100


class _Connection:
    def __init__(self, smtp: aiosmtplib.SMTP) -> None:
        self.smtp = smtp
        self.sent = 0
        self.last_used = time.monotonic()

    def usable(self) -> bool:
        return (
            self.smtp.is_connected
            and self.sent < MESSAGES_PER_CONNECTION
            and time.monotonic() - self.last_used < IDLE_SECONDS
        )

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.smtp.is_connected:
                await asyncio.wait_for(self.smtp.quit(), timeout=2)
        self.smtp.close()
