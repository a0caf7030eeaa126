"""The support service: claims (filed, followed and answered by the claimant; queued, read and
decided by staff) and the staff themselves; and what the claim activities do (apply an
approval, mail the claimant and the leads, record the end).

It is the only code that starts, updates or queries a `SupportCaseWorkflow`, and the only
place that puts the claim's row, the directory and the workflow together. An approval that
hands the account over or restores it calls the recovery and lifecycle services for their
parts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hmac
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from cryptography.exceptions import InvalidTag
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributeKey

from reclaim.contracts import AccountStatus, Actor, ActorKind, Channel
from reclaim.directory import AccountExists, AccountGone, CapabilityMissing, Directory
from reclaim.errors import DomainError, NotFound, Refused, Unauthorized, Unavailable
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
from reclaim.recovery.cases import RecoveryCases
from reclaim.recovery.ledger import CaseRow
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
from reclaim.support.audit import AuditEntry, AuditLog, Origin
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
    ReleaseRequest,
    RequestInfo,
    Resolution,
    ResolveClaim,
    Reviewer,
    Risk,
    StaffRole,
)
from reclaim.support.evidence import MAX_PREVIOUS_PASSWORDS, ClaimRequest, assess
from reclaim.support.ledger import ClaimLimited, SupportLedger
from reclaim.support.oidc import (
    LoginRequest,
    OidcError,
    OidcProvider,
    ProviderUnavailable,
    new_login,
)
from reclaim.support.staff import NameTaken, SignedIn, StaffExists, StaffRoster, UnknownStaff
from reclaim.temporal import calls
from reclaim.temporal import search_attributes as sa
from reclaim.temporal.case_text import STATIC_DETAILS
from reclaim.temporal.proofs import ActorProofs

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
NO_CONSOLE_SESSION = Unauthorized(
    "no_session", "Sign in to the console: your session ended or was never opened."
)
SIGN_IN_FAILED = Unauthorized(
    "sign_in_failed", "The sign-in did not come back as it left: start it again."
)
LOGIN_CONTEXT = "console/oidc-login"
QUEUE_VIEWS = ("mine", "unassigned", "escalated", "high_risk")


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
class AccountSummary:
    """The account a claim is about, as it is now."""

    id: int
    username: str
    status: str
    created_at: datetime | None


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


@dataclass(frozen=True)
class QueueFilter:
    """The console queue's filters, each already checked: a view (`QUEUE_VIEWS`), a reason,
    a state."""

    view: str | None = None
    reason: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class QueuePage:
    claims: list[QueuedClaim]  # the `limit` the filter keeps whose deadline is nearest, in order
    counts: dict[str, int]  # "all", each view, "reason:<r>", "state:<s>": exact, every open claim
    matching: int  # how many open claims the filter keeps (more than shown when truncated)
    limit: int  # at most this many are shown (RECLAIM_CONSOLE_QUEUE_LIMIT)

    @property
    def truncated(self) -> bool:
        return self.matching > len(self.claims)


def _equals(key: SearchAttributeKey[str], value: str) -> str:
    """A keyword clause; values come from enums or checked names, never raw from a form."""
    assert '"' not in value and "\\" not in value
    return f'{key.name} = "{value}"'


def _where(clauses: list[str]) -> str:
    return " AND ".join(clauses)


class Unresolvable(Exception):
    """The approval cannot be applied; the message says why, for the reviewer."""


async def _refuse_operator() -> Any:
    raise Refused(
        "reviewer_required",
        "Operators read claims; a reviewer or a supervisor acts on them.",
    )


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
        recovery: RecoveryCases,
        lifecycle: LifecycleService,
        audit: AuditLog | None = None,
        oidc: OidcProvider | None = None,
    ) -> None:
        self._audit = audit
        self._oidc = oidc
        self._client = client
        self._ledger = ledger
        self._staff = staff
        self._directory = directory
        self._notifier = notifier
        self._keys = keys
        self._proofs = ActorProofs(keys.actor_proof_key)
        self._settings = settings
        self._recovery = recovery
        self._lifecycle = lifecycle
        self._timeout = timedelta(seconds=settings.temporal_rpc_timeout)

    async def aclose(self) -> None:
        if self._oidc is not None:
            await self._oidc.aclose()

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
        found = await self._list(" AND ".join(clauses), limit)
        return sorted(found, key=lambda c: c.opened_at)

    async def console_queue(self, member: Reviewer, chosen: QueueFilter) -> QueuePage:
        """The open claims `chosen` keeps, the nearest deadline first (none last), at most
        `RECLAIM_CONSOLE_QUEUE_LIMIT` of them; and the exact count of each filter over every
        open claim. Filters and counts are visibility queries: nothing is filtered or counted
        here over a truncated list."""
        base = [
            f'{sa.CASE_KIND.name} = "{sa.SUPPORT_CLAIM}"',
            f'TaskQueue = "{self._queue}"',
            'ExecutionStatus = "Running"',
        ]
        views = {name: self._view_clause(name, member) for name in QUEUE_VIEWS}
        filters: dict[str, list[str]] = {"all": []}
        filters.update({name: [clause] for name, clause in views.items()})
        filters.update({f"reason:{r.value}": [_equals(sa.REASON, r.value)] for r in ClaimReason})
        filters.update(
            {f"state:{s.value}": [_equals(sa.CASE_STATE, s.value)] for s in ClaimState if s.is_open}
        )
        kept = [
            *([views[chosen.view]] if chosen.view else []),
            *([_equals(sa.REASON, chosen.reason)] if chosen.reason else []),
            *([_equals(sa.CASE_STATE, chosen.state)] if chosen.state else []),
        ]
        names = list(filters)
        counted = await asyncio.gather(
            *(self._count(_where(base + filters[name])) for name in names),
            self._count(_where(base + kept)),
        )
        counts = dict(zip(names, counted, strict=False))
        limit = self._settings.console_queue_limit
        claims = await self._soonest(_where(base + kept), counted[-1], limit)
        return QueuePage(claims, counts, matching=counted[-1], limit=limit)

    @staticmethod
    def _view_clause(name: str, member: Reviewer) -> str:
        if name == "mine":
            if not STAFF_NAME.match(member.name):  # names are checked where they are made
                raise Unauthorized("invalid_name", "This staff name cannot be searched for.")
            return _equals(sa.ASSIGNEE, member.name)
        return {
            "unassigned": f"{sa.ASSIGNEE.name} IS NULL",
            "escalated": f"{sa.ESCALATED.name} = true",
            "high_risk": _equals(sa.RISK, Risk.HIGH.value),
        }[name]

    async def _count(self, query: str) -> int:
        async def count() -> int:
            found = await self._client.count_workflows(query, rpc_timeout=self._timeout)
            return found.count

        return await calls.call(count, NOT_FOUND)

    async def _soonest(self, query: str, matching: int, limit: int) -> list[QueuedClaim]:
        """The `limit` claims of `query` whose next deadline is nearest (none last).

        Visibility on SQL (the dev server, PostgreSQL, MySQL) has no ORDER BY and lists the
        newest first, so a list cut at `limit` would drop the oldest, most overdue claims.
        When more than twice `limit` match, counts of `deadline <= t` find a moment whose
        window holds between `limit` and twice `limit` claims; that window is listed whole
        and sorted here."""
        due = sa.NEXT_DEADLINE.name
        if matching <= 2 * limit:
            found = await self._list(query, 2 * limit + 1)
        elif (dated := await self._count(f"{query} AND {due} IS NOT NULL")) <= limit:
            found = await self._list(f"{query} AND {due} IS NOT NULL", dated + limit)
            found += await self._list(f"{query} AND {due} IS NULL", limit)
        else:

            async def within(moment: datetime) -> int:
                return await self._count(f'{query} AND {due} <= "{moment.isoformat()}"')

            # Bounds: fewer than `limit` are due by `low`, `at_high` (at least `limit`) by `high`.
            now, step, longest = utcnow(), timedelta(minutes=1), timedelta(days=36_500)
            high, at_high = now, await within(now)
            low: datetime | None = None
            while low is None:  # back from now, while too many are due by then
                if at_high < limit:
                    low = high
                elif step > longest:
                    low = datetime(1970, 1, 1, tzinfo=now.tzinfo)
                else:
                    seen = await within(now - step)
                    if seen < limit:
                        low = now - step
                    else:
                        high, at_high, step = now - step, seen, step * 2
            step = timedelta(minutes=1)
            while at_high < limit:  # forward from now, while too few are due by then
                if step > longest:
                    high, at_high = datetime(9999, 1, 1, tzinfo=now.tzinfo), dated
                else:
                    low, high, at_high = high, now + step, await within(now + step)
                    step *= 2
            # Halve the window until at most twice `limit` are due by `high`, or it cannot be
            # cut finer (claims due within the same microsecond).
            while at_high > 2 * limit and high - low > timedelta(microseconds=1):
                middle = low + (high - low) / 2
                seen = await within(middle)
                if seen < limit:
                    low = middle
                else:
                    high, at_high = middle, seen
            found = await self._list(f'{query} AND {due} <= "{low.isoformat()}"', limit)
            found += await self._list(
                f'{query} AND {due} > "{low.isoformat()}" AND {due} <= "{high.isoformat()}"',
                2 * limit,
            )
        far = datetime.max.replace(tzinfo=utcnow().tzinfo)
        found.sort(key=lambda c: (c.next_deadline or far, c.opened_at))
        return found[:limit]

    async def _list(self, query: str, limit: int) -> list[QueuedClaim]:
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
            return found

        return await calls.call(fetch, NOT_FOUND)

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
                    record.id, record.username, record.status.value, record.created_at
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
        self, case_id: str, by: Reviewer, note: str | None = None, origin: Origin | None = None
    ) -> ClaimView:
        """The resolution is applied before this answers; a reviewer's approval of a
        high-risk claim waits for a supervisor's confirmation instead."""

        async def act() -> ClaimView:
            return await self._update(case_id, ClaimCalls.APPROVE, Approve(by, note), ClaimView)

        return await self._audited(by, origin, case_id, "approve", note, act)

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

    # -- staff keys, console sessions and the audit ------------------------------------------

    async def disable_staff(self, name: str, by: str, origin: Origin) -> Staff:
        """The member's key and console sessions stop working at once."""
        try:
            member = await self._staff.disable(name, utcnow())
        except UnknownStaff as err:
            raise Refused("unknown_staff", f"No member of staff is named {name}.") from err
        await self._record(by, None, origin, "disable staff", "done", detail=name)
        return member

    async def rotate_staff_key(self, name: str, by: str, origin: Origin) -> tuple[Staff, str]:
        """A new key (shown once); the old one, and the console sessions it opened, stop
        working at once."""
        try:
            member, key = await self._staff.rotate(name, utcnow())
        except UnknownStaff as err:
            raise Refused("unknown_staff", f"No member of staff is named {name}.") from err
        await self._record(by, None, origin, "rotate key", "done", detail=name)
        return member, key

    async def audit_entries(
        self, *, case_id: str | None = None, by: str | None = None, limit: int = 200
    ) -> list[AuditEntry]:
        if self._audit is None:
            return []
        return await self._audit.entries(case_id=case_id, by=by, limit=limit)

    @property
    def identity_provider(self) -> str | None:
        """The host name of the identity provider staff sign in with, None: staff keys."""
        return self._oidc.label if self._oidc is not None else None

    async def begin_sign_in(self) -> tuple[str, str]:
        """Where to send the browser at the identity provider, and the sealed request the
        browser keeps (a cookie) until it comes back."""
        provider = self._provider()
        login = new_login()
        url = await self._from_provider(provider.authorization_url(login))
        sealed = self._keys.seal(json.dumps(asdict(login)), LOGIN_CONTEXT)
        return url, base64.urlsafe_b64encode(sealed).decode()

    async def finish_sign_in(
        self, code: str, state: str, sealed_login: str, origin: Origin
    ) -> tuple[Reviewer, str]:
        """The provider sent the browser back: check it is the sign-in this browser started,
        exchange the code, verify the ID token, find or add the member of staff, and open a
        console session (its token, for the cookie, returned once)."""
        provider = self._provider()
        login = self._unseal_login(sealed_login)
        if not hmac.compare_digest(state.encode(), login.state.encode()) or not code:
            await self._record("(unknown)", None, origin, "sign in", "refused: sign_in_failed")
            raise SIGN_IN_FAILED
        try:
            identity = await self._from_provider(provider.finish(code, login))
        except Unauthorized as err:
            await self._record("(unknown)", None, origin, "sign in", f"refused: {err.code}")
            raise
        if identity.role is None:
            await self._record(identity.name, None, origin, "sign in", "refused: no_role")
            raise Unauthorized(
                "no_role",
                f"Your account at {provider.label} gives you no role in the support console: "
                "ask whoever manages it to add you to the reviewers or the supervisors.",
            )
        try:
            row = await self._staff.from_provider(identity.subject, identity.name, identity.role)
        except NameTaken as err:
            await self._record(identity.name, None, origin, "sign in", "refused: name_taken")
            raise Unauthorized(
                "name_taken",
                f"Another member of staff is already named {identity.name}: ask an "
                "administrator to sort it out.",
            ) from err
        assert row.id is not None
        member = Reviewer(row.id, row.name, StaffRole(row.role))
        if row.disabled_at is not None:
            await self._record(
                member.name, member.role.value, origin, "sign in", "refused: disabled"
            )
            raise Unauthorized("staff_disabled", "Your access to the console was turned off.")
        return member, await self._open_session(member, "oidc", origin)

    async def sign_in_with_key(self, key: str, origin: Origin) -> tuple[Reviewer, str]:
        """Without an identity provider: a staff key, exchanged for a console session."""
        member = await self._staff.authenticate(key)
        if member is None:
            await self._record("(unknown)", None, origin, "sign in", "refused: invalid_key")
            raise Unauthorized(
                "invalid_key",
                "This staff key does not work: it is wrong, was replaced, or was turned off.",
            )
        return member, await self._open_session(member, "key", origin)

    async def console_member(self, token: str | None) -> SignedIn:
        """Whose console session this cookie is, now."""
        signed_in = await self._staff.session(token or "")
        if signed_in is None:
            raise NO_CONSOLE_SESSION
        return signed_in

    async def sign_out(self, token: str, member: Reviewer, origin: Origin) -> None:
        await self._staff.close_session(token)
        await self._record(member.name, member.role.value, origin, "sign out", "done")

    async def staff_for_bearer(self, token: str) -> Reviewer:
        """A staff key, or a token the identity provider signed for Reclaim (ID or access
        token) naming someone with a role, who is not disabled: for the codec endpoint."""
        if token.startswith("rk_") or self._oidc is None:
            return await self.staff_member(token)
        try:
            claims = await self._from_provider(self._oidc.verify(token))
        except Unauthorized as err:
            raise INVALID_STAFF_KEY from err
        identity = self._oidc.identity(claims)
        if identity.role is None:
            raise INVALID_STAFF_KEY
        known = await self._staff.get(identity.name)
        if known is not None and known.disabled_at is not None:
            raise INVALID_STAFF_KEY
        return Reviewer(known.id if known and known.id else 0, identity.name, identity.role)

    async def _open_session(self, member: Reviewer, via: str, origin: Origin) -> str:
        lifetime = timedelta(seconds=self._settings.console_session_ttl)
        token = await self._staff.open_session(member, via, origin.address, lifetime)
        await self._record(member.name, member.role.value, origin, "sign in", "done", detail=via)
        return token

    def _provider(self) -> OidcProvider:
        if self._oidc is None:
            raise Refused("not_configured", "Staff sign in with their staff key here.")
        return self._oidc

    async def _from_provider(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except ProviderUnavailable as err:
            log.warning("identity_provider_unavailable", reason=str(err))
            raise Unavailable("The identity provider") from err
        except OidcError as err:
            log.info("identity_provider_refused", reason=str(err))
            raise Unauthorized("sign_in_failed", str(err)) from err

    def _unseal_login(self, sealed: str) -> LoginRequest:
        try:
            raw = self._keys.unseal(base64.urlsafe_b64decode(sealed.encode()), LOGIN_CONTEXT)
            return LoginRequest(**json.loads(raw))
        except (ValueError, TypeError, binascii.Error, InvalidTag) as err:
            raise SIGN_IN_FAILED from err

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
            await self._record(by.name, by.role.value, origin, action, outcome, case_id, detail)
            raise
        await self._record(by.name, by.role.value, origin, action, "done", case_id, detail)
        return result

    async def _record(
        self,
        who: str,
        role: str | None,
        origin: Origin,
        action: str,
        outcome: str,
        case_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        if self._audit is not None:
            await self._audit.record(
                who=who,
                role=role,
                origin=origin,
                action=action,
                outcome=outcome,
                case_id=case_id,
                detail=detail,
            )

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

    async def _hand_over(self, request: ResolveClaim) -> Resolution:
        """An approved takeover or lost-contact claim: the verified contact replaces the
        account's addresses (the phone goes too: the claim did not verify one), every session
        is signed out, the old addresses are told, and a recovery case is open to the new
        address. With a claim hold (`claim_recovery_hold`) the replacement waits for it (the
        sign-out does not): the
        recovery case's code goes to the claim's address, the old addresses hear of the
        replacement with a link to stop it when the new password is held, and the recovery
        service replaces the contacts (and tells them) when it takes effect; a stop leaves
        them as they are. Each step is applied once however often the activity is retried."""
        claim = await self._ledger.get(request.case_id)
        assert claim is not None
        new_email = claim.contact_email
        destination = mask_email(new_email)
        held = self._settings.claim_recovery_hold > 0
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
            if held:
                # The recovery case waits out a hold: these addresses may stop it meanwhile.
                await self._notifier.queue_once(
                    recovery_case_id, NotificationKind.HOLD, owed, numbered=True
                )
                # Whoever holds a session now (a hijacker, in a takeover claim) is out at once;
                # the owner, if the claim was not theirs, signs in again and stops the hold.
                await self._directory.revoke_sessions(request.account_id, request.at)
                await self._recovery.open_for_claim(
                    recovery_case_id,
                    request.account_id,
                    new_email,
                    request.at,
                    handover_claim=request.case_id,
                )
                return Resolution(recovery_case_id=recovery_case_id, destination=destination)
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
        elif held:
            return Resolution(recovery_case_id=recovery_case_id, destination=destination)
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
