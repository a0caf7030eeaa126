"""Handing an account over to the address an approved support claim verified, as both places
that do it need it: at once when the claim is approved without a hold (`support/steps.py`),
or when the hold of the recovery case it opened ends unstopped (`recovery/steps.py`).

Each part is applied once per claim however often its activity runs: the directory replaces
the contacts once per claim, the notification ledger sends each message once.
"""

from __future__ import annotations

from datetime import datetime

from reclaim.contracts import Actor
from reclaim.directory import Directory
from reclaim.i18n import Text
from reclaim.lifecycle.service import LifecycleService
from reclaim.notify import messages
from reclaim.notify.notifier import Notifier
from reclaim.settings import Settings
from reclaim.store.models import NotificationKind


class Handover:
    def __init__(
        self,
        directory: Directory,
        notifier: Notifier,
        settings: Settings,
        lifecycle: LifecycleService,
    ) -> None:
        self._directory = directory
        self._notifier = notifier
        self._settings = settings
        self._lifecycle = lifecycle

    async def move_contacts(
        self, account_id: int, email: str, *, claim_id: str, at: datetime, actor: Actor, reason: str
    ) -> None:
        """The claim's address replaces the account's (the phone goes too, every session is
        signed out); a deactivated account it reactivates stops its deletion case. Raises
        `AccountExists` (another account uses the address) or `AccountGone`."""
        reactivated = await self._directory.replace_contacts(
            account_id, email=email, case_id=claim_id, at=at, actor=actor, reason=reason
        )
        if reactivated is not None:
            await self._lifecycle.signal_reactivated(reactivated)

    async def tell_replaced(
        self, claim_id: str, locale: str | None, username: str, new_contact: str
    ) -> None:
        """The addresses the claim replaced (queued under the claim at its approval, before
        they were replaced) hear where the account's mail goes now (`new_contact`, masked)."""
        await self._notifier.flush(
            claim_id,
            NotificationKind.CONTACT_REPLACED,
            messages.contact_replaced(
                Text(locale or self._settings.default_locale),
                product=self._settings.product_name,
                username=username,
                new_contact=new_contact,
                links=self._settings.links,
            ),
        )
