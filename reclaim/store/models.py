"""The features' SQLModel tables: what must outlive a workflow.

The ledger of recovery cases (opened by the recovery service, closed by the workflow's last
activity), support claims with what the claimant wrote and answered, the support staff, and
every notification sent. The accounts themselves are the directory's (the built-in one keeps
them in `reclaim.directory.tables`). Never imported by workflow code (SQLAlchemy mappers do
not survive the workflow sandbox).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Index, LargeBinary, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# What a column that held an address or a name keeps once the account it belonged to is
# purged: never a value anybody could type (a username or an address cannot contain '~').
FORGOTTEN = "~purged~"


def utcnow() -> datetime:
    return datetime.now(UTC)


def when(*, nullable: bool = False, index: bool = False) -> Column:
    return Column(UTCDateTime(), nullable=nullable, index=index)


class SupportClaim(SQLModel, table=True):
    """One row per support claim: what the claimant wrote and where to reach them (kept out
    of workflow history), and, once it closes, its decision and whole timeline."""

    __tablename__ = "support_claim"

    case_id: str = Field(primary_key=True, max_length=40)
    # An account id of the directory, which may keep its accounts elsewhere: no foreign key.
    account_id: int | None = Field(default=None, index=True)
    reason: str = Field(max_length=16)
    contact_email: str = Field(max_length=254)
    contact_digest: str = Field(max_length=64, index=True)  # rate limit per contact
    description: str | None = Field(default=None, max_length=4000)
    claim_token_digest: str = Field(max_length=64)
    # The claim token, sealed until the "claim received" mail carrying it has gone.
    sealed_token: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    opened_at: datetime = Field(sa_column=when(index=True))
    # The language the claimant filed in: every mail about the claim is written in it.
    locale: str | None = Field(default=None, max_length=8)
    recovery_case_id: str | None = Field(default=None, max_length=40)
    # When a deadline first passed with nobody acting (for the escalation metrics).
    escalated_at: datetime | None = Field(default=None, sa_column=when(nullable=True))
    state: str | None = Field(default=None, max_length=20)  # final state, None while open
    closed_at: datetime | None = Field(default=None, sa_column=when(nullable=True))
    decision: str | None = None  # JSON, once closed
    timeline: str | None = None  # JSON, once closed


class ClaimQueueRow(SQLModel, table=True):
    """One row per support claim for the reviewers' queue (`reclaim.support.queue_rows`): what
    its search attributes carry, no personal data, kept by the claim's workflow at every change
    and ordered by `version` (the workflow's own change counter): an older change never
    overwrites a newer one. Each filter of the queue has its index, in deadline order."""

    __tablename__ = "claim_queue_row"
    __table_args__ = (
        Index("ix_claim_queue_row_open", "is_open", "next_deadline", "case_id"),
        Index("ix_claim_queue_row_state", "state", "next_deadline", "case_id"),
        Index("ix_claim_queue_row_reason", "reason", "next_deadline", "case_id"),
        Index("ix_claim_queue_row_risk", "risk", "next_deadline", "case_id"),
        Index("ix_claim_queue_row_assignee", "assignee", "next_deadline", "case_id"),
        Index("ix_claim_queue_row_escalated", "escalated", "next_deadline", "case_id"),
    )

    case_id: str = Field(primary_key=True, max_length=40)
    state: str = Field(max_length=24)
    is_open: bool
    reason: str = Field(max_length=24)
    risk: str = Field(max_length=16)
    assignee: str | None = Field(default=None, max_length=64)
    escalated: bool = False
    opened_at: datetime = Field(sa_column=when())
    next_deadline: datetime | None = Field(default=None, sa_column=when(nullable=True))
    version: int
    updated_at: datetime = Field(sa_column=when())


class ClaimAnswer(SQLModel, table=True):
    """What a claimant answered to a round of questions."""

    __tablename__ = "claim_answer"
    __table_args__ = (UniqueConstraint("case_id", "round"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(max_length=40, index=True)
    round: int
    text: str = Field(max_length=4000)
    at: datetime = Field(sa_column=when())


class Staff(SQLModel, table=True):
    """A support reviewer or supervisor, with the digest of their API key. A member who signs
    in through the organisation's identity provider is added at their first sign-in, with the
    provider's subject and no key (an empty digest, which no key matches); the provider's
    claims set their role at every sign-in."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True, index=True)
    role: str = Field(max_length=16)
    key_digest: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=when())
    disabled_at: datetime | None = Field(default=None, sa_column=when(nullable=True))
    oidc_subject: str | None = Field(default=None, max_length=255, unique=True, index=True)
    key_rotated_at: datetime | None = Field(default=None, sa_column=when(nullable=True))


class ConsoleSession(SQLModel, table=True):
    """A member of staff signed in to the console: only a keyed digest of the session token
    (the cookie) is kept. Signing out, disabling the member or rotating the key that opened it
    deletes it."""

    __tablename__ = "console_session"

    id: int | None = Field(default=None, primary_key=True)
    token_digest: str = Field(max_length=64, unique=True)
    staff_id: int = Field(index=True)
    staff_name: str = Field(max_length=64)
    role: str = Field(max_length=16)  # when it opened; the staff row decides on each request
    via: str = Field(max_length=8)  # "oidc" or "key"
    address: str | None = Field(default=None, max_length=64)  # where it signed in from
    created_at: datetime = Field(default_factory=utcnow, sa_column=when())
    expires_at: datetime = Field(sa_column=when(index=True))


class StaffAudit(SQLModel, table=True):
    """Every action of a member of staff: who, when, from where (the client's address), on
    which claim, what, and how it ended (`done`, or `refused: <code>`)."""

    __tablename__ = "staff_audit"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=when(index=True))
    staff_name: str = Field(max_length=64, index=True)
    role: str | None = Field(default=None, max_length=16)
    channel: str = Field(max_length=8)  # "console", "api" or "cli"
    address: str | None = Field(default=None, max_length=64)
    case_id: str | None = Field(default=None, max_length=40, index=True)
    action: str = Field(max_length=32)
    detail: str | None = Field(default=None, max_length=2000)
    outcome: str = Field(max_length=64)


class RecoveryCase(SQLModel, table=True):
    """One row per self-service case, written when it opens (it counts toward the rate
    limit from then on) and completed when the workflow closes it."""

    __tablename__ = "recovery_case"

    case_id: str = Field(primary_key=True, max_length=40)
    # An account id of the directory, which may keep its accounts elsewhere: no foreign key.
    account_id: int | None = Field(default=None, index=True)
    identifier_digest: str = Field(max_length=64, index=True)
    channel: str = Field(max_length=8)
    # Where to tell someone that no account exists under the address they typed; only for
    # unknown email addresses and phone numbers, wiped when the case closes.
    unknown_address: str | None = Field(default=None, max_length=254)
    # The language of the request that opened the case: its code and notices are written in it.
    locale: str | None = Field(default=None, max_length=8)
    opened_at: datetime = Field(sa_column=when(index=True))
    # The case an approved claim opens with a hold: the claim's verified address (its code goes
    # there; it replaces the account's contacts when the new password takes effect; wiped when
    # the case closes) and the claim, which names the replacement in the directory's record.
    handover_email: str | None = Field(default=None, max_length=254)
    handover_claim: str | None = Field(default=None, max_length=40)
    # The case an approved lost-authenticator claim opens: the second factors removed when its
    # new password takes effect, space-separated (`totp`, `recovery_code`, `webauthn:<key>`);
    # None for any other case.
    remove_factors: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    state: str | None = Field(default=None, max_length=16)  # final state, None while open
    closed_at: datetime | None = Field(default=None, sa_column=when(nullable=True))
    wrong_codes: int = 0
    resends: int = 0
    # The second factor proven before the new password (`totp`, `recovery_code`), if any.
    second_factor: str | None = Field(default=None, max_length=16)


class CodeGuess(SQLModel, table=True):
    """A code typed for a case, counted against its account's guess budget (a case without an
    account counts against its identifier, so both do the same work). A right code is
    forgiven: only wrong guesses spend the budget."""

    __tablename__ = "code_guess"

    id: int | None = Field(default=None, primary_key=True)
    budget: str = Field(max_length=64, index=True)  # keyed digest of the account
    case_id: str = Field(max_length=40)
    # The code's digest: the same code sent again (a lost answer) is not counted twice.
    guess: str = Field(max_length=64)
    at: datetime = Field(sa_column=when(index=True))


class SpentChallenge(SQLModel, table=True):
    """A proof-of-work solution that opened a case over the rate limit: kept until its
    challenge expires, so that one solution opens one case."""

    __tablename__ = "spent_challenge"

    challenge: str = Field(primary_key=True, max_length=128)  # the challenge's SHA-256, hex
    expires_at: datetime = Field(sa_column=when(index=True))


class NoAccountNotice(SQLModel, table=True):
    """The last "no account here" notice each address (or number) was sent, so that it hears
    it once per `no_account_notice_interval` at most, however often and however spelt it is
    asked about. Kept under a keyed digest of the address as its provider reads it
    (`reclaim.identifiers.notice_address`), never the address itself."""

    __tablename__ = "no_account_notice"

    address_digest: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(max_length=40)  # the case that sent it (a retry of it sends again)
    sent_at: datetime = Field(sa_column=when(index=True))


class NotificationKind:
    CODE = "code"
    NO_ACCOUNT = "no_account"
    PASSWORD_CHANGED = "password_changed"
    BANNED = "banned"  # answers a recovery attempt on a banned account
    ACCOUNT_DEACTIVATED = "account_deactivated"
    BAN_ENDED = "ban_ended"
    CONTACT_REPLACED = "contact_replaced"
    ESCALATION = "escalation"
    GUESSING = "guessing"  # someone is guessing codes for the account
    HOLD = "hold"  # a held recovery: "Wasn't you? Stop it"
    HANDOVER_FAILED = "handover_failed"  # a claim's handover could not be done at the hold's end
    PASSKEY_CLONED = "passkey_cloned"  # a passkey's counter went back: a copy was refused
    FACTORS_REMOVED = "factors_removed"  # a lost-authenticator claim's recovery took effect


class Notification(SQLModel, table=True):
    """Every message sent, one row per (case, kind, attempt, channel): the row is written
    before the message leaves, so a retried activity sends the same message again at most,
    never a different one."""

    __table_args__ = (UniqueConstraint("case_id", "kind", "attempt", "channel"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(max_length=40, index=True)
    kind: str = Field(max_length=24)
    attempt: int = 0
    channel: str = Field(max_length=8)
    recipient: str = Field(max_length=254)
    # The code of a code message, encrypted with a key derived from the server secret, kept
    # only until the case closes so a retry re-sends the same code.
    sealed_code: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=when(nullable=True))
    failures: int = 0  # delivery attempts the provider refused or that never reached it
    provider_id: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_column=when())


class PageFlash(SQLModel, table=True):
    """What a refused form showed, and what was typed in it (never a password or a code), kept
    for the one page the browser is sent to next (post/redirect/get), so that reloading that
    page posts nothing. Sealed for that page, kept minutes, read once (`reclaim.store.flash`)."""

    __tablename__ = "page_flash"

    flash_id: str = Field(primary_key=True, max_length=32)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    expires_at: datetime = Field(sa_column=when(index=True))
