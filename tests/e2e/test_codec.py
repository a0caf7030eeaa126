"""Encrypted payloads: every workflow type's history is ciphertext at rest, and the codec
endpoint (the Web UI's and the `temporal` CLI's way in) opens it for staff only."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from typing import Any

from temporalio.api.common.v1 import Payload

from reclaim.binaries import temporal_cli
from reclaim.contracts import Actor, ActorKind
from reclaim.support.contracts import StaffRole
from reclaim.temporal.codec import EncryptionCodec, new_key_spec, parse_keys
from tests.conftest import StackParts
from tests.history_text import all_encrypted, payload_texts, search_attribute_texts
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack

PASSWORD = "correct horse battery staple"
UI = "http://127.0.0.1:8233"


async def _key(stack: Stack, role: StaffRole = StaffRole.SUPERVISOR) -> dict[str, str]:
    _, key = await stack.services.staff_members.add_staff(f"{role.value}-1", role.value)
    return {"Authorization": f"Bearer {key}"}


def _json(payload: Payload) -> dict[str, Any]:
    return {
        "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
        "data": base64.b64encode(payload.data).decode(),
    }


PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"destination": "j@e.com"}')


async def test_every_workflow_type_is_ciphertext_at_rest(stack: Stack):
    account_id = await stack.add_account("jane", "jane@example.com", "+14155550123", PASSWORD)
    await stack.add_account("joe", "joe@example.com", None, PASSWORD)
    recovery = await stack.open_case("jane@example.com")
    code = await stack.mail.code_for("jane@example.com")
    cases = stack.services.lifecycle
    operator = Actor(ActorKind.OPERATOR, "olivia")
    ban = await cases.ban(account_id, "spam from jane@example.com", operator, 86_400)
    deletion = await cases.deactivate(account_id + 1, operator)
    claim = await stack.http.post(
        "/v1/support-cases",
        json={
            "username": "jane",
            "contact_email": "jane.new@example.net",
            "reason": "banned",
            "previous_passwords": [PASSWORD],
            "description": "I am Jane, +14155550123",
        },
    )
    case_ids = [recovery["case_id"], ban.case_id, deletion.case_id, claim.json()["case_id"]]
    private = ("jane@example.com", "+14155550123", "jane.new", PASSWORD, code, "$argon2id$")

    for case_id in case_ids:
        raw = (await stack.client.get_workflow_handle(case_id).fetch_history()).to_json()
        history = json.loads(raw)
        assert all_encrypted(history), case_id
        stored = "\n".join([raw, *payload_texts(history)])
        for value in private:
            assert value not in stored, (case_id, value)
        assert '"jane"' not in stored and "spam" not in stored
        # Search attributes are indexed in clear: what they hold is no private data either.
        indexed = "\n".join(search_attribute_texts(history))
        assert "RecoveryCaseKind=" in indexed  # the control: they were read
        for value in (*private, "jane", "spam"):
            assert value not in indexed, (case_id, value)
        # Through the codec, an operator reads the case (the control).
        decoded = "\n".join(payload_texts(history, stack.settings.codec()))
        assert case_id in decoded


async def test_the_codec_endpoint_round_trips_for_staff_and_refuses_everyone_else(stack: Stack):
    key = await _key(stack)

    encoded = await stack.http.post("/codec/encode", json={"payloads": [_json(PLAIN)]}, headers=key)

    assert encoded.status_code == 200, encoded.text
    [sealed] = encoded.json()["payloads"]
    assert base64.b64decode(sealed["metadata"]["encoding"]) == b"binary/encrypted"
    assert b"j@e.com" not in base64.b64decode(sealed["data"])
    decoded = await stack.http.post("/codec/decode", json={"payloads": [sealed]}, headers=key)
    assert decoded.json()["payloads"] == [_json(PLAIN)]
    for headers in ({}, {"Authorization": "Bearer rk_1_wrong"}, {"Origin": UI}):
        refused = await stack.http.post(
            "/codec/decode", json={"payloads": [sealed]}, headers=headers
        )
        assert (refused.status_code, refused.json()["error"]) == (401, "invalid_key")
    other = EncryptionCodec(parse_keys(new_key_spec("other")))
    foreign = await stack.http.post(
        "/codec/decode", json={"payloads": [_json(other.encrypt(PLAIN))]}, headers=key
    )
    assert (foreign.status_code, foreign.json()["error"]) == (400, "undecryptable")
    namespace = await stack.http.post(
        "/codec/decode", json={"payloads": []}, headers={**key, "X-Namespace": "prod"}
    )
    assert namespace.status_code == 403


async def test_the_codec_endpoint_opens_for_the_roles_that_need_it_and_seals_for_no_reviewer(
    stack: Stack,
):
    supervisor = await _key(stack)
    operator = await _key(stack, StaffRole.OPERATOR)
    reviewer = await _key(stack, StaffRole.REVIEWER)
    sealed = (
        await stack.http.post(
            "/codec/encode", json={"payloads": [_json(PLAIN)]}, headers=supervisor
        )
    ).json()["payloads"]

    # An operator reads and seals (the Web UI's signal and update forms); a reviewer neither:
    # they read claims in the console, and a payload they sealed could pass for ours.
    for key, may in ((operator, True), (reviewer, False)):
        for call in ("decode", "encode"):
            answer = await stack.http.post(f"/codec/{call}", json={"payloads": sealed}, headers=key)
            if may:
                assert answer.status_code == 200, answer.text
            else:
                assert (answer.status_code, answer.json()["error"]) == (403, "role_not_allowed")
                assert "supervisor" in answer.json()["message"]
    # An operator decides no claim.
    claim = await stack.http.post(
        "/v1/support-cases",
        json={"username": "nobody", "contact_email": "n@example.net", "reason": "compromised"},
    )
    took = await stack.http.post(
        f"/v1/staff/cases/{claim.json()['case_id']}/assign", headers=operator
    )
    assert (took.status_code, took.json()["error"]) == (403, "reviewer_required")


async def test_the_codec_endpoint_roles_are_a_setting(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(codec_roles="operator,reviewer")
    async with running_stack(settings, engine, mail, sms, worker=False) as stack:
        reviewer, supervisor = await _key(stack, StaffRole.REVIEWER), await _key(stack)
        sealed = _json(settings.codec().encrypt(PLAIN))
        body = {"payloads": [sealed]}
        assert (await stack.http.post("/codec/decode", json=body, headers=reviewer)).is_success
        # Sealing stays out of a reviewer's reach whatever the setting says.
        sealing = await stack.http.post("/codec/encode", json=body, headers=reviewer)
        assert sealing.status_code == 403
        assert (
            await stack.http.post("/codec/decode", json=body, headers=supervisor)
        ).status_code == 403


async def test_browsers_may_call_the_codec_from_the_web_ui_origin_only(stack: Stack):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x"}

    allowed = await stack.http.options("/codec/decode", headers={"Origin": UI, **preflight})
    evil = await stack.http.options(
        "/codec/decode", headers={"Origin": "https://evil.example", **preflight}
    )
    elsewhere = await stack.http.options("/v1/recovery", headers={"Origin": UI, **preflight})

    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == UI
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    assert evil.status_code == 403 and "Access-Control-Allow-Origin" not in evil.headers
    assert "Access-Control-Allow-Origin" not in elsewhere.headers


async def test_the_dev_web_ui_needs_no_key(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(dev_mode=True)
    async with running_stack(settings, engine, mail, sms) as stack:
        sealed = _json(settings.codec().encrypt(PLAIN))

        from_ui = await stack.http.post(
            "/codec/decode", json={"payloads": [sealed]}, headers={"Origin": UI}
        )
        from_elsewhere = await stack.http.post("/codec/decode", json={"payloads": [sealed]})

        assert from_ui.status_code == 200 and from_ui.headers["Access-Control-Allow-Origin"] == UI
        assert from_elsewhere.status_code == 401


async def test_the_temporal_cli_reads_a_case_through_the_codec_endpoint(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    case = await stack.open_case("jane@example.com")
    key = (await _key(stack))["Authorization"]
    show = [
        temporal_cli(),
        "workflow",
        "show",
        "--workflow-id",
        case["case_id"],
        "--address",
        stack.settings.temporal_address,
        "--output",
        "json",
    ]

    def run(*extra: str) -> str:
        done = subprocess.run(
            [*show, *extra], capture_output=True, text=True, check=True, timeout=60
        )
        return done.stdout

    endpoint = f"{str(stack.http.base_url).rstrip('/')}/codec"
    without = await asyncio.to_thread(run)
    with_codec = await asyncio.to_thread(run, "--codec-endpoint", endpoint, "--codec-auth", key)

    assert all_encrypted(json.loads(without))
    assert '"destination"' not in "".join(payload_texts(json.loads(without)))
    assert '"destination"' in "".join(payload_texts(json.loads(with_codec)))
