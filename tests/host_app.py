"""The reference host application (examples/host_directory/app.py) as a real process for one
test, and a proxy between Reclaim and it that can make the host look down."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "examples" / "host_directory" / "app.py"
HOST_SECRET = "whsec_" + base64.b64encode(b"the tests' host secret, 32 bytes").decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HostApp:
    """`python examples/host_directory/app.py` on a free port, its SQLite file in `root`."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.db = root / "host.db"
        self.log = root / "host.log"
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(APP), *args],
            env={**os.environ, "HOST_WEBHOOK_SECRET": HOST_SECRET},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return done.stdout

    def add_user(self, username: str, email: str, phone: str | None, password: str) -> str:
        args = ["add-user", "--db", str(self.db), "--username", username, "--email", email]
        args += ["--password", password] + (["--phone", phone] if phone else [])
        return self._run(*args).split()[-1]

    def add_totp(self, username: str) -> str:
        """An authenticator app for the user, kept by the host: its secret."""
        return self._run("add-totp", "--db", str(self.db), "--username", username).split()[-1]

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(APP), "serve", "--db", str(self.db), "--port", str(self.port)],
                env={**os.environ, "HOST_WEBHOOK_SECRET": HOST_SECRET},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    problem = self.log.read_text()
                    raise RuntimeError(f"the host app did not start: {problem}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """What the host's own database says (read as its operator would)."""
        with sqlite3.connect(self.db) as db:
            return list(db.execute(sql, args).fetchall())

    async def login(self, username: str, password: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.origin) as http:
            return await http.post("/login", json={"username": username, "password": password})


@dataclass
class Proxy:
    """Between Reclaim and the host. `down`: answers 503 without asking the host. `down_on`:
    the host goes down (`down` set, `down_since` noted) at the first request whose path ends
    so, which gets 503 already. `lose`: forwards the next N requests whose path ends so, then
    answers 503 anyway (the host applied the change, its answer was lost)."""

    target: str
    down: bool = False
    down_on: str | None = None
    down_since: float | None = None  # time.monotonic()
    lose: dict[str, int] = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)  # (path, webhook-id)

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        self.seen.append((path, request.headers.get("webhook-id", "")))
        if self.down_on is not None and path.endswith(self.down_on):
            self.down, self.down_on, self.down_since = True, None, time.monotonic()
        if self.down:
            return Response('{"error": "maintenance"}', status_code=503)
        async with httpx.AsyncClient(base_url=self.target) as http:
            answer = await http.request(
                request.method,
                path,
                content=await request.body(),
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            )
        for suffix, left in self.lose.items():
            if path.endswith(suffix) and left > 0:
                self.lose[suffix] = left - 1
                return Response('{"error": "lost"}', status_code=503)
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=answer.headers.get("content-type"),
        )


@asynccontextmanager
async def serve_proxy(proxy: Proxy) -> AsyncIterator[str]:
    app = Starlette(
        routes=[Route("/{path:path}", proxy.handle, methods=["GET", "POST"])],
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
