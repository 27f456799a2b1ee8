"""Widgets: the embeddable loader, hosted download and profiling pages, gated assets."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from leadvault import i18n
    from widgets import i18n as strings
    from widgets import service, views

    i18n.register(strings.CATALOGUE)
    service.connect_signals()
    app.register_blueprint(views.bp)
