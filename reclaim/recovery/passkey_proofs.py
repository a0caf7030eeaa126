"""A passkey's answer at a recovery's second step, checked for the `verify_second_factor`
activity (`reclaim.recovery.steps`): signed over the challenge the case handed out last, by one
of the account's passkeys, with a counter that went up. A copy (a counter that went back) is
refused and every contact of the account is told."""

from __future__ import annotations

import json
from dataclasses import replace

import structlog

from reclaim import passkeys
from reclaim.contracts import AccountStatus
from reclaim.directory import AccountGone, Directory, FactorKind
from reclaim.directory.port import passkey_key
from reclaim.i18n import Text
from reclaim.notify import messages
from reclaim.notify.notifier import Contact, Notifier
from reclaim.passkeys import PasskeyRefused
from reclaim.recovery.contracts import VerifySecondFactor
from reclaim.recovery.factors import is_the_challenge
from reclaim.recovery.ledger import RecoveryLedger
from reclaim.security import Keys
from reclaim.settings import Settings
from reclaim.store.models import NotificationKind

log = structlog.get_logger(__name__)


class PasskeyProofs:
    def __init__(
        self,
        ledger: RecoveryLedger,
        directory: Directory,
        notifier: Notifier,
        keys: Keys,
        settings: Settings,
    ) -> None:
        self._ledger = ledger
        self._directory = directory
        self._notifier = notifier
        self._keys = keys
        self._settings = settings

    async def verify(self, proof: VerifySecondFactor, assertion: str) -> bool:
        """A passkey's answer: signed over the challenge the case handed out last (and only
        that once), by one of the account's passkeys. Its counter is the directory's to judge
        (a retry of this proof answers the same; a counter that went back is a copy, refused,
        and every contact is told)."""
        try:
            challenge = passkeys.challenge_of(assertion)
            raw_id = json.loads(assertion).get("rawId")
        except (PasskeyRefused, ValueError, AttributeError):
            return False
        if not is_the_challenge(self._keys, proof.case_id, challenge, proof.challenge_digest):
            return False
        try:
            held = await self._directory.passkeys(proof.account_id)
        except AccountGone:
            return False
        if not held:  # a directory whose host keeps the passkeys checks the answer itself
            return await self._by_the_host(proof, assertion, challenge)
        passkey = next((p for p in held if passkey_key(p.credential_id) == raw_id), None)
        if passkey is None:
            return False
        try:
            # The counter is compared by the directory, which knows a retry of this proof.
            counter = passkeys.verify_assertion(
                self._settings, assertion, challenge, replace(passkey, sign_count=0)
            )
        except PasskeyRefused:
            return False
        used = await self._directory.use_passkey(
            proof.account_id, passkey.credential_id, counter, case_id=proof.case_id, at=proof.at
        )
        if not used:
            log.warning("passkey_cloned", case_id=proof.case_id)
            await self._tell_cloned(proof, passkey.name)
        return used

    async def _by_the_host(
        self, proof: VerifySecondFactor, assertion: str, challenge: bytes
    ) -> bool:
        """The answer, the challenge it must sign and where it may come from, for the host's
        own check (`POST …/factors/verify`, kind `webauthn`)."""
        given = {
            "assertion": json.loads(assertion),
            "challenge": passkey_key(challenge),
            "rp_id": self._settings.resolved_webauthn_rp_id,
            "origins": self._settings.resolved_webauthn_origins,
        }
        check = await self._directory.verify_factor(
            proof.account_id,
            FactorKind.WEBAUTHN,
            json.dumps(given),
            case_id=proof.case_id,
            at=proof.at,
        )
        return check.accepted

    async def _tell_cloned(self, proof: VerifySecondFactor, name: str) -> None:
        account = await self._directory.get(proof.account_id)
        if account is None or account.status is AccountStatus.PURGED:
            return
        facts = await self._ledger.facts(proof.case_id)
        message = messages.passkey_cloned(
            Text(facts.locale or self._settings.default_locale),
            product=self._settings.product_name,
            username=account.username,
            name=name,
            links=self._settings.links,
        )
        contacts = [Contact(channel, address) for channel, address in account.contacts]
        await self._notifier.tell_every(
            proof.case_id, NotificationKind.PASSKEY_CLONED, contacts, message
        )
