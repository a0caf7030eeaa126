"""The local outbox of `reclaim dev`: an SMTP sink that files every message it receives in a
Maildir, and the reader behind `GET /dev/outbox` (mail from the Maildir, SMS from the console
provider's log)."""

from __future__ import annotations

import json
import mailbox
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any


class MaildirHandler:
    """aiosmtpd handler: accept everything, keep it in `<outbox>/mail` (a Maildir)."""

    def __init__(self, outbox: Path) -> None:
        outbox.mkdir(parents=True, exist_ok=True)
        self._maildir = mailbox.Maildir(outbox / "mail", create=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._maildir.add(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def parse_mail(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def read_outbox(outbox: Path, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first: every mail the sink received and every SMS the console provider wrote."""
    items: list[dict[str, Any]] = []
    maildir_path = outbox / "mail"
    if maildir_path.exists():
        for key in mailbox.Maildir(maildir_path, create=False).keys():
            path = next(maildir_path.glob(f"*/{key}*"), None)
            if path is None:
                continue
            message = parse_mail(path.read_bytes())
            received = (
                parsedate_to_datetime(message["Date"])
                if message["Date"]
                else datetime.fromtimestamp(path.stat().st_mtime, UTC)
            )
            items.append(
                {
                    "kind": "email",
                    "to": message["To"],
                    "subject": message["Subject"],
                    "text": text_of(message),
                    "at": received.astimezone(UTC).isoformat(),
                }
            )
    sms_log = outbox / "sms.jsonl"
    if sms_log.exists():
        for line in sms_log.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                items.append(
                    {"kind": "sms", "to": record["to"], "text": record["body"], "at": record["at"]}
                )
    items.sort(key=lambda item: item["at"], reverse=True)
    return items[:limit]
