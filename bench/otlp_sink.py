"""A tiny OTLP/HTTP receiver for traces: accepts `POST /v1/traces` (protobuf, gzip or not),
counts the spans it receives, by service, and answers 200 like a collector would.

`python -m bench compare --traces` points the stack's API and worker at one
(`OTEL_EXPORTER_OTLP_ENDPOINT`), so the cost of tracing is measured with a real exporter
doing real requests; tests use it to read what a process exported.
"""

from __future__ import annotations

import gzip
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

TRACES_PATH = "/v1/traces"


class OtlpSink:
    """Start with `with OtlpSink() as sink:`; `sink.url` is the OTLP endpoint (the base:
    exporters add /v1/traces)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self.spans: Counter[str] = Counter()  # by service.name
        self.names: Counter[tuple[str, str]] = Counter()  # by (service.name, span name)
        self.requests = 0
        self.bytes = 0
        self.rejected = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if self.path != TRACES_PATH:
                    sink._reject()
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                sink._received(body, length)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> OtlpSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OtlpSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def total(self) -> int:
        with self._lock:
            return sum(self.spans.values())

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.spans)

    def _reject(self) -> None:
        with self._lock:
            self.rejected += 1

    def _received(self, body: bytes, length: int) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self._lock:
            self.requests += 1
            self.bytes += length
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans[service] += 1
                        self.names[(service, span.name)] += 1
