"""Email over real SMTP (aiosmtplib), with a plain-text and an HTML part."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from reclaim.delivery.errors import Undeliverable
from reclaim.messages import Message
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
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self._username, self._password = username, password
        self._start_tls, self._use_tls, self._timeout = start_tls, use_tls, timeout

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
            await aiosmtplib.send(
                mail,
                hostname=self.host,
                port=self.port,
                username=self._username,
                password=self._password,
                start_tls=self._start_tls,
                use_tls=self._use_tls,
                timeout=self._timeout,
            )
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
