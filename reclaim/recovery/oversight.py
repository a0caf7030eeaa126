"""The door of a recovery case for everyone but the person recovering: the account's other
contacts (stop a held recovery, from the "Wasn't you?" link), the operator (change a hold,
cancel a case, the account's cases), and the support feature (open the case an approved
claim hands the account over with, supersede the account's older cases).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

import structlog
from temporalio.service import RPCError, RPCStatusCode

from reclaim.contracts import Channel
from reclaim.directory import (
    AccountRecord,
)
from reclaim.errors import Refused
from reclaim.identifiers import (
    IdentifierKind,
    identifier_digest,
)
from reclaim.notify.notifier import Contact
from reclaim.recovery.contracts import (
    CaseState,
    HoldChange,
    RecoveryCalls,
    RecoveryStatus,
    StopHold,
)
from reclaim.recovery.door import LINK_TOKEN, NOT_FOUND, CaseDoor
from reclaim.recovery.ledger import CaseRow, RateLimited
from reclaim.store.models import NotificationKind, RecoveryCase
from reclaim.temporal import calls

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class StoppedBy:
    """Who stopped a held recovery: the contact the stop link was sent to, and the account."""

    contact: Contact
    username: str
    status: RecoveryStatus


class CaseOversight(CaseDoor):
    """What others than the person do to a recovery case."""

    async def cancel(self, case_id: str, reason: str) -> RecoveryStatus:
        """Stop an open case (its code stops working at once); the reason stays in history."""
        handle = self._handle(case_id)
        status = await self.status(case_id)
        if not status.state.is_open:
            raise Refused(
                "invalid_state",
                f"This case is {status.state.value}: there is nothing to stop.",
                state=status.state.value,
            )
        await calls.call(
            lambda: handle.signal(RecoveryCalls.CANCEL, reason, rpc_timeout=self._timeout),
            NOT_FOUND,
        )
        return await calls.settled(
            lambda: self.status(case_id),
            lambda status: not status.state.is_open,
            self._timeout.total_seconds(),
        )

    async def change_hold(
        self,
        case_id: str,
        *,
        end_now: bool = False,
        extend_seconds: int = 0,
        by: str = "operator",
    ) -> RecoveryStatus:
        """`reclaim cases hold`: the held new password takes effect now (answered once it
        has, or after the RPC timeout), or later."""
        handle = self._handle(case_id)
        status = await calls.update(
            lambda: handle.execute_update(
                RecoveryCalls.CHANGE_HOLD,
                self._proofs.sign(
                    case_id, RecoveryCalls.CHANGE_HOLD, HoldChange(end_now, extend_seconds, by)
                ),
                result_type=RecoveryStatus,
                rpc_timeout=self._timeout,
            ),
            NOT_FOUND,
            self._no_hold(case_id),
        )
        if not end_now:
            return status
        return await calls.settled(
            lambda: self.status(case_id),
            lambda status: status.state is not CaseState.HELD,
            self._timeout.total_seconds(),
        )

    async def stop(self, case_id: str, token: str) -> StoppedBy:
        """ "Wasn't you? Stop it": the link's signature names the contact it was sent to. The
        held password never takes effect; the case signs the account out everywhere."""
        handle = self._handle(case_id)
        contact = await self._stopper(case_id, token)
        status = await calls.update(
            lambda: handle.execute_update(
                RecoveryCalls.STOP,
                self._proofs.sign(
                    case_id,
                    RecoveryCalls.STOP,
                    StopHold(self._keys.identifier_digest(contact.address)),
                ),
                result_type=RecoveryStatus,
                rpc_timeout=self._timeout,
            ),
            NOT_FOUND,
            self._no_hold(case_id),
        )
        account = await self._held_account(case_id)
        return StoppedBy(contact, account.username if account else "", status)

    async def hold_stop_preview(self, case_id: str, token: str) -> RecoveryStatus:
        """What the stop page shows before the person confirms: the case, if the link is
        one of its own."""
        self._handle(case_id)
        await self._stopper(case_id, token)
        return await self.status(case_id)

    async def cases_of(self, account_id: int, limit: int = 10) -> list[CaseRow]:
        return await self._ledger.cases_of(account_id, limit)

    async def account_factors(self, case_id: str) -> list[str]:
        """For operators (`reclaim cases show`): the second factors the case's account has
        (none for a case whose identifier named no account). Never a secret."""
        account_id = await self._ledger.account_of(case_id)
        record = await self._directory.get(account_id) if account_id is not None else None
        return [kind.value for kind in record.factors] if record is not None else []

    async def supersede(self, case_ids: list[str]) -> None:
        """Stop older open cases of the account. Best effort: should this fail, the reset of
        an older case is refused anyway (the ledger knows a newer case exists)."""
        for case_id in case_ids:
            try:
                await self._client.get_workflow_handle(case_id).signal(
                    RecoveryCalls.SUPERSEDE, rpc_timeout=self._timeout
                )
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    log.warning("supersede_failed", case_id=case_id, error=err.status.name)
            except Exception as err:
                log.warning("supersede_failed", case_id=case_id, error=type(err).__name__)

    async def open_for_claim(
        self,
        case_id: str,
        account_id: int,
        email: str,
        at: datetime,
        *,
        handover_claim: str | None = None,
        remove_factors: list[str] | None = None,
    ) -> None:
        """Record the case an approved claim opens to its verified address (the claim's
        workflow starts it as a child), outside the rate limit, and stop the account's older
        cases. With `handover_claim` the account does not hold the address yet: the code goes
        to it all the same, and it replaces the account's contacts when the case's new
        password takes effect, after the hold. With `remove_factors` (a lost-authenticator
        claim's) those second factors are removed then. Applying it again changes nothing."""
        if await self._ledger.exists(case_id):
            return
        opened = await self._ledger.open(
            RecoveryCase(
                case_id=case_id,
                account_id=account_id,
                identifier_digest=identifier_digest(self._keys, IdentifierKind.EMAIL, email),
                channel=Channel.EMAIL.value,
                opened_at=at,
                handover_email=email if handover_claim else None,
                handover_claim=handover_claim,
                remove_factors=" ".join(remove_factors) if remove_factors is not None else None,
            ),
            per_hour=None,
        )
        assert not isinstance(opened, RateLimited)
        await self.supersede(opened.superseded)

    async def case_recorded(self, case_id: str) -> bool:
        return await self._ledger.exists(case_id)

    async def _stopper(self, case_id: str, token: str) -> Contact:
        """The contact a stop link was signed for."""
        if LINK_TOKEN.match(token):
            for _, contact in await self._notifier.recipients(case_id, NotificationKind.HOLD):
                if hmac.compare_digest(token, self._keys.stop_token(case_id, contact.address)):
                    return contact
        raise Refused(
            "invalid_link", "This link is not valid: open the whole link from the message."
        )

    async def _held_account(self, case_id: str) -> AccountRecord | None:
        row = await self._ledger.account_of(case_id)
        return await self._directory.get(row) if row is not None else None
