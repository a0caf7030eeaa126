"""Where the parts are put together: one `Services` per process (the API, the worker, a CLI
command), built from the settings, a Temporal client and a database engine. Routes, pages,
the CLI and the activities reach the features only through it.

It also answers the operator's questions that span every kind of case (`reclaim cases list`,
`show`, `cancel`) by handing each case to the service of its kind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from temporalio.client import Client

from reclaim.contracts import Actor, Channel
from reclaim.directory import Directory, directory_for
from reclaim.errors import DomainError, NotFound
from reclaim.factors.door import AccountFactors
from reclaim.lifecycle.service import LifecycleService
from reclaim.notify.courier import Courier
from reclaim.notify.mail import Mailer
from reclaim.notify.notifier import Notifier
from reclaim.notify.sms import sms_provider
from reclaim.recovery.cases import RecoveryCases
from reclaim.recovery.ledger import RecoveryLedger
from reclaim.recovery.oversight import StoppedBy
from reclaim.recovery.steps import RecoverySteps
from reclaim.security import (
    BAN_CASE_PREFIX,
    CASE_ID_PREFIX,
    CLAIM_CASE_PREFIX,
    DELETION_CASE_PREFIX,
    Keys,
    Passwords,
)
from reclaim.settings import Settings
from reclaim.store.flash import Flashes
from reclaim.support.audit import AuditLog
from reclaim.support.claims import Claims, FiledClaim
from reclaim.support.contracts import ClaimReason
from reclaim.support.ledger import SupportLedger
from reclaim.support.members import StaffMembers
from reclaim.support.oidc import oidc_provider
from reclaim.support.queue import ClaimQueue
from reclaim.support.queue_rows import QueueRows
from reclaim.support.signin import StaffSignIn
from reclaim.support.staff import StaffRoster
from reclaim.support.steps import ClaimSteps
from reclaim.temporal import calls
from reclaim.temporal import search_attributes as sa
from reclaim.temporal.codec import EncryptionCodec
from reclaim.temporal.pollers import TaskQueuePollers
from reclaim.temporal.proofs import ActorProofs

log = structlog.get_logger(__name__)

KINDS = (sa.SELF_SERVICE, sa.SUPPORT_CLAIM, sa.ACCOUNT_DELETION, sa.ACCOUNT_BAN)


@dataclass(frozen=True)
class CaseLine:
    """One case in `reclaim cases list`."""

    case_id: str
    kind: str
    state: str
    opened_at: datetime
    next_deadline: datetime | None
    detail: str | None  # the channel of a recovery, the reason of a claim


@dataclass
class Services:
    settings: Settings
    engine: Engine
    client: Client
    keys: Keys
    directory: Directory
    notifier: Notifier
    courier: Courier
    recovery: RecoveryCases
    recovery_steps: RecoverySteps  # for the recovery activities only
    # Support, by who calls it: the claim's door, the reviewers' queue, the members of staff,
    # the console's sign-in, and what the claim activities do.
    claims: Claims
    claim_queue: ClaimQueue
    staff_members: StaffMembers
    signin: StaffSignIn
    claim_steps: ClaimSteps
    lifecycle: LifecycleService
    # The holder's own second factors (the security page).
    factors: AccountFactors
    codec: EncryptionCodec
    # What a refused form showed, for the page its redirect leads to.
    flashes: Flashes
    # Whether a worker polls the task queue (`/readyz`).
    workers: TaskQueuePollers

    async def aclose(self) -> None:
        await self.courier.aclose()
        await self.directory.aclose()
        await self.signin.aclose()

    # -- every kind of case, for operators ---------------------------------------------------

    async def show_case(self, case_id: str) -> dict[str, Any]:
        """What the case's workflow says of it, whatever its kind."""
        view: Any
        if case_id.startswith(CASE_ID_PREFIX):
            kind, view = sa.SELF_SERVICE, await self.recovery.status(case_id)
            factors = await self.recovery.account_factors(case_id)
            return {"kind": kind, **asdict(view), "account_factors": factors}
        elif case_id.startswith(CLAIM_CASE_PREFIX):
            kind, view = sa.SUPPORT_CLAIM, await self.claims.staff_view(case_id)
        elif case_id.startswith((DELETION_CASE_PREFIX, BAN_CASE_PREFIX)):
            deletion = case_id.startswith(DELETION_CASE_PREFIX)
            kind = sa.ACCOUNT_DELETION if deletion else sa.ACCOUNT_BAN
            view = await self.lifecycle.status(case_id)
        else:
            raise NotFound("case")
        return {"kind": kind, **asdict(view)}

    async def cancel_case(self, case_id: str, actor: Actor, reason: str) -> dict[str, Any]:
        """Stop an open case: a recovery's code stops working, a claim closes (the claimant
        is told), a ban is lifted, a deletion ends with the account kept."""
        if case_id.startswith(CASE_ID_PREFIX):
            await self.recovery.cancel(case_id, reason)
        elif case_id.startswith(CLAIM_CASE_PREFIX):
            await self.claims.cancel(case_id, actor, reason)
        elif case_id.startswith((DELETION_CASE_PREFIX, BAN_CASE_PREFIX)):
            await self.lifecycle.cancel(case_id, actor, reason)
        else:
            raise NotFound("case")
        return await self.show_case(case_id)

    async def stop_recovery(
        self, case_id: str, token: str, locale: str | None = None
    ) -> tuple[StoppedBy, FiledClaim | None]:
        """ "Wasn't you? Stop it": the held recovery is cancelled (the account signed out
        everywhere), and when the link went to an email address a support claim is filed for
        its holder (reason: someone else took the account), its link mailed there."""
        stopped = await self.recovery.stop(case_id, token)
        claim = None
        if stopped.contact.channel is Channel.EMAIL and stopped.username:
            address = stopped.contact.address
            try:
                claim = await self.claims.file(
                    username=stopped.username,
                    contact_email=address,
                    reason=ClaimReason.COMPROMISED,
                    registered_email=address,
                    description=f"Stopped the held recovery {case_id} from a link sent to "
                    "this address.",
                    locale=locale,
                )
            except DomainError as err:  # the recovery is stopped all the same
                log.warning("stop_claim_not_filed", case_id=case_id, error=type(err).__name__)
        return stopped, claim

    async def list_cases(
        self,
        *,
        kind: str | None = None,
        state: str | None = None,
        limit: int = 50,
        include_closed: bool = False,
    ) -> list[CaseLine]:
        """This deployment's cases (its task queue) from Temporal visibility, newest first:
        the open ones (the closed ones too with `include_closed`), or all in one state.
        `kind` and `state` must be checked by the caller (a kind from `KINDS`, a state of
        letters and '_')."""
        clauses = [f'TaskQueue = "{self.settings.task_queue}"']
        kinds = [kind] if kind else list(KINDS)
        clauses.append(f"{sa.CASE_KIND.name} IN ({', '.join(f'{k!r}' for k in kinds)})")
        if state:
            clauses.append(f'{sa.CASE_STATE.name} = "{state}"')
        elif not include_closed:
            clauses.append('ExecutionStatus = "Running"')
        query = " AND ".join(clauses)
        timeout = timedelta(seconds=self.settings.temporal_rpc_timeout)

        async def fetch() -> list[CaseLine]:
            found: list[CaseLine] = []
            async for execution in self.client.list_workflows(
                query, limit=limit, rpc_timeout=timeout
            ):
                attrs = execution.typed_search_attributes
                found.append(
                    CaseLine(
                        case_id=execution.id,
                        kind=attrs.get(sa.CASE_KIND) or "?",
                        state=attrs.get(sa.CASE_STATE) or "?",
                        opened_at=execution.start_time,
                        next_deadline=attrs.get(sa.NEXT_DEADLINE),
                        detail=attrs.get(sa.CHANNEL) or attrs.get(sa.REASON),
                    )
                )
            return found

        return await calls.call(fetch, NotFound("case"))


def build_services(
    settings: Settings, client: Client, engine: Engine, courier: Courier | None = None
) -> Services:
    """Every service of one process, wired together. The courier only sends from a worker;
    any process may build one (it connects on first use)."""
    keys = Keys(settings.secret_bytes())
    passwords = Passwords(
        settings.argon2_time_cost, settings.argon2_memory_cost, settings.argon2_parallelism
    )
    courier = courier or courier_for(settings)
    directory = directory_for(settings, engine, keys, passwords)
    notifier = Notifier(engine, courier, keys, settings.resolved_webotp_domain)
    lifecycle = LifecycleService(
        client, directory, notifier, settings, ActorProofs(keys.actor_proof_key)
    )
    recovery_ledger = RecoveryLedger(engine)
    recovery = RecoveryCases(client, recovery_ledger, directory, notifier, keys, settings)
    recovery_steps = RecoverySteps(recovery_ledger, directory, notifier, keys, settings, lifecycle)
    ledger, roster, audit = SupportLedger(engine, keys), StaffRoster(engine, keys), AuditLog(engine)
    queue_rows = QueueRows(engine)
    members = StaffMembers(roster, audit)
    return Services(
        settings=settings,
        engine=engine,
        client=client,
        keys=keys,
        directory=directory,
        notifier=notifier,
        courier=courier,
        recovery=recovery,
        recovery_steps=recovery_steps,
        claims=Claims(client, ledger, roster, directory, keys, settings, recovery, audit),
        claim_queue=ClaimQueue(client, queue_rows, settings),
        staff_members=members,
        signin=StaffSignIn(roster, members, keys, settings, audit, oidc_provider(settings)),
        claim_steps=ClaimSteps(
            ledger, directory, notifier, settings, recovery, lifecycle, queue_rows
        ),
        lifecycle=lifecycle,
        factors=AccountFactors(directory, notifier, keys, settings),
        codec=settings.codec(),
        flashes=Flashes(engine, keys),
        workers=TaskQueuePollers(client, settings.task_queue),
    )


def courier_for(settings: Settings) -> Courier:
    return Courier(Mailer.from_settings(settings), sms_provider(settings))
