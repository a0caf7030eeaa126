"""A real browser for the page tests: Debian's Chromium driven by Playwright (never a
downloaded browser), and axe-core (bundled by axe-playwright-python) to check each page
against WCAG 2.1 AA."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
MISSING = "Chromium is not installed: `apt-get install chromium` to run the browser tests"
# The flags of a headless Chromium on a machine without network or sandbox (root).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

needs_chromium = pytest.mark.skipif(
    not (CHROMIUM.exists() or shutil.which("chromium")), reason=MISSING
)


def _executable() -> str:
    return str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=_executable(),
            headless=True,
            args=FLAGS,
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def person(
    browser: Browser,
    base_url: str,
    *,
    locale: str = "en-US",
    javascript: bool = True,
    width: int = 390,
) -> AsyncIterator[Page]:
    """A new person: their own cookies, language and screen (a phone's width by default)."""
    context: BrowserContext = await browser.new_context(
        base_url=base_url,
        locale=locale,
        extra_http_headers={"Accept-Language": locale},
        java_script_enabled=javascript,
        viewport={"width": width, "height": 844},
    )
    page = await context.new_page()
    try:
        yield page
    finally:
        await context.close()


async def accessible(page: Page) -> None:
    """axe-core finds nothing against WCAG 2.1 A and AA on the page as it is now."""
    results = await Axe().run(
        page, options={"runOnly": {"type": "tag", "values": WCAG_AA}, "resultTypes": ["violations"]}
    )
    assert results.violations_count == 0, f"{page.url}\n{results.generate_report()}"


@dataclass(frozen=True)
class Words:
    """What the pages say, in one language, where a test checks what a person reads (the
    translations of reclaim/locales; the tests find everything else by role or selector)."""

    lang: str  # <html lang>
    forgot: str  # the start page's heading
    code: str  # the code field's label
    by_email: str
    by_sms: str
    choose: str  # the new-password page's heading
    username_in_it: str
    used_before: str
    changed: str  # the last page's heading
    over: str  # a closed request's heading
    too_many: str
    not_right: str
    replaced: str  # the code of a message a newer one replaced, before when it was sent
    tries_left: tuple[str, str]  # one try left, {n} tries left
    new_code_in: str  # the countdown, before its m:ss
    new_code_now: str
    new_code_sent: str
    send_new_code: str  # the button
    sending: str
    retrying: str
    sent: str
    failed: str
    password: str  # in the password-changed notice

    def left(self, n: int) -> str:
        return self.tries_left[n != 1].format(n=n)


WORDS = {
    "en-US": Words(
        lang="en",
        forgot="Forgot your password?",
        code="Code",
        by_email="We sent a code by email to",
        by_sms="We sent a code by text message to",
        choose="Choose a new password",
        username_in_it="Do not put your username in it.",
        used_before="You used this password before on this account",
        changed="Your password is changed",
        over="This request is over",
        too_many="Too many wrong codes",
        not_right="That code is not right",
        replaced="We sent a newer code on ",
        tries_left=("You have {n} try left.", "You have {n} tries left."),
        new_code_in="You can ask for a new code in ",
        new_code_now="You can ask for a new code now.",
        new_code_sent="A new code is on its way.",
        send_new_code="Send a new code",
        sending="We are sending it now.",
        retrying="Delivery is slow right now: we keep trying.",
        sent="It has been sent.",
        failed="We could not deliver it. Ask for a new code below.",
        password="password",
    ),
    "fr-FR": Words(
        lang="fr",
        forgot="Mot de passe oublié\u00a0?",
        code="Code",
        by_email="Nous avons envoyé un code par e-mail à",
        by_sms="Nous avons envoyé un code par SMS au",
        choose="Choisissez un nouveau mot de passe",
        username_in_it="N'y mettez pas votre nom d'utilisateur.",
        used_before="Vous avez déjà utilisé ce mot de passe pour ce compte",
        changed="Votre mot de passe a été modifié",
        over="Cette demande est terminée",
        too_many="Trop de codes erronés",
        not_right="Ce code n'est pas le bon",
        replaced="Nous avons envoyé un code plus récent le ",
        tries_left=("Il vous reste {n} essai.", "Il vous reste {n} essais."),
        new_code_in="Vous pourrez demander un nouveau code dans ",
        new_code_now="Vous pouvez maintenant demander un nouveau code.",
        new_code_sent="Un nouveau code est en route.",
        send_new_code="Envoyer un nouveau code",
        sending="Nous l'envoyons en ce moment.",
        retrying="L'envoi prend du temps en ce moment\u00a0: nous continuons d'essayer.",
        sent="Il a été envoyé.",
        failed="Nous n'avons pas pu l'envoyer. Demandez un nouveau code ci-dessous.",
        password="mot de passe",
    ),
    "es-ES": Words(
        lang="es",
        forgot="¿Olvidó su contraseña?",
        code="Código",
        by_email="Enviamos un código por correo electrónico a",
        by_sms="Enviamos un código por SMS al",
        choose="Elija una contraseña nueva",
        username_in_it="No incluya su nombre de usuario.",
        used_before="Ya usó esta contraseña en esta cuenta",
        changed="Su contraseña se ha cambiado",
        over="Esta solicitud ha terminado",
        too_many="Demasiados códigos incorrectos",
        not_right="Ese código no es correcto",
        replaced="Enviamos un código más reciente el ",
        tries_left=("Le queda {n} intento.", "Le quedan {n} intentos."),
        new_code_in="Podrá pedir un código nuevo dentro de ",
        new_code_now="Ya puede pedir un código nuevo.",
        new_code_sent="Un nuevo código está en camino.",
        send_new_code="Enviar un código nuevo",
        sending="Lo estamos enviando.",
        retrying="El envío va lento en este momento: seguimos intentándolo.",
        sent="Se ha enviado.",
        failed="No pudimos entregarlo. Pida un código nuevo más abajo.",
        password="contraseña",
    ),
}
