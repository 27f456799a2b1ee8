"""Capture: forms, public submission, validation, bot defence, source attribution."""

from __future__ import annotations

from pathlib import Path

from flask import Flask


def init_app(app: Flask) -> None:
    from capture import consent_texts, queueing, service, views
    from leadvault import i18n, signals
    from leadvault.app import runtime

    i18n.register_catalogue(Path(__file__).parent / "translations")
    runtime(app).inbox_handlers[queueing.SUBMISSION] = service.store_submission
    signals.collect_access_data.connect(service.access_section)
    signals.describe_sources.connect(service.describe_sources)
    signals.consent_text_published.connect(consent_texts.on_text_published)
    app.register_blueprint(views.bp)
