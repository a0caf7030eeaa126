"""A real HTTP server on loopback playing the SMS webhook: keeps every `{"to","body"}` it is
posted, and can be told to fail like a provider in an outage or refuse like one for good."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SmsGateway:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []  # every message, refused ones included
        self.messages: list[dict[str, Any]] = []  # the ones it accepted
        self.calls = 0
        self.failures_left = 0  # the next calls answer 503
        self.status = 200  # what every other call answers
        self.provider_id = "sms-1"
        self._lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                message = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with gateway._lock:
                    gateway.calls += 1
                    gateway.posted.append(message)
                    status = gateway.status
                    if gateway.failures_left > 0:
                        gateway.failures_left -= 1
                        status = 503
                    if 200 <= status < 300:
                        gateway.messages.append(message)
                answer = json.dumps({"id": gateway.provider_id}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/sms"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def delivered(self) -> list[dict[str, Any]]:
        return self.messages

    def to(self, number: str) -> list[str]:
        return [m["body"] for m in self.messages if m["to"] == number]

    async def wait_for(self, number: str, words: str, timeout: float = 20) -> str:
        """The first SMS to `number` that says `words`."""
        deadline = time.monotonic() + timeout
        while True:
            for body in self.to(number):
                if words in body:
                    return body
            if time.monotonic() > deadline:
                raise AssertionError(f"no SMS saying {words!r} to {number}; got {self.messages}")
            await asyncio.sleep(0.02)

    async def code_for(self, number: str, nth: int = 1, timeout: float = 20) -> str:
        """The code of the `nth` recovery SMS to `number`, read from its WebOTP line."""
        deadline = time.monotonic() + timeout
        while True:
            # Whatever the language: a code SMS ends with the WebOTP line, `@domain #123456`.
            codes = [
                b.rsplit("#", 1)[1] for b in self.to(number) if re.search(r"\n@\S+ #\d{6}$", b)
            ]
            if len(codes) >= nth:
                return codes[nth - 1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no SMS code #{nth} for {number}; got {self.messages}")
            await asyncio.sleep(0.02)
