"""Delivering codes and notices (the recovery service over the Notifier) on SQLite and (with
RECLAIM_TEST_POSTGRES_URL) PostgreSQL, through a real SMTP server and a real SMS webhook on
loopback: one message per case, kind, attempt and channel, the same code when a send is
retried, codes kept only sealed."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client

from reclaim.contracts import Channel
from reclaim.directory import AccountRecord
from reclaim.notify import notifier as notifier_module
from reclaim.notify.courier import Courier
from reclaim.notify.errors import Undeliverable
from reclaim.notify.mail import Mailer
from reclaim.notify.outbox import parse_mail, text_of
from reclaim.notify.sms import WebhookSms
from reclaim.recovery import steps as steps_module
from reclaim.recovery.contracts import CaseClosing, CaseState, IssueCode
from reclaim.recovery.steps import RecoverySteps
from reclaim.security import Keys, new_case_id
from reclaim.services import build_services
from reclaim.settings import Settings
from reclaim.store.models import Notification, RecoveryCase
from tests.mailbox import CODE_IN_TEXT, smtp_server
from tests.sms_gateway import SmsGateway
from tests.stack import FAST_ARGON2, sql_directory

SECRET = "notification-tests-secret-0123456789"
KEYS = Keys(SECRET.encode())
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
EMAIL = "jane@example.com"
PHONE = "+14155550123"
DOMAIN = "reclaim.test"
SIX_DIGITS = re.compile(r"(?<!\d)\d{6}(?!\d)")


class SmtpServer:
    """A real SMTP server (aiosmtpd) that keeps every message handed to it, the ones it turned
    away included, and can refuse recipients or fail the next few messages on demand."""

    def __init__(self) -> None:
        self.port = 0
        self.refuse_rcpt: str | None = None
        self.fail_next = 0
        self.handed: list[EmailMessage] = []
        self.delivered: list[EmailMessage] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = parse_mail(envelope.original_content or envelope.content)
        self.handed.append(message)
        if self.fail_next > 0:
            self.fail_next -= 1
            return "451 4.3.0 local error, try again later"
        self.delivered.append(message)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server(SmtpServer()) as server:
        yield server


@pytest.fixture
def gateway(sms: SmsGateway) -> SmsGateway:
    return sms


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(
        secret_key=SECRET,
        **FAST_ARGON2,
        state_dir=tmp_path,
        product_name="Reclaim",
        public_url="https://reclaim.test",
        webotp_domain=DOMAIN,
        **values,
    )


async def _recovery(
    engine: Engine, smtp: SmtpServer, gateway: SmsGateway, settings: Settings
) -> tuple[RecoverySteps, Courier]:
    """The recovery service as the worker builds it, delivering through the test's servers
    (its Temporal client never connects: delivery calls no workflow)."""
    courier = Courier(
        Mailer("127.0.0.1", smtp.port, sender="Reclaim <no-reply@reclaim.test>", timeout=5),
        WebhookSms(gateway.url, timeout=5),
    )
    client = await Client.connect("127.0.0.1:9", lazy=True)
    return build_services(settings, client, engine, courier).recovery_steps, courier


@pytest.fixture
async def notifier(
    engine: Engine, smtp: SmtpServer, gateway: SmsGateway, tmp_path: Path
) -> AsyncIterator[RecoverySteps]:
    recovery, courier = await _recovery(engine, smtp, gateway, _settings(tmp_path))
    yield recovery
    await courier.aclose()


async def _account(engine: Engine, phone: str | None = PHONE) -> AccountRecord:
    return await sql_directory(engine).create(
        username="jane", email=EMAIL, phone=phone, password="not the point"
    )


def _case(
    engine: Engine,
    account_id: int | None,
    channel: Channel = Channel.EMAIL,
    unknown_address: str | None = None,
) -> str:
    case_id = new_case_id()
    with Session(engine) as session:
        session.add(
            RecoveryCase(
                case_id=case_id,
                account_id=account_id,
                identifier_digest=KEYS.identifier_digest(f"{case_id}:{unknown_address}"),
                channel=channel.value,
                unknown_address=unknown_address,
                opened_at=T0,
            )
        )
        session.commit()
    return case_id


def _issue(
    case_id: str, account_id: int | None, attempt: int = 0, channel: Channel = Channel.EMAIL
) -> IssueCode:
    return IssueCode(case_id, account_id, channel, attempt, T0 + timedelta(minutes=10))


def _code_in(mail: EmailMessage) -> str:
    [code] = CODE_IN_TEXT.findall(text_of(mail))
    return str(code)


def _rows(engine: Engine, case_id: str) -> list[Notification]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(Notification)
                .where(Notification.case_id == case_id)
                .order_by(col(Notification.id))
            ).all()
        )


@pytest.fixture
def codes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the codes the Notifier draws predictable, so that a code drawn anew where the
    old one should have been re-sent always shows."""
    drawn = ["111111", "222222", "333333", "444444"]
    supply = iter(drawn)
    monkeypatch.setattr(notifier_module, "new_code", lambda: next(supply))
    return drawn


# Codes


async def test_a_code_mail_arrives_with_a_six_digit_code_whose_digest_is_returned(
    engine: Engine, smtp: SmtpServer, notifier: RecoverySteps
):
    account = await _account(engine)
    case_id = _case(engine, account.id)

    issued = await notifier.issue_code(_issue(case_id, account.id), T0)

    [mail] = smtp.delivered
    assert mail["To"] == EMAIL
    assert mail["Subject"] == "Your Reclaim recovery code"
    assert mail["Message-ID"] == f"<{case_id}.code.0.email@{DOMAIN}>"
    assert "expires in 10 minutes" in text_of(mail)
    code = _code_in(mail)
    assert re.fullmatch(r"\d{6}", code)
    assert issued.code_digest == KEYS.code_digest(case_id, code)
    # Its link proves the same code without typing it.
    link = re.search(rf"/recover/{case_id}\?proof=([\w-]{{43}})\s", text_of(mail))
    assert link is not None
    assert issued.proof_digest == KEYS.proof_digest(case_id, link.group(1))
    [row] = _rows(engine, case_id)
    assert row.sent_at is not None
    assert row.recipient == EMAIL


async def test_a_code_sms_ends_with_the_webotp_line_and_records_the_gateway_id(
    engine: Engine, smtp: SmtpServer, gateway: SmsGateway, notifier: RecoverySteps
):
    account = await _account(engine)
    case_id = _case(engine, account.id, Channel.SMS)
    gateway.provider_id = "gw-7"

    digest = (
        await notifier.issue_code(_issue(case_id, account.id, channel=Channel.SMS), T0)
    ).code_digest

    [sms] = gateway.delivered
    assert sms["to"] == PHONE
    code = sms["body"].rsplit("#", 1)[1]
    assert sms["body"].startswith(f"{code} is your Reclaim recovery code.")
    assert sms["body"].endswith(f"\n@{DOMAIN} #{code}")
    assert digest == KEYS.code_digest(case_id, code)
    assert smtp.handed == []
    [row] = _rows(engine, case_id)
    assert (row.channel, row.provider_id) == ("sms", "gw-7")


async def test_a_send_retried_after_a_failed_delivery_resends_the_same_code(
    engine: Engine, smtp: SmtpServer, notifier: RecoverySteps, codes: list[str]
):
    account = await _account(engine)
    case_id = _case(engine, account.id)
    smtp.fail_next = 1

    with pytest.raises(Exception) as caught:
        await notifier.issue_code(_issue(case_id, account.id), T0)
    assert not isinstance(caught.value, Undeliverable)
    assert smtp.delivered == []

    digest = (await notifier.issue_code(_issue(case_id, account.id), T0)).code_digest

    assert [_code_in(m) for m in smtp.handed] == [codes[0], codes[0]]
    assert len({m["Message-ID"] for m in smtp.handed}) == 1
    [mail] = smtp.delivered
    assert digest == KEYS.code_digest(case_id, _code_in(mail))

    again = (await notifier.issue_code(_issue(case_id, account.id), T0)).code_digest

    assert again == digest
    assert len(smtp.handed) == 2
    [row] = _rows(engine, case_id)
    assert row.sent_at is not None


async def test_an_sms_retried_after_a_gateway_outage_resends_the_same_code(
    engine: Engine, gateway: SmsGateway, notifier: RecoverySteps, codes: list[str]
):
    account = await _account(engine)
    case_id = _case(engine, account.id, Channel.SMS)
    request = _issue(case_id, account.id, channel=Channel.SMS)
    gateway.status = 503

    with pytest.raises(Exception) as caught:
        await notifier.issue_code(request, T0)
    assert not isinstance(caught.value, Undeliverable)

    gateway.status = 200
    digest = (await notifier.issue_code(request, T0)).code_digest
    await notifier.issue_code(request, T0)

    bodies = [m["body"] for m in gateway.posted]
    assert len(bodies) == 2
    assert [m["body"] for m in gateway.delivered] == bodies[1:]
    assert bodies[0] == bodies[1]
    assert bodies[0].endswith(f"#{codes[0]}")
    assert digest == KEYS.code_digest(case_id, codes[0])


async def test_a_new_attempt_gets_its_own_row_and_a_new_code(
    engine: Engine, smtp: SmtpServer, notifier: RecoverySteps, codes: list[str]
):
    account = await _account(engine)
    case_id = _case(engine, account.id)

    first = (await notifier.issue_code(_issue(case_id, account.id, attempt=0), T0)).code_digest
    second = (await notifier.issue_code(_issue(case_id, account.id, attempt=1), T0)).code_digest

    assert [_code_in(m) for m in smtp.delivered] == codes[:2]
    assert [m["Message-ID"] for m in smtp.delivered] == [
        f"<{case_id}.code.0.email@{DOMAIN}>",
        f"<{case_id}.code.1.email@{DOMAIN}>",
    ]
    assert first == KEYS.code_digest(case_id, codes[0])
    assert second == KEYS.code_digest(case_id, codes[1])
    rows = _rows(engine, case_id)
    assert [(r.attempt, r.sent_at is not None) for r in rows] == [(0, True), (1, True)]


async def test_a_code_is_kept_only_sealed_and_closing_the_case_wipes_it(
    engine: Engine, smtp: SmtpServer, notifier: RecoverySteps
):
    account = await _account(engine)
    case_id = _case(engine, account.id)
    await notifier.issue_code(_issue(case_id, account.id), T0)
    code = _code_in(smtp.delivered[0])

    with engine.connect() as connection:
        [raw] = connection.execute(
            text("SELECT * FROM notification WHERE case_id = :case_id"), {"case_id": case_id}
        ).mappings()
    sealed = bytes(raw["sealed_code"])
    assert code.encode() not in sealed
    for name, value in raw.items():
        if isinstance(value, str) and not name.endswith("_at"):
            assert code not in value, name
    assert KEYS.unseal(sealed, f"{case_id}/code/0") == code  # it is the code, sealed

    await notifier.close(CaseClosing(case_id, CaseState.EXPIRED, T0 + timedelta(hours=1), 0, 0))

    [row] = _rows(engine, case_id)
    assert row.sealed_code is None
    with pytest.raises(Undeliverable):
        await notifier.issue_code(_issue(case_id, account.id), T0)
    assert len(smtp.handed) == 1


async def test_an_sms_code_for_an_account_without_a_phone_is_undeliverable(
    engine: Engine, smtp: SmtpServer, gateway: SmsGateway, notifier: RecoverySteps
):
    account = await _account(engine, phone=None)
    case_id = _case(engine, account.id, Channel.SMS)

    with pytest.raises(Undeliverable):
        await notifier.issue_code(_issue(case_id, account.id, channel=Channel.SMS), T0)

    assert gateway.posted == [] and smtp.handed == []


async def test_a_provider_id_longer_than_its_column_still_marks_the_sms_sent_once(
    engine: Engine, gateway: SmsGateway, notifier: RecoverySteps
):
    account = await _account(engine)
    case_id = _case(engine, account.id, Channel.SMS)
    request = _issue(case_id, account.id, channel=Channel.SMS)
    gateway.provider_id = "gw-" + "x" * 300

    await notifier.issue_code(request, T0)
    await notifier.issue_code(request, T0)

    assert len(gateway.posted) == 1
    [row] = _rows(engine, case_id)
    assert row.sent_at is not None
    assert row.provider_id and gateway.provider_id.startswith(row.provider_id)


# Cases without an account


@pytest.mark.parametrize(
    ("channel", "address"), [(Channel.EMAIL, "nobody@example.com"), (Channel.SMS, "+14155550199")]
)
async def test_an_unknown_address_hears_once_that_no_account_uses_it_and_never_a_code(
    engine: Engine,
    smtp: SmtpServer,
    gateway: SmsGateway,
    notifier: RecoverySteps,
    channel: Channel,
    address: str,
):
    case_id = _case(engine, None, channel, unknown_address=address)

    digest = (await notifier.issue_code(_issue(case_id, None, 0, channel), T0)).code_digest
    await notifier.issue_code(_issue(case_id, None, 0, channel), T0)  # a retried activity
    await notifier.issue_code(_issue(case_id, None, 1, channel), T0)  # a resend

    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    if channel is Channel.EMAIL:
        [mail] = smtp.handed
        assert mail["To"] == address
        assert mail["Subject"] == "Reclaim account recovery"
        assert "no account uses it" in text_of(mail)
        html = mail.get_body(preferencelist=("html",))
        assert html is not None
        assert not SIX_DIGITS.search(text_of(mail) + html.get_content())
        assert gateway.posted == []
    else:
        [sms] = gateway.posted
        assert sms["to"] == address
        assert "none uses it" in sms["body"]
        assert not SIX_DIGITS.search(sms["body"])
        assert smtp.handed == []
    [row] = _rows(engine, case_id)
    assert (row.kind, row.attempt, row.sealed_code) == ("no_account", 0, None)


async def test_a_stranger_asked_about_again_and_again_however_spelt_hears_once_a_day(
    engine: Engine, smtp: SmtpServer, gateway: SmsGateway, tmp_path: Path
):
    spellings = [
        "Stranger+x@GMail.com",
        "s.t.r.anger@gmail.com",
        "STRANGER@googlemail.com",
        "stranger+news@gmail.com",
        "stranger@gmail.com",
    ]
    # Each request as a process of its own might serve it (an API replica, a worker restarted).
    for n, address in enumerate(spellings):
        recovery, courier = await _recovery(engine, smtp, gateway, _settings(tmp_path))
        try:
            case_id = _case(engine, None, unknown_address=address)
            await recovery.issue_code(_issue(case_id, None), T0 + timedelta(minutes=n))
        finally:
            await courier.aclose()
    recovery, courier = await _recovery(engine, smtp, gateway, _settings(tmp_path))
    try:
        [mail] = smtp.handed
        assert mail["To"] == "Stranger+x@GMail.com"
        assert "no account uses it" in text_of(mail)

        # Another address has a notice of its own; one that only looks alike elsewhere too.
        for other in ("someone.else@gmail.com", "stranger+x@example.org", "stranger@example.org"):
            await recovery.issue_code(_issue(_case(engine, None, unknown_address=other), None), T0)
        assert [m["To"] for m in smtp.handed[1:]] == [
            "someone.else@gmail.com",
            "stranger+x@example.org",
            "stranger@example.org",
        ]

        # A day after the first notice, the stranger may hear it again, once.
        late = _case(engine, None, unknown_address="st.ranger@gmail.com")
        await recovery.issue_code(_issue(late, None), T0 + timedelta(seconds=86_399))
        assert len(smtp.handed) == 4
        for _ in range(2):
            case_id = _case(engine, None, unknown_address="st.ranger@gmail.com")
            await recovery.issue_code(_issue(case_id, None), T0 + timedelta(days=1))
        assert [m["To"] for m in smtp.handed[4:]] == ["st.ranger@gmail.com"]
    finally:
        await courier.aclose()
    # The database keeps when each address was told under a keyed digest, never the address;
    # and only while it matters (the others' turns, a day old, are gone).
    with engine.connect() as connection:
        rows = list(connection.execute(text("SELECT * FROM no_account_notice")))
    kept = " ".join(str(v) for row in rows for v in row)
    assert "stranger" not in kept.lower() and "gmail" not in kept.lower()
    assert len(rows) == 1


async def test_a_notice_skipped_takes_as_long_as_a_send_and_a_retry_of_the_sender_still_sends(
    engine: Engine,
    smtp: SmtpServer,
    notifier: RecoverySteps,
    monkeypatch: pytest.MonkeyPatch,
):
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(notifier_module.Notifier, "typical_send_seconds", lambda self, ch: 0.0123)
    monkeypatch.setattr(steps_module.asyncio, "sleep", sleep)
    first = _case(engine, None, unknown_address="nobody@example.com")
    second = _case(engine, None, unknown_address="Nobody@Example.com")

    await notifier.issue_code(_issue(first, None), T0)
    await notifier.issue_code(_issue(second, None), T0)
    await notifier.issue_code(_issue(first, None), T0 + timedelta(minutes=1))  # a retry

    assert len(smtp.handed) == 1
    assert waits == [0.0123]  # the second case waited what a send takes, as if it had sent


async def test_two_cases_for_one_stranger_at_once_send_one_notice(
    engine: Engine, smtp: SmtpServer, gateway: SmsGateway, notifier: RecoverySteps
):
    cases = [_case(engine, None, unknown_address="nobody@example.com") for _ in range(4)]
    cases += [_case(engine, None, Channel.SMS, unknown_address="+14155550199") for _ in range(4)]

    await asyncio.gather(
        *(
            notifier.issue_code(
                _issue(c, None, channel=Channel.SMS if n >= 4 else Channel.EMAIL), T0
            )
            for n, c in enumerate(cases)
        )
    )

    assert [m["To"] for m in smtp.handed] == ["nobody@example.com"]
    assert [m["to"] for m in gateway.posted] == ["+14155550199"]


async def test_an_unknown_address_hears_nothing_when_notify_unknown_is_off(
    engine: Engine, smtp: SmtpServer, gateway: SmsGateway, tmp_path: Path
):
    notifier, courier = await _recovery(
        engine, smtp, gateway, _settings(tmp_path, notify_unknown=False)
    )
    case_id = _case(engine, None, unknown_address="nobody@example.com")
    try:
        digest = (await notifier.issue_code(_issue(case_id, None), T0)).code_digest
    finally:
        await courier.aclose()

    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert smtp.handed == [] and gateway.posted == []
    assert _rows(engine, case_id) == []


# Password changed


async def test_password_changed_tells_the_email_and_the_phone_once_each_even_if_called_twice(
    engine: Engine, smtp: SmtpServer, gateway: SmsGateway, notifier: RecoverySteps
):
    account = await _account(engine)
    case_id = _case(engine, account.id)

    await notifier.tell_password_changed(case_id, account.id, T0)
    await notifier.tell_password_changed(case_id, account.id, T0)

    [mail] = smtp.handed
    assert mail["To"] == EMAIL
    assert mail["Subject"] == "Your Reclaim password was changed"
    assert "account jane was changed on Nov 24, 2026, 12:00\u202fPM UTC" in text_of(mail)
    assert "https://reclaim.test" in text_of(mail)
    [sms] = gateway.posted
    assert sms["to"] == PHONE
    assert "password of jane was changed on Nov 24, 2026, 12:00\u202fPM UTC" in sms["body"]
    rows = _rows(engine, case_id)
    assert sorted((r.kind, r.channel) for r in rows) == [
        ("password_changed", "email"),
        ("password_changed", "sms"),
    ]


async def test_a_phone_the_sms_provider_refuses_for_good_does_not_stop_the_email(
    engine: Engine, smtp: SmtpServer, gateway: SmsGateway, notifier: RecoverySteps
):
    account = await _account(engine)
    case_id = _case(engine, account.id)
    gateway.status = 400

    await notifier.tell_password_changed(case_id, account.id, T0)

    [mail] = smtp.delivered
    assert mail["Subject"] == "Your Reclaim password was changed"
    assert [m["to"] for m in gateway.posted] == [PHONE]
    assert gateway.delivered == []


async def test_an_email_the_mail_server_refuses_for_good_does_not_stop_the_sms(
    engine: Engine, smtp: SmtpServer, gateway: SmsGateway, notifier: RecoverySteps
):
    account = await _account(engine)
    case_id = _case(engine, account.id)
    smtp.refuse_rcpt = "550 5.1.1 no such user"

    await notifier.tell_password_changed(case_id, account.id, T0)

    assert smtp.handed == []
    [sms] = gateway.delivered
    assert sms["to"] == PHONE


async def test_an_sms_outage_after_the_password_changed_email_is_retried_without_a_second_email(
    engine: Engine, smtp: SmtpServer, gateway: SmsGateway, notifier: RecoverySteps
):
    account = await _account(engine)
    case_id = _case(engine, account.id)
    gateway.status = 503

    with pytest.raises(Exception) as caught:
        await notifier.tell_password_changed(case_id, account.id, T0)
    assert not isinstance(caught.value, Undeliverable)

    gateway.status = 200
    await notifier.tell_password_changed(case_id, account.id, T0)

    assert len(smtp.handed) == 1
    assert [m["to"] for m in gateway.posted] == [PHONE, PHONE]
    assert [m["to"] for m in gateway.delivered] == [PHONE]
