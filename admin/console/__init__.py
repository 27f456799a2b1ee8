"""The staff console: server-rendered pages over the same services as the admin API.

Pages live in ``views.py``; what they show is assembled in ``dashboard.py``
(reports drawn as charts), ``queries.py`` (the lead list) and
``lead_detail.py`` (one lead). Templates and the one stylesheet and script
are served by Leadvault itself under ``/console/static`` (strict CSP, no CDN).
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask


def init_app(app: Flask) -> None:
    # Pages in sibling modules add their routes to the console's blueprint first.
    from admin.console import (  # noqa: F401
        assets,
        consent_texts,
        exports,
        forms,
        privacy,
        sales,
        scoring,
        settings,
        views,
    )
    from leadvault import i18n

    # The admin package's catalogue (shared with admin/): idempotent.
    i18n.register_catalogue(Path(__file__).parent.parent / "translations")
    app.config["ADMIN_HOME_ENDPOINT"] = "console.home"
    app.register_blueprint(views.bp)
