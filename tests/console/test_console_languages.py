"""The console in the reviewer's language, over HTTP: the browser's Accept-Language chooses it,
the language links change it and the pages' cookie remembers it; English stays the default.
Whatever the reviewer reads, the claimant is written to in the claim's language."""

from __future__ import annotations

import html

from reclaim.notify.outbox import text_of
from reclaim.support.contracts import ClaimReason
from tests.console.desk import CONTACT, PASSWORD, STRONG, Staff, file_claim
from tests.console.test_actions import act, fact, status
from tests.stack import Stack

NBSP = "\u00a0"
APOS = "\u2019"  # the French catalog's apostrophe in the words of second factors


async def signed_in(stack: Stack, name: str, role: str, language: str | None) -> Staff:
    """A member of staff whose browser asks for `language` (None: says nothing)."""
    _, key = await stack.services.staff_members.add_staff(name, role)
    member = Staff(stack)
    if language:
        member.http.headers["Accept-Language"] = language
    answer = await member.with_key(key)
    assert answer.status_code == 303, answer.text
    return member


async def test_the_queue_and_a_case_file_in_french_from_the_browsers_language(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    case_id, _ = await file_claim(stack, **STRONG)
    rita = await signed_in(stack, "rita", "reviewer", "fr-FR,fr;q=0.9,en;q=0.5")
    try:
        queue = await rita.http.get("/console")
        assert queue.status_code == 200
        page = html.unescape(queue.text)
        assert '<html lang="fr"' in page
        assert "<h1>File des demandes</h1>" in page
        assert "1 demande ouverte, l'échéance la plus proche d'abord" in page
        assert "En attente d'un examinateur" in page  # the claim's state, in the queue
        assert "Compte piraté" in page  # its reason
        assert "Connecté en tant que <strong>rita</strong> (examinateur)" in page
        assert 'aria-current="true">Français</a>' in page  # the language links

        case = await rita.http.get(f"/console/cases/{case_id}")
        said = html.unescape(case.text)
        assert fact(case, "État") == "En attente d'un examinateur"
        assert fact(case, "Risque") == "faible"
        assert fact(case, "Attribuée à") == "personne pour l'instant"
        assert f"Faible{NBSP}: un ancien mot de passe et une adresse enregistrée" in said
        assert "<h2>Pourquoi le risque est faible</h2>" in said
        assert "Me l&#39;attribuer</button>" in case.text

        assigned = await act(rita, case_id, "assign")
        assert status(assigned) == "La demande est attribuée."
        assert fact(assigned, "Attribuée à") == "rita (vous)"
        unexplained = await act(rita, case_id, "reject", reason=" ")
        assert unexplained.status_code == 422
        assert f"Écrivez le motif{NBSP}: le demandeur le lit dans notre e-mail." in html.unescape(
            unexplained.text
        )
    finally:
        await rita.aclose()


async def test_the_language_links_change_the_consoles_language_and_it_is_remembered(
    stack: Stack,
):
    rita = await signed_in(stack, "rita", "reviewer", "fr")
    try:
        chosen = await rita.http.get("/console?view=mine&lang=es")
        assert chosen.status_code == 303
        assert chosen.headers["location"] == "/console?view=mine"
        assert rita.http.cookies["reclaim_lang"] == "es"  # the pages' own cookie

        queue = await rita.http.get("/console")  # the browser still asks for French
        assert '<html lang="es"' in queue.text
        assert "<h1>Cola de solicitudes</h1>" in queue.text
        assert "Ninguna solicitud abierta." in queue.text
    finally:
        await rita.aclose()


async def test_english_stays_the_default(stack: Stack):
    rita = await signed_in(stack, "rita", "reviewer", None)
    try:
        queue = await rita.http.get("/console")
        assert '<html lang="en"' in queue.text and "<h1>Claim queue</h1>" in queue.text
    finally:
        await rita.aclose()


async def test_a_reviewer_in_spanish_writes_to_a_french_claimant_in_french(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    filed = await stack.services.claims.file(
        username="jane",
        contact_email=CONTACT,
        reason=ClaimReason.COMPROMISED,
        registered_email="jane@example.com",
        previous_passwords=[PASSWORD],
        locale="fr",  # what the French support page files
    )
    case_id = filed.case_id
    rita = await signed_in(stack, "rita", "reviewer", "es-ES,es;q=0.9")
    try:
        await act(rita, case_id, "assign")
        asked = await act(rita, case_id, "ask", questions="¿Desde qué ciudad?")
        assert status(asked).startswith("Sus preguntas se enviaron al solicitante")
        question = await stack.mail.wait_for(
            lambda m: m["To"] == CONTACT and "¿Desde qué ciudad?" in text_of(m)
        )
        assert "Une question sur votre demande d'assistance" in str(question["Subject"])

        rejected = await act(rita, case_id, "reject", reason="Las pruebas no coinciden.")
        assert fact(rejected, "Estado") == "Rechazada"
        refusal = await stack.mail.wait_for(
            lambda m: m["To"] == CONTACT and "Las pruebas no coinciden." in text_of(m)
        )
        assert f"Votre demande d'assistance {case_id} n'a pas été acceptée." in text_of(refusal)
        assert "solicitud" not in text_of(refusal).lower()
    finally:
        await rita.aclose()


async def test_a_refused_staff_key_is_said_in_the_browsers_language(stack: Stack):
    await stack.services.staff_members.add_staff("rita", "reviewer")
    browser = Staff(stack)
    browser.http.headers["Accept-Language"] = "es"
    try:
        refused = await browser.with_key("rk_" + "x" * 40)
        assert refused.status_code == 401
        said = html.unescape(refused.text)
        assert "Esta clave de personal no funciona: es incorrecta" in said
        assert "<h1>Iniciar sesión en la consola de asistencia</h1>" in said
    finally:
        await browser.aclose()


async def test_a_lost_authenticator_claim_in_french_and_spanish(stack: Stack):
    from datetime import UTC, datetime

    from reclaim.directory import Passkey

    jane = await stack.add_account("jane", "jane@example.com", None, PASSWORD)
    now = datetime.now(UTC)
    await stack.services.directory.enrol_totp(jane, now)
    await stack.services.directory.add_passkey(
        jane, Passkey(b"Laptop", b"cose key", 0, (), "Laptop", now)
    )
    filed = await stack.http.post(
        "/v1/support-cases",
        json={
            "username": "jane",
            "contact_email": "jane@example.com",
            "reason": ClaimReason.LOST_AUTHENTICATOR.value,
        },
    )
    case_id = filed.json()["case_id"]
    said = {
        "fr": (
            f"Facteurs d{APOS}authentification perdus",
            f"clé d{APOS}accès «{NBSP}Laptop{NBSP}»",
            f"Facteurs d{APOS}authentification à supprimer",
        ),
        "es": (
            "Segundos factores perdidos",
            "llave de acceso «Laptop»",
            "Segundos factores que se eliminan",
        ),
    }
    for n, (language, (reason, passkey, legend)) in enumerate(said.items()):
        member = await signed_in(stack, f"sam{n}", "supervisor", language)
        try:
            await act(member, case_id, "assign")
            page = html.unescape((await member.http.get(f"/console/cases/{case_id}")).text)
            assert f'<html lang="{language}"' in page
            assert reason in page and passkey in page and legend in page
            if n == 0:
                await act(member, case_id, "release")
        finally:
            await member.aclose()
