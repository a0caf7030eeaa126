"""Connecting to Temporal, and registering the search attributes Reclaim's workflows use."""

from __future__ import annotations

import asyncio
import time

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from reclaim import search_attributes
from reclaim.codec import data_converter
from reclaim.settings import Settings


async def connect(
    settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None
) -> Client:
    """A client whose every payload is encrypted by the codec (reclaim/codec.py)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        lazy=lazy,
        data_converter=data_converter(settings.codec()),
        runtime=runtime,
    )


def worker_runtime(settings: Settings) -> Runtime | None:
    """A runtime exporting the SDK's metrics (workflow and activity counts and latencies,
    task queue polls, sticky cache) for Prometheus at `RECLAIM_WORKER_METRICS_ADDRESS`."""
    if not settings.worker_metrics_address:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=settings.worker_metrics_address),
            global_tags={"service": "reclaim-worker"},
        )
    )


async def connect_when_up(
    settings: Settings, wait_up_to: float = 60.0, runtime: Runtime | None = None
) -> Client:
    """Connect, waiting for the server to answer (a worker may start before it)."""
    deadline = time.monotonic() + wait_up_to
    while True:
        try:
            return await connect(settings, runtime=runtime)
        except RuntimeError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.5)


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the attributes that are missing; return their names. Safe to run at every
    start: a server restarted on an existing database keeps what it had."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as err:
        # The time-skipping test server can add attributes but not list them.
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {
        key.name: IndexedValueType.ValueType(
            SearchAttributeIndexedValueType(key.indexed_value_type)
        )
        for key in search_attributes.ALL
        if key.name not in known
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)
