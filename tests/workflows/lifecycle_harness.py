"""Account lifecycle workflows on the time-skipping server, with the real activities: a SQLite
database, a real SMTP sink and SMS webhook. A test reads what the holder would: the account
row, whether they can sign in, the mail they got."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from reclaim.contracts import Actor, ActorKind
from reclaim.directory import SignIn
from reclaim.directory.sql import SqlDirectory
from reclaim.directory.tables import Account, AccountEvent
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.lifecycle.contracts import LifecycleCalls, LifecycleStatus
from reclaim.lifecycle.service import LifecycleService, Pending
from reclaim.services import Services, build_services
from reclaim.settings import Settings
from reclaim.store.engine import make_engine
from reclaim.store.migrations import create_schema
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import sql_directory, stack_settings
from worker import build_worker, courier_for

OPERATOR = Actor(ActorKind.OPERATOR, "olivia")
PASSWORD = "violet tangerine marmalade kayak"


@dataclass
class Lifecycle:
    env: WorkflowEnvironment
    settings: Settings
    engine: Engine
    directory: SqlDirectory
    services: Services
    mail: MailSink

    @property
    def cases(self) -> LifecycleService:
        return self.services.lifecycle

    async def add_account(
        self, username: str = "jane", email: str = "jane@example.com", phone: str | None = None
    ) -> int:
        account = await self.directory.create(
            username=username, email=email, phone=phone, password=PASSWORD
        )
        return account.id

    def account(self, account_id: int) -> Account:
        """The account's row, as the built-in directory stores it."""
        with Session(self.engine) as session:
            account = session.get(Account, account_id)
            assert account is not None
            return account

    def events(self, account_id: int) -> list[AccountEvent]:
        """The account's record, as the built-in directory stores it."""
        with Session(self.engine) as session:
            return list(
                session.exec(
                    select(AccountEvent)
                    .where(AccountEvent.account_id == account_id)
                    .order_by(col(AccountEvent.id))
                )
            )

    async def sign_in(self, identifier: str, password: str = PASSWORD) -> SignIn:
        """What `POST /v1/sessions` does: check, reactivate if need be, tell the case."""
        kind = IdentifierKind.EMAIL if "@" in identifier else IdentifierKind.USERNAME
        result = await self.directory.sign_in(Identifier(kind, identifier), password)
        if result.reactivated is not None:
            await self.cases.signal_reactivated(result.reactivated)
        return result

    async def deactivate(self, account_id: int) -> LifecycleStatus:
        return _done(await self.cases.deactivate(account_id, OPERATOR, "asked by phone"))

    async def ban(self, account_id: int, days: float | None = None) -> LifecycleStatus:
        duration = round(days * 86_400) if days else None
        return _done(await self.cases.ban(account_id, "spam", OPERATOR, duration))

    def handle(self, case_id: str) -> WorkflowHandle[Any, LifecycleStatus]:
        return self.env.client.get_workflow_handle(case_id, result_type=LifecycleStatus)

    async def status(self, case_id: str) -> LifecycleStatus:
        status: LifecycleStatus = await self.handle(case_id).query(
            LifecycleCalls.STATUS, result_type=LifecycleStatus
        )
        return status

    async def outcome(self, case_id: str) -> LifecycleStatus:
        """How the case ends, once its timer (if any) has fired: time is skipped to it."""
        status = await self.status(case_id)
        if status.until is not None:
            remaining = status.until - await self.env.get_current_time()
            await self.env.sleep(max(remaining.total_seconds(), 0) + 1)
        return await self.handle(case_id).result()

    async def days_pass(self, days: float) -> None:
        await self.env.sleep(days * 86_400)


def _done(outcome: LifecycleStatus | Pending) -> LifecycleStatus:
    assert isinstance(outcome, LifecycleStatus), outcome
    return outcome


@asynccontextmanager
async def lifecycle_stack(
    env: WorkflowEnvironment, state_dir: Path, mail: MailSink, sms: SmsGateway, **overrides: Any
) -> AsyncIterator[Lifecycle]:
    database_url = f"sqlite:///{state_dir / 'lifecycle.db'}"
    settings = stack_settings(
        temporal="time-skipping",
        database_url=database_url,
        state_dir=state_dir,
        mail=mail,
        sms=sms,
        # Time skips days between a door's signature and the workflow's check.
        actor_proof_window=10 * 365 * 86_400,
        **overrides,
    )
    engine = make_engine(database_url)
    create_schema(engine)
    courier = courier_for(settings)
    try:
        async with build_worker(
            env.client, settings, engine, courier, task_queue=settings.task_queue
        ):
            services = build_services(settings, env.client, engine, courier)
            yield Lifecycle(env, settings, engine, sql_directory(engine), services, mail)
    finally:
        await courier.aclose()
        engine.dispose()
