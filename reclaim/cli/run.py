"""Running Reclaim: `dev` (everything on this machine), `worker`, `api`, and the container
health checks."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


def api(
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Server processes sharing the port (default RECLAIM_API_WORKERS, 1).",
        ),
    ] = None,
) -> None:
    """Run the HTTP API (uvicorn): one server process, or `--workers N` sharing the port."""
    import uvicorn

    from reclaim.directory import check_settings
    from reclaim.logs import uvicorn_log_config
    from reclaim.tracing import check_environment

    settings = settings_for_service()
    settings.secret_bytes()
    check_settings(settings)  # settings that cannot work are refused before uvicorn starts
    check_environment()
    count = workers or settings.api_workers
    with _metrics_shared_by(count):
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=settings.api_host,
            port=settings.api_port,
            workers=count,
            log_level=settings.log_level.lower(),
            log_config=uvicorn_log_config(),
            proxy_headers=True,
            forwarded_allow_ips=settings.api_trusted_proxies,
        )


@contextmanager
def _metrics_shared_by(processes: int) -> Iterator[None]:
    """With several processes, each writes its request metrics to a directory of this run's
    own and `/metrics` sums them all, whichever process answers (api/metrics.py). A
    `PROMETHEUS_MULTIPROC_DIR` given by the operator is used as it is."""
    if processes == 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    directory = tempfile.mkdtemp(prefix="reclaim-api-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(directory, ignore_errors=True)


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
