"""One recovery, traced: the spans a tracing backend receives from the API and the worker,
as an operator would read them (one trace from the request that opened the case through the
workflow to each activity), and nothing private in any of them."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from reclaim.notify.outbox import text_of
from reclaim.tracing import API, WORKER, tracing_with
from tests.conftest import StackParts
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import running_stack

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"
PROOF_LINK = re.compile(r"/recover/(rc_[\w-]+)\?proof=([\w-]+)")
CALLER_TRACE = 0x5EC0DE5EC0DE5EC0DE5EC0DE5EC0DE01
CALLER_SPAN = 0xCA11E2CA11E2CA11


async def spans_once(
    exporter: InMemorySpanExporter, names: set[str], timeout: float = 20
) -> tuple[ReadableSpan, ...]:
    """The finished spans, once every one of `names` is among them."""
    deadline = time.monotonic() + timeout
    while True:
        spans = exporter.get_finished_spans()
        missing = names - {span.name for span in spans}
        if not missing:
            return spans
        assert time.monotonic() < deadline, f"never exported: {sorted(missing)}"
        await asyncio.sleep(0.05)


def one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"{name}: {len(found)} spans"
    return found[0]


def texts(span: ReadableSpan) -> Iterator[str]:
    """Everything a span carries to the backend, as text."""
    yield span.name
    yield str(span.status.description or "")
    for attributes in (
        span.attributes,
        span.resource.attributes,
        *(event.attributes for event in span.events),
        *(link.attributes for link in span.links),
    ):
        for key, value in (attributes or {}).items():
            yield f"{key}={value}"


async def test_one_recovery_is_one_trace_from_the_request_to_each_activity_with_nothing_private(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    exporter = InMemorySpanExporter()
    # Each process has its own provider; both export, span by span, to the same place.
    api = tracing_with(API, exporter, batch=False)
    worker = tracing_with(WORKER, exporter, batch=False)
    settings, engine = stack_parts()
    async with running_stack(
        settings, engine, mail, sms, api_tracing=api, worker_tracing=worker
    ) as stack:
        await stack.add_account("jane", "jane@example.com", "+14155550123", OLD)
        # The caller (a gateway, the host application) has a trace of its own, and baggage.
        opening = await stack.http.post(
            "/v1/recovery",
            json={"identifier": "jane@example.com"},
            headers={
                "traceparent": f"00-{CALLER_TRACE:032x}-{CALLER_SPAN:016x}-01",
                "baggage": "user=jane%40example.com",
            },
        )
        assert opening.status_code == 202
        case_id = opening.json()["case_id"]
        code = await mail.code_for("jane@example.com")
        # The mail's link, with the code's proof in its query string, opened as a person would.
        link = PROOF_LINK.search(text_of(mail.to("jane@example.com")[0]))
        assert link is not None and link.group(1) == case_id
        proof = link.group(2)
        opened = await stack.http.get(f"/recover/{case_id}?proof={proof}")
        assert opened.status_code == 303
        granted = await stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": code})
        token = granted.json()["reset_token"]
        done = await stack.http.post(
            f"/v1/recovery/{case_id}/password", json={"reset_token": token, "new_password": NEW}
        )
        assert done.json()["state"] == "completed"
        spans = await spans_once(
            exporter,
            {
                "POST /v1/recovery",
                "POST /v1/recovery/{case_id}/code",
                "POST /v1/recovery/{case_id}/password",
                "RunActivity:issue_code",
                "RunActivity:apply_reset",
                "CompleteWorkflow:RecoveryWorkflow",
            },
        )
        # Probes are not traced.
        assert (await stack.http.get("/healthz")).status_code == 200
        # Only the trace context travels in the workflow's history (in clear), not baggage.
        history = await stack.client.get_workflow_handle(case_id).fetch_history()
        headers = [
            payload.data
            for event in history.events
            for field in (
                event.workflow_execution_started_event_attributes.header,
                event.activity_task_scheduled_event_attributes.header,
                event.workflow_execution_update_accepted_event_attributes.accepted_request.input.header,
            )
            for payload in field.fields.values()
        ]
        assert headers and all(b"traceparent" in data for data in headers)
        assert not any(b"baggage" in data or b"jane" in data for data in headers)
    api.shutdown()
    worker.shutdown()

    by_id = {span.context.span_id: span for span in spans}
    opened_case = one(spans, "POST /v1/recovery")
    trace = opened_case.context.trace_id
    service = {span.name: span.resource.attributes["service.name"] for span in spans}
    assert service["POST /v1/recovery"] == "reclaim-api"
    assert service["StartWorkflow:RecoveryWorkflow"] == "reclaim-api"
    assert service["RunWorkflow:RecoveryWorkflow"] == "reclaim-worker"
    assert service["RunActivity:apply_reset"] == "reclaim-worker"

    # The request that opened the case joined its caller's trace (traceparent honoured), and
    # that trace holds the workflow's start, its run, both updates it handled, and every
    # activity it ran.
    assert trace == CALLER_TRACE
    assert opened_case.parent is not None and opened_case.parent.span_id == CALLER_SPAN
    start = one(spans, "StartWorkflow:RecoveryWorkflow")
    assert start.parent is not None and start.parent.span_id == opened_case.context.span_id
    run = one(spans, "RunWorkflow:RecoveryWorkflow")
    assert run.parent is not None and run.parent.span_id == start.context.span_id
    for name in (
        "HandleUpdate:submit_code",
        "HandleUpdate:set_password",
        "RunActivity:issue_code",
        "RunActivity:apply_reset",
        "CompleteWorkflow:RecoveryWorkflow",
    ):
        assert one(spans, name).context.trace_id == trace, name
    for activity in ("issue_code", "apply_reset"):
        ran = one(spans, f"RunActivity:{activity}")
        assert ran.parent is not None
        assert by_id[ran.parent.span_id].name == f"StartActivity:{activity}"

    # Each later request has a trace of its own, linked from the update the workflow ran.
    for route, update in (("code", "submit_code"), ("password", "set_password")):
        request = one(spans, f"POST /v1/recovery/{{case_id}}/{route}")
        sent = one(spans, f"StartWorkflowUpdate:{update}")
        assert sent.parent is not None and sent.parent.span_id == request.context.span_id
        handled = one(spans, f"HandleUpdate:{update}")
        assert [link.context.span_id for link in handled.links] == [sent.context.span_id]
        assert request.context.trace_id != trace

    # Named by route template: no case id in any span's name, and nothing untraced.
    names = {span.name for span in spans}
    assert "GET /recover/{case_id}" in names
    assert not any(case_id in name for name in names)
    assert not any("healthz" in name for name in names)

    # Nothing private anywhere: not the code, its proof (it was in the page's query string),
    # the reset token, the address, the phone number, the old or the new password; no
    # client address either.
    everything = [text for span in spans for text in texts(span)]
    for private in (code, proof, token, "jane@example.com", "+14155550123", OLD, NEW):
        leaks = [text for text in everything if private in text]
        assert not leaks, leaks
    assert not any(text.startswith(("net.peer.ip=", "client.address=")) for text in everything)
    page = one(spans, "GET /recover/{case_id}")
    assert page.attributes is not None
    base_url = str(stack.http.base_url).rstrip("/")
    assert page.attributes["http.url"] == f"{base_url}/recover/{case_id}"
