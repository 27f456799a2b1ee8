"""German and English strings, chosen from ``?lang=`` or ``Accept-Language``.

Packages register their catalogues with :func:`register`; templates call
``_("key", name=value)``. A missing key in one language falls back to
English, and a missing key in English is a bug that a test catches.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"

_catalogues: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}


def register(catalogue: Mapping[str, Mapping[str, str]]) -> None:
    """Add ``{"en": {...}, "de": {...}}`` strings; later registrations win."""
    for lang, strings in catalogue.items():
        _catalogues[lang].update(strings)


def translate(lang: str, key: str, **values: object) -> str:
    text = _catalogues.get(lang, {}).get(key) or _catalogues[DEFAULT_LANGUAGE].get(key)
    if text is None:
        raise KeyError(f"no translation for {key!r}")
    return text.format(**values) if values else text


def template_context(lang: str, imprint_url: str, privacy_url: str, **extra: object) -> dict:
    """What every page and mail template expects: the language, `_` bound to it,
    and the operator's imprint and privacy links."""
    return {
        "lang": lang,
        "_": lambda key, **values: translate(lang, key, **values),
        "imprint_url": imprint_url,
        "privacy_url": privacy_url,
        **extra,
    }


def has_key(key: str) -> bool:
    return key in _catalogues[DEFAULT_LANGUAGE]


def keys(lang: str) -> set[str]:
    return set(_catalogues[lang])


def negotiate(explicit: str | None, accept_language: str | None) -> str:
    """``explicit`` (``?lang=``, ``data-lang``) first, then the browser's preference."""
    if explicit:
        short = explicit.strip().lower()[:2]
        if short in LANGUAGES:
            return short
    if accept_language:
        ranked: list[tuple[float, int, str]] = []
        for position, part in enumerate(accept_language.split(",")):
            tag, _, params = part.strip().partition(";")
            quality = 1.0
            if params.strip().startswith("q="):
                try:
                    quality = float(params.strip()[2:])
                except ValueError:
                    quality = 0.0
            ranked.append((-quality, position, tag.strip().lower()[:2]))
        for _q, _pos, short in sorted(ranked):
            if short in LANGUAGES:
                return short
    return DEFAULT_LANGUAGE


register(
    {
        "en": {
            "error.title": "Something is not right",
            "error.400": "The request could not be understood.",
            "error.403": "This is not allowed from here.",
            "error.404": "There is nothing here.",
            "error.405": "This address does not accept that kind of request.",
            "error.413": "The request is too large.",
            "error.415": "The request has a content type this address does not accept.",
            "error.422": "Some fields need your attention.",
            "error.429": "Too many requests. Please wait a moment and try again.",
            "error.500": "Something went wrong on our side. Please try again later.",
            "error.503": "The service is busy. Please try again in a moment.",
            "error.csrf": "The page expired. Please reload it and try again.",
            "footer.imprint": "Imprint",
            "footer.privacy": "Privacy policy",
        },
        "de": {
            "error.title": "Etwas stimmt nicht",
            "error.400": "Die Anfrage konnte nicht verstanden werden.",
            "error.403": "Das ist von hier aus nicht erlaubt.",
            "error.404": "Hier gibt es nichts.",
            "error.405": "Diese Adresse nimmt diese Art von Anfrage nicht an.",
            "error.413": "Die Anfrage ist zu groß.",
            "error.415": "Die Anfrage hat einen Inhaltstyp, den diese Adresse nicht annimmt.",
            "error.422": "Einige Felder brauchen Ihre Aufmerksamkeit.",
            "error.429": "Zu viele Anfragen. Bitte warten Sie kurz und versuchen Sie es erneut.",
            "error.500": "Bei uns ist etwas schiefgegangen. Bitte versuchen Sie es später erneut.",
            "error.503": "Der Dienst ist ausgelastet. Bitte versuchen Sie es gleich noch einmal.",
            "error.csrf": "Die Seite ist abgelaufen. Bitte laden Sie sie neu.",
            "footer.imprint": "Impressum",
            "footer.privacy": "Datenschutzerklärung",
        },
    }
)
