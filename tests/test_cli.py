"""The `reclaim` command line, as an operator uses it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from typer.testing import CliRunner, Result

from reclaim.cli import app
from reclaim.temporal import search_attributes
from tests.ldap_server import Slapd
from tests.stack import TEST_SECRET

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECLAIM_DATABASE_URL", f"sqlite:///{tmp_path / 'reclaim.db'}")
    monkeypatch.setenv("RECLAIM_SECRET_KEY", TEST_SECRET)
    for name, value in (("TIME_COST", "1"), ("MEMORY_COST", "1024"), ("PARALLELISM", "1")):
        monkeypatch.setenv(f"RECLAIM_ARGON2_{name}", value)
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    return tmp_path


def _add(*extra: str) -> object:
    return runner.invoke(
        app,
        ["accounts", "add", "--username", "Jane", "--email", "Jane@Example.com", *extra],
    )


def test_accounts_add_creates_a_ready_account_and_show_lists_it(cli_env: Path):
    added = _add("--phone", "+1 415 555 0123", "--password", "correct horse battery staple")

    assert added.exit_code == 0, added.output
    assert "created account jane" in added.output
    shown = runner.invoke(app, ["accounts", "show", "jane"])
    assert shown.exit_code == 0
    assert "jane@example.com" in shown.output and "+14155550123" in shown.output
    assert "status:     active" in shown.output


def test_accounts_add_refuses_a_weak_password_and_says_why(cli_env: Path):
    added = _add("--password", "jane1234")

    assert added.exit_code == 1
    assert "contains_username" in added.output


def test_accounts_add_refuses_a_taken_email(cli_env: Path):
    _add("--password", "correct horse battery staple")

    again = runner.invoke(
        app,
        [
            "accounts",
            "add",
            "--username",
            "other",
            "--email",
            "jane@example.com",
            "--password",
            "correct horse battery staple",
        ],
    )

    assert again.exit_code == 1
    assert "email already exists" in again.output


def test_accounts_show_of_an_unknown_account_fails_clearly(cli_env: Path):
    shown = runner.invoke(app, ["accounts", "show", "nobody"])

    assert shown.exit_code == 1
    assert "no account named nobody" in shown.output


def _mfa(*args: str) -> Result:
    return runner.invoke(app, ["accounts", "mfa", *args])


def _jane_with_factors() -> tuple[str, list[str]]:
    """Jane, given TOTP and recovery codes by an operator: the URI and the codes shown."""
    assert _add("--password", "correct horse battery staple").exit_code == 0
    enrolled = _mfa("totp", "jane")
    made = _mfa("recovery-codes", "jane")
    assert enrolled.exit_code == 0, enrolled.output
    assert made.exit_code == 0, made.output
    told, uri = enrolled.output.splitlines()
    assert told == "TOTP enrolled for jane; give the holder this URI, shown only now:"
    header, *codes = made.output.splitlines()
    assert header == (
        "10 new recovery codes for jane (the previous ones no longer work), each good once, "
        "shown only now:"
    )
    return uri, codes


def test_accounts_mfa_totp_prints_the_uri_an_authenticator_app_reads(cli_env: Path):
    uri, _ = _jane_with_factors()

    assert uri.startswith("otpauth://totp/Reclaim:jane?secret=")
    assert uri.endswith("&issuer=Reclaim")
    authenticator = pyotp.parse_uri(uri)
    assert isinstance(authenticator, pyotp.TOTP) and len(authenticator.now()) == 6


def test_accounts_mfa_recovery_codes_prints_ten_new_codes_one_a_line(cli_env: Path):
    _, first = _jane_with_factors()

    again = _mfa("recovery-codes", "jane")

    assert len(first) == len(set(first)) == 10
    assert all(len(code) == 11 and code[5] == "-" for code in first)
    second = again.output.splitlines()[1:]
    assert len(second) == 10 and not set(first) & set(second)


def test_accounts_mfa_show_lists_the_factors_and_never_a_secret(cli_env: Path):
    assert _add("--password", "correct horse battery staple").exit_code == 0
    before = _mfa("show", "jane")
    enrolled = _mfa("totp", "jane")
    made = _mfa("recovery-codes", "jane")

    shown = _mfa("show", "jane")

    assert (before.exit_code, before.output) == (
        0,
        "jane has no second factor: a contact code alone recovers it\n",
    )
    assert shown.exit_code == 0, shown.output
    totp, codes = shown.output.splitlines()
    assert re.fullmatch(
        r"TOTP: {11}enrolled \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, last used never", totp
    )
    assert re.fullmatch(
        r"recovery codes: enrolled \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, last used never, "
        r"10 left",
        codes,
    )
    secret = parse_qs(urlsplit(enrolled.output.splitlines()[1]).query)["secret"][0]
    assert secret not in shown.output
    assert not any(code in shown.output for code in made.output.splitlines()[1:])


def test_accounts_mfa_show_names_each_passkey_and_remove_takes_them_all(cli_env: Path):
    from datetime import UTC, datetime

    from reclaim.directory import Passkey
    from reclaim.store.engine import make_engine
    from tests.stack import sql_directory

    assert _add("--password", "correct horse battery staple").exit_code == 0
    engine = make_engine(f"sqlite:///{cli_env / 'reclaim.db'}")
    directory = sql_directory(engine)
    for name in ("Laptop", "Phone"):
        passkey = Passkey(name.encode(), b"cose key", 0, (), name, datetime.now(UTC))
        asyncio.run(directory.add_passkey(1, passkey))
    engine.dispose()

    shown = _mfa("show", "jane")
    removed = _mfa("remove", "jane", "--factor", "webauthn")
    after = _mfa("show", "jane")

    assert shown.exit_code == 0, shown.output
    for line, name in zip(shown.output.splitlines(), ("Laptop", "Phone"), strict=True):
        assert re.fullmatch(
            r"passkey: {8}enrolled \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, last used never, "
            rf"named '{name}'",
            line,
        )
    assert removed.exit_code == 0, removed.output
    assert "no second factor" in after.output


def test_accounts_mfa_remove_takes_a_factor_away(cli_env: Path):
    _jane_with_factors()

    removed = _mfa("remove", "jane", "--factor", "totp")
    again = _mfa("remove", "jane", "--factor", "totp")
    codes = _mfa("remove", "jane", "--factor", "recovery_code")
    shown = _mfa("show", "jane")
    unknown = _mfa("remove", "jane", "--factor", "sms")

    assert (removed.exit_code, removed.output) == (0, "removed TOTP from jane\n")
    assert (again.exit_code, again.output) == (0, "jane had no TOTP: nothing to remove\n")
    assert (codes.exit_code, codes.output) == (0, "removed recovery codes from jane\n")
    assert shown.output == "jane has no second factor: a contact code alone recovers it\n"
    assert unknown.exit_code == 2
    assert "'totp'" in unknown.output and "'recovery_code'" in unknown.output


def test_accounts_mfa_of_an_unknown_account_fails_clearly(cli_env: Path):
    for args in (["show"], ["totp"], ["recovery-codes"], ["remove", "--factor", "totp"]):
        answered = _mfa(*args, "nobody")

        assert (answered.exit_code, answered.output) == (1, "no account named nobody\n")


def test_accounts_mfa_on_a_directory_without_second_factors_says_so_in_one_line(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
):
    # An LDAP server nobody answers at, with no account marked as bound to a second factor:
    # the refusal comes before it is asked anything.
    monkeypatch.setenv("RECLAIM_DIRECTORY", "ldap")
    monkeypatch.setenv("RECLAIM_LDAP_URL", "ldap://127.0.0.1:9")
    monkeypatch.setenv("RECLAIM_LDAP_BIND_DN", "cn=reclaim,dc=example,dc=org")
    monkeypatch.setenv("RECLAIM_LDAP_BIND_PASSWORD", "secret")
    monkeypatch.setenv("RECLAIM_LDAP_USER_BASE", "ou=people,dc=example,dc=org")

    for args in (["show"], ["totp"], ["recovery-codes"], ["remove", "--factor", "totp"]):
        answered = _mfa(*args, "jane")

        assert answered.exit_code == 1
        assert answered.output == (
            "the ldap account directory cannot do this (second_factors): no account of this "
            "directory is bound to a second factor (on LDAP, mark them with "
            "RECLAIM_LDAP_MFA_ATTRIBUTE or RECLAIM_LDAP_MFA_GROUP: docs/directories.md)\n"
        )


async def test_a_new_codec_key_encrypts_while_the_old_one_still_decrypts():
    from temporalio.api.common.v1 import Payload

    from reclaim.temporal.codec import EncryptionCodec, parse_keys

    first = runner.invoke(app, ["temporal", "new-codec-key", "--id", "k1"])
    assert first.exit_code == 0, first.output
    old_spec = first.output.strip()
    rotated = runner.invoke(app, ["temporal", "new-codec-key", "--id", "k2", "--keep", old_spec])
    assert rotated.exit_code == 0, rotated.output
    new_spec = rotated.output.strip()

    assert [key_id for key_id, _ in parse_keys(new_spec)] == ["k2", "k1"]
    written_before = await EncryptionCodec(parse_keys(old_spec)).encode([Payload(data=b"case")])
    after = EncryptionCodec(parse_keys(new_spec))
    assert (await after.decode(written_before))[0].data == b"case"
    assert (await after.encode([Payload(data=b"x")]))[0].metadata["encryption-key-id"] == b"k2"
    again = runner.invoke(app, ["temporal", "new-codec-key", "--id", "k1", "--keep", old_spec])
    assert again.exit_code == 2 and "already a key id" in again.output


def test_temporal_setup_creates_the_namespace_then_registers_the_search_attributes_once(
    dev_server: str, monkeypatch: pytest.MonkeyPatch
):
    namespace = f"reclaim-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RECLAIM_TEMPORAL_ADDRESS", dev_server)
    monkeypatch.setenv("RECLAIM_TEMPORAL_NAMESPACE", namespace)
    monkeypatch.setenv("RECLAIM_SECRET_KEY", TEST_SECRET)
    setup = ["temporal", "setup", "--create-namespace", "--retention-days", "3"]

    first = runner.invoke(app, setup)
    again = runner.invoke(app, setup)

    assert first.exit_code == 0, first.output
    names = sorted(key.name for key in search_attributes.ALL)
    assert first.output == (
        f"created namespace {namespace} (closed cases kept 3 days)\n"
        f"registered on {namespace}: {', '.join(names)}\n"
    )
    assert again.exit_code == 0, again.output
    assert again.output == f"search attributes already on {namespace}\n"

    async def described() -> tuple[float, set[str]]:
        client = await Client.connect(dev_server, namespace=namespace)
        about = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        retention = about.config.workflow_execution_retention_ttl.ToTimedelta()
        return retention.total_seconds(), set(listed.custom_attributes)

    retention, custom = asyncio.run(described())
    assert retention == 3 * 86_400
    assert set(names) <= custom


def test_cases_list_with_nothing_open_says_so_and_how_to_see_closed_ones(
    cli_env: Path, dev_server: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RECLAIM_TEMPORAL_ADDRESS", dev_server)
    monkeypatch.setenv("RECLAIM_TASK_QUEUE", f"empty-{uuid.uuid4().hex[:8]}")  # no case ever

    listed = runner.invoke(app, ["cases", "list"])
    every = runner.invoke(app, ["cases", "list", "--all"])
    claims = runner.invoke(app, ["cases", "list", "--kind", "support_claim"])
    in_review = runner.invoke(app, ["cases", "list", "--state", "in_review"])

    assert (listed.exit_code, listed.stdout) == (0, ""), listed.output
    assert listed.stderr == "No open cases.\nClosed ones too: reclaim cases list --all\n"
    assert (every.exit_code, every.stdout, every.stderr) == (0, "", "No cases.\n")
    assert claims.stderr.startswith("No open support_claim cases.\n")
    assert (in_review.exit_code, in_review.stderr) == (0, "No cases in state in_review.\n")


def test_a_command_prints_its_answer_and_nothing_else_unless_asked(cli_env: Path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def reclaim(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reclaim", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=REPO,
        )

    added = reclaim(
        "accounts", "add", "--username", "jane", "--email", "jane@example.com",
        "--password", "correct horse battery staple",
    )  # fmt: skip
    listed = reclaim("staff", "list")
    upgraded = reclaim("db", "upgrade")

    assert (added.returncode, added.stderr) == (0, "")
    assert added.stdout == "created account jane (id 1)\n"
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, "", "")
    assert upgraded.stderr == "" and upgraded.stdout.endswith("(the newest)\n")


def test_on_an_ldap_directory_show_reads_the_entry_and_add_says_why_not_in_one_line(
    cli_env: Path, slapd: Slapd, monkeypatch: pytest.MonkeyPatch
):
    for name, value in slapd.reclaim_settings().items():
        monkeypatch.setenv(f"RECLAIM_{name.upper()}", str(value))

    shown = runner.invoke(app, ["accounts", "show", "jane"])
    added = _add("--password", "correct horse battery staple")
    banned = runner.invoke(app, ["accounts", "ban", "jane", "--reason", "spam"])

    assert shown.exit_code == 0, shown.output
    assert "username:   jane (id " in shown.output
    assert "email:      jane@example.com" in shown.output
    assert "phone:      +14155550123" in shown.output
    assert "sessions:   kept by the applications (ldap directory)" in shown.output
    assert "lifecycle:  the ldap directory's own (locks, deletions)" in shown.output
    assert added.exit_code == 1
    assert added.output == (
        "the ldap account directory cannot do this (create): accounts are made in the "
        "directory itself\n"
    )
    assert banned.exit_code == 1
    assert banned.output.splitlines() == [
        "the ldap account directory cannot do this (status): lock, disable or unlock the "
        "account in the directory itself"
    ]


def test_an_ldap_directory_that_does_not_answer_is_said_in_one_line(
    cli_env: Path, slapd: Slapd, monkeypatch: pytest.MonkeyPatch
):
    for name, value in slapd.reclaim_settings().items():
        monkeypatch.setenv(f"RECLAIM_{name.upper()}", str(value))
    slapd.stop()

    shown = runner.invoke(app, ["accounts", "show", "jane"])

    assert shown.exit_code == 1
    assert shown.output == (
        "the account directory is not answering: the LDAP server does not answer "
        "(LDAPSocketOpenError)\n"
    )
