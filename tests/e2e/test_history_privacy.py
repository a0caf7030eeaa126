"""No secret and no contact detail reaches workflow history in clear."""

from __future__ import annotations

import json
import re

from reclaim.security import Keys
from tests.conftest import StackParts
from tests.history_text import all_encrypted, payload_texts
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
        history = await stack.client.get_workflow_handle(case_id).fetch_history()

    raw = history.to_json()
    # At rest every payload is ciphertext; through the codec an operator reads the digests.
    assert all_encrypted(json.loads(raw))
    stored = "\n".join(payload_texts(json.loads(raw)))
    decoded = "\n".join(payload_texts(json.loads(raw), settings.codec()))
    assert "$argon2id$" not in raw + stored
    everything = raw + "\n" + stored + "\n" + decoded
    # The control: digests are there, so the payloads were read.
    keys = Keys(TEST_SECRET.encode())
    assert keys.code_digest(case_id, second) in decoded
    assert keys.token_digest(token) in decoded
    assert "$argon2id$" in decoded
    for code in (first, second):
        assert not _contains_code(everything, code), f"code {code} in history"
    for secret in (token, NEW, OLD, "jane@example.com", "+14155550123", "4155550123"):
        assert secret not in everything, f"{secret!r} in history"
    assert not re.search(r"\bjane\b", decoded), "username in history"
