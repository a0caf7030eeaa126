"""The account lifecycle service: signing in (which keeps a deactivated account), sessions,
deactivation and its grace period, bans, and the accounts an operator creates and inspects.

It is the only code that starts, updates, signals or queries the lifecycle workflows
(`AccountDeletionWorkflow`, `AccountBanWorkflow`). A status change is made by the case's
workflow itself (its first activity), never by the caller: once Temporal has accepted the
start, the change and its timer happen even if the caller dies the next instant. The caller
then waits, bounded, for the `applied` update to say what the account has become.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import structlog
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from reclaim.contracts import (
    ACCOUNT_HOLDER,
    AccountState,
    AccountStatus,
    Actor,
    PurgeAccount,
    StatusChange,
)
from reclaim.directory import (
    AccountExists,
    AccountGone,
    AccountOverview,
    AccountRecord,
    Capability,
    Directory,
    SessionView,
    require,
)
from reclaim.errors import NotFound, Refused, Unauthorized, Unavailable
from reclaim.i18n import Text, supported
from reclaim.identifiers import (
    Identifier,
    IdentifierKind,
    InvalidIdentifier,
    normalize_email,
    normalize_phone,
    normalize_username,
    parse_identifier,
)
from reclaim.lifecycle.contracts import (
    AccountNotice,
    BanInput,
    DeletionInput,
    LifecycleCalls,
    LifecycleState,
    LifecycleStatus,
    LiftRequest,
    NoticeKind,
)
from reclaim.notify import messages
from reclaim.notify.notifier import Contact, Notifier
from reclaim.password_policy import check_password
from reclaim.security import BAN_CASE_PREFIX, DELETION_CASE_PREFIX, new_case_id
from reclaim.settings import Settings
from reclaim.store.models import utcnow
from reclaim.temporal import calls, search_attributes
from reclaim.temporal.case_text import STATIC_DETAILS
from reclaim.temporal.proofs import ActorProofs

log = structlog.get_logger(__name__)

SIGNAL_TIMEOUT = timedelta(seconds=5)
CASE_ID = re.compile(rf"^(?:{DELETION_CASE_PREFIX}|{BAN_CASE_PREFIX})[A-Za-z0-9_-]{{22}}$")
NOT_FOUND = NotFound("account case")


@dataclass(frozen=True)
class Pending:
    """Temporal accepted the case but no worker applied it in time: it will, later."""

    case_id: str


class NotBanned(Exception):
    pass


def lift_refused(status: str, by_case: str | None) -> Refused:
    """The directory kept the ban: another case (or the directory's own administrators) is in
    charge of the account's status now."""
    who = f"case {by_case}" if by_case else "the directory itself"
    return Refused(
        "lift_refused",
        f"The directory did not lift the ban: the account is {status}, and {who} is in charge "
        "of it now. Lift it there, or ask whoever is in charge.",
        status=status,
        status_case=by_case,
    )


class LifecycleService:
    def __init__(
        self,
        client: Client,
        directory: Directory,
        notifier: Notifier,
        settings: Settings,
        proofs: ActorProofs,
    ) -> None:
        self._client = client
        self._proofs = proofs
        self._directory = directory
        self._notifier = notifier
        self._settings = settings
        self._timeout = timedelta(seconds=settings.temporal_rpc_timeout)

    # -- the account holder ------------------------------------------------------------------

    async def sign_in(self, identifier_text: str, password: str) -> str:
        """A session token, or `Unauthorized` (wrong identifier or password) / `Refused`
        (`account_banned` with `ends_at` and `appeal_url`, `account_<status>`)."""
        require(self._directory, Capability.SIGN_IN)
        try:
            identifier = parse_identifier(identifier_text, self._settings.default_region)
        except InvalidIdentifier as err:
            raise INVALID_CREDENTIALS from err
        result = await self._directory.sign_in(identifier, password)
        if result.reactivated is not None:
            await self.signal_reactivated(result.reactivated)
        if result.token is not None:
            return result.token
        if result.problem == "invalid_credentials":
            raise INVALID_CREDENTIALS
        if result.problem == "account_banned":
            until = result.until
            raise Refused(
                "account_banned",
                f"This account is suspended until {until:%Y-%m-%d %H:%M} UTC."
                if until
                else "This account is suspended until further notice.",
                ends_at=until.isoformat() if until else None,
                appeal_url=self._settings.links.support("banned"),
            )
        problem = result.problem or "account_unavailable"
        raise Refused(problem, f"This account is {problem.removeprefix('account_')}.")

    async def session(self, token: str) -> SessionView:
        require(self._directory, Capability.SIGN_IN)
        view = await self._directory.session(token)
        if view is None:
            raise INVALID_SESSION
        return view

    async def sign_out(self, token: str) -> None:
        require(self._directory, Capability.SIGN_IN)
        if not await self._directory.end_session(token):
            raise INVALID_SESSION

    async def deactivate_own(
        self, token: str, reason: str | None, locale: str | None = None
    ) -> LifecycleStatus | Pending:
        """The holder deactivates their own account (the first step of deleting it)."""
        view = await self.session(token)
        outcome = await self.deactivate(view.account_id, ACCOUNT_HOLDER, reason, locale)
        if isinstance(outcome, LifecycleStatus) and outcome.state is not LifecycleState.DEACTIVATED:
            raise Refused("invalid_state", "This account cannot be deactivated now.")
        return outcome

    # -- operators ---------------------------------------------------------------------------

    async def add_account(
        self, *, username: str, email: str, phone: str | None, password: str
    ) -> AccountRecord:
        """A ready account (`reclaim accounts add`): the policy a recovery applies to a new
        password applies here too."""
        require(self._directory, Capability.CREATE)
        try:
            name = normalize_username(username)
            address = normalize_email(email)
            number = normalize_phone(phone, self._settings.default_region) if phone else None
        except InvalidIdentifier as err:
            raise Refused("invalid_request", f"invalid: {err}") from err
        verdict = check_password(password, username=name, email=address, phone=number)
        if not verdict.ok:
            raise Refused(
                "weak_password",
                f"password refused ({', '.join(verdict.reasons)}): {' '.join(verdict.hints)}",
            )
        try:
            return await self._directory.create(
                username=name, email=address, phone=number, password=password
            )
        except AccountExists as err:
            raise Refused("account_exists", str(err)) from err

    async def account_id(self, ref: str) -> int:
        """A username, or `#ID` (a purged account has only its id)."""
        if ref.startswith("#") and ref[1:].isdigit():
            account = await self._directory.get(int(ref[1:]))
        else:
            try:
                name = normalize_username(ref)
            except InvalidIdentifier:
                account = None
            else:
                account = await self._directory.find(Identifier(IdentifierKind.USERNAME, name))
        if account is None:
            raise NotFound("account")
        return account.id

    async def overview(self, account_id: int) -> AccountOverview:
        found = await self._directory.overview(account_id)
        if found is None:
            raise NotFound("account")
        return found

    async def deactivate(
        self, account_id: int, actor: Actor, reason: str | None = None, locale: str | None = None
    ) -> LifecycleStatus | Pending:
        require(self._directory, Capability.STATUS)
        require(self._directory, Capability.PURGE)  # a deactivation ends in a purge
        case_id = new_case_id(DELETION_CASE_PREFIX)
        case = DeletionInput(
            case_id=case_id,
            account_id=account_id,
            grace=self._settings.deletion_grace,
            quarantine=self._settings.username_quarantine,
            actor=actor,
            reason=reason,
            locale=supported(locale),
        )
        return await self._start(
            LifecycleCalls.DELETION_WORKFLOW,
            case,
            case_id,
            search_attributes.ACCOUNT_DELETION,
            "Account deletion: grace period, then purge",
        )

    async def ban(
        self, account_id: int, reason: str, actor: Actor, duration: int | None = None
    ) -> LifecycleStatus | Pending:
        require(self._directory, Capability.STATUS)
        case_id = new_case_id(BAN_CASE_PREFIX)
        case = BanInput(case_id, account_id, reason, actor, duration)
        return await self._start(
            LifecycleCalls.BAN_WORKFLOW,
            case,
            case_id,
            search_attributes.ACCOUNT_BAN,
            "Account ban" + (f" for {timedelta(seconds=duration)}" if duration else ""),
        )

    async def unban(
        self, account_id: int, actor: Actor, reason: str | None = None
    ) -> LifecycleStatus | None:
        """Lift the account's ban through its case, which then tells the holder. Returns
        None when no case was there to do it (it had been lost, or the ban predates
        lifecycle cases): the ban is then lifted in the directory directly."""
        account = await self._directory.get(account_id)
        if account is None or account.status is not AccountStatus.BANNED:
            raise NotBanned(account_id)
        # Only a ban case of Reclaim's is asked (or named to the directory): a status another
        # system set (an LDAP lock, a host's own administrators) is not ours to claim.
        case = account.status_case or ""
        ours = case if case.startswith(BAN_CASE_PREFIX) else ""
        if ours:
            handle = self._client.get_workflow_handle(ours)
            try:
                status: LifecycleStatus = await handle.execute_update(
                    LifecycleCalls.LIFT,
                    self._proofs.sign(ours, LifecycleCalls.LIFT, LiftRequest(actor, reason)),
                    result_type=LifecycleStatus,
                    rpc_timeout=self._timeout,
                )
                if status.state is not LifecycleState.LIFTED:
                    # The directory answered that this case is no longer in charge of the
                    # status: the ban stands, and whoever asked must hear it.
                    now = await self._directory.get(account_id)
                    raise lift_refused(
                        now.status.value if now else status.account_status or "banned",
                        now.status_case if now else None,
                    )
                return status
            except WorkflowUpdateFailedError:
                pass  # the case is ending on its own; the directory decides below
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise Unavailable() from err
            except RPCTimeoutOrCancelledError as err:
                raise Unavailable() from err
        change = StatusChange(ours, account_id, utcnow(), actor, reason)
        lifted = await self._directory.lift_ban(change)
        if not lifted.applied:
            raise lift_refused(lifted.status.value, lifted.case_id)
        return None

    async def status(self, case_id: str) -> LifecycleStatus:
        handle = self._client.get_workflow_handle(self._checked(case_id))
        return await calls.call(
            lambda: handle.query(
                LifecycleCalls.STATUS, result_type=LifecycleStatus, rpc_timeout=self._timeout
            ),
            NOT_FOUND,
        )

    async def cancel(self, case_id: str, actor: Actor, reason: str) -> LifecycleStatus:
        """An operator stops a case: a ban is lifted (the holder is told), a deletion ends
        with the account reactivated and nothing purged."""
        status = await self.status(case_id)
        if not status.state.is_open or status.account_id is None:
            raise Refused(
                "invalid_state",
                f"This case is {status.state.value}: there is nothing to stop.",
                state=status.state.value,
            )
        try:
            if case_id.startswith(BAN_CASE_PREFIX):
                await self.unban(status.account_id, actor, reason)
            else:
                await self._directory.reactivate(
                    status.account_id, utcnow(), actor, reason=f"deletion stopped: {reason}"
                )
                await self.signal_reactivated(case_id)
        except (NotBanned, AccountGone) as err:
            raise Refused("invalid_state", "The account has moved on: nothing to stop.") from err
        return await calls.settled(
            lambda: self.status(case_id),
            lambda status: not status.state.is_open,
            self._timeout.total_seconds(),
        )

    async def signal_reactivated(self, case_id: str) -> None:
        """Tell a deletion case its account is active again. Best effort: if this is lost, the
        case finds the account active when its grace period ends and purges nothing."""
        try:
            await self._client.get_workflow_handle(case_id).signal(
                LifecycleCalls.REACTIVATED, rpc_timeout=SIGNAL_TIMEOUT
            )
        except (RPCError, RPCTimeoutOrCancelledError, RuntimeError) as err:
            log.warning("reactivated_signal_failed", case_id=case_id, error=type(err).__name__)

    # -- what the lifecycle activities do ----------------------------------------------------

    async def apply_deactivation(self, change: StatusChange) -> AccountState:
        return await self._directory.deactivate(change)

    async def apply_ban(self, change: StatusChange) -> AccountState:
        return await self._directory.ban(change)

    async def apply_lift(self, change: StatusChange) -> AccountState:
        return await self._directory.lift_ban(change)

    async def apply_purge(self, request: PurgeAccount) -> AccountState:
        """Erase the account in the directory; once it is purged, the messages its lifecycle
        cases sent forget their recipients (the other features forget theirs: see the
        purge activity)."""
        state = await self._directory.purge(request)
        if state.applied:
            overview = await self._directory.overview(request.account_id)
            changes = overview.changes if overview is not None else []
            await self._notifier.forget_recipients(
                sorted({change.case_id for change in changes if change.case_id})
            )
        return state

    async def notify_account(self, notice: AccountNotice) -> None:
        """Tell the holder, unless the news is stale by now (they signed in again since the
        deactivation, the account was banned again since the ban ended)."""
        account = await self._directory.get(notice.account_id)
        if account is None or account.status is AccountStatus.PURGED:
            return
        still_true = (
            account.status_case == notice.case_id
            if notice.kind is NoticeKind.ACCOUNT_DEACTIVATED
            else account.status is AccountStatus.ACTIVE
        )
        if not still_true:
            return
        t = Text(notice.locale or self._settings.default_locale)
        product, links = self._settings.product_name, self._settings.links
        if notice.kind is NoticeKind.ACCOUNT_DEACTIVATED:
            assert notice.until is not None
            message = messages.account_deactivated(
                t, product=product, username=account.username, purge_at=notice.until, links=links
            )
        else:
            message = messages.ban_ended(t, product=product, username=account.username, links=links)
        contacts = [Contact(channel, address) for channel, address in account.contacts]
        await self._notifier.tell_every(notice.case_id, notice.kind.value, contacts, message)

    async def _start(
        self, workflow: str, case: object, case_id: str, kind: str, summary: str
    ) -> LifecycleStatus | Pending:
        handle = await calls.call(
            lambda: self._client.start_workflow(
                workflow,
                case,
                id=case_id,
                task_queue=self._settings.task_queue,
                search_attributes=search_attributes.lifecycle_case(kind, "requested"),
                static_summary=summary,
                static_details=STATIC_DETAILS[kind],
                rpc_timeout=self._timeout,
            ),
            NOT_FOUND,
        )
        try:
            status: LifecycleStatus = await handle.execute_update(
                LifecycleCalls.APPLIED, result_type=LifecycleStatus, rpc_timeout=self._timeout
            )
        except RPCTimeoutOrCancelledError:
            return Pending(case_id)
        return status

    @staticmethod
    def _checked(case_id: str) -> str:
        if not CASE_ID.match(case_id):
            raise NOT_FOUND
        return case_id


INVALID_CREDENTIALS = Unauthorized(
    "invalid_credentials", "The identifier or the password is not right."
)
INVALID_SESSION = Unauthorized(
    "invalid_session", "This session is not valid (signed out or revoked)."
)
