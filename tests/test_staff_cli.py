"""`reclaim staff disable|rotate|list|audit`, as an operator uses them: a disabled or rotated
key stops working at once, the new key is printed once on the last line, and the audit says
who did what, from where, on which claim."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reclaim.cli import app
from reclaim.security import Keys
from reclaim.store.engine import make_engine
from reclaim.support.audit import AuditLog, Origin
from reclaim.support.contracts import StaffRole
from reclaim.support.staff import StaffRoster
from tests.stack import TEST_SECRET

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'reclaim.db'}"
    monkeypatch.setenv("RECLAIM_DATABASE_URL", url)
    monkeypatch.setenv("RECLAIM_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("USER", "olivia")
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    return url


def _roster(url: str) -> StaffRoster:
    return StaffRoster(make_engine(url), Keys(TEST_SECRET.encode()))


def test_a_rotated_key_stops_working_at_once_and_the_new_one_is_printed_last(database: str):
    added = runner.invoke(app, ["staff", "add", "--name", "rita", "--role", "reviewer"])
    old = added.output.strip().splitlines()[-1]
    roster = _roster(database)
    assert asyncio.run(roster.authenticate(old)) is not None

    rotated = runner.invoke(app, ["staff", "rotate", "rita"])

    assert rotated.exit_code == 0, rotated.output
    new = rotated.output.strip().splitlines()[-1]
    assert new.startswith("rk_") and new != old
    assert old not in rotated.output
    assert asyncio.run(roster.authenticate(old)) is None
    assert asyncio.run(roster.authenticate(new)) is not None


def test_a_disabled_member_is_shown_disabled_and_their_key_refused(database: str):
    added = runner.invoke(app, ["staff", "add", "--name", "rita", "--role", "reviewer"])
    key = added.output.strip().splitlines()[-1]

    disabled = runner.invoke(app, ["staff", "disable", "rita", "--by", "lead"])

    assert disabled.exit_code == 0, disabled.output
    assert "disabled rita" in disabled.output
    assert asyncio.run(_roster(database).authenticate(key)) is None
    listed = runner.invoke(app, ["staff", "list"])
    assert "rita" in listed.output and "disabled 20" in listed.output
    unknown = runner.invoke(app, ["staff", "disable", "nobody"])
    assert (unknown.exit_code, unknown.output.strip()) == (1, "No member of staff is named nobody.")
    rotate_unknown = runner.invoke(app, ["staff", "rotate", "nobody"])
    assert rotate_unknown.exit_code == 1


def test_the_audit_lists_actions_newest_first_by_claim_and_by_member(database: str):
    runner.invoke(app, ["staff", "add", "--name", "rita", "--role", "reviewer"])
    runner.invoke(app, ["staff", "rotate", "rita"])
    log = AuditLog(make_engine(database))
    console = Origin("console", "203.0.113.7")
    asyncio.run(
        log.record(
            who="rita",
            role=StaffRole.REVIEWER.value,
            origin=console,
            action="approve",
            outcome="refused: not_assignee",
            case_id="sc_aaaaaaaaaaaaaaaaaaaaaa",
            detail="Looks right",
        )
    )

    everything = runner.invoke(app, ["staff", "audit"])
    one_claim = runner.invoke(app, ["staff", "audit", "--case", "sc_aaaaaaaaaaaaaaaaaaaaaa"])
    by_olivia = runner.invoke(app, ["staff", "audit", "--by", "olivia"])
    nobody = runner.invoke(app, ["staff", "audit", "--by", "nobody"])

    lines = everything.output.strip().splitlines()
    assert "rita" in lines[0] and "console@203.0.113.7" in lines[0]
    assert "approve" in lines[0] and "refused: not_assignee" in lines[0]
    assert "«Looks right»" in lines[0]
    assert "olivia" in lines[1] and "rotate key" in lines[1] and "cli" in lines[1]
    assert len(one_claim.output.strip().splitlines()) == 1
    assert "rotate key" in by_olivia.output and "approve" not in by_olivia.output
    assert nobody.output.strip() == "no actions recorded"
