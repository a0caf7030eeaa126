"""Every language Reclaim offers is complete: each text the pages, the console, the refusals
and the messages use has its translation, with the same placeholders; and every message renders in
every language."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from reclaim.i18n import LOCALES, SOURCE, Text
from reclaim.notify import messages
from reclaim.notify.messages import Links

REPO = Path(__file__).resolve().parents[1]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")
KEYWORDS = {**DEFAULT_KEYWORDS, "t": None, "plural": (1, 2)}


def _texts_in_the_code() -> set[str]:
    with (REPO / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        REPO, method_map, options_map, keywords=KEYWORDS
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_the_consoles_texts_are_extracted_with_the_pages():
    """babel.cfg reaches the console's templates and its Python words (view.py's tables are
    marked with `N_`, its sentences and routes.py's problems with `t`)."""
    found = _texts_in_the_code()

    for console_text in (
        "Claim queue",  # console_queue.html
        "Sign in to the support console",  # console_signin.html
        "What the claimant knew",  # console_case.html
        "Waiting for a reviewer",  # view.STATES (N_)
        "Account taken over",  # view.REASONS (N_)
        "Low: a previous password and a registered address matched.",  # view.risk_reason
        "Nobody has taken this claim yet: assign it to yourself first.",  # view.refusal
        "Write the reason: the claimant reads it in our mail.",  # routes.py
        "%(num)d open claim, the nearest deadline first",  # ngettext in a template
        "Its case file in the support console:",  # the escalation mail
    ):
        assert console_text in found, console_text


@pytest.mark.parametrize("locale", [code for code in LOCALES if code != SOURCE])
def test_every_text_is_translated_with_the_same_placeholders(locale: str):
    with (REPO / "reclaim/locales" / locale / "LC_MESSAGES/messages.po").open("rb") as source:
        catalog = read_po(source, locale=locale)
    translated = {(m.id[0] if isinstance(m.id, tuple) else m.id): m for m in catalog if m.id}

    missing = sorted(_texts_in_the_code() - set(translated))
    assert missing == [], f"{locale}: `make translations`, then translate: {missing[:5]}"
    for message in translated.values():
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(PLACEHOLDER.findall(" ".join(ids)))
        for text in strings:
            assert text, f"{locale}: {ids[0]!r} is not translated"
            assert set(PLACEHOLDER.findall(text)) == wanted, (locale, ids[0], text)


AT = datetime(2026, 12, 24, 9, 30, tzinfo=UTC)
LINKS = Links("https://reclaim.example")


def _every_message(t: Text) -> dict[str, messages.Message]:
    common = {"product": "Reclaim", "links": LINKS}
    claim = {"case_id": "sc_x", **common}
    return {
        "recovery_code": messages.recovery_code(
            t,
            code="042917",
            valid_for_seconds=600,
            webotp_domain="reclaim.example",
            case_id="rc_x",
            proof="p" * 43,
            **common,
        ),
        "guessing": messages.guessing(t, username="jane", **common),
        "recovery_held": messages.recovery_held(
            t,
            product="Reclaim",
            username="jane",
            until=AT,
            stop_url=LINKS.stop("rc_x", "s" * 43),
        ),
        "recovery_held_handover": messages.recovery_held(
            t,
            product="Reclaim",
            username="jane",
            until=AT,
            stop_url=LINKS.stop("rc_x", "s" * 43),
            new_contact="j•••@e•••.net",
        ),
        "recovery_held_lost_factors": messages.recovery_held(
            t,
            product="Reclaim",
            username="jane",
            until=AT,
            stop_url=LINKS.stop("rc_x", "s" * 43),
            removes_factors=True,
        ),
        "factors_removed": messages.factors_removed(
            t, username="jane", removed=["totp", "recovery_code", "Laptop"], at=AT, **common
        ),
        "no_account": messages.no_account(t, **common),
        "password_changed": messages.password_changed(t, username="jane", at=AT, **common),
        "password_changed_codes_left": messages.password_changed(
            t, username="jane", at=AT, recovery_codes_left=3, **common
        ),
        "password_changed_no_code_left": messages.password_changed(
            t, username="jane", at=AT, recovery_codes_left=0, **common
        ),
        "account_deactivated": messages.account_deactivated(
            t, username="jane", purge_at=AT, **common
        ),
        "banned": messages.banned(t, username="jane", until=AT, reason="spam", **common),
        "ban_ended": messages.ban_ended(t, username="jane", **common),
        "claim_received": messages.claim_received(t, claim_token="tok", **claim),
        "claim_question": messages.claim_question(t, questions="- Which city?", **claim),
        "claim_approved": messages.claim_decided(
            t, approved=True, note="ok", recovery_case_id="rc_y", **claim
        ),
        "claim_rejected": messages.claim_decided(
            t, approved=False, note="no", recovery_case_id=None, **claim
        ),
        "claim_abandoned": messages.claim_abandoned(t, **claim),
        "claim_cancelled": messages.claim_cancelled(t, reason="duplicate", **claim),
        "contact_replaced": messages.contact_replaced(
            t, username="jane", new_contact="j•••@e•••.net", **common
        ),
        "handover_failed": messages.handover_failed(t, **claim),
        **{
            f"factors_changed_{change}": messages.factors_changed(
                t, username="jane", change=change, at=AT, **common
            )
            for change in messages.FACTOR_CHANGES
        },
        "claim_escalated": messages.claim_escalated(
            t, product="Reclaim", case_id="sc_x", level="decision", links=LINKS
        ),
    }


@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_renders_in_every_language(locale: str):
    english = _every_message(Text(SOURCE))

    for kind, message in _every_message(Text(locale)).items():
        for part in (message.subject, message.text, message.html, message.sms):
            assert part and "%(" not in part, (locale, kind)
        if locale != SOURCE:
            assert message.subject != english[kind].subject, (locale, kind)
    code = _every_message(Text(locale))["recovery_code"]
    assert code.sms.endswith("\n\n@reclaim.example #042917")  # the WebOTP line, in any language
    assert f"https://reclaim.example/recover/rc_x?proof={'p' * 43}" in code.text
    assert f"https://reclaim.example/recover/rc_x?proof={'p' * 43}" in code.sms
    for kind in ("recovery_held", "recovery_held_handover", "recovery_held_lost_factors"):
        held = _every_message(Text(locale))[kind]
        assert f"https://reclaim.example/stop/rc_x?token={'s' * 43}" in held.text + held.sms
    escalated = _every_message(Text(locale))["claim_escalated"]
    for part in (escalated.text, escalated.html, escalated.sms):
        assert "https://reclaim.example/console/cases/sc_x" in part, (locale, part)
    for change in messages.FACTOR_CHANGES:
        told = _every_message(Text(locale))[f"factors_changed_{change}"]
        assert "https://reclaim.example/recover" in told.text
        assert "https://reclaim.example/recover" in told.sms
    removed = _every_message(Text(locale))["factors_removed"]
    assert "Laptop" in removed.text and "https://reclaim.example/support" in removed.sms
    handover = _every_message(Text(locale))["recovery_held_handover"]
    assert "j•••@e•••.net" in handover.text and "j•••@e•••.net" in handover.sms


def test_the_password_changed_mail_says_how_many_recovery_codes_are_left():
    t = Text("en")
    common = {"product": "Reclaim", "username": "jane", "at": AT, "links": LINKS}
    said = {
        left: " ".join(
            messages.password_changed(t, recovery_codes_left=left, **common).text.split()
        )
        for left in (None, 9, 1, 0)
    }

    assert "recovery code" not in said[None]
    assert "One of your recovery codes was used for this: 9 are left." in said[9]
    assert "One of your recovery codes was used for this: 1 is left." in said[1]
    assert "Your last recovery code was used for this: none are left." in said[0]


def test_no_console_template_writes_a_word_outside_the_catalogs():
    """Once the Jinja2 expressions, statements and comments are taken out, no text is left
    between the console's tags nor in an attribute a person reads."""
    untranslated = []
    for template in sorted((REPO / "api/console/templates").glob("*.html")):
        source = re.sub(r"\{#.*?#\}|\{\{.*?\}\}|\{%.*?%\}", "", template.read_text(), flags=re.S)
        source = re.sub(r"<[^>]*>", lambda tag: _readable_attributes(tag.group(0)), source)
        for words in re.findall(r"[^<>]*[A-Za-z]{2,}[^<>]*", source):
            if not re.fullmatch(r'\s*[\w-]+="[^"]*"\s*', words):  # a block of attributes
                untranslated.append((template.name, words.strip()))
    assert untranslated == []


def _readable_attributes(tag: str) -> str:
    """What of a tag a person reads: its aria-label, title, alt and placeholder."""
    said = re.findall(r'(?:aria-label|title|alt|placeholder)="([^"]*)"', tag)
    return "<>" + "<>".join(said) + "<>" if said else "<>"
