"""Wiring of the export package into the app: signals, the webhook deliverer, jobs.

(Lives apart from ``export/__init__.py``, which the admin API's lead selection
owns; ``leadvault.app`` calls :func:`init_app`.)
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask

WEBHOOK_LOG_INTERVAL_SECONDS = 3600.0


def init_app(app: Flask) -> None:
    from export import delivery, events, repermissions, views, webhooks
    from export.models import WebhookEndpoint
    from leadvault import i18n, keys
    from leadvault.app import Job, runtime
    from leadvault.models import OutboxKind

    i18n.register_catalogue(Path(__file__).parent / "translations")
    keys.register_sealed_table(WebhookEndpoint)
    events.connect()
    rt = runtime(app)
    rt.deliverers[OutboxKind.WEBHOOK] = delivery.WebhookDeliverer
    rt.jobs.append(Job("webhook-log", WEBHOOK_LOG_INTERVAL_SECONDS, webhooks.purge_log))
    rt.jobs.append(
        Job(
            "import-repermission",
            repermissions.REPERMISSION_JOB_SECONDS,
            repermissions.send_repermissions,
        )
    )
    app.register_blueprint(views.bp)
