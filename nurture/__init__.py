"""Nurture: mail sequences with frequency caps, quiet hours, consented click tracking, bounces.

Sits above scoring and consent; the packages below tell it what happened only
through signals (purpose confirmed or withdrawn, form submitted, events,
stage and handoff changes).
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask

TICK_INTERVAL_SECONDS = 30.0
BOUNCE_POLL_SECONDS = 300.0


def init_app(app: Flask) -> None:
    from capture import signals as capture_signals
    from leadvault import i18n, signals
    from leadvault.app import Job, runtime
    from nurture import bounces, report, service, tick, views
    from scoring import signals as scoring_signals

    i18n.register_catalogue(Path(__file__).parent / "translations")
    signals.purpose_confirmed.connect(service.on_purpose_confirmed)
    signals.purpose_withdrawn.connect(service.on_purpose_withdrawn)
    signals.collect_access_data.connect(report.access_section)
    capture_signals.form_submitted.connect(service.on_form_submitted)
    scoring_signals.stage_changed.connect(service.on_stage_changed)
    scoring_signals.handoff_changed.connect(service.on_handoff_changed)
    scoring_signals.events_recorded.connect(service.on_events_recorded)
    app.register_blueprint(views.bp)
    rt = runtime(app)
    rt.jobs.append(Job("nurture-tick", TICK_INTERVAL_SECONDS, tick.run))
    if rt.settings.bounce_imap_url is not None:
        rt.jobs.append(Job("nurture-bounces", BOUNCE_POLL_SECONDS, bounces.poll_job))
