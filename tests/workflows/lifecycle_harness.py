"""Account lifecycle workflows on the time-skipping server, with the real activities: a SQLite
database, a real SMTP sink and SMS webhook. A test reads what the holder would: the account
row, whether they can sign in, the mail they got."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from reclaim import accounts, lifecycle
from reclaim.account_cases import AccountCases, Pending, signal_reactivated
from reclaim.contracts import Actor, ActorKind, LifecycleCalls, LifecycleStatus
from reclaim.db import create_schema, make_engine
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.models import Account, AccountEvent
from reclaim.security import Keys
from reclaim.settings import Settings
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import TEST_PASSWORDS, stack_settings
from worker import build_worker, courier_for

OPERATOR = Actor(ActorKind.OPERATOR, "olivia")
PASSWORD = "violet tangerine marmalade kayak"


@dataclass
class Lifecycle:
    env: WorkflowEnvironment
    settings: Settings
    engine: Engine
    keys: Keys
    cases: AccountCases
    mail: MailSink

    def add_account(
        self, username: str = "jane", email: str = "jane@example.com", phone: str | None = None
    ) -> int:
        with Session(self.engine) as session:
            account = accounts.create_account(
                session,
                username=username,
                email=email,
                phone=phone,
                password_hash=TEST_PASSWORDS.hash(PASSWORD),
                keys=self.keys,
            )
            assert account.id is not None
            return account.id

    def account(self, account_id: int) -> Account:
        with Session(self.engine) as session:
            account = session.get(Account, account_id)
            assert account is not None
            return account

    def events(self, account_id: int) -> list[AccountEvent]:
        with Session(self.engine) as session:
            return lifecycle.events(session, account_id)

    async def sign_in(self, identifier: str, password: str = PASSWORD) -> accounts.LoginResult:
        """What `POST /v1/sessions` does: check, reactivate if need be, tell the case."""
        kind = IdentifierKind.EMAIL if "@" in identifier else IdentifierKind.USERNAME
        result = await asyncio.to_thread(
            accounts.login,
            self.engine,
            self.keys,
            TEST_PASSWORDS,
            Identifier(kind, identifier),
            password,
        )
        if result.reactivated is not None:
            await signal_reactivated(self.env.client, result.reactivated)
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
        **overrides,
    )
    engine = make_engine(database_url)
    create_schema(engine)
    courier = courier_for(settings)
    try:
        async with build_worker(
            env.client, settings, engine, courier, task_queue=settings.task_queue
        ):
            yield Lifecycle(
                env,
                settings,
                engine,
                Keys(settings.secret_bytes()),
                AccountCases(env.client, engine, settings),
                mail,
            )
    finally:
        await courier.aclose()
        engine.dispose()
