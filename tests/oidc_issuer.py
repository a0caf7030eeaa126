"""A small OpenID Connect provider of the tests' own, so the console's real sign-in and token
verification run against something that behaves like an organisation's identity provider:
discovery, a JWKS with an RSA key generated per test, an authorization endpoint (a sign-in
form: type a user's name), a token endpoint (client secret, PKCE S256, one use per code).

`misbehave` makes the next token exchange answer a bad ID token (another issuer, another
audience, a stale nonce, a tampered signature, expired), as an attacker or a misconfigured
provider would; `token()` mints tokens directly (the codec endpoint's bearer tokens).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "reclaim-console"
CLIENT_SECRET = "test-client-secret-0123456789"
REVIEWERS = "reclaim-reviewers"
SUPERVISORS = "reclaim-supervisors"


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    user: str


@dataclass
class TestIssuer:
    __test__ = False  # not a test class: pytest, look elsewhere

    url: str = ""
    key: RSAKey = field(default_factory=lambda: new_key("test-1"))
    # user name → groups (the role claim)
    users: dict[str, list[str]] = field(
        default_factory=lambda: {
            "rita": [REVIEWERS],
            "sam": [SUPERVISORS],
            "sue": [SUPERVISORS, REVIEWERS],
            "visitor": ["everyone"],
        }
    )
    redirect_uris: set[str] = field(default_factory=set)
    grants: dict[str, Grant] = field(default_factory=dict)
    misbehave: str | None = None  # "issuer", "audience", "nonce", "signature", "expired"
    exchanges: list[dict[str, str]] = field(default_factory=list)

    def subject(self, user: str) -> str:
        return f"sub-{hashlib.sha256(user.encode()).hexdigest()[:16]}"

    def token(
        self,
        user: str,
        *,
        audience: str | list[str] = CLIENT_ID,
        issuer: str | None = None,
        nonce: str | None = None,
        expires_in: int = 300,
        key: RSAKey | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer or self.url,
            "sub": self.subject(user),
            "aud": audience,
            "iat": now,
            "exp": now + expires_in,
            "preferred_username": user,
            "email": f"{user}@example.org",
            "groups": self.users.get(user, []),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        signer = key or self.key
        return jwt.encode({"alg": "RS256", "kid": signer.kid}, claims, signer)

    def id_token_for(self, grant: Grant) -> str:
        bad = self.misbehave
        if bad == "issuer":
            return self.token(grant.user, nonce=grant.nonce, issuer="https://other.example")
        if bad == "audience":
            return self.token(grant.user, nonce=grant.nonce, audience="another-app")
        if bad == "nonce":
            return self.token(grant.user, nonce="a-nonce-from-another-sign-in")
        if bad == "expired":
            return self.token(grant.user, nonce=grant.nonce, expires_in=-3600)
        if bad == "foreign_key":
            return self.token(grant.user, nonce=grant.nonce, key=new_key("test-1"))
        token = self.token(grant.user, nonce=grant.nonce)
        if bad == "signature":
            return tamper(token)
        return token

    # -- the endpoints -----------------------------------------------------------------------

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            params = {k: str(v) for k, v in (await request.form()).items()}
        problem = self._bad_request(params)
        if problem:
            return HTMLResponse(f"<p>{html.escape(problem)}</p>", status_code=400)
        if request.method == "GET":
            hidden = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in params.items()
            )
            return HTMLResponse(
                '<!doctype html><html lang="en"><head><title>Test IdP</title></head><body>'
                "<main><h1>Sign in to the test identity provider</h1>"
                f'<form method="post" action="/authorize">{hidden}'
                '<label for="username">Username</label>'
                '<input id="username" name="username" autocomplete="username">'
                '<button type="submit">Sign in</button></form></main></body></html>'
            )
        user = params.get("username", "")
        if user not in self.users:
            return HTMLResponse("<p>No such user.</p>", status_code=401)
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(
            params["client_id"],
            params["redirect_uri"],
            params["code_challenge"],
            params["nonce"],
            user,
        )
        back = urlencode({"code": code, "state": params["state"]})
        return RedirectResponse(f"{params['redirect_uri']}?{back}", status_code=303)

    def _bad_request(self, params: dict[str, str]) -> str | None:
        if params.get("client_id") != CLIENT_ID:
            return "unknown client"
        if params.get("redirect_uri") not in self.redirect_uris:
            return "unregistered redirect_uri"
        if params.get("response_type") != "code":
            return "response_type must be code"
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return "PKCE (S256) is required"
        if not params.get("state") or not params.get("nonce"):
            return "state and nonce are required"
        return None

    async def token_endpoint(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.exchanges.append(form)
        auth = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if auth != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.grants.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if form.get("redirect_uri") != grant.redirect_uri:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.challenge:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, 400)
        return JSONResponse(
            {
                "access_token": self.token(grant.user),
                "id_token": self.id_token_for(grant),
                "token_type": "Bearer",
                "expires_in": 300,
            }
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize, methods=["GET", "POST"]),
                Route("/token", self.token_endpoint, methods=["POST"]),
            ]
        )


def tamper(token: str) -> str:
    """The same token with its payload changed (the signature no longer matches)."""
    header, payload, signature = token.split(".")
    claims = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    changed = claims.replace(b'"reclaim-reviewers"', b'"reclaim-supervisors"')
    if changed == claims:
        changed = claims.replace(b'"sub":"', b'"sub":"x')
    encoded = base64.urlsafe_b64encode(changed).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


@asynccontextmanager
async def running_issuer(issuer: TestIssuer | None = None) -> AsyncIterator[TestIssuer]:
    """The issuer behind uvicorn on a free port of this machine."""
    issuer = issuer or TestIssuer()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    issuer.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(issuer.app(), log_level="warning", lifespan="off", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield issuer
    finally:
        server.should_exit = True
        await task
