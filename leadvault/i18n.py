"""Translations: gettext catalogues (Babel) and language negotiation.

Message ids are the English text; each package keeps its German catalogue in
``<package>/translations/de/LC_MESSAGES/messages.po`` and registers the folder
with :func:`register_catalogue`. The ``.po`` files are the only source: they
are compiled in memory on first use, so a fresh checkout needs no build step.

Mark text with ``_()``/``gettext()`` (current language), ``translate(lang, …)``
(an explicit language, e.g. a mail to a lead), ``N_()`` (marked now,
translated later, e.g. table values) or ``lazy_gettext()``. Values are
``%(name)s`` placeholders: ``_("Hello %(name)s,", name=first)``. Templates call
``{{ _("…") }}`` and get the language of their context's ``lang``. Dates and numbers
in a language's form: :mod:`leadvault.locale_formats`.
``README.md`` (Translations) says how to update the catalogues.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from babel.support import NullTranslations, Translations
    from flask import Flask

LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"
DOMAIN = "messages"
# Keywords for extraction (pybabel extract -k …); ``translate``'s message is its 2nd argument.
KEYWORDS = {
    "_": None,
    "gettext": None,
    "N_": None,
    "lazy_gettext": None,
    "ngettext": (1, 2),
    "lazy_ngettext": (1, 2),
    "translate": (2,),
}

_catalogue_dirs: list[Path] = []
_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("lv_language", default=None)
# What a message id of the old dict catalogues looked like ("error.429").
_OLD_KEY = re.compile(r"[a-z_]+(\.[a-z0-9_]+)+")


def register_catalogue(directory: Path) -> None:
    """Add a package's ``translations`` folder; called by the package's ``init_app``."""
    directory = Path(directory).resolve()
    if directory not in _catalogue_dirs:
        _catalogue_dirs.append(directory)
        _translations.cache_clear()


def catalogue_dirs() -> list[Path]:
    return list(_catalogue_dirs)


def _load_po(path: Path, lang: str) -> Translations:
    # Babel is imported on first use, not with this module: the command line reads
    # LANGUAGES when it starts (its --lang choices), and Babel took ~24 ms of CPU there.
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    from babel.support import Translations

    with path.open("rb") as handle:
        catalog = read_po(handle, locale=lang, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)  # fuzzy entries fall back to English
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def translations(lang: str) -> NullTranslations:
    """Every registered catalogue of ``lang`` merged (later registrations win)."""
    return _translations(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)


@functools.cache
def _translations(lang: str) -> NullTranslations:
    from babel.support import NullTranslations

    merged: NullTranslations | None = None
    for directory in _catalogue_dirs:
        path = directory / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        if not path.is_file():
            continue
        loaded = _load_po(path, lang)
        if merged is None:
            merged = loaded
        else:
            merged.merge(loaded)  # type: ignore[union-attr]
    return merged if merged is not None else NullTranslations()


def _checked(message: str, translated: str) -> str:
    if translated is message and _OLD_KEY.fullmatch(message):
        # Loud, like the old catalogues: a dotted key is not English text.
        raise KeyError(f"{message!r} is an old catalogue key; use the English text as message id")
    return translated


def translate(lang: str, message: str, **values: Any) -> str:
    """``message`` in ``lang`` (not the request's language), with ``%(name)s`` values."""
    text = _checked(message, translations(lang).gettext(message))
    return text % values if values else text


def translate_plural(lang: str, singular: str, plural: str, n: int, **values: Any) -> str:
    text = translations(lang).ngettext(singular, plural, n)
    return text % {"num": n, **values}


def gettext(message: str, **values: Any) -> str:
    """``message`` in the current language (see :func:`current_language`)."""
    return translate(current_language(), message, **values)


_ = gettext


def ngettext(singular: str, plural: str, n: int, **values: Any) -> str:
    return translate_plural(current_language(), singular, plural, n, **values)


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark only"
    """Mark ``message`` for extraction; translate it later with ``_(value)``."""
    return message


def lazy_gettext(message: str, **values: Any) -> Any:
    """Translated when turned into text (e.g. while a template renders)."""
    from flask_babel.speaklater import LazyString

    return LazyString(gettext, message, **values)


# --- which language --------------------------------------------------------------------


def current_language() -> str:
    """A forced language (:func:`force_locale`), else the request's, else English."""
    forced = _forced.get()
    if forced is not None:
        return forced
    from flask import g, has_app_context, has_request_context

    if not has_app_context():
        return DEFAULT_LANGUAGE
    # flask_babel.force_locale used directly (ours sets _forced). Flask-Babel 4 has no
    # public way to ask for a forced locale without computing one (get_locale calls
    # the selector, which is this function): its private per-request namespace is
    # read, and tests/test_i18n.py::test_flask_babels_own_force_locale_is_honoured
    # fails loudly if a new Flask-Babel moves it.
    babel_ctx = g.get("_flask_babel")
    forced_locale = getattr(babel_ctx, "forced_babel_locale", None)
    if forced_locale is not None:
        return supported(str(forced_locale)) or DEFAULT_LANGUAGE
    if not has_request_context():
        return DEFAULT_LANGUAGE
    lang = g.get("lang")
    if lang is None:
        from flask import request

        lang = g.lang = negotiate(request.args.get("lang"), request.headers.get("Accept-Language"))
    return lang


# Set in ``g`` while Flask-Babel holds a locale for this request: its locale selector
# (public API) is called exactly when it computes one to cache.
_BABEL_CACHED = "lv_babel_cached"


def _babel_locale_selector() -> str:
    from flask import g

    setattr(g, _BABEL_CACHED, True)
    return current_language()


def set_language(lang: str) -> str:
    """Use ``lang`` for the rest of this request (e.g. the lead's own language)."""
    from flask import g

    g.lang = supported(lang) or DEFAULT_LANGUAGE
    # Babel's refresh() only when it cached a locale: a public request never asks it
    # for one, and refreshing there cost ~1 % of a submission's CPU (bench/README.md).
    if g.pop(_BABEL_CACHED, False):
        import flask_babel

        flask_babel.refresh()
    return g.lang


@contextlib.contextmanager
def force_locale(lang: str) -> Iterator[str]:
    """Render (a mail, a subject …) in ``lang``, inside or outside a request."""
    chosen = supported(lang) or DEFAULT_LANGUAGE
    token = _forced.set(chosen)
    try:
        import flask_babel
        from flask import has_app_context

        if has_app_context():
            from flask import g

            cached = g.get(_BABEL_CACHED, False)
            try:
                with flask_babel.force_locale(chosen):
                    yield chosen
            finally:
                # Babel put back the locale it held before: the next switch drops it.
                if cached:
                    setattr(g, _BABEL_CACHED, True)
        else:
            yield chosen
    finally:
        _forced.reset(token)


def supported(tag: str | None) -> str | None:
    """The language we have for a tag ("de-AT" -> "de"), or None (RFC 4647 lookup)."""
    if not tag:
        return None
    parts = tag.strip().lower().replace("_", "-").split("-")
    while parts:
        candidate = "-".join(parts)
        if candidate in LANGUAGES:
            return candidate
        parts.pop()
    return None


_QVALUE = re.compile(r"(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)")
_TAG = re.compile(r"(?:\*|[a-z]{1,8}(?:-[a-z0-9]{1,8})*)")


def parse_accept_language(header: str) -> list[tuple[str, float]]:
    """``Accept-Language`` (RFC 9110 12.5.4) as (tag, q) in order of preference.

    Tags are lower-cased; entries with a malformed tag or q-value are ignored;
    equal q-values keep the header's order.
    """
    entries: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, *params = (piece.strip() for piece in part.split(";"))
        tag = tag.lower()
        if not _TAG.fullmatch(tag):
            continue
        quality = 1.0
        valid = True
        for param in params:
            name, _sep, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                if not _QVALUE.fullmatch(value):
                    valid = False
                    break
                quality = float(value)
        if valid:
            entries.append((-quality, position, tag))
    return [(tag, -negative) for negative, _position, tag in sorted(entries)]


def negotiate(explicit: str | None, accept_language: str | None) -> str:
    """The page language: ``explicit`` (``?lang=``, ``data-lang``, a form's ``lang``)
    if we have it, else the best of ``Accept-Language``, else English.

    ``q=0`` means "not acceptable": such a language is never chosen, not even
    through ``*``. A regional tag falls back to its language (``de-CH`` -> ``de``).
    """
    chosen = supported(explicit)
    if chosen:
        return chosen
    if not accept_language:
        return DEFAULT_LANGUAGE
    ranked = parse_accept_language(accept_language)
    refused = {supported(tag) for tag, q in ranked if q == 0 and tag != "*"} - {None}
    named = {supported(tag) for tag, _q in ranked} - {None}
    for tag, quality in ranked:
        if quality == 0:
            break  # sorted: the rest is refused too
        if tag == "*":
            rest = [lang for lang in LANGUAGES if lang not in refused and lang not in named]
            if rest:
                return rest[0]
            continue
        lang = supported(tag)
        if lang and lang not in refused:
            return lang
    # Nothing acceptable matched: the default, unless the visitor refused it.
    for lang in (DEFAULT_LANGUAGE, *LANGUAGES):
        if lang not in refused:
            return lang
    return DEFAULT_LANGUAGE


# --- Flask and Jinja wiring ----------------------------------------------------------


def template_language(context: Any) -> str:
    """The language a template renders in: its context's ``lang``, else the current one."""
    lang = context.get("lang")
    return lang if isinstance(lang, str) and lang in LANGUAGES else current_language()


def _jinja_callables() -> dict[str, Callable[..., Any]]:
    from jinja2 import pass_context
    from markupsafe import escape

    # Jinja's newstyle gettext marks what these return as safe HTML (Markup) under
    # autoescaping, and only the %(name)s values are escaped: ``{{ _(value) }}`` with
    # a value someone typed (a message that is not a literal) would be raw markup.
    # Escaped here, text is text however the message id came about; catalogues hold
    # no markup (tests/test_escaping.py).
    def text_of(context: Any, text: str) -> str:
        return escape(text) if context.eval_ctx.autoescape else text

    @pass_context
    def template_gettext(context: Any, message: str) -> str:
        translated = translations(template_language(context)).gettext(message)
        return text_of(context, _checked(message, translated))

    @pass_context
    def template_ngettext(context: Any, singular: str, plural: str, n: int) -> str:
        translated = translations(template_language(context)).ngettext(singular, plural, n)
        return text_of(context, translated)

    return {"gettext": template_gettext, "ngettext": template_ngettext}


def init_app(app: Flask) -> None:
    """Flask-Babel with our catalogues and language; Jinja's i18n extension.

    Templates translate into their context's ``lang`` (pages: the request's
    language; mails: the recipient's, given by ``db.mail_context``), so a mail
    rendered during a request or in the worker is always in the right language.
    """
    import flask_babel

    class _Domain(flask_babel.Domain):
        def get_translations(self) -> NullTranslations:
            return translations(current_language())

    class _Babel(flask_babel.Babel):
        @functools.cached_property
        def domain_instance(self) -> flask_babel.Domain:
            return _Domain()

    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "UTC")
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join(str(d) for d in _catalogue_dirs)
    _Babel(configure_jinja=False).init_app(app, locale_selector=_babel_locale_selector)
    app.jinja_env.add_extension("jinja2.ext.i18n")
    callables = _jinja_callables()
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=callables["gettext"], ngettext=callables["ngettext"], newstyle=True
    )


def template_context(lang: str, imprint_url: str, privacy_url: str, **extra: object) -> dict:
    """What every page and mail template expects: the language (which ``_`` in
    the template uses) and the operator's imprint and privacy links."""
    return {"lang": lang, "imprint_url": imprint_url, "privacy_url": privacy_url, **extra}


register_catalogue(Path(__file__).parent / "translations")
