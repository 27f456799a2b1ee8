"""The one permission table: which role may do what, for the console, the API and the CLI.

Every view states the permission it needs (``admin.auth.require``); personal
API tokens carry a subset of their owner's permissions as scopes. Changing
what a role may do means changing :data:`TABLE`, and the permission matrix
test (tests/test_admin_permissions.py) follows it.
"""

from __future__ import annotations

import enum

from admin.models import Role
from leadvault.i18n import N_


class Permission(enum.StrEnum):
    # Leads. "read" lists pseudonymous rows (stage, grade, score, form, source; no
    # personal data); "reveal" decrypts a lead's personal data (one audited request).
    LEADS_READ = "leads:read"
    LEADS_REVEAL = "leads:reveal"
    LEADS_WRITE = "leads:write"  # stage changes with a reason
    LEADS_EXPORT = "leads:export"
    LEADS_ERASE = "leads:erase"
    # Sales: only the leads handed to their salesperson, and their handoffs.
    LEADS_READ_ASSIGNED = "leads:read-assigned"
    LEADS_REVEAL_ASSIGNED = "leads:reveal-assigned"
    LEADS_WRITE_ASSIGNED = "leads:write-assigned"
    HANDOFFS_OWN = "handoffs:own"
    HANDOFFS_READ = "handoffs:read"  # every salesperson's open and overdue handoffs
    # Marketing
    FORMS_READ = "forms:read"
    FORMS_WRITE = "forms:write"
    CONSENT_TEXTS_READ = "consent-texts:read"  # purposes, versions, which forms show them
    CONSENT_TEXTS_WRITE = "consent-texts:write"
    ASSETS_READ = "assets:read"
    ASSETS_WRITE = "assets:write"
    SCORING_READ = "scoring:read"
    SCORING_WRITE = "scoring:write"
    SALES_TEAM_WRITE = "sales-team:write"  # salespeople, teams, absences: the owner's
    REPORTS_READ = "reports:read"  # aggregates only
    # Privacy
    LEDGER_READ = "ledger:read"  # verification, a lead's consent proof
    PRIVACY_REQUESTS = "privacy-requests:read"  # access and erasure request log
    AUDIT_READ = "audit:read"
    # Owner
    USERS_MANAGE = "users:manage"
    SETTINGS_MANAGE = "settings:manage"


P = Permission

_MARKETING = frozenset(
    {
        P.LEADS_READ,
        P.LEADS_REVEAL,
        P.LEADS_WRITE,
        P.LEADS_EXPORT,
        P.FORMS_READ,
        P.FORMS_WRITE,
        P.CONSENT_TEXTS_READ,
        P.CONSENT_TEXTS_WRITE,
        P.ASSETS_READ,
        P.ASSETS_WRITE,
        P.SCORING_READ,
        P.SCORING_WRITE,
        P.HANDOFFS_READ,
        P.REPORTS_READ,
    }
)
_SALES = frozenset(
    {P.LEADS_READ_ASSIGNED, P.LEADS_REVEAL_ASSIGNED, P.LEADS_WRITE_ASSIGNED, P.HANDOFFS_OWN}
)
# Privacy finds a lead to answer an access or erasure request, sees its consent
# proof and the audit trail; nothing of marketing (forms, scoring, reports).
_PRIVACY = frozenset(
    {
        P.LEADS_READ,
        P.LEADS_REVEAL,
        P.LEADS_EXPORT,
        P.LEADS_ERASE,
        P.LEDGER_READ,
        P.CONSENT_TEXTS_READ,  # what a proof's text version said
        P.PRIVACY_REQUESTS,
        P.AUDIT_READ,
    }
)
# Aggregates only: never a lead, never personal data.
_VIEWER = frozenset({P.REPORTS_READ, P.FORMS_READ})

TABLE: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission) - _SALES,
    Role.MARKETING: _MARKETING,
    Role.SALES: _SALES,
    Role.PRIVACY: _PRIVACY,
    Role.VIEWER: _VIEWER,
}

ROLE_LABELS = {
    Role.OWNER: N_("Owner: everything, including users and settings"),
    Role.MARKETING: N_("Marketing: forms, assets, consent texts, scoring, reports, leads"),
    Role.SALES: N_("Sales: the leads handed to them and their handoffs"),
    Role.PRIVACY: N_("Privacy: consent ledger, proofs, requests, audit trail; no marketing"),
    Role.VIEWER: N_("Viewer: reports (aggregates only, never personal data)"),
}

# Where a permission on every lead (or handoff) implies the one on assigned ones.
IMPLIES = {
    P.LEADS_READ: P.LEADS_READ_ASSIGNED,
    P.LEADS_REVEAL: P.LEADS_REVEAL_ASSIGNED,
    P.LEADS_WRITE: P.LEADS_WRITE_ASSIGNED,
    P.HANDOFFS_READ: P.HANDOFFS_OWN,
}


def of_role(role: str) -> frozenset[Permission]:
    try:
        return TABLE[Role(role)]
    except ValueError:
        return frozenset()


def allows(granted: frozenset[Permission], needed: Permission) -> bool:
    """Whether ``granted`` covers ``needed`` (an all-leads permission covers the
    assigned-leads one)."""
    if needed in granted:
        return True
    return any(IMPLIES.get(p) == needed for p in granted)
