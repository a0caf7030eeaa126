"""The support console (`/console`): the claim queue, the case file and the decisions, for
reviewers and supervisors in a browser, served by the API process like the pages and sharing
their base template, components, form protection, headers and assets. Staff sign in through
the organisation's identity provider (OpenID Connect) or, without one, with their staff key;
either way the browser then holds a console session (a cookie; its digest in the database).

Every page calls the support service only. The console speaks the pages' languages, from the
same Babel catalogs: the reviewer's browser chooses (`Accept-Language`), the language links
change it and the pages' `reclaim_lang` cookie remembers it. What a claimant is sent stays in
the claim's own language, whoever reviews it."""

from __future__ import annotations

from fastapi import FastAPI

from api.console import routes


def install(app: FastAPI) -> None:
    app.include_router(routes.router)
