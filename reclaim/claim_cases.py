"""Filing support claims: the evidence is checked, the claim's row written and its workflow
started, in that order (a claim Temporal refused leaves no row behind). Used by the API and
by tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client

from reclaim import claims, search_attributes
from reclaim.case_text import STATIC_DETAILS
from reclaim.claims import Assessment, ClaimLimited, ClaimRequest
from reclaim.contracts import ClaimCalls, ClaimInput, ClaimState
from reclaim.identifiers import IdentifierKind
from reclaim.models import SupportClaim, utcnow
from reclaim.security import CLAIM_CASE_PREFIX, Keys, Passwords, new_case_id, new_token
from reclaim.settings import Settings


@dataclass(frozen=True)
class FiledClaim:
    case_id: str
    claim_token: str  # shown once
    state: ClaimState


class SupportClaims:
    def __init__(
        self, client: Client, engine: Engine, keys: Keys, passwords: Passwords, settings: Settings
    ) -> None:
        self._client = client
        self._engine = engine
        self._keys = keys
        self._passwords = passwords
        self._settings = settings

    async def file(self, request: ClaimRequest) -> FiledClaim | ClaimLimited:
        opened_at = utcnow()
        assessment = await asyncio.to_thread(self._assess, request, opened_at)
        case_id = new_case_id(CLAIM_CASE_PREFIX)
        token = new_token()
        row = SupportClaim(
            case_id=case_id,
            account_id=assessment.account_id,
            reason=request.reason.value,
            contact_email=request.contact_email,
            contact_digest=claims.contact_digest(
                self._keys, IdentifierKind.EMAIL, request.contact_email
            ),
            description=request.description,
            claim_token_digest=self._keys.scoped_digest("claim", token),
            sealed_token=claims.seal_claim_token(self._keys, case_id, token),
            opened_at=opened_at,
        )
        limited = await asyncio.to_thread(self._open, row)
        if limited is not None:
            return limited
        rules = self._settings.claim_rules
        claim = ClaimInput(
            case_id=case_id,
            account_id=assessment.account_id,
            reason=request.reason,
            risk=assessment.risk,
            evidence=assessment.evidence,
            opened_at=opened_at,
            rules=rules,
        )
        try:
            await self._client.start_workflow(
                ClaimCalls.WORKFLOW,
                claim,
                id=case_id,
                task_queue=self._settings.task_queue,
                search_attributes=search_attributes.support_claim(
                    ClaimState.SUBMITTED.value,
                    request.reason.value,
                    assessment.risk.value,
                    opened_at + timedelta(seconds=rules.first_response_sla),
                ),
                static_summary=f"Support claim: {request.reason.value}, "
                f"{assessment.risk.value} risk",
                static_details=STATIC_DETAILS[search_attributes.SUPPORT_CLAIM],
                rpc_timeout=timedelta(seconds=self._settings.temporal_rpc_timeout),
            )
        except BaseException:
            await asyncio.to_thread(self._forget, case_id)
            raise
        return FiledClaim(case_id, token, ClaimState.SUBMITTED)

    def _assess(self, request: ClaimRequest, now: datetime) -> Assessment:
        with Session(self._engine) as session:
            return claims.assess(session, self._keys, self._passwords, request, now)

    def _open(self, row: SupportClaim) -> ClaimLimited | None:
        with Session(self._engine) as session:
            return claims.open_claim(session, row, per_hour=self._settings.claims_per_hour)

    def _forget(self, case_id: str) -> None:
        with Session(self._engine) as session:
            claims.forget_claim(session, case_id)
