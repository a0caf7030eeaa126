"""The claim's door: what the routes, pages, console, CLI and `Services` ask of a support
claim. The claimant files it, follows it and answers it; staff read it and act on it
(assign, release, ask, approve, confirm, reject), each action audited; an operator cancels it.

It is the only support module that starts, updates or queries a `SupportCaseWorkflow`, and the
one that puts the claim's row, the directory and the workflow together for a request.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle

from reclaim.contracts import Actor
from reclaim.directory import Directory, FactorSummary
from reclaim.errors import DomainError, NotFound, Refused, Unauthorized, Unavailable
from reclaim.i18n import supported
from reclaim.identifiers import (
    IdentifierKind,
    InvalidIdentifier,
    identifier_digest,
    normalize_email,
    normalize_phone,
    normalize_username,
)
from reclaim.recovery.cases import RecoveryCases
from reclaim.recovery.ledger import CaseRow
from reclaim.recovery.lost_factors import check_choice
from reclaim.security import CLAIM_CASE_PREFIX, Keys, new_case_id, new_token
from reclaim.settings import Settings
from reclaim.store.models import ClaimAnswer, SupportClaim, utcnow
from reclaim.support.audit import AuditLog, Origin
from reclaim.support.contracts import (
    Approve,
    AssignRequest,
    CancelClaim,
    ClaimantView,
    ClaimCalls,
    ClaimInput,
    ClaimReason,
    ClaimState,
    ClaimView,
    ConfirmApproval,
    ProvideInfo,
    Reject,
    ReleaseRequest,
    RequestInfo,
    Reviewer,
    StaffRole,
)
from reclaim.support.evidence import MAX_PREVIOUS_PASSWORDS, ClaimRequest, assess
from reclaim.support.ledger import ClaimLimited, SupportLedger
from reclaim.support.staff import StaffRoster
from reclaim.temporal import calls
from reclaim.temporal import search_attributes as sa
from reclaim.temporal.case_text import STATIC_DETAILS
from reclaim.temporal.proofs import ActorProofs

T = TypeVar("T")
CLAIM_ID = re.compile(rf"^{CLAIM_CASE_PREFIX}[A-Za-z0-9_-]{{22}}$")
NOT_FOUND = NotFound("support claim")
INVALID_CLAIM_TOKEN = Unauthorized("invalid_token", "This claim token is not valid for this claim.")


@dataclass(frozen=True)
class FiledClaim:
    case_id: str
    claim_token: str  # shown once
    state: ClaimState


@dataclass(frozen=True)
class AccountSummary:
    """The account a claim is about, as it is now."""

    id: int
    username: str
    status: str
    created_at: datetime | None
    factors: list[FactorSummary]  # its second factors (kinds, last used): never a secret


@dataclass(frozen=True)
class ClaimLine:
    case_id: str
    reason: str
    opened_at: datetime
    state: str | None  # None while open


@dataclass(frozen=True)
class CaseFile:
    """A claim in full, for staff: the workflow's view and what the database holds, and the
    account's other recent cases (never a password, never the claimant's evidence itself)."""

    view: ClaimView
    contact_email: str
    description: str | None
    answers: list[ClaimAnswer]
    account: AccountSummary | None = None
    recovery_cases: list[CaseRow] = dataclasses.field(default_factory=list)
    other_claims: list[ClaimLine] = dataclasses.field(default_factory=list)


async def _refuse_operator() -> Any:
    raise Refused(
        "reviewer_required",
        "Operators read claims; a reviewer or a supervisor acts on them.",
    )


class Claims:
    """The support claim's door: every start, update and query of its workflow."""

    def __init__(
        self,
        client: Client,
        ledger: SupportLedger,
        staff: StaffRoster,
        directory: Directory,
        keys: Keys,
        settings: Settings,
        recovery: RecoveryCases,
        audit: AuditLog,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._staff = staff
        self._directory = directory
        self._keys = keys
        self._proofs = ActorProofs(keys.actor_proof_key)
        self._settings = settings
        self._recovery = recovery
        self._audit = audit
        self._timeout = timedelta(seconds=settings.temporal_rpc_timeout)

    async def file(
        self,
        *,
        username: str,
        contact_email: str,
        reason: ClaimReason,
        registered_email: str | None = None,
        registered_phone: str | None = None,
        previous_passwords: list[str] | tuple[str, ...] = (),
        description: str | None = None,
        locale: str | None = None,
    ) -> FiledClaim:
        """The evidence is checked now; only its results reach the case. An unknown username
        gets the same answer (a reviewer will reject the claim)."""
        request = self._request(
            username,
            contact_email,
            reason,
            registered_email,
            registered_phone,
            tuple(previous_passwords),
            description,
        )
        opened_at = utcnow()
        assessment = await assess(self._directory, request, opened_at)
        case_id = new_case_id(CLAIM_CASE_PREFIX)
        token = new_token()
        limited = await self._ledger.open(
            SupportClaim(
                case_id=case_id,
                account_id=assessment.account_id,
                reason=request.reason.value,
                contact_email=request.contact_email,
                contact_digest=identifier_digest(
                    self._keys, IdentifierKind.EMAIL, request.contact_email
                ),
                description=request.description,
                claim_token_digest=self._ledger.token_digest(token),
                sealed_token=self._ledger.seal_token(case_id, token),
                opened_at=opened_at,
                locale=supported(locale),
            ),
            per_hour=self._settings.claims_per_hour,
        )
        if isinstance(limited, ClaimLimited):
            raise Refused(
                "rate_limited",
                "Too many claims for this contact address: try again later.",
                retry_after_seconds=limited.retry_after,
            )
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
            await calls.call(
                lambda: self._client.start_workflow(
                    ClaimCalls.WORKFLOW,
                    claim,
                    id=case_id,
                    task_queue=self._settings.task_queue,
                    search_attributes=sa.support_claim(
                        ClaimState.SUBMITTED.value,
                        request.reason.value,
                        assessment.risk.value,
                        opened_at + timedelta(seconds=rules.first_response_sla),
                    ),
                    static_summary=f"Support claim: {request.reason.value}, "
                    f"{assessment.risk.value} risk",
                    static_details=STATIC_DETAILS[sa.SUPPORT_CLAIM],
                    rpc_timeout=self._timeout,
                ),
                NOT_FOUND,
            )
        except BaseException:
            await self._ledger.forget(case_id)
            raise
        return FiledClaim(case_id, token, ClaimState.SUBMITTED)

    async def claimant_view(self, case_id: str, token: str) -> ClaimantView:
        await self._claim_for(case_id, token)
        return await self._query(case_id, ClaimCalls.CLAIMANT_VIEW, ClaimantView)

    async def answer(self, case_id: str, token: str, text: str) -> ClaimantView:
        """The answer is kept in the database, the case learns when it came."""
        await self._claim_for(case_id, token)
        at = utcnow()
        round_ = await self._ledger.add_answer(case_id, text, at)
        try:
            return await self._update(
                case_id, ClaimCalls.PROVIDE_INFO, ProvideInfo(at), ClaimantView
            )
        except Refused:  # the case refused it (after no answer at all it may have taken it)
            await self._ledger.withdraw_answer(case_id, round_)
            raise

    async def staff_view(self, case_id: str) -> ClaimView:
        return await self._query(case_id, ClaimCalls.STAFF_VIEW, ClaimView)

    async def case_file(self, case_id: str) -> CaseFile:
        view = await self.staff_view(case_id)
        row = await self._ledger.get(case_id)
        given = await self._ledger.answers(case_id)
        account: AccountSummary | None = None
        recovery_cases: list[CaseRow] = []
        other_claims: list[ClaimLine] = []
        account_id = row.account_id if row is not None else None
        if account_id is not None:
            record = await self._directory.get(account_id)
            if record is not None:
                account = AccountSummary(
                    record.id,
                    record.username,
                    record.status.value,
                    record.created_at,
                    await self._directory.factors(record.id),
                )
            recovery_cases = await self._recovery.cases_of(account_id, limit=10)
            other_claims = [
                ClaimLine(c.case_id, c.reason, c.opened_at, c.state)
                for c in await self._ledger.claims_of(account_id, limit=11)
                if c.case_id != case_id
            ][:10]
        return CaseFile(
            view,
            row.contact_email if row is not None else "",
            row.description if row is not None else None,
            given,
            account,
            recovery_cases,
            other_claims,
        )

    async def assign(
        self, case_id: str, by: Reviewer, to: str | None = None, origin: Origin | None = None
    ) -> ClaimView:
        """Take a claim (or, as a supervisor, give it to someone)."""

        async def act() -> ClaimView:
            if to is not None and to != by.name and not await self._staff.exists(to):
                raise Refused("unknown_assignee", f"No member of staff is named {to}.")
            request = AssignRequest(by, to)
            return await self._update(case_id, ClaimCalls.ASSIGN, request, ClaimView)

        return await self._audited(by, origin, case_id, "assign", to or by.name, act)

    async def release(self, case_id: str, by: Reviewer, origin: Origin | None = None) -> ClaimView:
        """Give a claim back to the queue: its assignee, or a supervisor. A claim assigned to
        someone else is moved only by a supervisor, so a reviewer who cannot take it asks its
        assignee to release it."""

        async def act() -> ClaimView:
            request = ReleaseRequest(by)
            return await self._update(case_id, ClaimCalls.RELEASE, request, ClaimView)

        return await self._audited(by, origin, case_id, "release", None, act)

    async def request_info(
        self, case_id: str, by: Reviewer, questions: list[str], origin: Origin | None = None
    ) -> ClaimView:
        """Ask the claimant questions (they are mailed; the answer window starts)."""
        request = RequestInfo(by, list(questions))

        async def act() -> ClaimView:
            return await self._update(case_id, ClaimCalls.REQUEST_INFO, request, ClaimView)

        return await self._audited(by, origin, case_id, "ask", "\n".join(questions), act)

    async def approve(
        self,
        case_id: str,
        by: Reviewer,
        note: str | None = None,
        origin: Origin | None = None,
        remove_factors: list[str] | None = None,
    ) -> ClaimView:
        """The resolution is applied before this answers; a reviewer's approval of a
        high-risk claim waits for a supervisor's confirmation instead. A lost-authenticator
        claim's `remove_factors`: see `reclaim.recovery.lost_factors` (None: all)."""
        check_choice(remove_factors)
        request = Approve(by, note, remove_factors=remove_factors)

        async def act() -> ClaimView:
            return await self._update(case_id, ClaimCalls.APPROVE, request, ClaimView)

        chose = "" if remove_factors is None else f"\nremove: {' '.join(remove_factors) or 'none'}"
        detail = f"{note or ''}{chose}" or None
        return await self._audited(by, origin, case_id, "approve", detail, act)

    async def confirm(
        self, case_id: str, by: Reviewer, note: str | None = None, origin: Origin | None = None
    ) -> ClaimView:
        """A supervisor confirms a reviewer's approval of a high-risk claim (never their own);
        the resolution is applied before this answers."""
        request = ConfirmApproval(by, note)

        async def act() -> ClaimView:
            return await self._update(case_id, ClaimCalls.CONFIRM_APPROVAL, request, ClaimView)

        return await self._audited(by, origin, case_id, "confirm approval", note, act)

    async def reject(
        self, case_id: str, by: Reviewer, reason: str, origin: Origin | None = None
    ) -> ClaimView:
        async def act() -> ClaimView:
            return await self._update(case_id, ClaimCalls.REJECT, Reject(by, reason), ClaimView)

        return await self._audited(by, origin, case_id, "reject", reason, act)

    async def cancel(self, case_id: str, actor: Actor, reason: str) -> ClaimView:
        """An operator closes the claim (`reclaim cases cancel`); the claimant is told."""
        request = CancelClaim(f"{actor.kind.value}:{actor.name}", reason)
        return await self._update(case_id, ClaimCalls.CANCEL, request, ClaimView)

    async def _audited(
        self,
        by: Reviewer,
        origin: Origin | None,
        case_id: str,
        action: str,
        detail: str | None,
        act: Callable[[], Awaitable[T]],
    ) -> T:
        """Run a member of staff's action on a claim and record it with how it ended."""
        if by.role is StaffRole.OPERATOR:  # runs the service, decides no claim
            act = _refuse_operator
        if origin is None:
            return await act()
        try:
            result = await act()
        except DomainError as err:
            code = err.code if isinstance(err, Refused | Unauthorized) else type(err).__name__
            kind = "failed" if isinstance(err, Unavailable) else "refused"
            outcome = f"{kind}: {code}"
            await self._audit.record(
                who=by.name,
                role=by.role.value,
                origin=origin,
                action=action,
                outcome=outcome,
                case_id=case_id,
                detail=detail,
            )
            raise
        await self._audit.record(
            who=by.name,
            role=by.role.value,
            origin=origin,
            action=action,
            outcome="done",
            case_id=case_id,
            detail=detail,
        )
        return result

    def _handle(self, case_id: str) -> WorkflowHandle[Any, Any]:
        if not CLAIM_ID.match(case_id):
            raise NOT_FOUND
        return self._client.get_workflow_handle(case_id)

    async def _claim_for(self, case_id: str, token: str) -> SupportClaim:
        """The claim a claim token opens: `NotFound` for an unknown claim, `Unauthorized`
        for a wrong token."""
        if not CLAIM_ID.match(case_id):
            raise NOT_FOUND
        claim = await self._ledger.get(case_id)
        if claim is None:
            raise NOT_FOUND
        if not self._ledger.token_matches(claim, token):
            raise INVALID_CLAIM_TOKEN
        return claim

    async def _query(self, case_id: str, name: str, result_type: type[T]) -> T:
        handle = self._handle(case_id)
        return await calls.call(
            lambda: handle.query(name, result_type=result_type, rpc_timeout=self._timeout),
            NOT_FOUND,
        )

    async def _update(self, case_id: str, name: str, arg: object, result_type: type[T]) -> T:
        """A claim's update; an update to a claim that has closed is refused with the state
        it closed in."""
        handle = self._handle(case_id)

        async def closed() -> Exception:
            final = await self.staff_view(case_id)
            return Refused(
                "invalid_state",
                f"This claim is {final.state.value}: that cannot be done now.",
                state=final.state.value,
            )

        return await calls.update(
            lambda: handle.execute_update(
                name,
                self._proofs.sign(case_id, name, arg),
                result_type=result_type,
                rpc_timeout=self._timeout,
            ),
            NOT_FOUND,
            closed,
        )

    def _request(
        self,
        username: str,
        contact_email: str,
        reason: ClaimReason,
        registered_email: str | None,
        registered_phone: str | None,
        previous_passwords: tuple[str, ...],
        description: str | None,
    ) -> ClaimRequest:
        def invalid(field: str, err: InvalidIdentifier) -> Refused:
            return Refused(
                "invalid_request",
                f"The request is not valid ({field}: {err}).",
                fields=[{"field": field, "problem": str(err)}],
            )

        try:
            name = normalize_username(username)
        except InvalidIdentifier as err:
            raise invalid("username", err) from err
        emails: dict[str, str | None] = {}
        for field, raw in (
            ("contact_email", contact_email),
            ("registered_email", registered_email),
        ):
            try:
                emails[field] = normalize_email(raw) if raw else None
            except InvalidIdentifier as err:
                raise invalid(field, err) from err
        try:
            phone = (
                normalize_phone(registered_phone, self._settings.default_region)
                if registered_phone
                else None
            )
        except InvalidIdentifier as err:
            raise invalid("registered_phone", err) from err
        return ClaimRequest(
            username=name,
            contact_email=str(emails["contact_email"]),
            reason=reason,
            registered_email=emails["registered_email"],
            registered_phone=phone,
            previous_passwords=previous_passwords[:MAX_PREVIOUS_PASSWORDS],
            description=description,
        )
