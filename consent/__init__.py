"""Consent: purposes, versioned texts, double opt-in, ledger, data-subject rights."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from consent import i18n as strings
    from consent import service, views
    from leadvault import i18n

    i18n.register(strings.CATALOGUE)
    service.connect_signals()
    app.register_blueprint(views.bp)
