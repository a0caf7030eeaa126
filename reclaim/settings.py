"""Configuration: every knob is a `RECLAIM_*` environment variable (pydantic-settings).

Durations are whole seconds, as in the tables of docs/user-guide.md and docs/configuration.md,
so that an operator can shrink them for a drill (`RECLAIM_CODE_TTL=30`) without learning a
duration syntax.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reclaim.i18n import LOCALES, supported
from reclaim.notify.messages import Links
from reclaim.recovery.contracts import RecoveryRules
from reclaim.support.contracts import ClaimRules

if TYPE_CHECKING:
    from reclaim.temporal.codec import EncryptionCodec


class Settings(BaseSettings):
    # An empty variable counts as unset: a compose file passes `${RECLAIM_X:-}` through.
    model_config = SettingsConfigDict(env_prefix="RECLAIM_", extra="ignore", env_ignore_empty=True)

    # Where `reclaim dev` keeps its state: Temporal's and Reclaim's databases, the secret key,
    # the local mail outbox.
    state_dir: Path = Path(".reclaim")
    dev_mode: bool = False
    product_name: str = "Reclaim"
    public_url: str = "http://127.0.0.1:8000"
    # The host names (`Host` header, without the port) requests may name, comma-separated;
    # any other gets 400 `host_not_allowed`. Default: the public URL's host only.
    allowed_hosts: str | None = None
    # The language of pages and messages when the person's browser asks for none Reclaim
    # speaks (en, fr, es).
    default_locale: str = "en"
    # Branding of the pages: a logo file (PNG, SVG, JPEG or WebP, served by Reclaim), the
    # accent colour (buttons and links: dark enough for white text on it, 4.5:1), and how
    # to reach support (an address or a URL shown at the foot of every page).
    brand_logo: Path | None = None
    brand_accent: str = "#1d4ed8"
    support_contact: str | None = None

    # Secret from which every digest, token key and at-rest key is derived. Required outside
    # dev mode (see `secret_bytes`).
    secret_key: SecretStr | None = None

    database_url: str | None = None

    # Payload encryption keys, `id:base64key,...`: the first encrypts, all decrypt. Unset:
    # one key derived from the secret key (see reclaim/temporal/codec.py).
    codec_keys: SecretStr | None = None
    # The Temporal Web UI's origin, the only one allowed to call the codec endpoint from a
    # browser. Default: the `reclaim dev` UI.
    ui_origin: str | None = None
    # Which staff roles the codec endpoint opens histories for (comma-separated). Sealing
    # (`/codec/encode`, to send a signal or update from the Web UI or CLI) is for the same
    # roles, never for a reviewer whatever this says.
    codec_roles: str = "supervisor,operator"

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    # A cluster behind TLS, or Temporal Cloud: an API key, or a client certificate and its key
    # (mTLS, PEM files), optionally the CA that signed the server's certificate and the name
    # to check it against. TLS is on when any of them is set, unless RECLAIM_TEMPORAL_TLS says
    # otherwise (see reclaim/temporal/connection.py, `connect_options`).
    temporal_tls: bool | None = None
    temporal_api_key: SecretStr | None = None
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_tls_server_name: str | None = None
    task_queue: str = "reclaim"
    temporal_ui_port: int = 8233
    # How long an API call waits on a workflow before it answers 503.
    temporal_rpc_timeout: float = 10.0

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # `reclaim api` server processes (uvicorn workers) sharing the port. 1: a container or a
    # small machine runs one process and scales by replicas; `reclaim dev` and the compose
    # file run 2. Each process has its own admission limit below.
    api_workers: int = Field(1, ge=1, le=64)
    # Admission control (api/admission.py): requests one API process serves at once; past
    # it a request waits up to `api_queue_timeout` seconds for a slot (none when as many wait
    # already), then gets 503
    # `overloaded` with Retry-After (health, /metrics and static assets are never held).
    # Measured with `python -m bench overload` (docs/performance.md).
    api_max_in_flight: int = Field(16, ge=1)
    api_queue_timeout: float = Field(0.25, ge=0, le=5)
    # Every request's deadline from its arrival, its wait for a slot included: the Temporal
    # calls it makes are cut to what is left (reclaim/temporal/deadline.py), then 503.
    api_request_timeout: float = Field(10.0, gt=0)
    # The proxies (addresses, comma-separated, or `*`) whose X-Forwarded-For / -Proto the API
    # believes: behind a load balancer, the staff audit then records the client's address
    # rather than the balancer's. Unset: uvicorn's own (FORWARDED_ALLOW_IPS, else 127.0.0.1).
    api_trusted_proxies: str | None = None
    # When set, `GET /metrics` asks for `Authorization: Bearer <this>` (Prometheus'
    # `authorization` scrape setting); unset, it is open like /healthz.
    metrics_token: SecretStr | None = None
    # The worker's Temporal SDK metrics for Prometheus, e.g. `0.0.0.0:9464`; unset: off.
    worker_metrics_address: str | None = None
    # What one worker runs at once (the SDK's defaults), how many workflows it keeps in memory
    # between tasks (sticky cache), and how long a stopping worker lets running activities
    # finish before it cancels them (they are then retried on another worker).
    worker_max_concurrent_activities: int = Field(100, ge=1)
    worker_max_concurrent_workflow_tasks: int = Field(100, ge=2)
    # Workflows kept in memory between tasks. 500 rather than the SDK's 1 000: with 10 000
    # cases open (bench open-cases) a worker then holds 227 MiB instead of 307, and delivers
    # codes as fast (an evicted case replays its ~30 events when next touched).
    worker_max_cached_workflows: int = Field(500, ge=0)
    worker_shutdown_grace: float = Field(10.0, ge=0)
    # A worker keeps each case it ran in memory and gets that case's next task on a queue of
    # its own; a worker that died (SIGKILL, a lost host) takes none, and Temporal moves the
    # task to the shared queue after this long. The SDK's 10 s equals the API's request
    # deadline: every case the dead worker held would answer 503 once; 3 s leaves the
    # request time to be served by another worker.
    worker_sticky_timeout: float = Field(3.0, gt=0)
    # Temporal worker versioning (docs/deploy.md, "Upgrading"): the worker deployment this
    # worker belongs to and the build it runs. Cases are routed to the deployment's current
    # build and move to a new one at their next task (auto-upgrade), so an old worker never
    # meets a history a new one extended. Unset: unversioned, any worker takes any task.
    worker_deployment: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    worker_build_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.+-]{1,100}$")
    # The upgrade drill's workflows (workflows/drill.py), for `bench cluster upgrade` and its
    # tests only: "guarded" adds a step to the recovery and a timer to the claim behind
    # `workflow.patched`, "careless" adds them without (what `reclaim workflows check-replay`
    # must catch). Never set in production.
    upgrade_drill: Literal["off", "guarded", "careless"] = "off"
    # How far apart the clock of the door that signed a request (API, command line) and
    # Temporal's may be, for the worker to take the request's proof of who sent it
    # (reclaim/temporal/proofs.py). Also how long a captured proof could be sent again.
    actor_proof_window: int = Field(300, ge=1)
    # Workflows run without Temporal's sandbox: it re-imports each workflow's module for
    # every new case and wraps every activation, about a fifth of the worker's CPU. Their
    # determinism is kept by the tests instead (which run them inside the sandbox), the
    # architecture test (no clock, I/O or randomness in workflows/) and the replay test.
    workflow_sandbox: bool = False
    max_body_bytes: int = 16_384

    # Self-service recovery rules (reclaim/recovery).
    code_ttl: int = Field(600, ge=1)
    max_attempts: int = Field(5, ge=1)
    resend_cooldown: int = Field(60, ge=0)
    max_resends: int = Field(3, ge=0)
    reset_window: int = Field(900, ge=1)
    case_ttl: int = Field(3600, ge=1)
    cases_per_hour: int = Field(5, ge=1)
    # Wrong codes compared per account per hour, across its identifiers, channels and cases;
    # beyond it a code is not compared (the link in the message still works).
    guesses_per_hour: int = Field(10, ge=1)
    # For an account with a second factor: how long its proof may take once the contact code
    # was right, and how many wrong proofs lock the case.
    second_factor_window: int = Field(600, ge=1)
    second_factor_attempts: int = Field(5, ge=1)
    # A recovery through a contact changed in the last `recent_contact_days` days waits
    # `recovery_hold` seconds before its new password takes effect, the case an approved claim
    # opens `claim_recovery_hold` (0: no hold); meanwhile every other contact may stop it.
    recovery_hold: int = Field(86_400, ge=0)
    claim_recovery_hold: int = Field(259_200, ge=0)
    recent_contact_days: int = Field(7, ge=0)
    # Beyond `cases_per_hour`, a new case costs a proof of work (an ALTCHA challenge: find n
    # below `maxNumber` with SHA-256(salt + n) = challenge). `maxNumber` is `challenge_base`
    # for the first case over the limit and doubles with each further one, up to
    # `challenge_cap`; a challenge is good for `challenge_ttl` seconds (docs/security.md).
    challenge_base: int = Field(10_000, ge=1)
    challenge_cap: int = Field(160_000, ge=1)
    challenge_ttl: int = Field(600, ge=10)
    # Tell an email address or phone number that nobody has an account under it when someone
    # asks to recover one there (the person asking sees the same answer either way).
    notify_unknown: bool = True
    # At most one such notice per address (or number) per this many seconds, counted on the
    # address as its mailbox provider reads it (reclaim.identifiers.notice_address): asking
    # again and again, however the address is spelt, mails a stranger once a day at most.
    no_account_notice_interval: int = Field(86_400, ge=1)

    # Account lifecycle (reclaim/lifecycle).
    deletion_grace: int = Field(30 * 86_400, ge=1)  # deactivation → purge
    username_quarantine: int = Field(180 * 86_400, ge=0)  # a purged username stays taken
    # Where people appeal a ban or ask for help, when it is not Reclaim's own support pages
    # (`<public URL>/support`); named in the ban notice and the mails.
    support_url: str | None = None

    # Support claims (reclaim/support).
    first_response_sla: int = Field(86_400, ge=1)  # unassigned this long → escalated
    decision_sla: int = Field(259_200, ge=1)  # assigned, undecided this long → escalated
    claimant_window: int = Field(604_800, ge=1)  # a question unanswered this long → abandoned
    # A reviewer's approval of a high-risk claim waits this long for a supervisor to confirm it
    # (the two-person rule), then goes back to review.
    approval_confirm_window: int = Field(86_400, ge=1)
    claims_per_hour: int = Field(3, ge=1)  # per contact address
    # Where escalations are mailed (a support lead's inbox); unset: logged only.
    escalation_email: str | None = None

    # The console (/console): staff sign in through the organisation's identity provider
    # (OpenID Connect, authorization code with PKCE) when an issuer is set, else with their
    # staff key. The role comes from one claim of the ID token: the supervisor value makes a
    # supervisor, the reviewer value a reviewer, neither no access. The redirect URL (to
    # register at the provider) defaults to <public URL>/console/oidc/callback.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_redirect_url: str | None = None
    oidc_scopes: str = "openid profile email"
    oidc_role_claim: str = "groups"
    oidc_supervisor_value: str = "reclaim-supervisors"
    oidc_reviewer_value: str = "reclaim-reviewers"
    oidc_name_claim: str = "preferred_username"  # the staff name (assignments use it)
    oidc_timeout: float = Field(5.0, gt=0)
    console_session_ttl: int = Field(8 * 3600, ge=60)  # seconds a console sign-in lasts
    console_refresh: int = Field(30, ge=1)  # seconds between the queue's own refreshes
    # At most this many claims on one queue page (the nearest deadline first); counts are exact.
    console_queue_limit: int = Field(1000, ge=1)

    # Delivery.
    smtp_host: str | None = None
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_timeout: float = 10.0
    mail_from: str = "Reclaim <no-reply@reclaim.localhost>"
    # `reclaim dev` starts a local SMTP sink here unless RECLAIM_SMTP_HOST is set.
    dev_smtp_port: int = 1025

    sms_provider: Literal["console", "webhook", "twilio"] = "console"
    sms_webhook_url: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    # The origin named in the WebOTP line that ends every SMS code (`@<domain> #<code>`).
    webotp_domain: str | None = None
    # Region used to read phone numbers written without a country code (e.g. "US", "FR").
    default_region: str | None = None
    # Passkeys (WebAuthn, reclaim/passkeys.py): the relying party's id (a domain; default the
    # public URL's host, `localhost` for a loopback address), its name (default the product's)
    # and the origins a ceremony may come from, comma-separated (default the public URL's).
    webauthn_rp_id: str | None = None
    webauthn_rp_name: str | None = None
    webauthn_origins: str | None = None

    # Where the accounts are (reclaim/directory): `sql`, Reclaim's own tables (the default);
    # `ldap`, an LDAP server or Active Directory; `http`, the organisation's own application
    # implementing docs/directory-http.md. `reclaim.directory.check_settings` refuses, at
    # start-up and in one line, settings that cannot work.
    directory: Literal["sql", "ldap", "http"] = "sql"
    # LDAP: `ldap://host[:port]` (StartTLS with RECLAIM_LDAP_STARTTLS) or `ldaps://host[:port]`,
    # the CA that signed the server's certificate (else the system's), the service account
    # Reclaim binds as (it reads the users, sets their passwords, writes their mail and
    # phone), where the users are and which entries are users, the attributes that hold the
    # username, the email and the phone, and the server's kind (`openldap` or `ad`).
    ldap_url: str | None = None
    ldap_starttls: bool = False
    ldap_ca_file: Path | None = None
    ldap_bind_dn: str | None = None
    ldap_bind_password: SecretStr | None = None
    ldap_user_base: str | None = None
    # (objectClass=inetOrgPerson) on OpenLDAP, person users on AD (computers are users too)
    ldap_user_filter: str | None = None
    ldap_username_attr: str | None = None  # uid on OpenLDAP, sAMAccountName on AD
    ldap_email_attr: str = "mail"
    ldap_phone_attr: str = "mobile"
    ldap_flavor: Literal["openldap", "ad"] = "openldap"
    # The GeneralizedTime attribute read as when the entry's contacts last changed (a recovery
    # soon after is held). `modifyTimestamp` approximates it: any change to the entry counts,
    # a recovery's own password change included. Empty: the directory cannot say.
    ldap_contacts_changed_attribute: str = "modifyTimestamp"
    # Accounts bound to a second factor kept in another system (docs/directories.md): those
    # whose `ldap_mfa_attribute` holds `ldap_mfa_value` (any value when unset; `memberOf` and a
    # group's DN on Active Directory), or the members of the group `ldap_mfa_group` (its
    # `member`/`uniqueMember`; nested groups too on Active Directory). Such an account recovers
    # with a recovery code Reclaim keeps (`reclaim accounts mfa recovery-codes`) or a claim.
    ldap_mfa_attribute: str | None = None
    ldap_mfa_value: str | None = None
    ldap_mfa_group: str | None = None
    # Seconds to connect and to wait for an answer; connections kept open per process.
    ldap_timeout: float = Field(5.0, gt=0)
    ldap_pool_size: int = Field(4, ge=1)
    # HTTP: whether the host verifies its users' second factors (`POST …/factors/verify`); when
    # it cannot, an account whose read lists factors proves a recovery code Reclaim keeps.
    http_directory_verifies_factors: bool = True
    # HTTP: the host application's base URL and the Standard Webhooks secret (`whsec_` and
    # base64) every request is signed with; seconds to wait for an answer.
    http_directory_url: str | None = None
    http_directory_secret: SecretStr | None = None
    http_directory_timeout: float = Field(5.0, gt=0)

    # argon2id cost (argon2-cffi's defaults are RFC 9106's low-memory profile).
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_cost: int = Field(65_536, ge=8)
    argon2_parallelism: int = Field(4, ge=1)

    log_level: str = "INFO"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'reclaim.db'}"

    @property
    def resolved_ldap_username_attr(self) -> str:
        if self.ldap_username_attr:
            return self.ldap_username_attr
        return "sAMAccountName" if self.ldap_flavor == "ad" else "uid"

    @property
    def resolved_ldap_user_filter(self) -> str:
        if self.ldap_user_filter:
            return self.ldap_user_filter
        if self.ldap_flavor == "ad":
            return "(&(objectCategory=person)(objectClass=user))"
        return "(objectClass=inetOrgPerson)"

    @property
    def resolved_webotp_domain(self) -> str:
        if self.webotp_domain:
            return self.webotp_domain
        return urlsplit(self.public_url).hostname or "localhost"

    @property
    def resolved_webauthn_rp_id(self) -> str:
        """WebAuthn takes a domain, never an IP address: a loopback public URL is `localhost`
        (open the dev server at http://localhost:8000 to use a passkey)."""
        if self.webauthn_rp_id:
            return self.webauthn_rp_id.strip().lower()
        host = (urlsplit(self.public_url).hostname or "localhost").lower()
        return "localhost" if host in _LOOPBACK_ADDRESSES else host

    @property
    def resolved_webauthn_rp_name(self) -> str:
        return self.webauthn_rp_name or self.product_name

    @property
    def resolved_webauthn_origins(self) -> list[str]:
        """The origins a passkey's client data may name: RECLAIM_WEBAUTHN_ORIGINS, else the
        public URL's (and its `localhost` twin when the public URL is a loopback address)."""
        if self.webauthn_origins:
            return [origin_of(o) for o in self.webauthn_origins.split(",") if o.strip()]
        origins = [self.public_origin]
        parts = urlsplit(self.public_url)
        if (parts.hostname or "").lower() in _LOOPBACK_ADDRESSES:
            port = f":{parts.port}" if parts.port else ""
            origins.append(origin_of(f"{parts.scheme}://localhost{port}"))
        return origins

    @property
    def public_origin(self) -> str:
        """`scheme://host[:port]` of the public URL, lower-case: the only origin a form of
        Reclaim's pages posts from."""
        return origin_of(self.public_url)

    @property
    def public_https(self) -> bool:
        return urlsplit(self.public_url).scheme.lower() == "https"

    @property
    def resolved_allowed_hosts(self) -> frozenset[str]:
        """The host names a request may name: RECLAIM_ALLOWED_HOSTS, else the public URL's."""
        if self.allowed_hosts:
            named = (h.strip().lower().rstrip(".") for h in self.allowed_hosts.split(","))
            return frozenset(h for h in named if h)
        public = (urlsplit(self.public_url).hostname or "").lower()
        if self.dev_mode:  # `reclaim dev` on this machine: its loopback names too
            return frozenset({public, "127.0.0.1", "localhost", "::1"})
        return frozenset({public})

    @property
    def resolved_support_url(self) -> str:
        return self.support_url or f"{self.public_url.rstrip('/')}/support"

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer)

    @property
    def resolved_oidc_redirect_url(self) -> str:
        return self.oidc_redirect_url or f"{self.public_url.rstrip('/')}/console/oidc/callback"

    @property
    def links(self) -> Links:
        """The pages messages link to."""
        return Links(self.public_url, self.support_url)

    @field_validator("default_locale")
    @classmethod
    def _spoken(cls, value: str) -> str:
        locale = supported(value)
        if locale is None:
            raise ValueError(f"Reclaim speaks {', '.join(LOCALES)}, not {value}")
        return locale

    @field_validator("brand_accent")
    @classmethod
    def _readable(cls, value: str) -> str:
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            raise ValueError("an accent colour is #rrggbb, e.g. #1d4ed8")
        if contrast(value, "#ffffff") < 4.5:
            ratio = contrast(value, "#ffffff")
            raise ValueError(
                f"{value} is too light for white text on it (contrast {ratio:.1f}:1, at least "
                "4.5:1 is needed): choose a darker one"
            )
        return value.lower()

    @property
    def outbox_dir(self) -> Path:
        """Local mail and SMS outbox shown at `GET /dev/outbox` (dev mode only)."""
        return self.state_dir / "outbox"

    @cached_property
    def recovery_rules(self) -> RecoveryRules:
        return RecoveryRules(
            code_ttl=self.code_ttl,
            max_attempts=self.max_attempts,
            resend_cooldown=self.resend_cooldown,
            max_resends=self.max_resends,
            reset_window=self.reset_window,
            case_ttl=self.case_ttl,
            second_factor_window=self.second_factor_window,
            second_factor_attempts=self.second_factor_attempts,
        )

    @cached_property
    def held_recovery_rules(self) -> RecoveryRules:
        """For a recovery through a contact changed lately."""
        return replace(self.recovery_rules, hold=self.recovery_hold)

    @cached_property
    def claim_rules(self) -> ClaimRules:
        return ClaimRules(
            first_response_sla=self.first_response_sla,
            decision_sla=self.decision_sla,
            claimant_window=self.claimant_window,
            confirm_window=self.approval_confirm_window,
            recovery=replace(self.recovery_rules, hold=self.claim_recovery_hold),
        )

    def codec(self) -> EncryptionCodec:
        from reclaim.temporal.codec import EncryptionCodec, derived_key, parse_keys

        if self.codec_keys is not None:
            return EncryptionCodec(parse_keys(self.codec_keys.get_secret_value()))
        return EncryptionCodec([derived_key(self.secret_bytes())])

    @property
    def resolved_codec_roles(self) -> frozenset[str]:
        return frozenset(r.strip().lower() for r in self.codec_roles.split(",") if r.strip())

    @property
    def resolved_ui_origins(self) -> list[str]:
        if self.ui_origin:
            return [self.ui_origin.rstrip("/")]
        port = self.temporal_ui_port
        return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]

    @property
    def secret_file(self) -> Path:
        return self.state_dir / "secret_key"

    def secret_bytes(self) -> bytes:
        """The server secret. Required outside dev mode; in dev mode it is generated once and
        kept in the state directory, so codes and tokens survive a restart."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        if not self.dev_mode:
            raise SecretMissing(
                "RECLAIM_SECRET_KEY is required outside dev mode (generate one with: "
                'python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: when two processes start together, the first one's secret wins.
            fd = os.open(self.secret_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
        return self.secret_file.read_text().strip().encode()


class CannotStart(RuntimeError):
    """Something the operator must fix before Reclaim can run (a missing secret, settings
    that contradict each other, a database schema behind the code). `reclaim` says it in one
    line, without a traceback."""


class SecretMissing(CannotStart):
    pass


def contrast(first: str, second: str) -> float:
    """The WCAG contrast ratio of two #rrggbb colours (1 to 21)."""

    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


_LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "::1"})


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-case, without the scheme's default port (as a
    browser writes an `Origin` header)."""
    parts = urlsplit(url.strip())
    scheme, netloc = parts.scheme.lower(), parts.netloc.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and netloc.endswith(default):
        netloc = netloc.removesuffix(default)
    return f"{scheme}://{netloc}"


def load_settings() -> Settings:
    return Settings()
