"""Reports per sequence and step, and what nurture holds about one lead.

Per sequence: leads entered, running, completed, exited (by reason); per step
and in total: mails sent, mails with a click (only leads who consented to
tracking can click through the redirect, so others never count), unsubscribed
(or complained) after the step, bounced, reached MQL after it, handed off to
sales after it. A lead's exit or MQL is put on the last mail it got before.
Counts are about leads that still exist: erasure removes a lead's rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import Counter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault.models import Lead
from nurture import sequences
from nurture.models import Click, Enrollment, EnrollmentStatus, MailSuppression, Send

HANDED_OFF = ("stage:", "handoff:")
UNSUBSCRIBED = ("unsubscribed", "complaint")


@dataclasses.dataclass
class StepRow:
    step: str
    kind: str
    sent: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    bounced: int = 0
    mql: int = 0
    handed_off: int = 0


@dataclasses.dataclass
class SequenceReport:
    key: str
    name: str
    active_version: int | None
    entered: int = 0
    running: int = 0
    completed: int = 0
    exited: Counter[str] = dataclasses.field(default_factory=Counter)
    steps: list[StepRow] = dataclasses.field(default_factory=list)

    def total(self, field: str) -> int:
        return sum(getattr(row, field) for row in self.steps)


def _row(rows: dict[str, StepRow], step: str | None, kind: str = "mail") -> StepRow:
    name = step or "-"
    if name not in rows:
        rows[name] = StepRow(name, kind if step else "before any mail")
    return rows[name]


def nurture(
    session: Session, *, key: str | None = None, since: dt.datetime | None = None
) -> list[SequenceReport]:
    """One report per sequence (or only ``key``), for runs entered since ``since``."""
    reports: list[SequenceReport] = []
    keys = sorted({row.key for row in sequences.versions(session, key)})
    for sequence_key in keys:
        stored = sequences.row(session, sequence_key)
        definition = sequences.parsed(stored)
        report = SequenceReport(
            sequence_key, definition.name, stored.version if stored.active else None
        )
        rows: dict[str, StepRow] = {}
        for step in definition.steps:
            rows[step.name] = StepRow(step.name, step.kind)
        runs = sa.select(Enrollment).where(Enrollment.sequence_key == sequence_key)
        sends = sa.select(Send).where(Send.sequence_key == sequence_key)
        if since is not None:
            runs = runs.where(Enrollment.entered_at >= since)
            sends = sends.where(Send.queued_at >= since)
        runs_sub = runs.subquery()
        for status, reason, last_mail, mql_after, mql_at, count in session.execute(
            sa.select(
                runs_sub.c.status,
                runs_sub.c.exit_reason,
                runs_sub.c.last_mail,
                runs_sub.c.mql_after,
                runs_sub.c.mql_at.is_not(None),
                sa.func.count(),
            ).group_by(
                runs_sub.c.status,
                runs_sub.c.exit_reason,
                runs_sub.c.last_mail,
                runs_sub.c.mql_after,
                runs_sub.c.mql_at.is_not(None),
            )
        ):
            report.entered += count
            if status == EnrollmentStatus.ACTIVE:
                report.running += count
            elif status == EnrollmentStatus.COMPLETED:
                report.completed += count
            else:
                report.exited[reason or "-"] += count
            if reason in UNSUBSCRIBED:
                _row(rows, last_mail).unsubscribed += count
            if reason and reason.startswith(HANDED_OFF):
                _row(rows, last_mail).handed_off += count
            if mql_at:
                _row(rows, mql_after).mql += count
        sends_sub = sends.subquery()
        clicked = sa.select(Click.send_id).where(Click.send_id == sends_sub.c.id).exists()
        for step, sent, bounced, with_click in session.execute(
            sa.select(
                sends_sub.c.step,
                sa.func.count(),
                sa.func.count(sends_sub.c.bounced_at),
                sa.func.sum(sa.case((clicked, 1), else_=0)),
            ).group_by(sends_sub.c.step)
        ):
            row = _row(rows, step)
            row.sent, row.bounced, row.clicked = sent, bounced, int(with_click or 0)
        report.steps = list(rows.values())
        reports.append(report)
    return reports


def as_lines(reports: list[SequenceReport]) -> list[str]:
    if not reports:
        return ["No sequences loaded."]
    lines: list[str] = []
    columns = ("sent", "clicked", "unsubscribed", "bounced", "mql", "handed_off")
    header = f"  {'step':24} {'kind':7}" + "".join(f" {c:>12}" for c in columns)
    for report in reports:
        version = f"v{report.active_version}" if report.active_version else "disabled"
        exits = ", ".join(f"{k}={v}" for k, v in sorted(report.exited.items())) or "none"
        lines.append(f"{report.key} ({report.name}, {version})")
        lines.append(
            f"  entered={report.entered} running={report.running} "
            f"completed={report.completed} exited={sum(report.exited.values())} ({exits})"
        )
        lines.append(header)
        for row in report.steps:
            values = "".join(f" {getattr(row, c):>12}" for c in columns)
            lines.append(f"  {row.step[:24]:24} {row.kind[:7]:7}{values}")
        totals = "".join(f" {report.total(c):>12}" for c in columns)
        lines.append(f"  {'total':24} {'':7}{totals}")
    return lines


# --- one lead ---------------------------------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def lead_overview(session: Session, lead: Lead) -> dict[str, Any]:
    """Runs, mails, clicks and a bounce suppression of one lead (pseudonymous facts)."""
    suppression = session.get(MailSuppression, lead.email_index)
    return {
        "sequences": [
            {
                "sequence": run.sequence_key,
                "version": run.version,
                "status": run.status,
                "entered_at": _iso(run.entered_at),
                "finished_at": _iso(run.finished_at),
                "exit_reason": run.exit_reason,
                "next_step_at": _iso(run.due_at),
                "held": run.held,
            }
            for run in session.scalars(
                sa.select(Enrollment).where(Enrollment.lead_id == lead.id).order_by(Enrollment.id)
            )
        ],
        "mails": [
            {
                "sequence": send.sequence_key,
                "step": send.step,
                "queued_at": _iso(send.queued_at),
                "links_tracked": send.tracked,
                "bounced_at": _iso(send.bounced_at),
                "complained_at": _iso(send.complained_at),
            }
            for send in session.scalars(
                sa.select(Send).where(Send.lead_id == lead.id).order_by(Send.id)
            )
        ],
        "clicks": [
            {"sequence": key, "step": step, "link": link, "clicked_at": _iso(at)}
            for key, step, link, at in session.execute(
                sa.select(Send.sequence_key, Send.step, Click.link, Click.clicked_at)
                .join(Send, Send.id == Click.send_id)
                .where(Click.lead_id == lead.id)
                .order_by(Click.clicked_at)
            )
        ],
        "bounce_suppression": (
            {
                "reason": suppression.reason,
                "status": suppression.status,
                "since": _iso(suppression.created_at),
            }
            if suppression is not None
            else None
        ),
    }


def access_section(
    session: Session, *, lead_id: uuid.UUID, **_: Any
) -> tuple[str, dict[str, Any]] | None:
    lead = session.get(Lead, lead_id)
    if lead is None:
        return None
    return "nurture", lead_overview(session, lead)
