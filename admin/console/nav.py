"""The console's navigation: each entry shows only to roles that may open it."""

from __future__ import annotations

import dataclasses

from admin.permissions import Permission
from leadvault.i18n import N_


@dataclasses.dataclass(frozen=True)
class Entry:
    endpoint: str
    label: str  # message id
    permission: Permission
    section: str  # marks the current entry (aria-current)


NAV: tuple[Entry, ...] = (
    Entry("console.dashboard", N_("Dashboard"), Permission.REPORTS_READ, "dashboard"),
    Entry("console.leads", N_("Leads"), Permission.LEADS_READ_ASSIGNED, "leads"),
    Entry("console.forms", N_("Forms"), Permission.FORMS_READ, "forms"),
    Entry("console.privacy", N_("Privacy"), Permission.AUDIT_READ, "privacy"),
    Entry("console.scoring", N_("Scoring"), Permission.SCORING_READ, "scoring"),
    Entry("console.handoffs", N_("Handoffs"), Permission.HANDOFFS_OWN, "handoffs"),
    Entry("console.sales", N_("Sales team"), Permission.SALES_TEAM_WRITE, "sales"),
    Entry(
        "console.consent_texts_page",
        N_("Consent texts"),
        Permission.CONSENT_TEXTS_READ,
        "consent",
    ),
    Entry("console.assets_page", N_("Assets"), Permission.ASSETS_READ, "assets"),
    Entry("console.settings", N_("Settings"), Permission.SETTINGS_MANAGE, "settings"),
    Entry("console.exports", N_("Export"), Permission.LEADS_EXPORT, "exports"),
    Entry("console.imports_page", N_("Import"), Permission.LEADS_WRITE, "imports"),
    Entry("console.webhooks_page", N_("Webhooks"), Permission.SETTINGS_MANAGE, "webhooks"),
)


def entries(can: object) -> list[Entry]:
    """The entries the current account may open (``can`` is ``admin.auth.can``)."""
    return [entry for entry in NAV if can(entry.permission)]  # type: ignore[operator]
