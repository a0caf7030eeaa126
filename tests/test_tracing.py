"""Tracing is off and free unless an OTLP endpoint is set; set, each process exports its
spans over OTLP/HTTP as the standard OTEL_* variables say."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.contrib.opentelemetry import TracingInterceptor

from api.app import create_app
from bench.otlp_sink import OtlpSink
from reclaim.settings import Settings
from reclaim.store.engine import make_engine
from reclaim.store.migrations import create_schema
from reclaim.tracing import (
    API,
    WORKER,
    TracingSettingsError,
    check_environment,
    configured,
    from_env,
    tracing_with,
)
from tests.stack import FAST_ARGON2, TEST_SECRET

OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_TRACES_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
)


@pytest.fixture(autouse=True)
def no_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    with OtlpSink() as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'reclaim.db'}"
    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    # Temporal is never reached: the API's client connects lazily.
    return Settings(
        secret_key=TEST_SECRET,
        state_dir=tmp_path,
        database_url=url,
        temporal_address="127.0.0.1:9",
        public_url="http://reclaim",  # the address the in-process client asks for
        **FAST_ARGON2,
    )


def otel_middleware(app: FastAPI) -> list[str]:
    """The OpenTelemetry middleware in the app's stack, as uvicorn would run it."""
    found: list[str] = []
    layer: Any = app.build_middleware_stack()
    while layer is not None:
        if type(layer).__module__.startswith("opentelemetry"):
            found.append(type(layer).__name__)
        layer = getattr(layer, "app", None)
    return found


def wait_for_spans(sink: OtlpSink, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while sink.total() < count:
        assert time.monotonic() < deadline, f"{sink.total()} spans, not {count}"
        time.sleep(0.02)


def test_without_an_endpoint_tracing_is_off() -> None:
    assert not configured()
    assert from_env(API) is None and from_env(WORKER) is None
    check_environment()  # nothing to refuse


def test_variables_passed_through_empty_count_as_unset() -> None:
    """As docker-compose passes `${OTEL_...:-}` when .env does not set them."""
    empty = {"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_TRACES_EXPORTER": ""}
    assert not configured(empty)
    on = {**empty, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert configured(on)
    check_environment({**on, "OTEL_EXPORTER_OTLP_PROTOCOL": ""})


def test_off_a_process_does_not_even_load_the_sdk(settings: Settings) -> None:
    """The API app and the worker's module, made in a process of their own without OTEL_*."""
    program = (
        "import sys, api.app, worker\n"
        "from reclaim.settings import Settings\n"
        f"api.app.create_app(Settings.model_validate_json({settings.model_dump_json()!r}))\n"
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.sdk', "
        "'opentelemetry.instrumentation', 'temporalio.contrib.opentelemetry'))]\n"
        "print(loaded)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RECLAIM_"))}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "variables",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": " "},
    ],
)
def test_the_standard_variables_can_keep_it_off(variables: dict[str, str]) -> None:
    assert not configured(variables)


async def test_off_the_api_has_no_tracing_middleware_and_its_client_no_interceptor(
    settings: Settings,
) -> None:
    app = create_app(settings)
    assert otel_middleware(app) == []
    async with app.router.lifespan_context(app):
        interceptors = app.state.services.client.config()["interceptors"]
        assert not any(isinstance(i, TracingInterceptor) for i in interceptors)
        assert interceptors  # the control: the request deadline's interceptor is there


async def test_on_the_api_traces_its_requests_and_its_client_calls(
    settings: Settings, sink: OtlpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.url)
    app = create_app(settings)  # the API process's own, as uvicorn's factory makes it
    assert "OpenTelemetryMiddleware" in otel_middleware(app)
    async with app.router.lifespan_context(app):
        interceptors = app.state.services.client.config()["interceptors"]
        assert isinstance(interceptors[0], TracingInterceptor)  # outermost: spans the call
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://reclaim") as http:
            assert (await http.get("/healthz")).status_code in (200, 503)
            assert (await http.get("/recover?token=secret-in-a-query")).status_code == 200
    # Leaving the lifespan exported what was batched, to OTEL_EXPORTER_OTLP_ENDPOINT.
    wait_for_spans(sink, 1)
    assert sink.counts() == {"reclaim-api": 1}
    assert dict(sink.names) == {("reclaim-api", "GET /recover"): 1}  # no probe


def test_on_a_process_exports_over_otlp_http_to_the_endpoint(
    sink: OtlpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.url)
    assert configured()
    tracing = from_env(WORKER)
    assert tracing is not None
    tracing.provider.get_tracer("test").start_span("one").end()
    tracing.shutdown()
    wait_for_spans(sink, 1)
    assert dict(sink.names) == {("reclaim-worker", "one"): 1}


def test_the_traces_endpoint_alone_is_used_as_given(
    sink: OtlpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{sink.url}/v1/traces")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "reclaim-eu-1")
    tracing = from_env(API)
    assert tracing is not None
    tracing.provider.get_tracer("test").start_span("one").end()
    tracing.shutdown()
    wait_for_spans(sink, 1)
    assert dict(sink.names) == {("reclaim-eu-1", "one"): 1}


def test_the_sampler_comes_from_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    exporter = InMemorySpanExporter()
    tracing = tracing_with(API, exporter, batch=False)
    for _ in range(20):
        tracing.provider.get_tracer("test").start_span("sampled out").end()
    assert exporter.get_finished_spans() == ()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "1")
    tracing = tracing_with(API, exporter, batch=False)
    tracing.provider.get_tracer("test").start_span("kept").end()
    assert [span.name for span in exporter.get_finished_spans()] == ["kept"]


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "OTLP/HTTP"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin"),
    ],
)
def test_settings_that_would_export_nothing_stop_the_start(
    variables: dict[str, str], said: str
) -> None:
    environment = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", **variables}
    with pytest.raises(TracingSettingsError, match=said) as refused:
        check_environment(environment)
    assert "\n" not in str(refused.value)  # one line, as every CannotStart


def test_urls_lose_their_query_and_the_client_its_identity() -> None:
    exporter = InMemorySpanExporter()
    tracing = tracing_with(API, exporter, batch=False)
    tracing.provider.get_tracer("test").start_span(
        "GET /recover/{case_id}",
        attributes={
            "http.url": "https://reclaim.example/recover/rc_1?proof=abc#top",
            "url.full": "https://reclaim.example/claims?token=abc",
            "http.target": "/recover/rc_1?proof=abc",
            "url.query": "proof=abc",
            "net.peer.ip": "203.0.113.7",
            "client.address": "203.0.113.7",
            "http.user_agent": "Mozilla/5.0",
            "http.route": "/recover/{case_id}",
        },
    ).end()
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {
        "http.url": "https://reclaim.example/recover/rc_1",
        "url.full": "https://reclaim.example/claims",
        "http.target": "/recover/rc_1",
        "http.route": "/recover/{case_id}",
    }
