"""Running Reclaim: `dev` (everything on this machine), `worker`, `api`, and the container
health checks."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from reclaim.cli.common import fail, settings_for_service
from reclaim.settings import load_settings


def dev() -> None:
    """Everything on this machine: Temporal dev server + Web UI, SMTP sink, worker, API."""
    from reclaim.devstack import DevStack

    settings = settings_for_service().model_copy(update={"dev_mode": True})
    raise typer.Exit(DevStack(settings).run())


def worker() -> None:
    """Run one worker: every workflow and activity on the task queue."""
    from worker import run_worker

    settings = settings_for_service()
    settings.secret_bytes()
    asyncio.run(run_worker(settings))


def api() -> None:
    """Run the HTTP API (uvicorn)."""
    import uvicorn

    from reclaim.directory import check_settings
    from reclaim.logs import uvicorn_log_config
    from reclaim.tracing import check_environment

    settings = settings_for_service()
    settings.secret_bytes()
    check_settings(settings)  # settings that cannot work are refused before uvicorn starts
    check_environment()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        log_config=uvicorn_log_config(),
        proxy_headers=True,
    )


def healthcheck(
    what: Annotated[str, typer.Argument(metavar="api|worker")],
    timeout: Annotated[float, typer.Option(min=0.1)] = 5,
) -> None:
    """For container health checks, on the machine that runs the process: `api` answers when
    its /healthz says the database and Temporal answer; `worker` when its SDK metrics
    (RECLAIM_WORKER_METRICS_ADDRESS) show it polling its task queue. Exit 1 saying why."""
    from reclaim.health import api_health, worker_health

    settings = load_settings()
    checks = {"api": api_health, "worker": worker_health}
    if what not in checks:
        raise typer.BadParameter("api or worker", param_hint="WHAT")
    problem = checks[what](settings, timeout)
    if problem:
        raise fail(f"{what} unhealthy: {problem}")
    typer.echo(f"{what} healthy")


def register(app: typer.Typer) -> None:
    for command in (dev, worker, api, healthcheck):
        app.command()(command)
