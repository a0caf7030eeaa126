"""A real OpenID Connect peer: panva's oidc-provider (the certified Node.js implementation,
from the npm registry at the pinned version below), run with the machine's Node.js from
tests/peers/oidc_provider.mjs. It is installed once into a cache folder outside the repository
(`~/.cache/reclaim-tests/oidc-provider-<version>`, or under $RECLAIM_TEST_CACHE), behind a
lock so two xdist workers do not race; tests skip, saying why, when Node.js or npm are missing
or the registry cannot be reached.

`OidcPeer` writes the provider's JSON config (issuer on a free port, Reclaim's client,
accounts with a `groups` claim, RSA signing keys), starts the process, waits for its discovery
document; `rotate_keys()` restarts it signing with a new key (the old one still published);
`remove()` takes an account away at the provider."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from tests.conftest import free_port

VERSION = "9.13.3"
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
CLIENT_ID = "reclaim-console"
CLIENT_SECRET = "peer-client-secret-0123456789abcdef"
RESOURCE = "urn:reclaim:codec"
REVIEWERS = "reclaim-reviewers"
SUPERVISORS = "reclaim-supervisors"
SCOPES = "openid profile email groups"


def cache_dir() -> Path:
    root = os.environ.get("RECLAIM_TEST_CACHE") or Path.home() / ".cache" / "reclaim-tests"
    return Path(root) / f"oidc-provider-{VERSION}"


def install() -> Path:
    """The folder holding node_modules/oidc-provider, installed on first use; or a skip."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("Node.js and npm are needed to run oidc-provider: they are not on PATH")
    target = cache_dir()
    marker = target / ".installed"
    if marker.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".oidc-provider-{VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be installing it now
        if marker.exists():
            return target
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{target.name}."))
        command = [
            npm,
            "install",
            "--prefix",
            str(staging),
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--fetch-retries=1",
            "--fetch-timeout=30000",
            f"oidc-provider@{VERSION}",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.skip(f"npm did not install oidc-provider@{VERSION} within 5 minutes")
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.skip(
                f"npm could not install oidc-provider@{VERSION} (is the registry reachable?): "
                + (done.stderr.strip().splitlines() or ["no output"])[-1]
            )
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        marker.write_text(VERSION)
    return target


def new_key() -> dict[str, Any]:
    key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"})
    key.ensure_kid()
    return dict(key.as_dict(private=True))


@dataclass
class OidcPeer:
    redirect_uris: list[str]
    accounts: dict[str, list[str]] = field(
        default_factory=lambda: {
            "rita": [REVIEWERS],
            "sam": [SUPERVISORS],
            "visitor": ["everyone"],
        }
    )
    keys: list[dict[str, Any]] = field(default_factory=lambda: [new_key()])
    port: int = field(default_factory=free_port)
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="oidc-peer-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def signing_kid(self) -> str:
        return str(self.keys[0]["kid"])

    def config(self, module_dir: Path) -> dict[str, Any]:
        return {
            "module_dir": str(module_dir),
            "issuer": self.url,
            "port": self.port,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": self.redirect_uris,
            "accounts": self.accounts,
            "keys": self.keys,
            "cookie_key": secrets.token_urlsafe(32),
            "resource": RESOURCE,
        }

    def start(self) -> None:
        module_dir = install()
        path = self.folder / "config.json"
        path.write_text(json.dumps(self.config(module_dir)))
        with open(self.folder / "provider.log", "ab") as log:  # the process has its own copy
            self.process = subprocess.Popen(
                [str(shutil.which("node")), str(SCRIPT), str(path)], stdout=log, stderr=log
            )
        self._wait_for(self.signing_kid)

    def _wait_for(self, kid: str, timeout: float = 30) -> None:
        """Until the discovery document answers and the JWKS publishes `kid`."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as http:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"oidc-provider stopped: {self.log()}")
                try:
                    found = http.get(f"{self.url}/.well-known/openid-configuration")
                    if found.status_code == 200:
                        jwks = (http.get(found.json()["jwks_uri"])).json()
                        if kid in {k.get("kid") for k in jwks["keys"]}:
                            return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"oidc-provider did not start: {self.log()}")
                time.sleep(0.05)  # a poll interval (the process is not ours to await)

    def log(self) -> str:
        path = self.folder / "provider.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def rotate_keys(self) -> None:
        """The provider restarted signing with a new key first, the old one still published
        (as an organisation rotates: tokens signed before stay verifiable)."""
        self.keys = [new_key(), *self.keys]
        self.stop()
        self.start()

    def remove(self, account: str) -> None:
        self.accounts.pop(account, None)
        with httpx.Client(timeout=5) as http:
            answer = http.post(f"{self.url}/_test/remove", params={"account": account})
            assert answer.status_code == 204

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
