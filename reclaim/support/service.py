"""The support service: claims (filed, followed and answered by the claimant; queued, read and
decided by staff) and the staff themselves; and what the claim activities do (apply an
approval, mail the claimant and the leads, record the end).

It is the only code that starts, updates or queries a `SupportCaseWorkflow`, and the only
place that puts the claim's row, the directory and the workflow together. An approval that
hands the account over or restores it calls the recovery and lifecycle services for their
parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from temporalio.client import Client, WorkflowHandle

from reclaim.contracts import AccountStatus, Actor, ActorKind, Channel
from reclaim.directory import AccountExists, AccountGone, CapabilityMissing, Directory
from reclaim.errors import NotFound, Refused, Unauthorized
from reclaim.i18n import Text, supported
from reclaim.identifiers import (
    Identifier,
    IdentifierKind,
    InvalidIdentifier,
    identifier_digest,
    mask_email,
    normalize_email,
    normalize_phone,
    normalize_username,
)
from reclaim.lifecycle.service import LifecycleService, NotBanned
from reclaim.notify import messages
from reclaim.notify.errors import Undeliverable
from reclaim.notify.messages import Message
from reclaim.notify.notifier import Contact, Notifier
from reclaim.recovery.service import RecoveryService
from reclaim.security import CLAIM_CASE_PREFIX, Keys, new_case_id, new_token
from reclaim.settings import Settings
from reclaim.store.models import (
    FORGOTTEN,
    ClaimAnswer,
    NotificationKind,
    Staff,
    SupportClaim,
    utcnow,
)
from reclaim.support.contracts import (
    Approve,
    AssignRequest,
    CancelClaim,
    ClaimantView,
    ClaimCalls,
    ClaimClosing,
    ClaimInput,
    ClaimNotice,
    ClaimNoticeKind,
    ClaimReason,
    ClaimState,
    ClaimView,
    ConfirmApproval,
    Escalation,
    ProvideInfo,
    Reject,
    RequestInfo,
    Resolution,
    ResolveClaim,
    Reviewer,
    StaffRole,
)
from reclaim.support.evidence import MAX_PREVIOUS_PASSWORDS, ClaimRequest, assess
from reclaim.support.ledger import ClaimLimited, SupportLedger
from reclaim.support.staff import StaffExists, StaffRoster
from reclaim.temporal import calls
from reclaim.temporal import search_attributes as sa
from reclaim.temporal.case_text import STATIC_DETAILS

log = structlog.get_logger(__name__)
T = TypeVar("T")

CLAIM_ID = re.compile(rf"^{CLAIM_CASE_PREFIX}[A-Za-z0-9_-]{{22}}$")
STAFF_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
NOT_FOUND = NotFound("support claim")
ESCALATION_ATTEMPT = {"first_response": 0, "decision": 1}

INVALID_CLAIM_TOKEN = Unauthorized("invalid_token", "This claim token is not valid for this claim.")
INVALID_STAFF_KEY = Unauthorized(
    "invalid_key",
    "Send a staff API key as `Authorization: Bearer rk_…` (from `reclaim staff add`).",
)


@dataclass(frozen=True)
class FiledClaim:
    case_id: str
    claim_token: str  # shown once
    state: ClaimState


@dataclass(frozen=True)
class QueuedClaim:
    case_id: str
    state: str
    reason: str | None
    risk: str | None
    assignee: str | None
    escalated: bool
    opened_at: datetime
    next_deadline: datetime | None


@dataclass(frozen=True)
class CaseFile:
    """A claim in full, for staff: the workflow's view and what the database holds."""

    view: ClaimView
    contact_email: str
    description: str | None
    answers: list[ClaimAnswer]


class Unresolvable(Exception):
    """The approval cannot be applied; the message says why, for the reviewer."""


class SupportService:
    def __init__(
        self,
        client: Client,
        ledger: SupportLedger,
        staff: StaffRoster,
        directory: Directory,
        notifier: Notifier,
        keys: Keys,
        settings: Settings,
        recovery: RecoveryService,
        lifecycle: LifecycleService,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._staff = staff
        self._directory = directory
        self._notifier = notifier
        self._keys = keys
        self._settings = settings
        self._recovery = recovery
        self._lifecycle = lifecycle
        self._timeout = timedelta(seconds=settings.temporal_rpc_timeout)

    # -- the claimant ------------------------------------------------------------------------

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

    # -- staff -------------------------------------------------------------------------------

    async def staff_member(self, key: str) -> Reviewer:
        member = await self._staff.authenticate(key)
        if member is None:
            raise INVALID_STAFF_KEY
        return member

    async def add_staff(self, name: str, role: str) -> tuple[Staff, str]:
        """A new member of staff and their API key (shown once, only a digest is kept)."""
        if not STAFF_NAME.fullmatch(name):
            raise Refused("invalid_request", "a name is 1 to 64 letters, digits, '.', '_' or '-'")
        try:
            staff_role = StaffRole(role)
        except ValueError as err:
            raise Refused("invalid_request", "the role is reviewer or supervisor") from err
        try:
            return await self._staff.add(name, staff_role)
        except StaffExists as err:
            raise Refused("staff_exists", str(err)) from err

    async def staff(self) -> list[Staff]:
        return await self._staff.members()

    async def queue(self, filters: dict[str, str | bool], limit: int) -> list[QueuedClaim]:
        """This deployment's claims (its task queue) from Temporal visibility, oldest first.
        `filters` hold values already checked against their enums or patterns: nothing typed
        reaches the query raw."""
        clauses = [f'{sa.CASE_KIND.name} = "{sa.SUPPORT_CLAIM}"', f'TaskQueue = "{self._queue}"']
        keys = {"state": sa.CASE_STATE, "reason": sa.REASON, "risk": sa.RISK}
        keys["assignee"] = sa.ASSIGNEE
        for name, value in filters.items():
            if name == "escalated":
                clauses.append(f"{sa.ESCALATED.name} = {'true' if value else 'false'}")
            else:
                clauses.append(f'{keys[name].name} = "{value}"')
        if "state" not in filters:
            clauses.append('ExecutionStatus = "Running"')
        query = " AND ".join(clauses)

        async def fetch() -> list[QueuedClaim]:
            found: list[QueuedClaim] = []
            async for execution in self._client.list_workflows(
                query, limit=limit, rpc_timeout=self._timeout
            ):
                attrs = execution.typed_search_attributes
                found.append(
                    QueuedClaim(
                        case_id=execution.id,
                        state=attrs.get(sa.CASE_STATE) or ClaimState.SUBMITTED.value,
                        reason=attrs.get(sa.REASON),
                        risk=attrs.get(sa.RISK),
                        assignee=attrs.get(sa.ASSIGNEE),
                        escalated=bool(attrs.get(sa.ESCALATED)),
                        opened_at=execution.start_time,
                        next_deadline=attrs.get(sa.NEXT_DEADLINE),
                    )
                )
            return sorted(found, key=lambda c: c.opened_at)

        return await calls.call(fetch, NOT_FOUND)

    async def staff_view(self, case_id: str) -> ClaimView:
        return await self._query(case_id, ClaimCalls.STAFF_VIEW, ClaimView)

    async def case_file(self, case_id: str) -> CaseFile:
        view = await self.staff_view(case_id)
        row = await self._ledger.get(case_id)
        given = await self._ledger.answers(case_id)
        return CaseFile(
            view,
            row.contact_email if row is not None else "",
            row.description if row is not None else None,
            given,
        )

    async def assign(self, case_id: str, by: Reviewer, to: str | None = None) -> ClaimView:
        """Take a claim (or, as a supervisor, give it to someone)."""
        if to is not None and to != by.name and not await self._staff.exists(to):
            raise Refused("unknown_assignee", f"No member of staff is named {to}.")
        return await self._update(case_id, ClaimCalls.ASSIGN, AssignRequest(by, to), ClaimView)

    async def request_info(self, case_id: str, by: Reviewer, questions: list[str]) -> ClaimView:
        """Ask the claimant questions (they are mailed; the answer window starts)."""
        request = RequestInfo(by, list(questions))
        return await self._update(case_id, ClaimCalls.REQUEST_INFO, request, ClaimView)

    async def approve(self, case_id: str, by: Reviewer, note: str | None = None) -> ClaimView:
        """The resolution is applied before this answers."""
        return await self._update(case_id, ClaimCalls.APPROVE, Approve(by, note), ClaimView)

    async def confirm(self, case_id: str, by: Reviewer, note: str | None = None) -> ClaimView:
        """A supervisor confirms a reviewer's approval of a high-risk claim (never their own);
        the resolution is applied before this answers."""
        request = ConfirmApproval(by, note)
        return await self._update(case_id, ClaimCalls.CONFIRM_APPROVAL, request, ClaimView)

    async def reject(self, case_id: str, by: Reviewer, reason: str) -> ClaimView:
        return await self._update(case_id, ClaimCalls.REJECT, Reject(by, reason), ClaimView)

    async def cancel(self, case_id: str, actor: Actor, reason: str) -> ClaimView:
        """An operator closes the claim (`reclaim cases cancel`); the claimant is told."""
        request = CancelClaim(f"{actor.kind.value}:{actor.name}", reason)
        return await self._update(case_id, ClaimCalls.CANCEL, request, ClaimView)

    # -- what the claim activities do --------------------------------------------------------

    async def resolve(self, request: ResolveClaim) -> Resolution:
        """Apply an approval. A resolution that cannot be applied (the account was purged,
        is banned...) comes back as `problem`, for the reviewer; the claim stays open."""
        try:
            if request.reason in (ClaimReason.COMPROMISED, ClaimReason.LOST_CONTACT):
                return await self._hand_over(request)
            actor = Actor(ActorKind.OPERATOR, request.by.name)
            if request.reason is ClaimReason.DELETED:
                await self._restore(request, actor)
                return Resolution()
            try:
                await self._lifecycle.unban(
                    request.account_id, actor, f"appeal approved in support claim {request.case_id}"
                )
            except NotBanned:
                pass  # lifted meanwhile: nothing left to do
            return Resolution()
        except Unresolvable as err:
            return Resolution(problem=str(err))
        except CapabilityMissing as err:  # e.g. an LDAP lock is lifted in the directory itself
            said = str(err)
            return Resolution(problem=said[:1].upper() + said[1:])

    async def notify_claimant(self, notice: ClaimNotice) -> None:
        claim = await self._ledger.get(notice.case_id)
        if claim is None or claim.contact_email == FORGOTTEN:
            return
        try:
            await self._notifier.send_once(
                notice.case_id,
                notice.kind.value,
                notice.attempt,
                Contact(Channel.EMAIL, claim.contact_email),
                lambda _code: self._compose(notice, claim),
            )
        except Undeliverable:
            log.warning("claimant_undeliverable", case_id=notice.case_id, kind=notice.kind)
        if notice.kind is ClaimNoticeKind.RECEIVED:
            await self._ledger.forget_token(notice.case_id)

    async def notify_escalation(self, escalation: Escalation) -> None:
        log.warning("claim_escalated", case_id=escalation.case_id, level=escalation.level)
        await self._ledger.mark_escalated(escalation.case_id, escalation.at)
        address = self._settings.escalation_email
        if not address:
            return
        await self._notifier.tell(
            escalation.case_id,
            NotificationKind.ESCALATION,
            ESCALATION_ATTEMPT.get(escalation.level, 2),
            Contact(Channel.EMAIL, address),
            messages.claim_escalated(
                Text(self._settings.default_locale),
                product=self._settings.product_name,
                case_id=escalation.case_id,
                level=escalation.level,
            ),
        )

    async def record(self, closing: ClaimClosing) -> None:
        await self._ledger.record_closing(closing)

    async def forget_account(self, account_id: int) -> None:
        """The account was purged: its claims forget the claimant's words and address."""
        claims = await self._ledger.forget_account(account_id)
        await self._notifier.forget_recipients(claims)

    # -- helpers -----------------------------------------------------------------------------

    @property
    def _queue(self) -> str:
        return self._settings.task_queue

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
                name, arg, result_type=result_type, rpc_timeout=self._timeout
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

    async def _hand_over(self, request: ResolveClaim) -> Resolution:
        """An approved takeover or lost-contact claim: the verified contact replaces the
        account's addresses (the phone goes too: the claim did not verify one), every session
        is signed out, the old addresses are told, and a recovery case is open to the new
        address. Each step is applied once however often the activity is retried."""
        claim = await self._ledger.get(request.case_id)
        assert claim is not None
        new_email = claim.contact_email
        destination = mask_email(new_email)
        recovery_case_id = await self._ledger.handover_case_id(request.case_id)
        if not await self._recovery.case_recorded(recovery_case_id):
            account = await self._directory.get(request.account_id)
            if account is None or account.status is AccountStatus.PURGED:
                raise Unresolvable("The account was deleted for good: it cannot be handed over.")
            if account.status is AccountStatus.BANNED:
                raise Unresolvable(
                    "The account is banned: lift the ban first, or decide the appeal."
                )
            holder = await self._directory.find(Identifier(IdentifierKind.EMAIL, new_email))
            if holder is not None and holder.id != account.id:
                raise Unresolvable("Another account uses the claim's contact address.")
            # The old addresses are kept in the outbox before they are replaced.
            owed = [
                Contact(channel, address)
                for channel, address in account.contacts
                if not (channel is Channel.EMAIL and address == new_email)
            ]
            await self._notifier.queue_once(
                request.case_id, NotificationKind.CONTACT_REPLACED, owed
            )
            try:
                reactivated = await self._directory.replace_contacts(
                    request.account_id,
                    email=new_email,
                    case_id=request.case_id,
                    at=request.at,
                    actor=Actor(ActorKind.OPERATOR, request.by.name),
                    reason=f"support claim ({request.reason.value}) approved",
                )
            except AccountExists as err:
                raise Unresolvable("Another account uses the claim's contact address.") from err
            except AccountGone as err:
                raise Unresolvable(
                    "The account is gone or banned: it cannot be handed over."
                ) from err
            if reactivated is not None:
                await self._lifecycle.signal_reactivated(reactivated)
            await self._recovery.open_for_claim(
                recovery_case_id, request.account_id, new_email, request.at
            )
        account = await self._directory.get(request.account_id)
        await self._notifier.flush(
            request.case_id,
            NotificationKind.CONTACT_REPLACED,
            messages.contact_replaced(
                Text(claim.locale or self._settings.default_locale),
                product=self._settings.product_name,
                username=account.username if account is not None else "",
                new_contact=destination,
                links=self._settings.links,
            ),
        )
        return Resolution(recovery_case_id=recovery_case_id, destination=destination)

    async def _restore(self, request: ResolveClaim, actor: Actor) -> None:
        """An approved `deleted` claim: reactivate the account if it is still inside its grace
        period, and stop its deletion case."""
        account = await self._directory.get(request.account_id)
        if account is None:
            raise Unresolvable("No account to restore.")
        if account.status is AccountStatus.PURGED:
            when = f" on {account.status_since:%Y-%m-%d}" if account.status_since else ""
            raise Unresolvable(
                f"The account's grace period ended and it was purged{when}: it cannot be restored."
            )
        if account.status is AccountStatus.BANNED:
            raise Unresolvable("The account is banned: decide the appeal instead.")
        try:
            deletion = await self._directory.reactivate(
                request.account_id, request.at, actor, case_id=request.case_id
            )
        except AccountGone as err:
            raise Unresolvable("The account is gone or banned: it cannot be restored.") from err
        if deletion is not None:
            await self._lifecycle.signal_reactivated(deletion)

    def _compose(self, notice: ClaimNotice, claim: SupportClaim) -> Message:
        t = Text(claim.locale or self._settings.default_locale)
        product, links = self._settings.product_name, self._settings.links
        case_id = claim.case_id
        if notice.kind is ClaimNoticeKind.RECEIVED:
            if claim.sealed_token is None:
                raise Undeliverable("the claim token is gone")
            token = self._ledger.unseal_token(claim)
            return messages.claim_received(
                t, product=product, case_id=case_id, claim_token=token, links=links
            )
        if notice.kind is ClaimNoticeKind.QUESTION:
            return messages.claim_question(
                t, product=product, case_id=case_id, questions=notice.detail or "", links=links
            )
        if notice.kind is ClaimNoticeKind.ABANDONED:
            return messages.claim_abandoned(t, product=product, case_id=case_id, links=links)
        if notice.kind is ClaimNoticeKind.CANCELLED:
            return messages.claim_cancelled(
                t, product=product, case_id=case_id, reason=notice.detail, links=links
            )
        return messages.claim_decided(
            t,
            product=product,
            case_id=case_id,
            approved=notice.kind is ClaimNoticeKind.APPROVED,
            note=notice.detail,
            recovery_case_id=notice.recovery_case_id,
            links=links,
        )
