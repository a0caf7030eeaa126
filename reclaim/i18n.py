"""The languages Reclaim speaks: English, French and Spanish, for the pages and for every mail
and SMS. The words live in one Babel catalog per language (`reclaim/locales/<lang>/LC_MESSAGES/
messages.po`), with the English text as the message id, shared by the pages' templates and the
messages (`reclaim/notify/messages.py`).

A page is in the language the person chose (the switcher's cookie) or their browser asks for
(`Accept-Language`), else `RECLAIM_DEFAULT_LOCALE`; a mail or SMS is in the language of the
request that caused it.
"""

from __future__ import annotations

import gettext
from datetime import UTC, datetime, timedelta
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError, dates
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

SOURCE = "en"  # the language the message ids are written in
LOCALES = ("en", "fr", "es")
NAMES = {"en": "English", "fr": "Français", "es": "Español"}
CATALOGS = Path(__file__).resolve().parent / "locales"


def supported(locale: str | None) -> str | None:
    """`locale` if Reclaim speaks it (a region is dropped: `fr-CA` is `fr`), else None."""
    if not locale:
        return None
    language = locale.replace("_", "-").split("-", 1)[0].lower()
    return language if language in LOCALES else None


def negotiate(accept_language: str | None, default: str = SOURCE) -> str:
    """The best of Reclaim's languages for an `Accept-Language` header."""
    wanted: list[tuple[float, str]] = []
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        if not tag or tag == "*":
            continue
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        wanted.append((quality, tag.replace("-", "_")))
    for _, tag in sorted(wanted, key=lambda item: -item[0]):  # stable: header order on ties
        if found := supported(tag):
            return found
    return supported(default) or SOURCE


@cache
def translations(locale: str) -> gettext.NullTranslations:
    """The catalog of `locale`, compiled from its .po file once per process."""
    if locale == SOURCE or locale not in LOCALES:
        return gettext.NullTranslations()
    with (CATALOGS / locale / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale=locale)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


class Text:
    """Reclaim's words in one language: `t("Hello %(name)s", name=...)`, dates, times."""

    def __init__(self, locale: str | None = None) -> None:
        self.locale = supported(locale) or SOURCE
        self._catalog = translations(self.locale)

    def __call__(self, message: str, **values: Any) -> str:
        text = self._catalog.gettext(message)
        return text % values if values else text

    def plural(self, singular: str, plural: str, n: int, **values: Any) -> str:
        text = self._catalog.ngettext(singular, plural, n)
        return text % {"num": n, **values}

    def moment(self, at: datetime) -> str:
        """A date and a time to the minute, in UTC, the way this language writes them
        (`Nov 24, 2026, 12:00 PM UTC`, `24 nov. 2026, 12:00 UTC`)."""
        at = at.astimezone(UTC)
        day = dates.format_date(at, "medium", locale=self.locale)
        time = dates.format_time(at, "short", tzinfo=UTC, locale=self.locale)
        pattern = Locale.parse(self.locale).datetime_formats["medium"]
        return f"{pattern.format(time, day)} UTC"

    def day(self, at: datetime) -> str:
        return dates.format_date(at.astimezone(UTC), "long", locale=self.locale)

    def duration(self, seconds: float) -> str:
        """`10 minutes`, `1 hour`, in words."""
        return dates.format_timedelta(
            timedelta(seconds=max(seconds, 1)), threshold=1.5, locale=self.locale, format="long"
        )

    @property
    def name(self) -> str:
        return NAMES[self.locale]

    @property
    def direction(self) -> str:
        try:
            rtl = Locale.parse(self.locale).character_order == "right-to-left"
        except (UnknownLocaleError, ValueError):
            rtl = False
        return "rtl" if rtl else "ltr"
