"""The one shape of a service's refusal: a message safe to show, in any language.

Each package names its own subclass (``SalesError``, ``ConsentError``, ``AssetError``,
``WebhookError``, ``FormError``), so that a caller catches only the refusals it can
answer; what they carry is this class's: ``message`` is a message id (marked with
``N_``) with ``%(name)s`` values, ``str`` its English text (logs, the command line),
:meth:`RefusedRequest.translated` its text in the request's (or a named) language (the
console, the API), and ``field`` the input it is about, or None.
"""

from __future__ import annotations

from leadvault import i18n


class RefusedRequest(Exception):
    """A request a service refuses; the message names the problem and is safe to show."""

    def __init__(self, message: str, *, field: str | None = None, **values: object) -> None:
        super().__init__(message % values if values else message)
        self.message, self.values, self.field = message, values, field

    def translated(self, lang: str | None = None) -> str:
        """The message in ``lang``, by default the request's language."""
        # Filled in here, not by i18n.translate(lang, message, **values): a value named
        # ``lang`` or ``message`` (FormError's "There is no language %(lang)s.") would
        # collide with its parameters.
        text = i18n.translate(lang or i18n.current_language(), self.message)
        return text % self.values if self.values else text
