"""Plausibility and enrichment: free built-in checks first, paid providers after.

The pipeline runs steps cheapest first and stops as soon as the lead is
suspect or disqualified, or when the lead's expected value (from its fit
grade so far) is below the next step's cost per call.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Protocol

import phonenumbers
from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS  # noqa: N812 - a constant
from sqlalchemy.orm import Session

from capture.definitions import PROFILE_FIELDS
from leadvault import batch, leads
from leadvault.models import Lead
from scoring.models import LeadScore, Stage
from scoring.rule_model import Rules, matches_all
from scoring.scores import NewState

log = logging.getLogger("leadvault.scoring.enrichment")

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.de", "hotmail.com", "hotmail.de",
        "outlook.com", "outlook.de", "live.com", "live.de", "msn.com", "icloud.com", "me.com",
        "mac.com", "aol.com", "gmx.de", "gmx.net", "gmx.at", "gmx.ch", "web.de", "t-online.de",
        "freenet.de", "posteo.de", "mailbox.org", "proton.me", "protonmail.com", "yandex.com",
        "mail.ru", "zoho.com", "arcor.de", "1und1.de", "online.de", "bluewin.ch", "fastmail.com",
    }
)  # fmt: skip
ROLE_LOCAL_PARTS = frozenset(
    {
        "info", "sales", "office", "contact", "admin", "support", "hello", "team", "marketing",
        "kontakt", "vertrieb", "service", "noreply", "no-reply", "mail", "post", "billing",
        "hr", "jobs", "webmaster", "postmaster", "abuse", "buchhaltung", "verwaltung",
    }
)  # fmt: skip


@dataclasses.dataclass
class Profile:
    """What the pipeline knows about a lead; lives in memory only."""

    email: str
    attributes: dict[str, str]
    flags: set[str] = dataclasses.field(default_factory=set)
    suspect: bool = False
    cost: float = 0.0

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2].lower()


class Step(Protocol):
    name: str
    cost: float

    def run(self, profile: Profile) -> None: ...


class EnrichmentProvider(Protocol):
    """A paid data source: returns profile fields (industry, company_size, …) for a lead."""

    name: str
    cost: float  # per call, in the same unit as [expected_value] in the rules

    def enrich(self, domain: str, attributes: Mapping[str, str]) -> dict[str, str]: ...


class DisposableDomain:
    name = "disposable_domain"
    cost = 0.0

    def run(self, profile: Profile) -> None:
        if profile.domain in DISPOSABLE_DOMAINS:
            profile.flags.add("disposable")
            profile.suspect = True


class MailDomainKind:
    name = "mail_domain_kind"
    cost = 0.0

    def run(self, profile: Profile) -> None:
        profile.flags.add("free_mail" if profile.domain in FREE_MAIL_DOMAINS else "company_mail")


class RoleAddress:
    name = "role_address"
    cost = 0.0

    def run(self, profile: Profile) -> None:
        local = profile.email.rpartition("@")[0].lower().split("+")[0]
        if local in ROLE_LOCAL_PARTS:
            profile.flags.add("role_address")


class PhoneCheck:
    name = "phone"
    cost = 0.0

    def run(self, profile: Profile) -> None:
        raw = profile.attributes.get("phone")
        if not raw:
            return
        country = (profile.attributes.get("country") or "").upper() or None
        try:
            number = phonenumbers.parse(raw, country)
        except phonenumbers.NumberParseException:
            profile.flags.add("phone_invalid")
            return
        if not phonenumbers.is_valid_number(number):
            profile.flags.add("phone_invalid")
            return
        profile.flags.add("phone_valid")
        region = phonenumbers.region_code_for_number(number)
        if country and region and region != country:
            profile.flags.add("phone_country_mismatch")


class ProviderStep:
    """Wraps a paid provider; its fields fill gaps in the profile, never overwrite."""

    def __init__(self, provider: EnrichmentProvider) -> None:
        self.provider = provider
        self.name = provider.name
        self.cost = float(provider.cost)

    def run(self, profile: Profile) -> None:
        found = self.provider.enrich(profile.domain, dict(profile.attributes))
        profile.cost += self.cost
        for key, value in found.items():
            if key in {*PROFILE_FIELDS, "industry"} and value and key not in profile.attributes:
                profile.attributes[key] = str(value)
        profile.flags.add(f"enriched:{self.name}"[:40])


BUILTIN_STEPS: tuple[Step, ...] = (
    DisposableDomain(),
    MailDomainKind(),
    RoleAddress(),
    PhoneCheck(),
)
_providers: list[EnrichmentProvider] = []


def register_provider(provider: EnrichmentProvider) -> None:
    _providers.append(provider)


def unregister_provider(provider: EnrichmentProvider) -> None:
    if provider in _providers:
        _providers.remove(provider)


def has_providers() -> bool:
    return bool(_providers)


# --- fit ----------------------------------------------------------------------


def fit_values(attributes: Mapping[str, str], flags: set[str] | list[str]) -> dict[str, object]:
    """Profile fields plus derived ones the fit rules may test."""
    flag_set = set(flags)
    email_type = (
        "disposable"
        if "disposable" in flag_set
        else "free"
        if "free_mail" in flag_set
        else "company"
        if "company_mail" in flag_set
        else None
    )
    present = sum(1 for name in PROFILE_FIELDS if attributes.get(name))
    values: dict[str, object] = {k: v for k, v in attributes.items() if v}
    if "country" in values:
        values["country"] = str(values["country"]).upper()
    values.update(
        email_type=email_type,
        role_address="role_address" in flag_set,
        phone_valid="phone_valid" in flag_set if attributes.get("phone") else None,
        profile_completeness=round(100 * present / len(PROFILE_FIELDS)),
    )
    return values


def fit_of(
    rules: Rules, attributes: Mapping[str, str], flags: set[str] | list[str], suspect: bool
) -> tuple[float, str, list[tuple[str, float]]]:
    """Fit points, grade A-D and the matching rules; a suspect lead is D whatever its points."""
    values = fit_values(attributes, flags)
    matched = [
        (rule.name, rule.points) for rule in rules.fit if matches_all(rule.conditions, values)
    ]
    points = float(sum(p for _n, p in matched))
    grade = "D" if suspect else rules.grade_for(points)
    return points, grade, matched


# --- the pipeline ---------------------------------------------------------------


def run(
    session: Session, lead: Lead, state: LeadScore | NewState, rules: Rules, *, paid: bool
) -> Profile:
    """Run the steps cheapest first; store flags, suspect and fit on ``state``."""
    profile = Profile(
        email=leads.email_of(session, lead),
        attributes=leads.attributes_of(session, lead),
        flags=set(state.flags or ()),
        suspect=state.suspect,
    )
    known_before = set(profile.attributes)
    steps: list[Step] = list(BUILTIN_STEPS)
    if paid:
        steps += [ProviderStep(p) for p in _providers]
    steps.sort(key=lambda step: step.cost)  # stable: built-ins keep their order
    for step in steps:
        if profile.suspect or state.stage == Stage.DISQUALIFIED:
            break
        if step.cost > 0:
            _points, grade, _m = fit_of(rules, profile.attributes, profile.flags, profile.suspect)
            if rules.expected_value[grade] < step.cost:
                break
        step.run(profile)
    gained = {k: v for k, v in profile.attributes.items() if k not in known_before}
    if gained:
        leads.set_attributes(session, lead, gained)
    points, grade, _matched = fit_of(rules, profile.attributes, profile.flags, profile.suspect)
    state.flags = sorted(profile.flags)
    state.suspect = profile.suspect
    state.fit_points = points
    state.fit_grade = grade
    state.enrichment_cost = (state.enrichment_cost or 0.0) + profile.cost
    if paid:
        state.enrichment_pending = False
    else:
        state.enrichment_pending = has_providers() and not profile.suspect
    if batch.active(session) is None:  # a batch's states are written together
        session.flush()
    return profile
