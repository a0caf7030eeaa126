"""Staff sign-in through the organisation's identity provider: OpenID Connect, authorization
code flow with PKCE (S256), and the verification of the provider's tokens.

The provider is found by discovery (`<issuer>/.well-known/openid-configuration`, whose
`issuer` must be the configured one); its signing keys come from its JWKS, fetched again when
a token names a key id not seen yet (key rotation), at most once a minute. A token is good
when its signature verifies with one of those keys (asymmetric algorithms only, never `none`
or a shared secret), its `iss` is the issuer, its `aud` names Reclaim's client id, it has not
expired (a minute of leeway for clocks), and, for the ID token of a sign-in, its `nonce` is
the one this browser's sign-in sent. The same check serves the codec endpoint, which takes
the provider's tokens as well as staff keys.

The role comes from one claim of the token (RECLAIM_OIDC_ROLE_CLAIM, a string or a list):
the supervisor value makes a supervisor, the reviewer value a reviewer, neither no access.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from reclaim.settings import CannotStart, Settings
from reclaim.support.contracts import StaffRole

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
LEEWAY = 60  # seconds of clock difference tolerated on exp, nbf and iat
KEYS_REFRESH = 60  # at most one JWKS refetch a minute for unknown key ids
LOGIN_TTL = 600  # seconds a sign-in may take at the provider
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class _NoAuth(httpx.Auth):
    pass


class OidcError(Exception):
    """The provider's answer or token is not acceptable; the message says why, without the
    token."""


class ProviderUnavailable(Exception):
    """The provider did not answer (discovery, keys or token endpoint)."""


@dataclass(frozen=True)
class LoginRequest:
    """What a browser's sign-in keeps until the provider sends it back (sealed in a cookie):
    the state it must return, the nonce its ID token must carry, the PKCE verifier."""

    state: str
    nonce: str
    verifier: str
    started: int  # unix time


@dataclass(frozen=True)
class Identity:
    """A member of staff as the provider vouches for them."""

    subject: str
    name: str
    role: StaffRole | None  # None: the provider gives them no Reclaim role


def new_login() -> LoginRequest:
    return LoginRequest(
        secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48), now()
    )


def now() -> int:
    return int(time.time())


def challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OidcSettingsError(CannotStart):
    pass


def oidc_provider(settings: Settings) -> OidcProvider | None:
    """The identity provider staff sign in with, None without RECLAIM_OIDC_ISSUER; settings
    that cannot work are refused in one line."""
    if not settings.oidc_issuer:
        return None
    if not settings.oidc_client_id:
        raise OidcSettingsError("RECLAIM_OIDC_ISSUER needs RECLAIM_OIDC_CLIENT_ID")
    parts = urlsplit(settings.oidc_issuer)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise OidcSettingsError(
            f"RECLAIM_OIDC_ISSUER={settings.oidc_issuer} must be an https:// URL "
            "(http:// on 127.0.0.1 only)"
        )
    if settings.oidc_supervisor_value == settings.oidc_reviewer_value:
        raise OidcSettingsError(
            "RECLAIM_OIDC_SUPERVISOR_VALUE and RECLAIM_OIDC_REVIEWER_VALUE must differ"
        )
    return OidcProvider(settings)


class OidcProvider:
    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        assert settings.oidc_issuer and settings.oidc_client_id
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        secret = settings.oidc_client_secret
        self._client_secret = secret.get_secret_value() if secret else None
        self.redirect_uri = settings.resolved_oidc_redirect_url
        self._scopes = settings.oidc_scopes
        self._role_claim = settings.oidc_role_claim
        self._supervisor = settings.oidc_supervisor_value
        self._reviewer = settings.oidc_reviewer_value
        self._name_claim = settings.oidc_name_claim
        self._http = http or httpx.AsyncClient(timeout=settings.oidc_timeout)
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._refreshed_at: float | None = None  # the last refetch for an unknown key id

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def label(self) -> str:
        """The provider as a person knows it: its host name."""
        return urlsplit(self.issuer).hostname or self.issuer

    # -- the sign-in -------------------------------------------------------------------------

    async def authorization_url(self, login: LoginRequest) -> str:
        metadata = await self._discovery()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self._scopes,
                "state": login.state,
                "nonce": login.nonce,
                "code_challenge": challenge(login.verifier),
                "code_challenge_method": "S256",
            }
        )
        endpoint = str(metadata["authorization_endpoint"])
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    async def finish(self, code: str, login: LoginRequest) -> Identity:
        """Exchange the code (with the PKCE verifier) and verify the ID token it brings."""
        if now() - login.started > LOGIN_TTL:
            raise OidcError("The sign-in took too long: start again.")
        metadata = await self._discovery()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": login.verifier,
            "client_id": self.client_id,
        }
        # A confidential client authenticates (client_secret_basic); a public one has PKCE only.
        auth: httpx.Auth = (
            httpx.BasicAuth(self.client_id, self._client_secret)
            if self._client_secret
            else _NoAuth()
        )
        try:
            answer = await self._http.post(
                str(metadata["token_endpoint"]),
                data=form,
                auth=auth,
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as err:
            raise ProviderUnavailable("the token endpoint did not answer") from err
        if answer.status_code >= 500:
            raise ProviderUnavailable(f"the token endpoint answered {answer.status_code}")
        try:
            body = answer.json()
        except ValueError as err:
            raise OidcError("The identity provider's answer is not JSON.") from err
        if answer.status_code != 200 or not isinstance(body, dict):
            said = body.get("error") if isinstance(body, dict) else None
            raise OidcError(f"The identity provider refused the sign-in ({said or 'no reason'}).")
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("The identity provider sent no ID token.")
        claims = await self.verify(id_token, nonce=login.nonce)
        return self.identity(claims)

    # -- tokens ------------------------------------------------------------------------------

    async def verify(self, token: str, *, nonce: str | None = None) -> dict[str, Any]:
        """The claims of a token the provider signed for Reclaim, or `OidcError`."""
        if not token or len(token) > 16_384 or token.count(".") != 2:
            raise OidcError("This is not a token from the identity provider.")
        keys = await self._key_set()
        try:
            try:
                decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
            except InvalidKeyIdError:  # a key the provider added since: fetch them again
                decoded = jwt.decode(
                    token, await self._key_set(refresh=True), algorithms=ALGORITHMS
                )
        except JoseError as err:
            raise OidcError("The token's signature is not the identity provider's.") from err
        claims = dict(decoded.claims)
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": self.issuer},
            "exp": {"essential": True},
            "sub": {"essential": True},
        }
        if nonce is not None:
            options["nonce"] = {"essential": True, "value": nonce}
        try:
            jwt.JWTClaimsRegistry(leeway=LEEWAY, **options).validate(claims)
        except ExpiredTokenError as err:
            raise OidcError("The token has expired.") from err
        except JoseError as err:
            claim = getattr(err, "claim", None) or "a claim"
            raise OidcError(f"The token is not for this Reclaim ({claim} is wrong).") from err
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.client_id not in audiences:
            raise OidcError("The token is not for this Reclaim (aud is wrong).")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise OidcError("The token names nobody.")
        return claims

    def identity(self, claims: dict[str, Any]) -> Identity:
        return Identity(str(claims["sub"]), self._name(claims), self._role(claims))

    def _role(self, claims: dict[str, Any]) -> StaffRole | None:
        value = claims.get(self._role_claim)
        values = {str(v) for v in value} if isinstance(value, list) else {str(value)}
        if isinstance(value, str):
            values |= set(value.split())
        if self._supervisor in values:
            return StaffRole.SUPERVISOR
        if self._reviewer in values:
            return StaffRole.REVIEWER
        return None

    def _name(self, claims: dict[str, Any]) -> str:
        for source in (claims.get(self._name_claim), claims.get("preferred_username")):
            if isinstance(source, str) and source.strip():
                return _NAME.sub("-", source.strip())[:64]
        email = claims.get("email")
        if isinstance(email, str) and "@" in email:
            return _NAME.sub("-", email.split("@", 1)[0])[:64]
        return _NAME.sub("-", str(claims["sub"]))[:64]

    # -- discovery and keys ------------------------------------------------------------------

    async def _discovery(self) -> dict[str, Any]:
        if self._metadata is None:
            metadata = await self._get(f"{self.issuer}/.well-known/openid-configuration")
            if str(metadata.get("issuer", "")).rstrip("/") != self.issuer:
                raise OidcError("The identity provider's discovery names another issuer.")
            for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(metadata.get(field), str):
                    raise OidcError(f"The identity provider's discovery has no {field}.")
            self._metadata = metadata
        return self._metadata

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        # The throttle counts from the last *refetch*, not the first fetch: a provider that
        # rotates its keys a moment after Reclaim first read them is still followed at once.
        last = self._refreshed_at
        stale = refresh and (last is None or time.monotonic() - last > KEYS_REFRESH)
        if self._keys is None or stale:
            metadata = await self._discovery()
            jwks = await self._get(str(metadata["jwks_uri"]))
            try:
                self._keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError) as err:
                raise OidcError("The identity provider's keys cannot be read.") from err
            if refresh:
                self._refreshed_at = time.monotonic()
        return self._keys

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            answer = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as err:
            raise ProviderUnavailable("the identity provider did not answer") from err
        if answer.status_code != 200:
            raise ProviderUnavailable(f"the identity provider answered {answer.status_code}")
        try:
            body = answer.json()
        except ValueError as err:
            raise ProviderUnavailable("the identity provider's answer is not JSON") from err
        if not isinstance(body, dict):
            raise ProviderUnavailable("the identity provider's answer is not a JSON object")
        return body
