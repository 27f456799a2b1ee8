"""Refusals of the API's and the console's marshmallow schemas in the request's language.

marshmallow writes its own messages ("Missing data for required field.", "Must be
greater than or equal to 1.") in English, and ours beside them (``N_``-marked, such
as "must not contain control characters") are message ids too. :class:`Schema`
translates every message of a refused load as it leaves the schema, while the request
is still there: templates with values ("Must be one of: {choices}.") are recognised and
refilled, the rest are looked up as they are. The result is plain text, so a page
escapes it like any other value (a lazy string would pass as safe markup).

Schemas whose messages are already in a language of their own (a submission checked in
its form's language, ``capture.submission_checks``) keep marshmallow's ``Schema``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import marshmallow

from leadvault import i18n
from leadvault.i18n import N_

# marshmallow's own messages (4.x, Field.default_error_messages, Schema's and the
# validators'), as it fills them; Range's are listed per pair of operators.
# tests/test_schema_messages.py checks that this list still covers marshmallow's.
MARSHMALLOW = (
    N_("Missing data for required field."),
    N_("Field may not be null."),
    N_("Invalid value."),
    N_("Invalid type."),
    N_("Invalid input type."),
    N_("Invalid input."),
    N_("Unknown field."),
    N_("Not a valid list."),
    N_("Not a valid tuple."),
    N_("Not a valid string."),
    N_("Not a valid utf-8 string."),
    N_("Not a valid UUID."),
    N_("Not a valid number."),
    N_("Number too large."),
    N_("Not a valid integer."),
    N_("Special numeric values (nan or infinity) are not permitted."),
    N_("Not a valid boolean."),
    N_("Not a valid datetime."),
    N_("Not a valid date."),
    N_("Not a valid time."),
    N_("Not a valid aware datetime."),
    N_("Not a valid naive datetime."),
    N_('"{input}" cannot be formatted as a datetime.'),
    N_('"{input}" cannot be formatted as a date.'),
    N_('"{input}" cannot be formatted as a time.'),
    N_("Not a valid period of time."),
    N_("Not a valid mapping type."),
    N_("Not a valid URL."),
    N_("Not a valid email address."),
    N_("Not a valid IP address."),
    N_("Not a valid IPv4 address."),
    N_("Not a valid IPv6 address."),
    N_("Not a valid IP interface."),
    N_("Not a valid IPv4 interface."),
    N_("Not a valid IPv6 interface."),
    N_("Must be one of: {choices}."),
    N_("Must be equal to {other}."),
    N_("String does not match expected pattern."),
    N_("One or more of the choices you made was not in: {choices}."),
    N_("One or more of the choices you made was in: {values}."),
    N_("Length must be between {min} and {max}."),
    N_("Length must be {equal}."),
    N_("Longer than maximum length {max}."),
    N_("Shorter than minimum length {min}."),
    N_("Must be greater than or equal to {min}."),
    N_("Must be greater than {min}."),
    N_("Must be less than or equal to {max}."),
    N_("Must be less than {max}."),
    N_("Must be greater than or equal to {min} and less than or equal to {max}."),
    N_("Must be greater than or equal to {min} and less than {max}."),
    N_("Must be greater than {min} and less than or equal to {max}."),
    N_("Must be greater than {min} and less than {max}."),
)

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@functools.cache
def _templates() -> tuple[tuple[re.Pattern[str], str], ...]:
    """(pattern, message id) for the ids with values; the ones with the most fixed text
    first, so "greater than or equal to {min}" wins over "greater than {min}"."""
    found = []
    for message in MARSHMALLOW:
        if not _PLACEHOLDER.search(message):
            continue
        parts = _PLACEHOLDER.split(message)  # text, name, text, name, …, text
        pattern = "".join(
            re.escape(part) if index % 2 == 0 else f"(?P<{part}>.+?)"
            for index, part in enumerate(parts)
        )
        fixed = sum(len(part) for part in parts[::2])
        found.append((fixed, re.compile(pattern, re.DOTALL), message))
    found.sort(key=lambda item: -item[0])
    return tuple((pattern, message) for _fixed, pattern, message in found)


def translated_message(message: object, lang: str | None = None) -> str:
    """One message in ``lang`` (the request's when not given); unknown text unchanged."""
    text = str(message)  # a lazy string (a validator's error) becomes plain text here
    lang = lang or i18n.current_language()
    catalogue = i18n.translations(lang)
    for pattern, message_id in _templates():
        match = pattern.fullmatch(text)
        if match:
            return _refilled(catalogue.gettext(message_id), match.groupdict())
    return catalogue.gettext(text)


def _refilled(template: str, values: dict[str, str]) -> str:
    # By hand, not str.format: a value (what the client sent) may hold braces of its own.
    return _PLACEHOLDER.sub(lambda name: values.get(name[1], name[0]), template)


def translated(messages: Any, lang: str | None = None) -> Any:
    """marshmallow's error structure (field -> messages, nested) with every message
    translated; keys (field names, list positions) stay as they are."""
    lang = lang or i18n.current_language()
    if isinstance(messages, dict):
        return {key: translated(value, lang) for key, value in messages.items()}
    if isinstance(messages, list):
        return [translated(value, lang) for value in messages]
    return translated_message(messages, lang)


class Schema(marshmallow.Schema):
    """marshmallow's Schema whose refusals are in the request's language (see above)."""

    def handle_error(
        self, error: marshmallow.ValidationError, data: Any, *, many: bool, **kwargs: Any
    ) -> None:
        # Called with the whole load's errors just before marshmallow raises them.
        error.messages = translated(error.messages)
