"""Scoring: behaviour events, fit and engagement rules, decay, stages, routing, handoff."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

SLA_INTERVAL_SECONDS = 300.0
ENRICH_INTERVAL_SECONDS = 60.0


def init_app(app: Flask) -> None:
    from capture import signals as capture_signals
    from leadvault import i18n, keys, signals
    from leadvault.app import Job, runtime
    from scoring import access_data, events, handoff, jobs, tracking, views
    from scoring.models import Salesperson

    i18n.register_catalogue(Path(__file__).parent / "translations")
    keys.register_sealed_table(Salesperson)
    capture_signals.form_submitted.connect(events.on_form_submitted)
    signals.purpose_confirmed.connect(events.on_purpose_confirmed)
    signals.purpose_withdrawn.connect(events.on_purpose_withdrawn)
    signals.lead_event.connect(events.on_lead_event)
    signals.confirmation_links.connect(tracking.tracking_return_link)
    signals.collect_access_data.connect(access_data.events_section)
    signals.collect_access_data.connect(access_data.scores_section)
    signals.collect_access_data.connect(access_data.stages_section)
    app.register_blueprint(views.bp)
    runtime(app).jobs.append(Job("scoring-sla", SLA_INTERVAL_SECONDS, handoff.sla_job))
    runtime(app).jobs.append(Job("scoring-enrich", ENRICH_INTERVAL_SECONDS, jobs.enrich_pending))
