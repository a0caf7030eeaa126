"""SMS through a provider: `console` (development), `webhook` (POST JSON to your gateway) or
`twilio` (Twilio's Messages API)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx

from reclaim.identifiers import mask_phone
from reclaim.notify.errors import Undeliverable
from reclaim.settings import Settings


class SmsProvider(Protocol):
    name: str

    async def send(self, to: str, body: str, key: str | None = None) -> str | None:
        """Send `body` to the E.164 number `to`; return the provider's message id if any.
        `key` is the same for every try of one message (its Message-ID): a provider that
        deduplicates by key sends it once however often Reclaim retries. Raise
        `Undeliverable` when retrying cannot help, anything else for an outage."""
        ...

    async def aclose(self) -> None: ...


def _raise_for_status(response: httpx.Response, provider: str) -> None:
    if response.is_success:
        return
    if 400 <= response.status_code < 500 and response.status_code not in (408, 425, 429):
        raise Undeliverable(f"{provider} refused the message ({response.status_code})")
    raise RuntimeError(f"{provider} answered {response.status_code}")


class ConsoleSms:
    """For development only. With a dev outbox, each SMS goes there (`GET /dev/outbox` shows
    it) and the console only says one was sent; without one, the console shows it whole."""

    name = "console"

    def __init__(self, outbox: Path | None = None) -> None:
        self._outbox = outbox

    async def send(self, to: str, body: str, key: str | None = None) -> str | None:
        if self._outbox is None:
            print(f"[sms to {to}] {body}", file=sys.stdout, flush=True)
            return None
        self._outbox.mkdir(parents=True, exist_ok=True)
        record = {"to": to, "body": body, "at": datetime.now(UTC).isoformat()}
        with (self._outbox / "sms.jsonl").open("a", encoding="utf-8") as sink:
            sink.write(json.dumps(record) + "\n")
        print(f"[sms to {mask_phone(to)}] in the dev outbox", file=sys.stdout, flush=True)
        return None

    async def aclose(self) -> None:
        return None


class _HttpProvider:
    """One connection pool per provider, opened on first use."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class WebhookSms(_HttpProvider):
    """POSTs `{"to": ..., "body": ...}` as JSON to `RECLAIM_SMS_WEBHOOK_URL`, with an
    `Idempotency-Key` header that is the same on every retry of one message."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        super().__init__(timeout)
        self._url = url

    async def send(self, to: str, body: str, key: str | None = None) -> str | None:
        headers = {"Idempotency-Key": key} if key else {}
        response = await self._http().post(
            self._url, json={"to": to, "body": body}, headers=headers
        )
        _raise_for_status(response, "the SMS webhook")
        try:
            answer = response.json()
        except ValueError:
            return None
        return str(answer.get("id")) if isinstance(answer, dict) and answer.get("id") else None


class TwilioSms(_HttpProvider):
    """Twilio's Messages API (form POST with the account SID and auth token). Its API takes no
    idempotency key: a send whose outcome is unknown (a timeout) may reach the phone twice."""

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        api_base: str = "https://api.twilio.com",
        timeout: float = 10.0,
    ) -> None:
        super().__init__(timeout)
        self._sid, self._token, self._from = account_sid, auth_token, from_number
        self._url = f"{api_base.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"

    async def send(self, to: str, body: str, key: str | None = None) -> str | None:
        response = await self._http().post(
            self._url,
            data={"To": to, "From": self._from, "Body": body},
            auth=(self._sid, self._token),
        )
        _raise_for_status(response, "Twilio")
        return str(response.json().get("sid") or "") or None


def sms_provider(settings: Settings) -> SmsProvider:
    if settings.sms_provider == "webhook":
        if not settings.sms_webhook_url:
            raise ValueError("RECLAIM_SMS_PROVIDER=webhook needs RECLAIM_SMS_WEBHOOK_URL")
        return WebhookSms(settings.sms_webhook_url)
    if settings.sms_provider == "twilio":
        missing = [
            name
            for name, value in (
                ("RECLAIM_TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
                ("RECLAIM_TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
                ("RECLAIM_TWILIO_FROM_NUMBER", settings.twilio_from_number),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"RECLAIM_SMS_PROVIDER=twilio needs {', '.join(missing)}")
        assert settings.twilio_account_sid and settings.twilio_auth_token
        assert settings.twilio_from_number
        return TwilioSms(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.twilio_from_number,
            settings.twilio_api_base,
        )
    return ConsoleSms(settings.outbox_dir if settings.dev_mode else None)
