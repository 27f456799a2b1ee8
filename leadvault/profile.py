"""What a lead's profile fields accept, wherever a person types them.

One set of rules for the capture forms (``capture.submission_checks``), contact imports,
progressive profiling and the preference center's correction (Art. 16):
lengths, the company-size choices, the two-letter country code, and what text
a field refuses (``leadvault.untrusted``). Messages are message ids
(translate them in the person's language).
"""

from __future__ import annotations

from leadvault import untrusted
from leadvault.i18n import N_

COMPANY_SIZES = ("1-9", "10-49", "50-249", "250-999", "1000+")
MAX_LENGTH = {
    "first_name": 100,
    "last_name": 100,
    "company": 200,
    "job_title": 150,
    "phone": 40,
    "country": 2,
    "company_size": 10,
    "message": 4000,
}

# Names appear in the greeting of mails sent to whatever address a visitor typed:
# no links there at all. Company and job title may be "Booking.com" (mails defuse
# it), but not a URL.
PERSON_NAMES = frozenset({"first_name", "last_name"})
NO_URLS = frozenset({"company", "job_title"})
MULTILINE = frozenset({"message"})

CONTROL_CHARACTERS = N_("Please remove line breaks and invisible control characters.")
NO_LINKS = N_("Please leave web addresses out of this field.")
NO_VISIBLE = N_("This name has only invisible characters. Please type your name.")
TOO_LONG = N_("Please use at most %(max)s characters.")
CHOOSE_ONE = N_("Please choose one of the options.")
COUNTRY_CODE = N_("Please use the two-letter country code, like DE or GB.")


def text_problem(name: str, value: str) -> str | None:
    """The message (to translate) for what a text field refuses in ``value``, or None."""
    if untrusted.control_character(value, multiline=name in MULTILINE) is not None:
        return CONTROL_CHARACTERS
    if name in PERSON_NAMES and untrusted.looks_like_link(value):
        return NO_LINKS
    # Mails greet the lead by name: a name of joiners or marks alone greets "Hello ,".
    # A blank one is no name at all (an optional field left empty), not this problem.
    if name in PERSON_NAMES and value.strip() and not untrusted.has_visible(value):
        return NO_VISIBLE
    if name in NO_URLS and untrusted.has_url(value):
        return NO_LINKS
    return None


def country_ok(value: str) -> bool:
    return len(value) == 2 and value.isalpha()


def field_problem(name: str, value: str) -> tuple[str, dict[str, int]] | None:
    """Everything a non-empty ``value`` of field ``name`` may not be: (message id,
    its values) or None."""
    if name == "company_size":
        return None if value in COMPANY_SIZES else (CHOOSE_ONE, {})
    if name == "country":
        return None if country_ok(value) else (COUNTRY_CODE, {})
    limit = MAX_LENGTH.get(name)
    if limit is not None and len(value) > limit:
        return TOO_LONG, {"max": limit}
    problem = text_problem(name, value)
    return (problem, {}) if problem is not None else None
