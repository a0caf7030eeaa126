"""Connecting to Temporal, and registering the search attributes Reclaim's workflows use.

Every client and worker connects through `connect`, so one set of `RECLAIM_TEMPORAL_*`
variables takes the same code from the dev server to a self-hosted cluster behind TLS or to
Temporal Cloud (API key or mTLS).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from reclaim.settings import CannotStart, Settings
from reclaim.temporal import search_attributes
from reclaim.temporal.codec import data_converter
from reclaim.temporal.deadline import DeadlineInterceptor

if TYPE_CHECKING:
    from reclaim.tracing import Tracing


class TemporalSettingsError(CannotStart):
    """The RECLAIM_TEMPORAL_* variables do not make a usable connection."""


@dataclass(frozen=True)
class ConnectOptions:
    """What `Client.connect` gets from the settings, besides the data converter."""

    target_host: str
    namespace: str
    api_key: str | None
    tls: bool | TLSConfig


def connect_options(settings: Settings) -> ConnectOptions:
    """The connection the settings describe. An API key or any TLS file implies TLS (Temporal
    Cloud wants it) unless RECLAIM_TEMPORAL_TLS=false says otherwise, e.g. for a local proxy
    that terminates TLS. A combination that cannot work is refused before any connection."""
    s = settings
    cert, key, ca = s.temporal_tls_cert, s.temporal_tls_key, s.temporal_tls_ca
    if (cert is None) != (key is None):
        given, missing = ("CERT", "KEY") if cert is not None else ("KEY", "CERT")
        raise TemporalSettingsError(
            f"RECLAIM_TEMPORAL_TLS_{given} is set but RECLAIM_TEMPORAL_TLS_{missing} is not: a "
            "client certificate for mTLS needs both the certificate and its private key"
        )
    tls_details = {
        "RECLAIM_TEMPORAL_TLS_CERT": cert,
        "RECLAIM_TEMPORAL_TLS_KEY": key,
        "RECLAIM_TEMPORAL_TLS_CA": ca,
        "RECLAIM_TEMPORAL_TLS_SERVER_NAME": s.temporal_tls_server_name,
    }
    named = [name for name, value in tls_details.items() if value is not None]
    if s.temporal_tls is False and named:
        raise TemporalSettingsError(
            f"RECLAIM_TEMPORAL_TLS is false but {', '.join(named)} is set: remove it, or turn "
            "TLS on"
        )
    api_key = s.temporal_api_key.get_secret_value() if s.temporal_api_key else None
    use_tls = s.temporal_tls if s.temporal_tls is not None else bool(named or api_key)
    tls: bool | TLSConfig = use_tls
    if use_tls and named:
        tls = TLSConfig(
            client_cert=_pem(cert, "RECLAIM_TEMPORAL_TLS_CERT"),
            client_private_key=_pem(key, "RECLAIM_TEMPORAL_TLS_KEY"),
            server_root_ca_cert=_pem(ca, "RECLAIM_TEMPORAL_TLS_CA"),
            domain=s.temporal_tls_server_name,
        )
    return ConnectOptions(
        target_host=s.temporal_address,
        namespace=s.temporal_namespace,
        api_key=api_key,
        tls=tls,
    )


def _pem(path: Path | None, variable: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as err:
        raise TemporalSettingsError(
            f"{variable}={path} cannot be read: {err.strerror or err}"
        ) from err


async def connect(
    settings: Settings,
    *,
    lazy: bool = False,
    runtime: Runtime | None = None,
    tracing: Tracing | None = None,
) -> Client:
    """A client whose every payload is encrypted by the codec (reclaim/temporal/codec.py),
    whose calls end by the deadline of the API request being served, if any
    (reclaim/temporal/deadline.py). With `tracing`, it carries the SDK's tracing interceptor:
    its calls get spans whose context travels in a header to the workflow and, in a worker
    built on it, to each activity."""
    return await _connect(
        connect_options(settings), settings, lazy=lazy, runtime=runtime, tracing=tracing
    )


async def _connect(
    options: ConnectOptions,
    settings: Settings,
    *,
    lazy: bool,
    runtime: Runtime | None,
    tracing: Tracing | None = None,
) -> Client:
    return await Client.connect(
        options.target_host,
        namespace=options.namespace,
        api_key=options.api_key,
        tls=options.tls,
        lazy=lazy,
        data_converter=data_converter(settings.codec()),
        runtime=runtime,
        interceptors=[
            *([tracing.interceptor()] if tracing is not None else []),
            DeadlineInterceptor(),
        ],
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
    settings: Settings,
    wait_up_to: float = 60.0,
    runtime: Runtime | None = None,
    tracing: Tracing | None = None,
) -> Client:
    """Connect, waiting for the server to answer (a worker may start before it). Settings
    that cannot work are refused at once, not retried."""
    options = connect_options(settings)
    deadline = time.monotonic() + wait_up_to
    while True:
        try:
            return await _connect(options, settings, lazy=False, runtime=runtime, tracing=tracing)
        except RuntimeError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.5)


async def ensure_namespace(client: Client, namespace: str, retention_days: int) -> bool:
    """Register the namespace if the cluster does not have it; True when it was created.
    For a self-hosted cluster: Temporal Cloud makes namespaces in Cloud, not through here."""
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        return False
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace,
                description="Reclaim's recovery cases",
                workflow_execution_retention_period=Duration(seconds=retention_days * 86_400),
            )
        )
    except RPCError as err:  # another setup got there first
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        return False
    return True


async def register_search_attributes(
    client: Client, namespace: str, *, wait_up_to: float = 0
) -> list[str]:
    """Register the attributes that are missing; return their names. Safe to run at every
    start: a server restarted on an existing database keeps what it had. A namespace just
    registered takes a few seconds to be known everywhere: `wait_up_to` waits for it."""
    deadline = time.monotonic() + wait_up_to
    while True:
        try:
            return await _register_search_attributes(client, namespace)
        except RPCError as err:
            retry = err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.UNAVAILABLE)
            if not retry or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(1)


async def _register_search_attributes(client: Client, namespace: str) -> list[str]:
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
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
        except RPCError as err:
            if err.status not in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED):
                raise
            raise SearchAttributesRefused(
                f"the server refused to add search attributes ({err.message}). On Temporal "
                "Cloud, add them in the Cloud UI or with: "
                + tcld_command(namespace, sorted(missing))
            ) from err
    return sorted(missing)


class SearchAttributesRefused(CannotStart):
    pass


_TYPE_NAMES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
}


def tcld_command(namespace: str, names: list[str] | None = None) -> str:
    """The `tcld` command that adds Reclaim's search attributes to a Temporal Cloud namespace."""
    keys = [key for key in search_attributes.ALL if names is None or key.name in names]
    flags = " ".join(f'--sa "{key.name}={_TYPE_NAMES[key.indexed_value_type]}"' for key in keys)
    return f"tcld namespace search-attributes add -n {namespace} {flags}"
