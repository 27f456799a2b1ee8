"""The staff side: accounts, roles, sign-in, personal API tokens, the JSON admin API
and the console (``admin/console/``).

The top layer (docs/ARCHITECTURE.md): it may use every package below it and
none imports it (the app factory and the command line register it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, redirect, request, url_for


def init_app(app: Flask) -> None:
    from admin import auth, views
    from admin.models import User
    from leadvault import i18n, keys

    i18n.register_catalogue(Path(__file__).parent / "translations")
    keys.register_sealed_table(User)
    app.config.setdefault("ADMIN_HOME_ENDPOINT", "admin_auth.account")
    auth.init_app(app)
    app.register_blueprint(views.bp)
    from admin.api import exports as api_exports  # the export engineer's (issue 14)

    app.register_blueprint(api_exports.bp)
    # The staff console's pages (issue 12); it sets ADMIN_HOME_ENDPOINT to its home.
    from admin import console

    console.init_app(app)
    app.register_error_handler(auth.NotSignedIn, _not_signed_in)
    app.register_error_handler(auth.Forbidden, _forbidden)

    @app.context_processor
    def _staff() -> dict[str, Any]:
        from flask import g

        return {"staff_user": g.get("staff_user")}


def _is_api() -> bool:
    return request.path.startswith("/api/v1/")


def _not_signed_in(_exc: Exception) -> Any:
    if _is_api():
        from admin.api import problems

        return problems.problem(401)
    return redirect(url_for("admin_auth.sign_in_form"))


def _forbidden(_exc: Exception) -> Any:
    if _is_api():
        from admin.api import problems

        return problems.problem(403)
    from leadvault.i18n import N_
    from leadvault.web import error_response

    return error_response(403, N_("Your role does not allow this."))
