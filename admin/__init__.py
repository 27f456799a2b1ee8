"""The staff side: accounts, roles, sign-in, personal API tokens, the JSON admin API
and the console (``admin/console/``).

The top layer (docs/ARCHITECTURE.md): it may use every package below it and
none imports it (the app factory and the command line register it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, current_app, redirect, request, url_for


def init_app(app: Flask) -> None:
    from werkzeug.exceptions import HTTPException

    from admin import auth, rollup, views
    from admin.api import forms as _api_forms  # noqa: F401  (importing it adds the form operations)
    from admin.api import leads as _api_leads  # noqa: F401  (importing it adds the lead operations)
    from admin.api import reports, sales, scoring  # noqa: F401 - they add operations to api_views.bp
    from admin.api import views as api_views
    from admin.models import User
    from leadvault import i18n, keys

    i18n.register_catalogue(Path(__file__).parent / "translations")
    keys.register_sealed_table(User)
    app.config.setdefault("ADMIN_HOME_ENDPOINT", "admin_auth.account")
    auth.init_app(app)
    rollup.init_app(app)  # the dashboard's aggregates, kept in every change's transaction
    app.register_blueprint(views.bp)
    # Sibling modules add their operations to the API's blueprint before it is registered.
    from admin.api import assets as _api_assets  # noqa: F401
    from admin.api import consent_texts as _api_consent_texts  # noqa: F401

    app.register_blueprint(api_views.bp)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    from admin.api import exports as api_exports  # the export engineer's (issue 14)
    from admin.api import imports as _api_imports  # noqa: F401  (on api_exports.bp)
    from admin.api import webhooks as _api_webhooks  # noqa: F401  (on api_exports.bp)

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
    """The admin API's requests (and unrouted ones under /api/v1/) answer problem+json;
    the consent and event APIs of other packages keep their own shape."""
    if not request.path.startswith("/api/v1/"):
        return False
    if request.endpoint is None:
        return True
    view = current_app.view_functions.get(request.endpoint)
    return bool(view and view.__module__.startswith("admin."))


def _http_error(exc: Any) -> Any:
    from leadvault import web

    if not _is_api():
        return web._handle_http(exc)
    from admin.api import problems

    response = problems.problem(exc.code or 500)
    valid = getattr(exc, "valid_methods", None)
    if valid:
        response.headers["Allow"] = ", ".join(valid)
    return response


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


def _unexpected(exc: Exception) -> Any:
    from leadvault import web

    body, status = web._handle_unexpected(exc)  # logs the type and the route, no message
    if not _is_api():
        return body, status
    from admin.api import problems

    return problems.problem(status)
