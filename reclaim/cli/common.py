"""What every `reclaim` command shares: settings and logging, the database, the services, and
how a domain error becomes one line on stderr."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import typer

from reclaim.contracts import Actor, ActorKind
from reclaim.settings import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from reclaim.services import Services

T = TypeVar("T")


class Output:
    """`-v` on the command line: an operator's command prints its answer and nothing else
    unless it fails or this is set."""

    verbose = False


def settings_for_service() -> Settings:
    """For the long-running processes (dev, worker, api): logs at RECLAIM_LOG_LEVEL."""
    from reclaim.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    return settings


def settings_for_command() -> Settings:
    """For an operator's command: warnings and errors only, unless `-v`."""
    from reclaim.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level if Output.verbose else "WARNING")
    return settings


def fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


def with_dev_secret(settings: Settings) -> Settings:
    """An operator's command next to `reclaim dev` uses the secret it keeps, unless
    RECLAIM_SECRET_KEY says otherwise."""
    if settings.secret_key is None and settings.secret_file.exists():
        return settings.model_copy(update={"dev_mode": True})
    return settings


def engine_for(settings: Settings) -> Engine:
    """The database, at the schema revision this release needs (else a one-line refusal)."""
    from reclaim.store.engine import make_engine
    from reclaim.store.migrations import require_current

    engine = make_engine(settings.resolved_database_url)
    require_current(engine)
    return engine


def with_services(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    """Run `work` with this deployment's services (Temporal connected on first use), and put
    what goes wrong in one line: a missing case, a refusal, Temporal or a worker away."""
    from reclaim.directory import CapabilityMissing, DirectoryUnavailable
    from reclaim.errors import DomainError, Unavailable
    from reclaim.services import build_services
    from reclaim.temporal.connection import connect

    settings = with_dev_secret(settings)
    engine = engine_for(settings)

    async def run() -> T:
        client = await connect(settings, lazy=True)
        services = build_services(settings, client, engine)
        try:
            return await work(services)
        finally:
            await services.aclose()

    try:
        return asyncio.run(run())
    except Unavailable as err:
        raise fail(
            f"Temporal at {settings.temporal_address} (or a worker) is not answering: start it "
            "(reclaim dev, or reclaim worker) and retry"
        ) from err
    except DirectoryUnavailable as err:
        raise fail(f"the account directory is not answering: {err}") from err
    except (DomainError, CapabilityMissing) as err:
        raise fail(str(err)) from err
    finally:
        engine.dispose()


def operator(by: str | None) -> Actor:
    return Actor(ActorKind.OPERATOR, by or getpass.getuser())


def when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC" if at else "-"
