"""Routing rules that send leads to an address no salesperson has.

A rules file names salespeople by address; a rule naming one nobody has (the old one
after a change of address, a person not added yet) silently stops matching. Neither
side is refused for it (either order of changing the rules and the people leaves a
gap for a moment): the sales pages, ``leadvault sales edit``, ``leadvault scoring
load``, the API's rules activation and the console's confirm step point it out, all
from :func:`unrouted_rules`.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy.orm import Session

from scoring import routing
from scoring import rules as rules_module
from scoring.rule_model import Rules


@dataclasses.dataclass(frozen=True)
class Unrouted:
    rule: str  # the routing rule's name, or "fallback"
    salesperson: str  # the address it names


def unrouted_rules(session: Session, rules: Rules) -> list[Unrouted]:
    """The routing rules of ``rules`` (and its fallback) naming an address no salesperson
    has, in the file's order."""
    named = [(rule.name, rule.salesperson) for rule in rules.routing]
    named.append(("fallback", rules.fallback_salesperson))
    return [
        Unrouted(name, email)
        for name, email in named
        if email and routing.person_by_email(session, email) is None
    ]


def in_active_rules(session: Session) -> list[Unrouted]:
    """:func:`unrouted_rules` of the active rules file (routing skips these now)."""
    return unrouted_rules(session, rules_module.active(session))


def in_text(session: Session, text: str) -> list[Unrouted]:
    """:func:`unrouted_rules` of a rules file that loads (validated or stored already)."""
    return unrouted_rules(session, rules_module.parse(text))


def warning(found: list[Unrouted]) -> str:
    """The command line's warning (English, as its other messages), or "" for none."""
    if not found:
        return ""
    listed = ", ".join(f"{item.rule} ({item.salesperson})" for item in found)
    return (
        "Warning: routing rules name an address no salesperson has, so they route no "
        f"lead until it is a salesperson's: {listed}"
    )
