"""The funnel quality report: stages reached, conversion, by form and UTM, reject reasons."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections import Counter, defaultdict

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault.models import Lead
from scoring.models import Handoff, HandoffStatus, LeadScore, Stage, StageChange

FUNNEL = (Stage.NEW, Stage.MQL, Stage.SAL, Stage.SQL, Stage.WON)


@dataclasses.dataclass
class Group:
    reached: Counter[str] = dataclasses.field(default_factory=Counter)
    rejected: Counter[str] = dataclasses.field(default_factory=Counter)

    def conversion(self) -> dict[str, float | None]:
        rates: dict[str, float | None] = {}
        for before, after in itertools.pairwise(FUNNEL):
            rates[f"{before}->{after}"] = (
                self.reached[after] / self.reached[before] if self.reached[before] else None
            )
        return rates


@dataclasses.dataclass
class Report:
    since: dt.datetime
    total: Group
    current: Counter[str]
    mql_without_sales_consent: int
    by_form: dict[str, Group]
    by_utm_source: dict[str, Group]
    by_utm_campaign: dict[str, Group]


def funnel(session: Session, since: dt.datetime) -> Report:
    rows = session.execute(
        sa.select(
            LeadScore.lead_id,
            LeadScore.stage,
            LeadScore.first_form,
            LeadScore.utm_source,
            LeadScore.utm_campaign,
        )
        .join(Lead, Lead.id == LeadScore.lead_id)
        .where(Lead.created_at >= since)
    ).all()
    ids = [row.lead_id for row in rows]
    reached: dict[object, set[str]] = defaultdict(set)
    reasons: dict[object, list[str]] = defaultdict(list)
    handed: set[object] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for lead_id, stage in session.execute(
            sa.select(StageChange.lead_id, StageChange.to_stage).where(
                StageChange.lead_id.in_(chunk)
            )
        ):
            reached[lead_id].add(stage)
        for lead_id, status, reason in session.execute(
            sa.select(Handoff.lead_id, Handoff.status, Handoff.reject_reason).where(
                Handoff.lead_id.in_(chunk)
            )
        ):
            handed.add(lead_id)
            if status == HandoffStatus.REJECTED and reason:
                reasons[lead_id].append(reason)
    total = Group()
    current: Counter[str] = Counter()
    by_form: dict[str, Group] = defaultdict(Group)
    by_source: dict[str, Group] = defaultdict(Group)
    by_campaign: dict[str, Group] = defaultdict(Group)
    waiting = 0
    for row in rows:
        stages_reached = {Stage.NEW.value, *reached[row.lead_id]}
        current[row.stage] += 1
        if row.stage == Stage.MQL and row.lead_id not in handed:
            waiting += 1
        for group in (
            total,
            by_form[row.first_form or "-"],
            by_source[row.utm_source or "-"],
            by_campaign[row.utm_campaign or "-"],
        ):
            group.reached.update(stages_reached)
            group.rejected.update(reasons[row.lead_id])
    return Report(since, total, current, waiting, dict(by_form), dict(by_source), dict(by_campaign))


def as_lines(report: Report) -> list[str]:
    def fmt(group: Group) -> str:
        counts = " ".join(f"{stage}={group.reached[stage]}" for stage in FUNNEL)
        conv = " ".join(
            f"{k}={v:.0%}" if v is not None else f"{k}=-" for k, v in group.conversion().items()
        )
        rejected = ", ".join(f"{r}={n}" for r, n in group.rejected.most_common()) or "none"
        return f"{counts}\n    conversion {conv}\n    rejected: {rejected}"

    lines = [f"Funnel since {report.since.date().isoformat()}", f"  all: {fmt(report.total)}"]
    lines.append(
        "  now: "
        + " ".join(f"{s}={n}" for s, n in sorted(report.current.items()))
        + f"  (MQL without sales consent: {report.mql_without_sales_consent})"
    )
    for title, groups in (
        ("form", report.by_form),
        ("utm_source", report.by_utm_source),
        ("utm_campaign", report.by_utm_campaign),
    ):
        lines.append(f"By {title}:")
        for name in sorted(groups):
            lines.append(f"  {name}: {fmt(groups[name])}")
    return lines
