"""Capture: forms, public submission, validation, bot defence, source attribution."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from capture import i18n as strings
    from capture import views
    from leadvault import i18n

    i18n.register(strings.CATALOGUE)
    app.register_blueprint(views.bp)
