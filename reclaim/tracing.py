"""OpenTelemetry traces: from the HTTP request through the workflow to each activity.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set: then
no tracer provider exists, the API has no tracing middleware and the Temporal client no
tracing interceptor, and nothing of OpenTelemetry's SDK is even imported.

On, each process (`reclaim-api`, `reclaim-worker`) has a tracer provider of its own (not the
global one) that batches spans to an OTLP/HTTP exporter. The SDK reads the standard
variables itself: `OTEL_TRACES_SAMPLER` and `_ARG`, `OTEL_EXPORTER_OTLP_*` (headers, timeout,
compression, certificates), `OTEL_BSP_*`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`.

Every span goes through `reclaim.tracing_export.PrivateSpans` before it leaves the process:
URLs lose their query strings (pages take `?proof=` and `?token=`), and the client's address
and user agent are dropped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reclaim.settings import CannotStart

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from temporalio.client import Client
    from temporalio.contrib.opentelemetry import TracingInterceptor
    from temporalio.worker import WorkflowRunner

API = "reclaim-api"
WORKER = "reclaim-worker"

# Requests that are not worth a trace: probes and scrapes.
UNTRACED_PATHS = "/healthz$,/readyz$,/metrics$"


class TracingSettingsError(CannotStart):
    """The OTEL_* variables ask for something Reclaim's tracing cannot do."""


def configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces: an OTLP endpoint is set, and neither
    OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none turns them off."""
    env = os.environ if environ is None else environ
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint or not endpoint.strip():
        return False
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return _exporter(env) != "none"


def _exporter(env: Mapping[str, str]) -> str:
    # Empty counts as unset (docker-compose passes unset variables through as empty).
    return (env.get("OTEL_TRACES_EXPORTER") or "otlp").strip().lower()


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Refuse, in one line, OTEL_* settings that would silently export nothing."""
    env = os.environ if environ is None else environ
    if not configured(env):
        return
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = env.get(name, "").strip()
        if protocol:
            if protocol != "http/protobuf":
                raise TracingSettingsError(
                    f"{name}={protocol}: Reclaim exports traces over OTLP/HTTP "
                    "(http/protobuf) only; point OTEL_EXPORTER_OTLP_ENDPOINT at the "
                    "collector's HTTP port (usually 4318)"
                )
            break
    exporter = _exporter(env)
    if exporter != "otlp":
        raise TracingSettingsError(
            f"OTEL_TRACES_EXPORTER={exporter}: Reclaim exports traces over OTLP only "
            "(or none, to turn them off)"
        )


@dataclass(frozen=True)
class Tracing:
    """One process's tracer provider, and how the API and Temporal use it."""

    provider: TracerProvider

    def interceptor(self) -> TracingInterceptor:
        """For `Client.connect`: spans for starts, updates, queries and signals, and, in a
        worker using that client, for workflows (RunWorkflow, HandleUpdate, ...) and each
        activity (RunActivity:<name>). The context travels as `traceparent` alone."""
        from reclaim.tracing_export import TraceparentInterceptor

        return TraceparentInterceptor(self.provider.get_tracer("reclaim.temporal"))

    def instrument(self, app: FastAPI) -> None:
        """One server span per request, named by method and route template
        (`POST /v1/recovery/{case_id}/code`); an incoming `traceparent` is its parent."""
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.metrics import NoOpMeterProvider

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            meter_provider=NoOpMeterProvider(),  # the API's metrics are /metrics
            excluded_urls=UNTRACED_PATHS,
            exclude_spans=["receive", "send"],
        )

    def shutdown(self) -> None:
        """Export what is still buffered, then stop."""
        self.provider.shutdown()


def tracing_with(service: str, exporter: SpanExporter, *, batch: bool = True) -> Tracing:
    """A provider for `service` exporting through `exporter` (what it exports is scrubbed
    by `PrivateSpans` first): batched, or one span at a time (tests)."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    from reclaim.tracing_export import PrivateSpans

    attributes: dict[str, str] = {"service.namespace": "reclaim", "service.version": _version()}
    # OTEL_SERVICE_NAME wins over the process's own name, as the specification says.
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = service
    # The sampler comes from OTEL_TRACES_SAMPLER (default: parentbased_always_on).
    provider = TracerProvider(resource=Resource.create(attributes))
    private = PrivateSpans(exporter)
    processor = BatchSpanProcessor(private) if batch else SimpleSpanProcessor(private)
    provider.add_span_processor(processor)
    return Tracing(provider)


def from_env(service: str) -> Tracing | None:
    """The process's tracing as the OTEL_* variables say: None (off) unless an OTLP endpoint
    is set."""
    if not configured():
        return None
    check_environment()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return tracing_with(service, OTLPSpanExporter())


def traced(client: Client) -> bool:
    """Whether `client` carries the tracing interceptor (a worker built on it then traces
    workflows and activities)."""
    if "temporalio.contrib.opentelemetry" not in sys.modules:  # never imported: off
        return False
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return any(isinstance(i, TracingInterceptor) for i in client.config()["interceptors"])


def workflow_runner() -> WorkflowRunner:
    """The workflow sandbox with OpenTelemetry passed through (imported once, outside, like
    temporalio itself), as the SDK's OpenTelemetry integration asks."""
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("opentelemetry")
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reclaim")
    except PackageNotFoundError:
        return "unknown"
