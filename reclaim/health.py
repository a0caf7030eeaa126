"""Health checks for containers (`reclaim healthcheck api|worker`), run next to the process.

Each returns None when healthy, or what is wrong in a few words.
"""

from __future__ import annotations

import httpx

from reclaim.settings import Settings

_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104  (a bind address, read here)


def _local(host: str) -> str:
    return "127.0.0.1" if host in _ANY_ADDRESS else host


def api_health(settings: Settings, timeout: float) -> str | None:
    """The API's own /healthz: 200 when the database and Temporal answer."""
    url = f"http://{_local(settings.api_host)}:{settings.api_port}/healthz"
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as err:
        return f"{url} does not answer ({type(err).__name__})"
    if response.status_code != 200:
        return f"{url} answers {response.status_code} {response.text.strip()}"
    return None


def worker_health(settings: Settings, timeout: float) -> str | None:
    """The worker's SDK metrics show pollers on its task queue: it is connected to Temporal
    and asking for work (the metrics are served before the worker starts polling)."""
    if not settings.worker_metrics_address:
        return "RECLAIM_WORKER_METRICS_ADDRESS is not set (this check reads the worker's metrics)"
    host, _, port = settings.worker_metrics_address.rpartition(":")
    url = f"http://{_local(host)}:{port}/metrics"
    try:
        response = httpx.get(url, timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as err:
        return f"{url} does not answer ({type(err).__name__})"
    queue = f'task_queue="{settings.task_queue}"'
    for line in response.text.splitlines():
        if line.startswith("temporal_num_pollers{") and queue in line:
            if float(line.rsplit(" ", 1)[1]) > 0:
                return None
    return f"no poller on task queue {settings.task_queue} yet"
