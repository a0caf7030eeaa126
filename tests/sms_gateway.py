"""A real HTTP server on loopback playing the SMS webhook: keeps every `{"to","body"}` it is
posted, and can be told to fail like a provider in an outage."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SmsGateway:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.calls = 0
        self.failures_left = 0
        self._lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with gateway._lock:
                    gateway.calls += 1
                    failing = gateway.failures_left > 0
                    if failing:
                        gateway.failures_left -= 1
                    else:
                        gateway.messages.append(json.loads(body))
                self.send_response(503 if failing else 200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"id": "sms-1"}' if not failing else b"{}")

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

    def to(self, number: str) -> list[str]:
        return [m["body"] for m in self.messages if m["to"] == number]

    async def code_for(self, number: str, nth: int = 1, timeout: float = 20) -> str:
        """The code of the `nth` recovery SMS to `number`, read from its WebOTP line."""
        deadline = time.monotonic() + timeout
        while True:
            codes = [b.rsplit("#", 1)[1] for b in self.to(number) if "recovery code" in b]
            if len(codes) >= nth:
                return codes[nth - 1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no SMS code #{nth} for {number}; got {self.messages}")
            await asyncio.sleep(0.02)
