"""Text a visitor typed: what a field refuses, how a mail shows it, how a terminal shows it.

HTML escaping is Jinja's job (autoescaping on every ``.html`` template, see
``tests/test_escaping.py``). This module covers what escaping does not:

- **Control characters** have no place in a name: CR/LF break headers and
  logs, NUL and ESC drive terminals, bidi overrides disguise text. One-line
  fields refuse every ``Cc``/``Cs``/``Zl``/``Zp`` character and every ``Cf``
  except the joiners and marks that scripts and emoji need; multi-line fields
  also allow tab and line breaks.
- **Links** in a mail: clients turn ``https://…``, ``www.…`` and ``host.tld``
  in plain text into links, so text a lead typed would become a link in a
  mail we send (the opt-in mail goes to whatever address the visitor typed).
  Person names refuse link-like text outright; everything a lead typed that
  a mail shows goes through :func:`defuse` (``evil[.]example``).
- **Terminals** obey escape sequences: :func:`for_terminal` shows them.
"""

from __future__ import annotations

import io
import re
import sys
import unicodedata
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

# Format characters real text needs: zero-width non-joiner and joiner (Persian,
# Indic scripts, emoji sequences), left-to-right and right-to-left marks.
_ALLOWED_FORMAT = frozenset("\u200c\u200d\u200e\u200f")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_LINE_BREAKS = frozenset("\t\n\r")
# What text staff write (consent texts, asset titles) may not hold: control
# characters other than tab and line breaks, and bidi overrides. A regular
# expression character range, so an API schema's pattern can say the same.
STAFF_TEXT_REFUSED = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"


# What a one-line text staff type (a salesperson's name, greeted in mails) may not hold
# besides: tab, line breaks and the line and paragraph separators.
ONE_LINE_REFUSED = STAFF_TEXT_REFUSED + "\t\n\r\u2028\u2029"
# The same as an API schema's pattern: no refused character, at least one visible.
ONE_LINE_PATTERN = rf"^[^{ONE_LINE_REFUSED}]*[^\s{ONE_LINE_REFUSED}][^{ONE_LINE_REFUSED}]*$"
# The same for an optional one-line text (a webhook's description): empty is fine.
ONE_LINE_OR_EMPTY_PATTERN = rf"^[^{ONE_LINE_REFUSED}]*$"
_ONE_LINE_REFUSED = re.compile(f"[{ONE_LINE_REFUSED}]")


_STAFF_TEXT_REFUSED = re.compile(f"[{STAFF_TEXT_REFUSED}]")


def staff_text_refused(value: str) -> bool:
    return _STAFF_TEXT_REFUSED.search(value) is not None


def typed_again(value: Any, *, one_line: bool = False) -> str:
    """Text a refused form shows again in its field: as typed, except each character
    staff text refuses (:data:`STAFF_TEXT_REFUSED`; :data:`ONE_LINE_REFUSED` for a
    one-line field such as a salesperson's name) becomes U+FFFD. The page never sends
    a control character or bidi override back raw (a browser shows them as nothing,
    or reorders the text around them); the � stands where it was, and the message
    next to the field names it."""
    text = "" if value is None else str(value)
    return (_ONE_LINE_REFUSED if one_line else _STAFF_TEXT_REFUSED).sub("\ufffd", text)


def staff_text_character(value: str) -> str | None:
    """The first character ``STAFF_TEXT_REFUSED`` holds, or None."""
    found = _STAFF_TEXT_REFUSED.search(value)
    return found[0] if found else None


def one_line_refused(value: str) -> str | None:
    """The first character ``ONE_LINE_PATTERN`` refuses, or None."""
    found = _ONE_LINE_REFUSED.search(value)
    return found[0] if found else None


def control_character(value: str, *, multiline: bool = False) -> str | None:
    """The first character a text field refuses, or None when the text is fine."""
    for char in value:
        if multiline and char in _LINE_BREAKS:
            continue
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES or (category == "Cf" and char not in _ALLOWED_FORMAT):
            return char
    return None


# Letters that show as nothing (Hangul fillers, the blank Braille pattern): a name of
# them alone looks empty, like one of format characters or spaces.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def has_visible(value: str) -> bool:
    """True when ``value`` has a character that shows: a letter, digit, punctuation or
    symbol. Joiners, marks and spaces only show with such a character beside them, so
    "\u200d\u200d" (accepted by :func:`control_character` for emoji and scripts) has none."""
    return any(
        unicodedata.category(char)[0] in "LNPS" and char not in _BLANK_LETTERS for char in value
    )


_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*):(?=//)")
_WWW = re.compile(r"(?i)\bwww\.")
# A dot inside a host name: between a letter or digit and a label of at least
# two letters ("evil.example", "Booking.com"), not in initials ("J.R.R.").
_HOST_DOT = re.compile(r"(?<=[^\W_])\.(?=[^\W\d_]{2,}|[^\W_]+[\-\w]*\.[^\W\d_]{2,})")


def looks_like_link(value: str) -> bool:
    """True for text a mail client would make a link of: a URL, www.…, or host.tld."""
    return bool(_SCHEME.search(value) or _WWW.search(value) or _HOST_DOT.search(value))


def has_url(value: str) -> bool:
    """True for an explicit URL (``scheme://`` or ``www.``); ``Booking.com`` is not one."""
    return bool(_SCHEME.search(value) or _WWW.search(value))


def defuse(value: Any) -> str:
    """Break what a mail client would turn into a link, visibly: ``https[:]//evil[.]example``.

    The reader still sees what the lead typed; no client links it. Applied to
    text a lead typed, never to links Leadvault makes itself.
    """
    text = "" if value is None else str(value)
    text = _SCHEME.sub(r"\1[:]", text)
    return _HOST_DOT.sub("[.]", text)


def one_line(value: str, *, limit: int) -> str:
    """Text typed elsewhere as one line of a header (a mail's Subject): control
    characters (line breaks an old import kept) become spaces, runs of spaces one,
    and text longer than ``limit`` characters is cut with an ellipsis."""
    line = " ".join("".join(" " if control_character(char) else char for char in value).split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


@pass_context
def defuse_in_mail(context: Context, value: Any) -> Any:
    """Jinja filter: :func:`defuse` in mails; pages (no autolinking) show the value as is."""
    if context.get("is_mail"):
        return defuse(value)
    return value


def for_terminal(text: str) -> str:
    """Show control and format characters as escapes (``\\x1b``) instead of sending them."""
    if text.isprintable():
        return text
    shown = []
    for char in text:
        if char.isprintable() or char == " ":
            shown.append(char)
        elif ord(char) < 0x100:
            shown.append(f"\\x{ord(char):02x}" if char not in "\n\r\t" else repr(char)[1:-1])
        else:
            shown.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return "".join(shown)


# What a terminal obeys but a person never needs to see sent: C0 controls other
# than tab, newline and carriage return (progress bars), DEL, C1 controls (CSI …),
# and the bidi overrides and isolates that reorder what is shown.
_TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _shown(match: re.Match[str]) -> str:
    return for_terminal(match.group(0))


class TerminalGuard(io.TextIOWrapper):
    """A terminal's text stream that shows control characters as escapes.

    Whatever a command prints (stored names, a remote server's error, a mail
    preview) cannot move the cursor, retitle the window or plant a hyperlink.
    """

    def write(self, text: str) -> int:
        super().write(_TERMINAL_CONTROLS.sub(_shown, text))
        return len(text)


def guard_terminal() -> None:
    """Put a :class:`TerminalGuard` on stdout and stderr where they are terminals.

    Pipes and files (an export to ``-`` redirected into a file) get exact output.
    """
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, TerminalGuard) or not isinstance(stream, io.TextIOWrapper):
            continue
        if not stream.isatty():
            continue
        stream.flush()
        guarded = TerminalGuard(
            stream.detach(),
            encoding=stream.encoding,
            errors=stream.errors,
            line_buffering=stream.line_buffering,
        )
        setattr(sys, name, guarded)
