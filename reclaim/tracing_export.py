"""What leaves the process with tracing on (imported only then, see reclaim/tracing.py):
`PrivateSpans` scrubs every span before the real exporter sees it, and
`TraceparentInterceptor` puts the trace context, and nothing else, in Temporal's headers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from temporalio.contrib.opentelemetry import TracingInterceptor

# Attributes that hold a URL or a path with its query string: cut at the "?" (pages take
# `?proof=` and `?token=`).
URL_ATTRIBUTES = frozenset({"http.url", "url.full", "http.target"})
# Attributes that never leave the process: the query string alone, and who the client is
# (an IP address and a user agent are personal data).
DROPPED_ATTRIBUTES = frozenset(
    {
        "url.query",
        "net.peer.ip",
        "net.peer.port",
        "net.sock.peer.addr",
        "net.sock.peer.port",
        "client.address",
        "client.port",
        "network.peer.address",
        "network.peer.port",
        "http.client_ip",
        "http.user_agent",
        "user_agent.original",
        "user_agent.synthetic.type",
    }
)


def scrubbed_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """The attributes without the client's identity, and URLs without their query."""
    kept: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if key in DROPPED_ATTRIBUTES:
            continue
        if key in URL_ATTRIBUTES and isinstance(value, str):
            value = value.split("?", 1)[0].split("#", 1)[0]
        kept[key] = value
    return kept


class PrivateSpans(SpanExporter):
    """A span exporter that scrubs each span (`scrubbed_attributes`, on its events too)
    before handing it to the real exporter. It runs in the batch processor's thread, off
    the request's path."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([self._scrub(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    @staticmethod
    def _scrub(span: ReadableSpan) -> ReadableSpan:
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=scrubbed_attributes(span.attributes),
            events=[
                Event(e.name, scrubbed_attributes(e.attributes), e.timestamp) for e in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )


class TraceparentInterceptor(TracingInterceptor):
    """The SDK's interceptor, carrying only the W3C `traceparent` to workflows and activities.

    Its header is not encrypted by the payload codec: it lands in workflow history in clear.
    The SDK's default also carries `baggage`, which an API caller sets at will (a host
    application may put a user's address there): never into history. The workflow side
    propagates what it was given, so it carries no baggage either."""

    def __init__(self, tracer: Tracer) -> None:
        super().__init__(tracer)
        self.text_map_propagator = TraceContextTextMapPropagator()
