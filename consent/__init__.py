"""Consent: purposes, versioned texts, double opt-in, ledger, data-subject rights."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

PURGE_INTERVAL_SECONDS = 3600.0


def init_app(app: Flask) -> None:
    from consent import correction_views, retention, rights, service, views
    from leadvault import i18n
    from leadvault.app import Job, runtime

    i18n.register_catalogue(Path(__file__).parent / "translations")
    service.connect_signals()
    rights.connect_signals()
    app.register_blueprint(views.bp)
    app.register_blueprint(correction_views.bp)
    runtime(app).inbox_handlers[rights.MANAGE_REQUEST] = rights.handle_manage_request
    runtime(app).jobs.append(Job("purge", PURGE_INTERVAL_SECONDS, retention.purge))
