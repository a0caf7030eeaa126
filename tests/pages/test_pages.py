"""The pages over HTTP, as a browser with JavaScript off uses them: forms that post and
redirect, CSRF, the headers, the language, and every link in every message."""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from reclaim.notify.outbox import text_of
from tests.conftest import StackParts
from tests.mailbox import MailSink
from tests.pages.people import Person, headers_of
from tests.proof import solved
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"


@pytest.fixture
async def person(stack: Stack) -> AsyncIterator[Person]:
    someone = Person(str(stack.http.base_url))
    yield someone
    await someone.aclose()


async def test_every_page_carries_the_headers_that_keep_it_safe(stack: Stack, person: Person):
    for path in ("/", "/recover", "/support", "/signin", "/docs"):
        response = await person.open(path)
        headers = headers_of(response)

        assert response.status_code == 200, path
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, path
        assert "frame-ancestors 'none'" in policy
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        # Every script, style and image comes from Reclaim itself.
        for url in re.findall(r'(?:src|href)="([^"#]+)"', person.page):
            assert url.startswith(("/", "?")), (path, url)


async def test_the_api_manual_works_offline(person: Person):
    page = await person.open("/docs")
    scripts = re.findall(r'<script src="([^"]+)"', page.text)

    assert scripts == ["/assets/swagger/swagger-ui-bundle.js", "/assets/docs.js"]
    for asset in [*scripts, "/assets/swagger/swagger-ui.css", "/openapi.json"]:
        assert (await person.http.get(asset)).status_code == 200, asset


async def test_the_site_has_an_icon_at_favicon_ico_and_every_page_links_it(person: Person):
    icon = await person.http.get("/favicon.ico")

    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/")
    assert icon.content.lstrip().startswith(b"<svg")
    for path in ("/", "/recover", "/docs", "/no-such-page"):
        page = await person.http.get(path, headers={"Accept": "text/html"})
        linked = re.findall(r'<link rel="icon" href="([^"]+)"', page.text)
        assert linked, path
        assert (await person.http.get(linked[0])).headers["content-type"].startswith("image/")


async def test_a_recovery_by_email_from_start_to_finish(stack: Stack, person: Person):
    await stack.add_account("jane", "jane@example.com", "+14155550123", OLD)
    await stack.sign_in("jane", OLD)  # a session elsewhere, to be signed out

    await person.open("/recover")
    await person.submit("/recover", identifier="jane@example.com", channel="")
    assert re.fullmatch(r".*/recover/rc_[\w-]{22}", person.url), person.text
    case_url = person.url.removeprefix(str(stack.http.base_url))
    assert "We sent a code by email to j•••@e•••.com" in person.text
    code = await stack.mail.code_for("jane@example.com")

    wrong = "000000" if code != "000000" else "111111"
    refused = await person.submit(f"{case_url}/code", code=wrong)
    assert refused.status_code == 400
    assert "That code is not right. You have 4 tries left." in person.text
    await person.submit(f"{case_url}/code", code=f"{code[:3]} {code[3:]}")
    assert "Choose a new password" in person.text
    weak = await person.submit(f"{case_url}/password", password="jane1234", confirm="jane1234")
    assert weak.status_code == 422
    assert "Do not put your username in it." in person.text
    reused = await person.submit(f"{case_url}/password", password=OLD, confirm=OLD)
    assert reused.status_code == 422
    assert "You used this password before on this account" in person.text
    await person.submit(f"{case_url}/password", password=NEW, confirm=NEW)

    assert "Your password is changed" in person.text
    assert "Every other device signed in to your account has been signed out" in person.text
    assert (await stack.sign_in("jane", NEW)).status_code == 200
    # Reloading the finished page shows it again: nothing is posted twice.
    assert (await person.open(case_url)).status_code == 200


async def test_another_password_after_the_change_is_refused_and_says_when(
    stack: Stack, person: Person
):
    """The answer to the change was lost (its cookie kept): a second, different password under
    the spent token is not saved, and the page says the password was already changed."""
    await stack.add_account("jane", "jane@example.com", None, OLD)
    await person.open("/recover")
    await person.submit("/recover", identifier="jane@example.com", channel="")
    case_url = person.url.removeprefix(str(stack.http.base_url))
    code = await stack.mail.code_for("jane@example.com")
    form = await person.submit(f"{case_url}/code", code=code)
    cookie = next(c for c in person.http.cookies.jar if c.name == "reclaim_reset")
    await person.submit(f"{case_url}/password", password=NEW, confirm=NEW)
    assert "Your password is changed" in person.text
    person.http.cookies.jar.set_cookie(cookie)  # as if the answer never came
    person.back_to(form)

    other = NEW + " again"
    refused = await person.submit(f"{case_url}/password", password=other, confirm=other)

    assert refused.status_code == 409
    assert "Your password was already changed on " in person.text
    assert "this one was not saved" in person.text
    assert (await stack.sign_in("jane", other)).status_code == 401
    assert (await stack.sign_in("jane", NEW)).status_code == 200


async def test_a_wrong_code_is_told_once_in_the_summary_and_once_at_the_field(
    stack: Stack, person: Person
):
    await stack.add_account("jane", "jane@example.com", None, OLD)
    case_url = await _open_case(person, "jane@example.com")
    code = await stack.mail.code_for("jane@example.com")

    await person.submit(f"{case_url}/code", code="000000" if code != "000000" else "111111")

    summary = re.search(r'<div class="problem".*?</div>', person.page, re.S)
    at_field = re.search(r'<span class="error-text" id="code-error">(.*?)</span>', person.page)
    assert summary is not None and at_field is not None, person.page
    assert "That code is not right. You have 4 tries left." in summary[0]
    assert at_field[1] == "That code is not right."
    assert person.text.count("That code is not right") == 2
    assert len(re.findall(r"4 (tries|more times)", person.text)) == 1, person.text


async def test_a_form_posted_from_elsewhere_does_nothing(stack: Stack, person: Person):
    await person.open("/recover")

    forged = await person.http.post("/recover", data={"identifier": "jane@example.com"})
    foreign = await person.http.post(
        "/recover",
        data={"identifier": "jane@example.com", "csrf": person.form_token("/recover")},
        headers={"Origin": "https://evil.example"},
    )

    for response in (forged, foreign):
        assert response.status_code == 403
        assert "This form has expired" in response.text
    assert stack.mail.messages == []


async def test_an_unknown_account_gets_the_same_pages(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, OLD)
    pages = []
    for identifier in ("jane@example.com", "nobody@example.com"):
        someone = Person(str(stack.http.base_url))
        await someone.open("/recover")
        await someone.submit("/recover", identifier=identifier, channel="")
        await _until_sent(someone)
        pages.append(VARIES.sub("…", someone.page))
        await someone.aclose()

    assert pages[0] == pages[1]


# What differs between any two cases: the case id, the form token, the times, the address.
VARIES = re.compile(
    r'rc_[\w-]{22}|value="[\w-]{43}"|\d{4}-\d\d-\d\dT[\d:.+]+|\d{1,2}:\d\d(?::\d\d)?'
    r"|[a-z]•••@[a-z]•••"
)


async def _until_sent(person: Person, within: float = 20) -> None:
    """Reload the case page until its code is on its way (as a person would)."""
    deadline = time.monotonic() + within
    while "It has been sent." not in person.text:
        assert time.monotonic() < deadline, person.text
        await asyncio.sleep(0.1)
        await person.open(person.url)


async def test_over_the_limit_the_page_says_when_to_try_again_and_takes_a_solution(
    stack: Stack, person: Person
):
    """Without JavaScript: the wait and when it ends. The form carries the challenge (for
    /assets/pow.js), and a solution posted with it opens the case."""
    await stack.add_account("jane", "jane@example.com", None, OLD)
    for _ in range(5):
        await stack.open_case("jane@example.com")
    await person.open("/recover")

    refused = await person.submit("/recover", identifier="jane@example.com", channel="email")

    assert refused.status_code == 429
    assert re.search(
        r"There were many requests for this account\. Try again in \d+ minutes, at "
        r"\w{3} \d{1,2}, \d{4}, \d{1,2}:\d\d [AP]M UTC\.",
        person.text,
    ), person.text
    assert 'value="email" checked' in person.page  # what was chosen stays chosen
    assert '<script src="/assets/pow.js" defer></script>' in person.page
    found = re.search(r'data-challenge="([^"]+)"', person.page)
    assert found is not None
    challenge = json.loads(html.unescape(found.group(1)))
    await person.submit(
        "/recover", identifier="jane@example.com", channel="email", altcha=solved(challenge)
    )
    assert re.search(r"/recover/rc_[\w-]{22}$", person.url), person.text
    assert "We sent a code by email to j•••@e•••.com" in person.text


async def test_the_page_speaks_the_browser_s_language_and_the_switcher_remembers(stack: Stack):
    french = Person(str(stack.http.base_url), "fr-CA,fr;q=0.9,en;q=0.5")
    try:
        await french.open("/recover")
        assert '<html lang="fr"' in french.page
        assert "Mot de passe oublié ?" in french.text

        await french.open("/recover?lang=es")

        assert french.url.endswith("/recover")  # the choice leaves the address
        assert '<html lang="es"' in french.page
        assert "¿Olvidó su contraseña?" in french.text
        await french.open("/support")
        assert '<html lang="es"' in french.page
    finally:
        await french.aclose()


async def test_the_mail_speaks_the_language_of_the_request(stack: Stack):
    await stack.add_account("jane", "jane@example.com", None, OLD)
    french = Person(str(stack.http.base_url), "fr")
    try:
        await french.open("/recover")
        await french.submit("/recover", identifier="jane", channel="")
    finally:
        await french.aclose()

    mail = await stack.mail.wait_for(lambda m: m["To"] == "jane@example.com")

    assert mail["Subject"] == "Votre code de récupération Reclaim"


async def _switch(person: Person, language: str) -> httpx.Response:
    """Follow the page's language link for `language`, as a click would."""
    link = re.search(rf'<a href="([^"]+)" lang="{language}"', person.page)
    assert link is not None, person.page
    return await person.open(html.unescape(link.group(1)))


def _path(person: Person) -> str:
    """The address of the person's page, without the server's."""
    return person.url.removeprefix(str(person.http.base_url).rstrip("/"))


def _sent_back(person: Person, posted_to: str, page: str, status: int, said: str) -> None:
    """The form posted to `posted_to` was refused: the answer was a redirect (303) to `page`,
    which says why with the refusal's status."""
    response = person.response
    assert response is not None
    assert [(r.status_code, r.url.path) for r in response.history] == [(303, posted_to)]
    assert (_path(person), response.status_code) == (page, status), person.text
    assert said in person.text, person.text


async def _reloaded(person: Person, page: str, said: str) -> None:
    """A reload of the page a refused form led to posts nothing: the page, without the
    problem (it was said once)."""
    again = await person.open(page)
    assert (again.status_code, again.history) == (200, [])
    assert said not in person.text


async def test_each_refused_recovery_form_redirects_to_the_case_which_a_reload_shows_again(
    stack: Stack, person: Person
):
    """A refused form (`…/resend`, `…/code`, `…/proof`, `…/password`) leads back to the case's
    page, which says why; reloading it asks nothing; a language chosen there opens it in it."""
    await stack.add_account("jane", "jane@example.com", None, OLD)
    await person.open("/recover")
    await person.submit("/recover", identifier="jane@example.com", channel="")
    case_url = _path(person)

    async def refused_then_switched(action: str, status: int, said: str, language: str) -> None:
        _sent_back(person, f"{case_url}/{action}", case_url, status, said)
        await _reloaded(person, case_url, said)
        switched = await _switch(person, language)
        assert switched.status_code == 200, person.text
        assert _path(person) == case_url
        assert f'<html lang="{language}"' in person.page

    await person.submit(f"{case_url}/resend")  # at once: within the cooldown
    await refused_then_switched("resend", 429, "before asking for another code", "fr")
    assert "Saisissez votre code" in person.text

    code = await stack.mail.code_for("jane@example.com")
    await person.submit(f"{case_url}/code", code="12345")
    await refused_then_switched("code", 422, "Un code comporte 6 chiffres", "es")
    assert "Escriba su código" in person.text

    # The link of the code's message in one tab; the code typed in another (which uses it up);
    # then "Continue" in the first.
    mail = await stack.mail.wait_for(lambda m: m["To"] == "jane@example.com")
    link = re.search(r"https://\S+(/recover/rc_[\w-]{22}\?proof=[\w-]{43})", text_of(mail))
    assert link is not None
    await person.open(link.group(1))
    first_tab = person.response
    assert first_tab is not None
    await person.submit(f"{case_url}/code", code=code)
    person.back_to(first_tab)
    await person.submit(f"{case_url}/proof")
    await refused_then_switched("proof", 409, "Este navegador no abrió el enlace", "en")
    assert "Choose a new password" in person.text

    await person.submit(f"{case_url}/password", password=NEW, confirm=OLD)
    await refused_then_switched("password", 422, "The two passwords are not the same", "fr")
    assert "Choisissez un nouveau mot de passe" in person.text
    # Neither password went anywhere: not in the page, not in a cookie.
    assert NEW not in person.page and OLD not in person.page
    assert all(NEW not in v and OLD not in v for v in person.http.cookies.values())


async def test_each_refused_claim_form_redirects_to_the_claims_page(stack: Stack, person: Person):
    """The claim's forms (`…/token`, `…/answer`) too: back to the claim's page, which says
    why (and never shows the token typed), in the language chosen there."""
    await stack.add_account("jane", "jane@example.com", None, OLD)
    filed = await stack.http.post(
        "/v1/support-cases",
        json={"username": "jane", "contact_email": "jane@new.example", "reason": "lost_contact"},
    )
    assert filed.status_code == 202, filed.text
    claim, token = filed.json()["case_id"], filed.json()["claim_token"]
    claim_url = f"/support/claims/{claim}"

    await person.open(claim_url)
    await person.submit(f"{claim_url}/token", token="not-the-token")
    _sent_back(person, f"{claim_url}/token", claim_url, 401, "This claim token is not right")
    assert "not-the-token" not in person.page
    await _reloaded(person, claim_url, "This claim token is not right")
    await _switch(person, "fr")
    assert _path(person) == claim_url
    assert "Ouvrir votre demande d'assistance" in person.text

    _, key = await stack.services.staff_members.add_staff("sam", "supervisor")
    staff = {"Authorization": f"Bearer {key}"}
    for path, body in (("assign", {}), ("request-info", {"questions": ["Which city?"]})):
        asked = await stack.http.post(f"/v1/staff/cases/{claim}/{path}", json=body, headers=staff)
        assert asked.status_code == 202, asked.text
    await person.submit(f"{claim_url}/token", token=token)
    assert "Which city?" in person.text
    await person.submit(f"{claim_url}/answer", answer=" ")
    _sent_back(person, f"{claim_url}/answer", claim_url, 422, "Écrivez votre réponse")
    await _switch(person, "en")
    assert _path(person) == claim_url
    assert '<html lang="en"' in person.page
    assert "Your support claim" in person.text
    assert "Which city?" in person.text

    # The reviewer decides while the claimant writes: the answer is refused, and the page
    # the browser is sent back to says the claim is closed.
    rejected = await stack.http.post(
        f"/v1/staff/cases/{claim}/reject",
        json={"reason": "The account holder did not answer."},
        headers=staff,
    )
    assert rejected.status_code == 202, rejected.text
    await person.submit(f"{claim_url}/answer", answer="Lyon, since 2019.")
    _sent_back(person, f"{claim_url}/answer", claim_url, 409, "cannot do that any more")
    assert 'action="/support/claims/' not in person.page  # no answer form left


async def test_a_refused_start_sign_in_or_claim_form_keeps_what_was_typed_but_no_password(
    stack: Stack, person: Person
):
    await person.open("/signin")
    await person.submit("/signin", identifier="jane@example.com", password=OLD)
    _sent_back(person, "/signin", "/signin", 401, "The identifier or the password is not right")
    assert 'value="jane@example.com"' in person.page and OLD not in person.page
    await _reloaded(person, "/signin", "is not right")

    await person.open("/support")
    await person.submit(
        "/support",
        reason="lost_contact",
        username="",
        contact_email="jane@new.example",
        description="I lost my phone in Lyon.",
        password_0=OLD,
    )
    _sent_back(person, "/support", "/support", 422, "Enter the username of the account.")
    assert 'value="jane@new.example"' in person.page
    assert "I lost my phone in Lyon.</textarea>" in person.page
    assert OLD not in person.page
    await _reloaded(person, "/support", "Enter the username of the account.")
    assert "jane@new.example" not in person.page

    await person.open("/recover")
    await person.submit("/recover", identifier="", channel="")
    _sent_back(person, "/recover", "/recover", 422, "Enter the email address, phone number")


async def test_after_an_expired_sign_out_form_the_switcher_opens_the_sign_in_page(
    person: Person,
):
    """A form posted with a token this browser no longer holds (its cookies were cleared) is
    refused at its own address; from there the language links lead on, here to signing in."""
    expired = await person.http.post("/signout", data={"csrf": "from-a-page-left-open"})
    person.back_to(expired)
    assert expired.status_code == 403
    assert "This form has expired" in person.text

    switched = await _switch(person, "es")

    assert switched.status_code == 200, person.text
    assert _path(person) == "/signin"
    assert '<html lang="es"' in person.page


MOMENT = r"\w{3} \d{1,2}, \d{4}, \d{1,2}:\d\d(?::\d\d)? [AP]M UTC"


async def _open_case(person: Person, identifier: str) -> str:
    """The form at /recover sent: the case's address."""
    await person.open("/recover")
    await person.submit("/recover", identifier=identifier, channel="")
    assert re.search(r"/recover/rc_[\w-]{22}$", person.url), person.text
    return _path(person)


async def test_a_new_code_asked_too_soon_says_how_long_to_wait(stack: Stack, person: Person):
    await stack.add_account("jane", "jane@example.com", None, OLD)
    case_url = await _open_case(person, "jane@example.com")

    refused = await person.submit(f"{case_url}/resend")

    assert refused.status_code == 429
    assert re.search(
        r"Wait (1 minute|\d\d seconds) before asking for another code\.", person.text
    ), person.text
    # The next step: the same button, and when it works.
    assert "Send a new code" in person.text
    assert re.search(rf"You can ask for a new code at {MOMENT}\.", person.text), person.text
    assert "Enter your code" in person.text  # the code sent first still works


async def test_past_the_last_new_code_the_page_says_to_start_again(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(resend_cooldown=0, max_resends=1)
    async with running_stack(settings, engine, mail, sms) as stack:
        await stack.add_account("jane", "jane@example.com", None, OLD)
        person = Person(str(stack.http.base_url))
        try:
            case_url = await _open_case(person, "jane@example.com")
            before = person.response
            assert before is not None
            await person.submit(f"{case_url}/resend")
            assert "A new code is on its way" in person.text
            assert "No more codes can be sent for this request." in person.text
            assert "Send a new code" not in person.text

            person.back_to(before)  # the page before, its button still there
            refused = await person.submit(f"{case_url}/resend")

            assert refused.status_code == 429
            assert "No more codes can be sent for this request. Start again later." in person.text
            problem = re.search(r'<div class="problem".*?</div>', person.page, re.S)
            assert problem is not None and '<a href="/recover">Start again</a>' in problem[0]
        finally:
            await person.aclose()


async def test_the_code_and_link_of_an_earlier_message_say_a_newer_code_was_sent(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(resend_cooldown=0)
    async with running_stack(settings, engine, mail, sms) as stack:
        await stack.add_account("jane", "jane@example.com", None, OLD)
        person, other_tab = Person(str(stack.http.base_url)), Person(str(stack.http.base_url))
        try:
            case_url = await _open_case(person, "jane@example.com")
            first = await mail.code_for("jane@example.com")
            [message] = mail.to("jane@example.com")
            link = re.search(
                r"https://\S+(/recover/rc_[\w-]{22}\?proof=[\w-]{43})", text_of(message)
            )
            assert link is not None
            await person.submit(f"{case_url}/resend")
            if await mail.code_for("jane@example.com", nth=2) == first:
                pytest.skip("the new code happened to equal the old one (1 in a million)")

            await person.submit(f"{case_url}/code", code=first)

            summary = re.search(r'<div class="problem".*?</div>', person.page, re.S)
            at_field = re.search(
                r'<span class="error-text" id="code-error">(.*?)</span>', person.page
            )
            assert summary is not None and at_field is not None, person.page
            assert "We sent a newer code on " in summary[0]
            assert re.search(
                rf"We sent a newer code on {MOMENT}: type the code from the latest message\.",
                person.text,
            ), person.text
            assert at_field[1] == "A newer code replaced this one."
            assert "not right" not in person.text
            # It cost no try: five wrong codes still lock the request, not four.
            status = await stack.services.recovery.status(case_url.rsplit("/", 1)[1])
            assert status.attempts_left == 5

            await other_tab.open(link.group(1))  # the first message's link, in a new tab
            await other_tab.submit(f"{case_url}/proof")
            assert (
                "A newer message replaced this one: open the link in the latest message, "
                "or type its code." in other_tab.text
            )
        finally:
            await person.aclose()
            await other_tab.aclose()


async def test_an_expired_code_says_so_and_a_new_one_is_on_the_same_page(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(code_ttl=1, resend_cooldown=1)
    async with running_stack(settings, engine, mail, sms) as stack:
        await stack.add_account("jane", "jane@example.com", None, OLD)
        person = Person(str(stack.http.base_url))
        try:
            case_url = await _open_case(person, "jane@example.com")
            code = await mail.code_for("jane@example.com")
            status = await stack.services.recovery.status(case_url.rsplit("/", 1)[1])
            assert status.code_expires_at is not None
            await _past(status.code_expires_at)

            refused = await person.submit(f"{case_url}/code", code=code)

            assert refused.status_code in (400, 409, 410), refused.status_code
            assert "This code has expired. Ask for a new one below." in person.text
            assert 'aria-invalid="true"' in person.page  # on the code's field
            await person.submit(f"{case_url}/resend")
            assert "A new code is on its way. The previous one no longer works." in person.text
            await mail.code_for("jane@example.com", nth=2)
        finally:
            await person.aclose()


async def _past(moment: datetime, within: float = 10) -> None:
    """Until the clock is past `moment` (a code's expiry: nothing happens then to wait for)."""
    deadline = time.monotonic() + within
    while datetime.now(UTC) <= moment + timedelta(milliseconds=50):
        assert time.monotonic() < deadline, moment
        await asyncio.sleep(0.05)


async def test_the_mailed_code_alone_never_reaches_the_password_form_of_a_two_factor_account(
    stack: Stack, person: Person
):
    """The contact-code bypass, tried through the pages: the right code, the mail's link,
    a post to the password form without a token, and the recovery codes' way chosen from the
    address: none reaches the new password; the ways offered are the account's, and "I lost my
    authenticator" opens the support form saying so."""
    jane = await stack.add_account("jane", "jane@example.com", None, OLD)
    codes = await stack.services.directory.new_recovery_codes(jane, datetime.now(UTC))
    await stack.services.directory.enrol_totp(jane, datetime.now(UTC))
    case_url = await _open_case(person, "jane@example.com")
    await person.submit(f"{case_url}/code", code=await stack.mail.code_for("jane@example.com"))

    assert "One more step" in person.text
    assert "Code from your authenticator app" in person.text
    assert "Use a recovery code instead" in person.text
    assert "Use your passkey" not in person.text  # jane has none
    assert f'action="{case_url}/password"' not in person.page
    await person.http.post(f"{case_url}/password", data={"password": NEW, "confirm": NEW})
    await person.open(case_url)
    assert "One more step" in person.text
    assert (await stack.sign_in("jane", NEW)).status_code == 401

    await person.open(f"{case_url}?with=recovery_code")
    assert "Recovery code" in person.text
    assert "Use my authenticator app instead" in person.text
    await person.submit(f"{case_url}/second-factor", method="recovery_code", code="zzzzz-zzzzz")
    _sent_back(person, f"{case_url}/second-factor", case_url, 400, "That code is not right")
    assert "Use my authenticator app instead" in person.text  # still on the codes' way

    await person.open("/support?about=authenticator")
    assert "I lost my second factor" in person.text
    assert 'value="lost_authenticator" checked' in person.page  # the reason chosen
    assert "I lost my authenticator app, passkeys and recovery codes" in person.text
    await person.open(case_url)
    await person.submit(f"{case_url}/second-factor", method="recovery_code", code=codes[1])
    assert "Choose a new password" in person.text


async def test_an_account_with_recovery_codes_is_asked_for_one_after_the_code(
    stack: Stack, person: Person
):
    jane = await stack.add_account("jane", "jane@example.com", None, OLD)
    codes = await stack.services.directory.new_recovery_codes(jane, datetime.now(UTC))
    case_url = await _open_case(person, "jane@example.com")
    code = await stack.mail.code_for("jane@example.com")

    await person.submit(f"{case_url}/code", code=code)

    assert _path(person) == case_url
    assert "One more step" in person.text
    assert "One of the recovery codes you saved: each works once." in person.text
    assert f'action="{case_url}/password"' not in person.page  # no new password yet
    await person.submit(f"{case_url}/second-factor", method="recovery_code", code="zzzzz-zzzzz")
    _sent_back(person, f"{case_url}/second-factor", case_url, 400, "That code is not right")
    assert "You have 4 tries left." in person.text

    await person.submit(f"{case_url}/second-factor", method="recovery_code", code=codes[0])

    assert "Choose a new password" in person.text
    await person.submit(f"{case_url}/password", password=NEW, confirm=NEW)
    assert "Your password is changed" in person.text
    assert "You used a recovery code: 9 are left." in person.text
    assert 'href="/account/security"' in person.page
    assert (await stack.sign_in("jane", NEW)).status_code == 200
