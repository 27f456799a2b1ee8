"""The pages a lead's signed link answers with when it no longer works (expired, its
lead erased, its single use spent, broken): shared by the consent package's views.

Here and not in leadvault.web because the erased and used cases are consent's
(consent.rights); the broken-link page itself is leadvault.web's."""

from __future__ import annotations

from flask import Response

from consent import rights
from leadvault.crypto import TokenExpired
from leadvault.i18n import N_
from leadvault.web import invalid_link_page, private_page

USED_ONCE = N_("For your protection, this link works only once.")


def link_problem(exc: Exception, *, used_text: str = USED_ONCE) -> Response:
    """410 for an expired link, an erased lead or a spent link, 400 for anything else.

    ``used_text``: a message id saying why a spent link is spent."""
    if isinstance(exc, TokenExpired):
        return private_page(
            "consent/message.html",
            410,
            title=N_("This link has expired"),
            text=N_("For your protection, these links are valid for a limited time."),
            manage=True,
        )
    if isinstance(exc, rights.LeadErased):
        return private_page(
            "consent/message.html",
            410,
            title=N_("Your data has been erased"),
            text=N_("We no longer hold any data about you, so this link has nothing to show."),
        )
    if isinstance(exc, rights.LinkGone):
        return private_page(
            "consent/message.html",
            410,
            title=N_("This link was already used"),
            text=used_text,
            manage=True,
        )
    return invalid_link_page()


def optin_link_gone() -> Response:
    """410 for a confirmation link whose request no longer exists: its lead's data was
    erased, or a newer mail replaced it. Nothing is left to confirm or to resend."""
    return private_page(
        "consent/message.html",
        410,
        title=N_("This link is no longer valid"),
        text=N_(
            "There is nothing left to confirm with this link: a newer mail replaced it, "
            "or the data it was about has been erased. If you asked for a newer mail, "
            "please use the link in that one."
        ),
    )
