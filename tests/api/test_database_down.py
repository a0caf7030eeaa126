"""Reclaim's own database down, restarting or unreachable: the API answers 503 with
`Retry-After` (JSON `temporarily_unavailable` for programs, the "please try again" page for a
browser), never a 500 or a trace; a mistake in our SQL is still a 500; and once the database
answers again, so does the API."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from starlette.types import ASGIApp, Receive, Scope, Send
from structlog.testing import capture_logs
from temporalio.client import Client

from api.app import create_app
from reclaim.services import build_services
from reclaim.settings import Settings
from reclaim.store.engine import database_unreachable, make_engine
from reclaim.store.migrations import create_schema
from tests.conftest import free_port
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import serve_api, stack_settings

# A staff request: its key is looked up in the database before anything else.
STAFF_QUEUE = "/v1/staff/cases"
# A page whose flash cookie is read from the database (`reclaim.store.flash`).
FLASHED_PAGE = "/recover"


def _staff_key() -> dict[str, str]:
    return {"Authorization": f"Bearer rk_7_{secrets.token_urlsafe(24)}"}


def _browser_with_flash() -> dict[str, str]:
    return {"Accept": "text/html", "Cookie": f"reclaim_flash={secrets.token_urlsafe(16)}"}


@pytest.fixture
def settings(tmp_path: Path, mail: MailSink, sms: SmsGateway) -> Settings:
    return stack_settings(
        temporal=f"127.0.0.1:{free_port()}",  # not needed by the requests below
        database_url=f"sqlite:///{tmp_path / 'reclaim.db'}",
        state_dir=tmp_path,
        mail=mail,
        sms=sms,
        temporal_rpc_timeout=2,
    )


@asynccontextmanager
async def api_on(settings: Settings, engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    """The API behind uvicorn, its services on `engine`."""
    client = await Client.connect(settings.temporal_address, lazy=True)
    services = build_services(settings, client, engine)
    try:
        async with (
            serve_api(settings, services) as base_url,
            httpx.AsyncClient(base_url=base_url) as http,
        ):
            yield http
    finally:
        await services.aclose()
        engine.dispose()


def assert_unavailable_json(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "temporarily_unavailable"
    assert "database" in response.json()["message"]
    assert_nothing_inside(response)


def assert_unavailable_page(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert response.headers["content-type"].startswith("text/html")
    assert "Please try again" in response.text
    assert "We cannot answer right now" in response.text
    assert_nothing_inside(response)


def assert_nothing_inside(response: httpx.Response) -> None:
    for inside in ("Traceback", "OperationalError", "SELECT", "psycopg", "sqlite", "127.0.0.1"):
        assert inside not in response.text


async def test_a_postgresql_server_nobody_answers_for_gives_503_to_programs_and_people(
    settings: Settings,
):
    down = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/reclaim")
    async with api_on(settings, down) as http:
        with capture_logs() as logged:
            staff = await http.get(STAFF_QUEUE, headers=_staff_key())
            opened = await http.post("/v1/recovery", json={"identifier": "jane@example.com"})
            page = await http.get(FLASHED_PAGE, headers=_browser_with_flash())
        health = await http.get("/healthz")

    assert_unavailable_json(staff)
    assert_unavailable_json(opened)
    assert_unavailable_page(page)
    assert health.status_code == 503
    assert health.json()["database"] == "unavailable (OperationalError)"
    assert [(e["log_level"], e["event"], e["error"], e["path"]) for e in logged] == [
        ("warning", "database_unavailable", "OperationalError", STAFF_QUEUE),
        ("warning", "database_unavailable", "OperationalError", "/v1/recovery"),
        ("warning", "database_unavailable", "OperationalError", FLASHED_PAGE),
    ]


async def test_a_sqlite_file_that_cannot_be_opened_gives_503_until_it_can(
    settings: Settings, tmp_path: Path
):
    """The database's file is not there to open (a volume not mounted yet), then it is: the
    same API, with the same engine, answers again without a restart."""
    path = tmp_path / "elsewhere.db"
    path.mkdir()  # a directory where the file should be: SQLite cannot open it
    engine = make_engine(f"sqlite:///{path}")
    async with api_on(settings, engine) as http:
        down_json = await http.get(STAFF_QUEUE, headers=_staff_key())
        down_page = await http.get(FLASHED_PAGE, headers=_browser_with_flash())

        path.rmdir()
        create_schema(make_engine(f"sqlite:///{path}"))
        back_json = await http.get(STAFF_QUEUE, headers=_staff_key())
        back_page = await http.get(FLASHED_PAGE, headers=_browser_with_flash())

    assert_unavailable_json(down_json)
    assert_unavailable_page(down_page)
    assert back_json.status_code == 401, back_json.text  # an unknown key, said as usual
    assert back_json.json()["error"] == "invalid_key"
    assert back_page.status_code == 200, back_page.text


async def test_a_mistake_in_our_sql_is_still_a_500(settings: Settings, tmp_path: Path):
    """A database that answers, without the tables (SQLite: an OperationalError too, "no such
    table"): not an outage, ours to fix."""
    empty = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    async with api_on(settings, empty) as http:
        staff = await http.get(STAFF_QUEUE, headers=_staff_key())
        page = await http.get(FLASHED_PAGE, headers=_browser_with_flash())

    assert staff.status_code == 500
    assert staff.json()["error"] == "internal_error"
    assert "Retry-After" not in staff.headers
    assert page.status_code == 500
    assert "Retry-After" not in page.headers


class DatabaseInAMiddleware:
    """A middleware that reads the database on every request, and finds it down."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raise _wrapped(psycopg.OperationalError("server closed the connection unexpectedly"))
        await self.app(scope, receive, send)


async def test_the_database_down_under_a_middleware_is_a_503_too(
    settings: Settings, tmp_path: Path
):
    """Outside the routes FastAPI's handlers are not called: the last resort answers."""
    engine = make_engine(f"sqlite:///{tmp_path / 'reclaim.db'}")
    create_schema(engine)
    client = await Client.connect(settings.temporal_address, lazy=True)
    services = build_services(settings, client, engine)
    app = create_app(settings, services)
    app.add_middleware(DatabaseInAMiddleware)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url=settings.public_url) as http,
        ):
            with capture_logs() as logged:
                api = await http.get(STAFF_QUEUE, headers=_staff_key())
                page = await http.get(FLASHED_PAGE, headers=_browser_with_flash())
    finally:
        await services.aclose()
        engine.dispose()

    assert_unavailable_json(api)
    assert_unavailable_page(page)
    assert [e["event"] for e in logged] == ["database_unavailable"] * 2


def _wrapped(orig: BaseException, kind: type[OperationalError] = OperationalError) -> Exception:
    return kind("SELECT 1", {}, orig)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(psycopg.OperationalError("connection refused")),
        _wrapped(psycopg.OperationalError("server closed the connection unexpectedly")),
        _wrapped(psycopg.errors.AdminShutdown("terminating connection")),
        _wrapped(psycopg.errors.CannotConnectNow("the database system is starting up")),
        _wrapped(sqlite3.OperationalError("database is locked")),
        _wrapped(sqlite3.OperationalError("unable to open database file")),
        psycopg.OperationalError("connection refused"),
    ],
    ids=repr,
)
def test_what_says_the_database_does_not_answer(error: Exception):
    assert database_unreachable(error)


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(sqlite3.OperationalError("no such table: staff_member")),
        _wrapped(psycopg.errors.UndefinedTable("relation does not exist"), ProgrammingError),
        _wrapped(psycopg.errors.UniqueViolation("duplicate key"), IntegrityError),
        _wrapped(psycopg.errors.SyntaxError("syntax error"), ProgrammingError),
        ValueError("connection refused"),
    ],
    ids=repr,
)
def test_what_is_our_own_mistake(error: Exception):
    assert not database_unreachable(error)
