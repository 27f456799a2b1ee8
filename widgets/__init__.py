"""Widgets: the embeddable loader, hosted download and profiling pages, gated assets."""

from __future__ import annotations

from pathlib import Path

from flask import Flask


def init_app(app: Flask) -> None:
    from leadvault import i18n
    from widgets import service, views

    i18n.register_catalogue(Path(__file__).parent / "translations")
    service.connect_signals()
    app.register_blueprint(views.bp)
