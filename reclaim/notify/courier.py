from __future__ import annotations

from reclaim.contracts import Channel
from reclaim.notify.mail import Mailer
from reclaim.notify.messages import Message
from reclaim.notify.sms import SmsProvider


class Courier:
    """Sends a message by the channel asked for."""

    def __init__(self, mailer: Mailer, sms: SmsProvider) -> None:
        self.mailer = mailer
        self.sms = sms

    async def deliver(
        self, channel: Channel, recipient: str, message: Message, message_id: str
    ) -> str | None:
        if channel is Channel.SMS:
            return await self.sms.send(recipient, message.sms, message_id.strip("<>"))
        return await self.mailer.send(recipient, message, message_id)

    async def aclose(self) -> None:
        await self.mailer.aclose()
        await self.sms.aclose()
