"""Capture: forms, public submission, validation, bot defence, source attribution."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from capture import i18n as strings
    from capture import service, views
    from leadvault import i18n, signals

    i18n.register(strings.CATALOGUE)
    signals.collect_access_data.connect(service.access_section)
    app.register_blueprint(views.bp)
