"""No secret and no contact detail reaches workflow history in clear."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from reclaim.security import Keys
from tests.conftest import StackParts
from tests.history_text import all_encrypted, payload_texts, payloads
from tests.host_app import HOST_SECRET, HostApp
from tests.ldap_server import PEOPLE, Slapd
from tests.mailbox import MailSink
from tests.sms_gateway import SmsGateway
from tests.stack import TEST_SECRET, running_stack

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:?\d{2})?")


def _contains_code(text: str, code: str) -> bool:
    # Timestamps carry 6-digit fractions of a second; a code is a standalone 6-digit token.
    return re.search(rf"(?<![0-9A-Za-z]){code}(?![0-9A-Za-z])", TIMESTAMP.sub("", text)) is not None


async def test_no_code_token_password_or_contact_in_any_event(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(resend_cooldown=0)
    async with running_stack(settings, engine, mail, sms) as stack:
        await stack.add_account("jane", "jane@example.com", "+14155550123", OLD)
        # A case by SMS that an operator stops: a case that ends without a new password
        # records its ending in an activity that returns nothing (a `binary/null` payload).
        older_id = (await stack.open_case("jane", channel="sms"))["case_id"]
        by_sms = await stack.sms.code_for("+14155550123")
        case_id = (await stack.open_case("jane@example.com"))["case_id"]
        first = await stack.mail.code_for("jane@example.com")
        await stack.http.post(f"/v1/recovery/{case_id}/resend")
        second = await stack.mail.code_for("jane@example.com", nth=2)
        wrong = "000000" if first != "000000" else "111111"
        await stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": wrong})
        token = (
            await stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": second})
        ).json()["reset_token"]
        await stack.http.post(
            f"/v1/recovery/{case_id}/password", json={"reset_token": token, "new_password": NEW}
        )
        await stack.services.recovery.cancel(older_id, "opened by mistake")
        older = stack.client.get_workflow_handle(older_id)
        assert (await older.result())["state"] == "cancelled"
        histories = [
            (await stack.client.get_workflow_handle(case_id).fetch_history()).to_json(),
            (await older.fetch_history()).to_json(),
        ]

    # At rest every payload is ciphertext, those with no data too; through the codec an
    # operator reads the digests.
    for raw in histories:
        assert all_encrypted(json.loads(raw))
    codec = settings.codec()
    kinds = [codec.decrypt(p).metadata["encoding"] for p in payloads(json.loads(histories[1]))]
    assert b"binary/null" in kinds  # the control: the ending's empty result was looked at
    raw = "\n".join(histories)
    stored = "\n".join(text for h in histories for text in payload_texts(json.loads(h)))
    decoded = "\n".join(
        text for h in histories for text in payload_texts(json.loads(h), settings.codec())
    )
    assert "$argon2id$" not in raw + stored
    everything = raw + "\n" + stored + "\n" + decoded
    # The control: digests are there, so the payloads were read.
    keys = Keys(TEST_SECRET.encode())
    assert keys.code_digest(case_id, second) in decoded
    assert keys.code_digest(older_id, by_sms) in decoded
    inner, _ = keys.open_reset_pass(case_id, token) or ("", 0)
    assert inner and keys.token_digest(inner) in decoded
    # The new password's hash crossed history sealed for its case: whoever the codec endpoint
    # shows a history to cannot take the hash away to crack it.
    assert '"password_hash":"sealed:' in decoded.replace(" ", "")
    assert "$argon2id$" not in decoded
    for code in (by_sms, first, second):
        assert not _contains_code(everything, code), f"code {code} in history"
    for secret in (token, inner, NEW, OLD, "jane@example.com", "+14155550123", "4155550123"):
        assert secret not in everything, f"{secret!r} in history"
    assert not re.search(r"\bjane\b", decoded), "username in history"


async def _recover(stack: Any, identifier: str, address: str, new: str) -> tuple[str, str, str]:
    """A whole recovery by email; returns the case id, its code and its reset token."""
    case_id = (await stack.open_case(identifier))["case_id"]
    code = await stack.mail.code_for(address)
    granted = await stack.http.post(f"/v1/recovery/{case_id}/code", json={"code": code})
    token = granted.json()["reset_token"]
    done = await stack.http.post(
        f"/v1/recovery/{case_id}/password", json={"reset_token": token, "new_password": new}
    )
    assert done.status_code == 200, done.text
    return case_id, code, token


async def _check_sealed_history(stack: Any, settings: Any, case_id: str, secrets: list[str]):
    """The new password crossed history sealed for its case, and nothing private is there."""
    history = await stack.client.get_workflow_handle(case_id).fetch_history()
    raw = history.to_json()
    assert all_encrypted(json.loads(raw))
    stored = "\n".join(payload_texts(json.loads(raw)))
    decoded = "\n".join(payload_texts(json.loads(raw), settings.codec()))
    # The control: the sealed password is there (no hash: the directory needs the password).
    sealed = [
        value
        for text in payload_texts(json.loads(raw), settings.codec())
        if '"sealed_password"' in text
        for value in [json.loads(text).get("sealed_password")]
        if value
    ]
    assert sealed, "no sealed password in history"
    assert "$argon2id$" not in decoded
    everything = raw + "\n" + stored + "\n" + decoded
    for secret in secrets:
        if secret.isdigit():
            assert not _contains_code(everything, secret), f"code {secret} in history"
        else:
            assert secret not in everything, f"{secret!r} in history"
    assert not re.search(r"\bjane\b", decoded), "username in history"


async def test_an_ldap_recovery_keeps_the_password_sealed_in_history(
    slapd: Slapd, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(**slapd.reclaim_settings())
    async with running_stack(settings, engine, mail, sms) as stack:
        case_id, code, token = await _recover(stack, "jane", "jane@example.com", NEW)
        await _check_sealed_history(
            stack,
            settings,
            case_id,
            [code, token, NEW, OLD, "jane@example.com", "+14155550123", "415 555 0123"],
        )
    assert slapd.binds(f"uid=jane,{PEOPLE}", NEW)


async def test_an_http_directory_recovery_keeps_the_password_sealed_in_history(
    tmp_path: Path, stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    host = HostApp(tmp_path / "host")
    host.add_user("jane", "jane@example.com", "+14155550123", OLD)
    host.start()
    try:
        settings, engine = stack_parts(
            directory="http",
            http_directory_url=f"{host.origin}/reclaim",
            http_directory_secret=HOST_SECRET,
        )
        async with running_stack(settings, engine, mail, sms) as stack:
            case_id, code, token = await _recover(stack, "jane", "jane@example.com", NEW)
            await _check_sealed_history(
                stack,
                settings,
                case_id,
                [code, token, NEW, OLD, "jane@example.com", "+14155550123"],
            )
        assert (await host.login("jane", NEW)).status_code == 200
    finally:
        host.stop()
