"""The web pages' languages: English left to right, Arabic right to left.

The wallboard, the agents' desktop and the supervisors' console are one HTML
file each with `{{lang}}` and `{{dir}}` placeholders, filled per request."""

from __future__ import annotations

from aiohttp import web

LANGS = {"en": "ltr", "ar": "rtl"}


def localized(page: str, request: web.Request) -> str:
    """`page` in the language `?lang=` asks for; English for anything else."""
    lang = request.query.get("lang", "en")
    if lang not in LANGS:
        lang = "en"
    return page.replace("{{lang}}", lang).replace("{{dir}}", LANGS[lang])
