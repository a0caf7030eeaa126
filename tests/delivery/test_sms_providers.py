"""SMS providers against real HTTP servers on loopback: what they post, what they return, and
which refusals are final (`Undeliverable`, never retried) and which are outages (retried)."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from reclaim.identifiers import mask_phone
from reclaim.notify.errors import Undeliverable
from reclaim.notify.outbox import read_outbox
from reclaim.notify.sms import ConsoleSms, TwilioSms, WebhookSms, sms_provider
from reclaim.settings import Settings

NUMBER = "+14155550123"
TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-auth-token"
TWILIO_FROM = "+15005550006"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Provider:
    """An HTTP server that records every request and answers `status` with `body`."""

    url: str
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    requests: list[Request] = field(default_factory=list)


@pytest.fixture
def provider() -> Iterator[Provider]:
    state = Provider(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.requests.append(Request("POST", self.path, dict(self.headers.items()), body))
            self.send_response(state.status)
            self.send_header("Content-Type", state.content_type)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll interval so that shutdown() returns at once rather than after 0.5 s.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: every connection is refused, and no other test
    can start a server on it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
async def webhook(provider: Provider) -> AsyncIterator[WebhookSms]:
    sms = WebhookSms(f"{provider.url}/sms", timeout=5)
    yield sms
    await sms.aclose()


@pytest.fixture
async def twilio(provider: Provider) -> AsyncIterator[TwilioSms]:
    sms = TwilioSms(TWILIO_SID, TWILIO_TOKEN, TWILIO_FROM, api_base=provider.url, timeout=5)
    yield sms
    await sms.aclose()


# Webhook


async def test_webhook_posts_the_number_and_body_as_json_and_returns_the_gateway_id(
    provider: Provider, webhook: WebhookSms
):
    provider.body = b'{"id": "msg-42", "status": "queued"}'

    provider_id = await webhook.send(NUMBER, "123456 is your Reclaim code. \u00e9", "rc_x.code.0")
    await webhook.send(NUMBER, "123456 is your Reclaim code. \u00e9", "rc_x.code.0")  # a retry

    assert provider_id == "msg-42"
    first, retry = provider.requests
    assert first.path == "/sms"
    assert first.headers["Content-Type"] == "application/json"
    # The gateway can tell a retry from a new message: the same key.
    assert first.headers["Idempotency-Key"] == retry.headers["Idempotency-Key"] == "rc_x.code.0"
    request = first
    assert json.loads(request.body) == {"to": NUMBER, "body": "123456 is your Reclaim code. \u00e9"}


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (200, b"{}", "application/json"),
        (202, b'{"accepted": true}', "application/json"),
        (204, b"", "application/json"),
        (200, b"OK", "text/plain"),
    ],
)
async def test_webhook_success_without_an_id_returns_none(
    provider: Provider, webhook: WebhookSms, status: int, body: bytes, content_type: str
):
    provider.status, provider.body, provider.content_type = status, body, content_type

    assert await webhook.send(NUMBER, "hello") is None
    assert len(provider.requests) == 1


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_webhook_refusal_of_a_message_is_undeliverable(
    provider: Provider, webhook: WebhookSms, status: int
):
    provider.status, provider.body = status, b'{"error": "invalid number"}'

    with pytest.raises(Undeliverable, match=str(status)):
        await webhook.send(NUMBER, "hello")
    assert len(provider.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
async def test_webhook_outage_or_throttling_is_retryable_not_undeliverable(
    provider: Provider, webhook: WebhookSms, status: int
):
    provider.status = status

    with pytest.raises(Exception) as caught:
        await webhook.send(NUMBER, "hello")
    assert not isinstance(caught.value, Undeliverable)
    assert str(status) in str(caught.value)


async def test_webhook_that_refuses_connections_is_retryable_not_undeliverable(
    refusing_port: int,
):
    sms = WebhookSms(f"http://127.0.0.1:{refusing_port}/sms", timeout=5)
    try:
        with pytest.raises(Exception) as caught:
            await sms.send(NUMBER, "hello")
    finally:
        await sms.aclose()
    assert not isinstance(caught.value, Undeliverable)


# Twilio


async def test_twilio_posts_a_form_with_basic_auth_and_returns_the_message_sid(
    provider: Provider, twilio: TwilioSms
):
    provider.status = 201
    provider.body = b'{"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}'

    provider_id = await twilio.send(NUMBER, "123456 is your code\n\n@reclaim.test #123456")

    assert provider_id == "SM0123456789abcdef0123456789abcdef"
    [request] = provider.requests
    assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.body.decode()) == {
        "To": [NUMBER],
        "From": [TWILIO_FROM],
        "Body": ["123456 is your code\n\n@reclaim.test #123456"],
    }
    scheme, credentials = request.headers["Authorization"].split(" ", 1)
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == f"{TWILIO_SID}:{TWILIO_TOKEN}"


async def test_twilio_refusal_of_a_bad_number_is_not_retried(provider: Provider, twilio: TwilioSms):
    provider.status = 400
    provider.body = json.dumps(
        {
            "code": 21211,
            "message": "The 'To' number +1415 is not a valid phone number.",
            "status": 400,
        }
    ).encode()

    with pytest.raises(Undeliverable, match="Twilio"):
        await twilio.send("+1415", "hello")
    assert len(provider.requests) == 1


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_twilio_throttling_or_outage_is_retryable_not_undeliverable(
    provider: Provider, twilio: TwilioSms, status: int
):
    provider.status = status

    with pytest.raises(Exception) as caught:
        await twilio.send(NUMBER, "hello")
    assert not isinstance(caught.value, Undeliverable)


# Choosing a provider


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(secret_key="x" * 32, state_dir=tmp_path / "state", **values)


async def test_webhook_provider_is_chosen_from_settings_and_posts_to_the_configured_url(
    tmp_path: Path, provider: Provider
):
    provider.body = b'{"id": "from-settings"}'
    sms = sms_provider(
        _settings(tmp_path, sms_provider="webhook", sms_webhook_url=f"{provider.url}/hook")
    )
    try:
        assert isinstance(sms, WebhookSms)
        assert await sms.send(NUMBER, "hi") == "from-settings"
    finally:
        await sms.aclose()
    assert [r.path for r in provider.requests] == ["/hook"]


def test_webhook_provider_without_a_url_is_refused_naming_the_setting(tmp_path: Path):
    with pytest.raises(ValueError, match="RECLAIM_SMS_WEBHOOK_URL"):
        sms_provider(_settings(tmp_path, sms_provider="webhook"))


async def test_twilio_provider_is_chosen_from_settings_with_its_api_base(
    tmp_path: Path, provider: Provider
):
    provider.status, provider.body = 201, b'{"sid": "SMfromsettings"}'
    sms = sms_provider(
        _settings(
            tmp_path,
            sms_provider="twilio",
            twilio_account_sid=TWILIO_SID,
            twilio_auth_token=TWILIO_TOKEN,
            twilio_from_number=TWILIO_FROM,
            twilio_api_base=f"{provider.url}/",
        )
    )
    try:
        assert isinstance(sms, TwilioSms)
        assert await sms.send(NUMBER, "hi") == "SMfromsettings"
    finally:
        await sms.aclose()
    [request] = provider.requests
    assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert parse_qs(request.body.decode())["From"] == [TWILIO_FROM]


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        (
            {},
            [
                "RECLAIM_TWILIO_ACCOUNT_SID",
                "RECLAIM_TWILIO_AUTH_TOKEN",
                "RECLAIM_TWILIO_FROM_NUMBER",
            ],
        ),
        (
            {"twilio_account_sid": TWILIO_SID, "twilio_from_number": TWILIO_FROM},
            ["RECLAIM_TWILIO_AUTH_TOKEN"],
        ),
        (
            {"twilio_account_sid": TWILIO_SID, "twilio_auth_token": TWILIO_TOKEN},
            ["RECLAIM_TWILIO_FROM_NUMBER"],
        ),
    ],
)
def test_twilio_provider_without_credentials_is_refused_naming_what_is_missing(
    tmp_path: Path, given: dict[str, str], missing: list[str]
):
    with pytest.raises(ValueError) as caught:
        sms_provider(_settings(tmp_path, sms_provider="twilio", **given))
    message = str(caught.value)
    for name in (
        "RECLAIM_TWILIO_ACCOUNT_SID",
        "RECLAIM_TWILIO_AUTH_TOKEN",
        "RECLAIM_TWILIO_FROM_NUMBER",
    ):
        assert (name in message) == (name in missing), message
    assert TWILIO_TOKEN not in message


# Console


async def test_console_provider_in_dev_mode_files_each_sms_in_the_outbox_newest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    settings = _settings(tmp_path, dev_mode=True)
    sms = sms_provider(settings)
    assert isinstance(sms, ConsoleSms)

    assert await sms.send(NUMBER, "first message") is None
    assert await sms.send("+33612345678", "second message") is None
    await sms.aclose()

    assert (settings.outbox_dir / "sms.jsonl").exists()
    outbox = read_outbox(settings.outbox_dir)
    assert [(item["kind"], item["to"], item["text"]) for item in outbox] == [
        ("sms", "+33612345678", "second message"),
        ("sms", NUMBER, "first message"),
    ]
    # The console says a message went to the outbox, never what it said or where in full.
    console = capsys.readouterr().out
    assert "first message" not in console and NUMBER not in console
    assert f"[sms to {mask_phone(NUMBER)}] in the dev outbox" in console


async def test_console_provider_outside_dev_mode_writes_no_outbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    settings = _settings(tmp_path)
    sms = sms_provider(settings)
    assert isinstance(sms, ConsoleSms)

    await sms.send(NUMBER, "only on stdout")

    assert not settings.outbox_dir.exists()
    assert read_outbox(settings.outbox_dir) == []
    assert f"[sms to {NUMBER}] only on stdout" in capsys.readouterr().out
