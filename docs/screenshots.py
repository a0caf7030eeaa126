"""Take the screenshots of docs/operating.md from the real Temporal Web UI.

    apt-get install chromium          # Debian's Chromium; never a downloaded browser
    .venv/bin/python docs/screenshots.py

Starts `reclaim dev` on free ports in a temporary directory, fills it with a few cases of
every kind through the API and the CLI (as an operator would see them on a busy day), points
headless Chromium at the Web UI, which decrypts payloads through Reclaim's codec endpoint, and
writes PNGs to docs/img/. Stops everything it started.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from reclaim.binaries import temporal_cli

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "img"
PASSWORD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"
# The case-queue columns of docs/operating.md, in the Web UI's own preference key.
TABLE_COLUMNS = "namespace-workflow-table-columns"
QUEUE_COLUMNS = {
    "default": [
        {"label": label, "pinned": label in ("Status", "Workflow ID")}
        for label in (
            "Status",
            "Workflow ID",
            "Type",
            "RecoveryCaseState",
            "RecoveryChannel",
            "RecoveryReason",
            "RecoveryRisk",
            "RecoveryEscalated",
            "RecoveryNextDeadline",
            "Start",
        )
    ]
}
ESCALATE_AFTER = 5  # seconds: a claim nobody picks up escalates while we watch


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _poll(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {timeout} s")
        time.sleep(0.2)


class Dev:
    def __init__(self, state: Path, first_response_sla: int = ESCALATE_AFTER) -> None:
        self.api_port, self.ui_port = _free_port(), _free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RECLAIM_")}
        self.env.update(
            RECLAIM_STATE_DIR=str(state),
            RECLAIM_API_PORT=str(self.api_port),
            RECLAIM_TEMPORAL_ADDRESS=f"127.0.0.1:{_free_port()}",
            RECLAIM_TEMPORAL_UI_PORT=str(self.ui_port),
            RECLAIM_DEV_SMTP_PORT=str(_free_port()),
            RECLAIM_WORKER_METRICS_ADDRESS=f"127.0.0.1:{_free_port()}",
            RECLAIM_FIRST_RESPONSE_SLA=str(first_response_sla),
            RECLAIM_SMS_PROVIDER="console",
        )
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.ui = f"http://127.0.0.1:{self.ui_port}"
        self.http = httpx.Client(base_url=self.api, timeout=30)
        self.log = (state.parent / "dev.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reclaim", "dev"],
            env=self.env,
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise SystemExit("reclaim dev exited; see its log")
            try:
                return self.http.get("/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        _poll(ready, 120, "reclaim dev answering")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "reclaim", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"reclaim {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def outbox_code(self, to: str) -> str | None:
        for message in self.http.get("/dev/outbox").json()["messages"]:
            if message["to"] == to:
                found = re.search(r"\b(\d{6})\b", message["text"])
                if found:
                    return found.group(1)
        return None


def fill(dev: Dev) -> dict[str, str]:
    """A few cases of every kind; returns the ids worth a picture."""
    people = [
        ("jane", "jane@example.com", "+14155550101"),
        ("omar", "omar@example.com", "+14155550102"),
        ("lena", "lena@example.com", None),
        ("sam", "sam@example.com", None),
        ("troll", "troll@example.com", None),
    ]
    for username, email, phone in people:
        extra = ["--phone", phone] if phone else []
        dev.cli(
            "accounts", "add", "--username", username, "--email", email,
            "--password", PASSWORD, *extra,
        )  # fmt: skip
    # Jane recovers by email from start to finish.
    jane = dev.http.post("/v1/recovery", json={"identifier": "jane@example.com"}).json()
    code = _poll(lambda: dev.outbox_code("jane@example.com"), 30, "jane's code")
    token = dev.http.post(f"/v1/recovery/{jane['case_id']}/code", json={"code": code}).json()
    dev.http.post(
        f"/v1/recovery/{jane['case_id']}/password",
        json={"reset_token": token["reset_token"], "new_password": NEW},
    )
    # Omar asked for an SMS and typed a wrong code: his case waits.
    omar = dev.http.post("/v1/recovery", json={"identifier": "omar", "channel": "sms"}).json()
    _poll(
        lambda: dev.http.get(f"/v1/recovery/{omar['case_id']}").json()["delivery"] == "sent",
        30,
        "omar's SMS",
    )
    dev.http.post(f"/v1/recovery/{omar['case_id']}/code", json={"code": "000000"})
    # Someone typed an address nobody uses.
    dev.http.post("/v1/recovery", json={"identifier": "ghost@example.net"})
    # Two support claims; one gets a reviewer in time, the other escalates.
    key = re.search(r"rk_\S+", dev.cli("staff", "add", "--name", "rita", "--role", "reviewer"))
    assert key is not None
    staff = {"Authorization": f"Bearer {key.group(0)}"}
    taken = dev.http.post(
        "/v1/support-cases",
        json={
            "username": "lena",
            "contact_email": "lena.new@example.net",
            "reason": "compromised",
            "registered_email": "lena@example.com",
            "previous_passwords": [PASSWORD],
            "description": "My email was changed last night.",
        },
    ).json()
    dev.http.post(f"/v1/staff/cases/{taken['case_id']}/assign", json={}, headers=staff)
    escalated = dev.http.post(
        "/v1/support-cases",
        json={
            "username": "omar",
            "contact_email": "omar.other@example.net",
            "reason": "lost_contact",
        },
    ).json()
    # An account deletion in its grace period and a week-long ban.
    dev.cli("accounts", "deactivate", "sam")
    dev.cli("accounts", "ban", "troll", "--reason", "spam", "--days", "7", "--by", "olivia")
    _poll(
        lambda: dev.http.get("/v1/staff/cases", params={"escalated": "true"}, headers=staff).json()[
            "cases"
        ],
        ESCALATE_AFTER + 30,
        "the unassigned claim escalating",
    )
    return {"recovery": omar["case_id"], "claim": escalated["case_id"]}


class Browser:
    """Debian's headless Chromium driven over the DevTools protocol: load a page, wait until
    it shows what it must, then take the picture (a live page long-polls, so "loaded" never
    comes)."""

    def __init__(self) -> None:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            raise SystemExit("Debian's chromium is needed: apt-get install chromium")
        self.profile = tempfile.TemporaryDirectory()
        port = _free_port()
        self.process = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={self.profile.name}",
                f"--remote-debugging-port={port}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.devtools = f"http://127.0.0.1:{port}"
        self._ids = iter(range(1, 1_000_000))

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.profile.cleanup()

    async def shoot(
        self,
        url: str,
        name: str,
        shows: str,
        height: int = 1000,
        width: int = 1440,
        click: str | None = None,
        storage: dict[str, Any] | None = None,
    ) -> Path:
        import websockets

        def page() -> str | None:
            try:
                pages = httpx.get(f"{self.devtools}/json/list").json()
            except httpx.HTTPError:
                return None
            found = [p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page"]
            return found[0] if found else None

        async with websockets.connect(_poll(page, 30, "Chromium"), max_size=None) as ws:

            async def call(method: str, **params: Any) -> dict[str, Any]:
                ident = next(self._ids)
                await ws.send(json.dumps({"id": ident, "method": method, "params": params}))
                while True:
                    reply = json.loads(await ws.recv())
                    if reply.get("id") == ident:
                        return dict(reply.get("result", {}))

            await call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            if storage:  # the UI's own preferences, set as an operator would in the UI
                await call("Page.navigate", url=url)
                await asyncio.sleep(1)
                for key, value in storage.items():
                    await call(
                        "Runtime.evaluate",
                        expression=f"localStorage.setItem({json.dumps(key)}, "
                        f"{json.dumps(json.dumps(value))})",
                    )
            await call("Page.navigate", url=url)
            if click is not None:  # a tab of the page, by its label
                script = (
                    "(() => { const el = [...document.querySelectorAll('button, a, [role=tab]')]"
                    f".find(e => e.innerText.trim().startsWith({json.dumps(click)}));"
                    " if (el) { el.click(); return true; } return false; })()"
                )
                deadline = time.monotonic() + 60
                while True:
                    result = await call("Runtime.evaluate", expression=script, returnByValue=True)
                    if result.get("result", {}).get("value") is True:
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{url} has no {click!r} to click")
                    await asyncio.sleep(0.5)
            deadline = time.monotonic() + 60
            while True:
                text = await call(
                    "Runtime.evaluate", expression="document.body.innerText", returnByValue=True
                )
                shown = str(text.get("result", {}).get("value", ""))
                if shows in shown:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"{url} never showed {shows!r}; it shows:\n{shown[:3000]}")
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.5)  # let the last requests (codec decodes) paint
            shot = await call("Page.captureScreenshot", format="png")
        OUT.mkdir(parents=True, exist_ok=True)
        target = OUT / f"{name}.png"
        target.write_bytes(base64.b64decode(shot["data"]))
        print(f"wrote {target.relative_to(REPO)}")
        return target


def run_id(dev: Dev, case_id: str) -> str:
    shown = subprocess.run(
        [
            temporal_cli(),
            "workflow",
            "describe",
            "--address",
            dev.env["RECLAIM_TEMPORAL_ADDRESS"],
            "--workflow-id",
            case_id,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found = re.search(r'"runId":\s*"([^"]+)"', shown)
    if found is None:
        raise SystemExit(f"no run id for {case_id}: {shown[:500]}")
    return found.group(1)


async def take(dev: Dev, cases: dict[str, str]) -> None:
    browser = Browser()
    try:
        workflows = f"{dev.ui}/namespaces/default/workflows"
        await browser.shoot(
            workflows,
            "workflows",
            shows=cases["claim"],
            storage={TABLE_COLUMNS: QUEUE_COLUMNS},
            width=1920,
            height=640,
        )
        query = 'RecoveryCaseKind="support_claim" AND RecoveryEscalated=true'
        await browser.shoot(
            f"{workflows}?query={quote(query)}",
            "escalated-claims",
            shows=cases["claim"],
            height=600,
        )
        for name, case_id in cases.items():
            run = run_id(dev, case_id)
            await browser.shoot(
                f"{workflows}/{case_id}/{run}/history",
                f"{name}-case",
                shows="Current",
                height=800,
                click="User Metadata",
            )
    finally:
        browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="reclaim-shots-") as tmp:
        dev = Dev(Path(tmp) / "state")
        try:
            dev.wait_ready()
            asyncio.run(take(dev, fill(dev)))
        finally:
            dev.stop()


if __name__ == "__main__":
    main()
