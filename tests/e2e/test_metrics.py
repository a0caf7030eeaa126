"""What Prometheus reads from `/metrics` while real cases run: requests by route template,
cases by kind, channel and state, codes sent, deliveries failing during an SMS outage, and
claims escalated, with no case id or address among the labels."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import StackParts
from tests.ldap_server import PEOPLE, Slapd
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"
TOKEN = "scrape-token-for-the-test"
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _scrape(stack: Stack) -> tuple[str, Samples]:
    response = await stack.http.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return response.text, samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def _scrape_until(stack: Stack, ready: Callable[[Samples], bool]) -> tuple[str, Samples]:
    deadline = time.monotonic() + 30
    while True:
        text, samples = await _scrape(stack)
        if ready(samples):
            return text, samples
        if time.monotonic() > deadline:
            raise AssertionError("the metrics never showed it:\n" + text[-4000:])
        await asyncio.sleep(0.2)


async def test_metrics_follow_cases_codes_an_sms_outage_and_an_escalated_claim(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(
        sms_webhook_url="http://127.0.0.1:9/unreachable",  # the SMS provider is down
        first_response_sla=1,  # nobody picks the claim up within a second
        metrics_token=TOKEN,
    )
    async with running_stack(settings, engine, mail, sms) as stack:
        refused = await stack.http.get("/metrics")
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"
        await stack.add_account("jane", "jane@example.com", "+14155550123", OLD)

        case = await stack.open_case("jane@example.com")
        code = await mail.code_for("jane@example.com")
        token = (
            await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
        ).json()["reset_token"]
        done = await stack.http.post(
            f"/v1/recovery/{case['case_id']}/password",
            json={"reset_token": token, "new_password": NEW},
        )
        assert done.json()["state"] == "completed"
        texted = await stack.open_case("jane", channel="sms")
        claim = await stack.http.post(
            "/v1/support-cases",
            json={
                "username": "jane",
                "contact_email": "jane.new@example.net",
                "reason": "lost_contact",
            },
        )
        assert claim.status_code == 202

        text, samples = await _scrape_until(
            stack,
            lambda s: (
                _value(s, "reclaim_delivery_failures_total", kind="code", channel="sms") >= 1
                and _value(s, "reclaim_claims_escalated_total", reason="lost_contact") == 1
            ),
        )

    assert _value(samples, "reclaim_cases_opened_total", kind="self_service", channel="email") == 1
    assert _value(samples, "reclaim_cases_opened_total", kind="self_service", channel="sms") == 1
    assert (
        _value(
            samples,
            "reclaim_cases_closed_total",
            kind="self_service",
            channel="email",
            state="completed",
        )
        == 1
    )
    assert _value(samples, "reclaim_cases_open", kind="self_service") == 1
    assert _value(samples, "reclaim_cases_open", kind="support_claim") == 1
    assert _value(samples, "reclaim_claims_opened_total", reason="lost_contact") == 1
    assert _value(samples, "reclaim_codes_sent_total", channel="email") == 1
    assert _value(samples, "reclaim_codes_sent_total", channel="sms") == 0
    assert _value(samples, "reclaim_notifications_pending", kind="code", channel="sms") == 1
    assert _value(samples, "reclaim_accounts", status="active") == 1
    route = "/v1/recovery/{case_id}/code"
    assert (
        _value(
            samples,
            "reclaim_http_request_duration_seconds_count",
            method="POST",
            route=route,
            status="200",
        )
        == 1
    )
    assert _value(samples, "process_cpu_seconds_total") > 0
    # Labels carry templates and kinds, never a case id, an address or a code.
    for private in (case["case_id"], texted["case_id"], "jane", "+1415", code, token):
        assert private not in text, private


async def test_an_ldap_stack_counts_its_entries_by_status(
    slapd: Slapd, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    """`reclaim_accounts{status}` on LDAP: the people under the user base as the directory
    reads them, an entry an administrator locked as `banned`, the others `active`."""
    slapd.replace(f"uid=sam,{PEOPLE}", pwdAccountLockedTime=["000001010000Z"])
    settings, engine = stack_parts(**slapd.reclaim_settings(), metrics_token=TOKEN)
    async with running_stack(settings, engine, mail, sms) as stack:
        _, samples = await _scrape(stack)

    assert _value(samples, "reclaim_accounts", status="active") == 2  # jane, bob
    assert _value(samples, "reclaim_accounts", status="banned") == 1  # sam
