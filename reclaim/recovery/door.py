"""What every door of a recovery case shares: the parts it is built from, its workflow's
handle, its status, and the refusals a case that already ended answers with.

The doors (`reclaim.recovery.cases` for the person, `reclaim.recovery.oversight` for everyone
else) are the only code that starts, updates, signals or queries a `RecoveryWorkflow`; what
its activities do lives in `reclaim.recovery.steps`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import structlog
from temporalio.client import Client, WorkflowHandle

from reclaim.contracts import CaseError
from reclaim.directory import Directory
from reclaim.errors import NotFound, Refused
from reclaim.notify.notifier import Notifier
from reclaim.recovery.challenge import Challenges
from reclaim.recovery.contracts import (
    CaseState,
    RecoveryCalls,
    RecoveryStatus,
)
from reclaim.recovery.ledger import RecoveryLedger
from reclaim.security import CASE_ID_PREFIX, Keys
from reclaim.settings import Settings
from reclaim.temporal import calls
from reclaim.temporal.proofs import ActorProofs

log = structlog.get_logger(__name__)

CASE_ID = re.compile(rf"^{CASE_ID_PREFIX}[A-Za-z0-9_-]{{22}}$")
# A proof (a message link's twin of the code) and a stop link's signature: 256 bits, URL-safe.
LINK_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
NOT_FOUND = NotFound("recovery case")

# What a request for a case that has already ended gets, by the error it ended with.
_ENDED_MESSAGE = {
    CaseError.CASE_LOCKED: "Too many wrong codes: this case is locked. Start a new recovery.",
    CaseError.CODE_EXPIRED: "This case has expired. Start a new recovery.",
    CaseError.RESET_EXPIRED: "The time to choose a new password ran out. Start again.",
    CaseError.INVALID_TOKEN: "This reset token is not valid.",
}


def ended_refusal(error: CaseError, state: str | None = None) -> Refused:
    """The refusal a workflow would have given, for a case that has already ended."""
    details: dict[str, Any] = {}
    if error is CaseError.CASE_LOCKED:
        details["attempts_left"] = 0
    if error is CaseError.INVALID_STATE and state:
        details["state"] = state
    return Refused(
        error.value, _ENDED_MESSAGE.get(error, f"This case is {state or 'closed'}."), **details
    )


class CaseDoor:
    """A recovery case's workflow, reached through its id."""

    def __init__(
        self,
        client: Client,
        ledger: RecoveryLedger,
        directory: Directory,
        notifier: Notifier,
        keys: Keys,
        settings: Settings,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._directory = directory
        self._notifier = notifier
        self._keys = keys
        self._proofs = ActorProofs(keys.actor_proof_key)
        self._settings = settings
        self._timeout = timedelta(seconds=settings.temporal_rpc_timeout)
        self._challenges = Challenges(keys, settings)

    async def status(self, case_id: str) -> RecoveryStatus:
        handle = self._handle(case_id)
        return await calls.call(
            lambda: handle.query(
                RecoveryCalls.STATUS, result_type=RecoveryStatus, rpc_timeout=self._timeout
            ),
            NOT_FOUND,
        )

    def _handle(self, case_id: str) -> WorkflowHandle[Any, Any]:
        if not CASE_ID.match(case_id):
            raise NOT_FOUND
        return self._client.get_workflow_handle(case_id)

    def _no_hold(self, case_id: str) -> Any:
        async def refusal() -> Exception:
            final = await self.status(case_id)
            return Refused(
                CaseError.INVALID_STATE.value,
                f"This case is {final.state.value}: there is no hold to act on.",
                state=final.state.value,
            )

        return refusal

    def _by_final_state(self, case_id: str, refusals: dict[CaseState, CaseError]) -> Any:
        async def refusal() -> Exception:
            final = await self.status(case_id)
            error = refusals.get(final.state, CaseError.INVALID_STATE)
            return ended_refusal(error, final.state.value)

        return refusal
