"""Sign-in, the TOTP step, setting and changing the password, signing out.

Minimal pages: the console (``admin/console/``) styles and extends them. After
signing in, staff land on ``app.config["ADMIN_HOME_ENDPOINT"]`` (the console
sets its dashboard; by default the account page).
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from admin import accounts, auth, permissions, two_factor
from admin.models import SessionStage, User
from leadvault import audit, db, i18n
from leadvault.crypto import TokenExpired, TokenInvalid
from leadvault.i18n import N_
from leadvault.rate_limits import within_limits
from leadvault.web import error_response, invalid_link_page, message_page

bp = Blueprint(
    "admin_auth",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
)

WRONG = N_("The e-mail address or the password is not right.")
THROTTLED = N_("Too many attempts. Please wait a quarter of an hour and try again.")


@bp.before_request
def _language() -> None:
    from admin.console.views import use_chosen_language

    use_chosen_language()


@bp.after_request
def _console_policy(response: Response) -> Response:
    """The console's strict CSP (its script and stylesheet are Leadvault's own)."""
    from admin.console.views import CSP

    response.headers["Content-Security-Policy"] = CSP
    return response


@bp.context_processor
def _console_look() -> dict[str, Any]:
    """These pages wear the console's look: its header, navigation and language switch."""
    from admin.console.views import page_context

    return page_context()


def _page(template: str, status: int = 200, **context: Any) -> Response:
    response = make_response(render_template(template, **context), status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _home() -> Response:
    return redirect(url_for(current_app.config.get("ADMIN_HOME_ENDPOINT", "admin_auth.account")))


def _field(name: str, limit: int = 1024) -> str:
    value = request.form.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


# --- sign in ------------------------------------------------------------------------


@bp.get("/sign-in")
def sign_in_form() -> Response:
    if auth.current_user() is not None:
        return _home()
    return _sign_in_page()


def _sign_in_page(status: int = 200, error: str | None = None, email: str = "") -> Response:
    return _page(
        "admin/sign_in.html",
        status,
        error=error,
        email=email,
        first_run=not accounts.has_owner(db.session()),
    )


@bp.post("/sign-in")
def sign_in() -> Response:
    session = db.session()
    email = _field("email", 320).strip()
    password = _field("password")
    settings = auth._settings()
    if not email or not password:
        return _sign_in_page(422, N_("Please enter your e-mail address and your password."), email)
    # Per IP every attempt counts; per account (known or not, keyed alike) the failures.
    if not within_limits("admin-login", settings.admin_login_limit_ip) or auth.account_throttled(
        email
    ):
        return _sign_in_page(429, THROTTLED, email)
    user = accounts.verify_password(session, email, password)
    if user is None:
        auth.count_failure(email)
        known = accounts.find(session, email)
        auth.record_audit(
            session,
            audit.Action.LOGIN_FAILED,
            audit.ObjectType.USER,
            known.id if known is not None else None,
            detail={"step": "password"},
            actor=audit.user_actor(known.id) if known is not None else "unknown",
        )
        auth.keep_audit_of_refusal()
        return _sign_in_page(401, WRONG, email)
    if user.totp_secret is not None:
        auth.start_session(session, user, SessionStage.TOTP)
        return redirect(url_for("admin_auth.totp_form"))
    if two_factor.totp_required(session):
        auth.start_session(session, user, SessionStage.ENROL)
        return redirect(url_for("admin_auth.totp_setup_form"))
    _signed_in(user, totp=False)
    return _home()


def _signed_in(user: User, *, totp: bool) -> None:
    session = db.session()
    auth.start_session(session, user, SessionStage.FULL)
    auth.record_audit(
        session,
        audit.Action.LOGIN,
        audit.ObjectType.USER,
        user.id,
        detail={"totp": totp},
        actor=audit.user_actor(user.id),
    )


# --- the TOTP step ----------------------------------------------------------------------


@bp.get("/totp")
def totp_form() -> Response:
    if auth.pending_session() is None:
        return redirect(url_for("admin_auth.sign_in_form"))
    return _page("admin/totp.html")


@bp.post("/totp")
def totp() -> Response:
    session = db.session()
    pending = auth.pending_session()
    if pending is None or pending.stage != SessionStage.TOTP:
        return redirect(url_for("admin_auth.sign_in_form"))
    user = pending.user
    email = accounts.email_of(session, user)
    if auth.account_throttled(email):
        return _page("admin/totp.html", 429, error=THROTTLED)
    if not two_factor.check_totp(session, user, _field("code", 20)):
        auth.count_failure(email)
        auth.record_audit(
            session,
            audit.Action.LOGIN_FAILED,
            audit.ObjectType.USER,
            user.id,
            detail={"step": "totp"},
            actor=audit.user_actor(user.id),
        )
        auth.keep_audit_of_refusal()
        return _page("admin/totp.html", 401, error=N_("This code is not right. Please try again."))
    _signed_in(user, totp=True)
    return _home()


def _enrolling_user() -> User | None:
    pending = auth.pending_session()
    if pending is not None and pending.stage == SessionStage.ENROL:
        return pending.user
    return auth.current_user() if not auth.authenticated_by_token() else None


@bp.get("/totp/setup")
def totp_setup_form() -> Response:
    user = _enrolling_user()
    if user is None:
        return redirect(url_for("admin_auth.sign_in_form"))
    return _setup_page(user, two_factor.new_totp_secret())


def _setup_page(user: User, secret: str, status: int = 200, error: str | None = None) -> Response:
    import segno

    session = db.session()
    uri = two_factor.totp_uri(session, user, secret)
    # The QR code as one SVG path of its dark modules (drawn by the template: no markup
    # is made here, so nothing needs to be marked safe).
    matrix = segno.make(uri, error="m").matrix
    qr = {
        "size": len(matrix) + 8,
        "path": "".join(
            f"M{x + 4} {y + 4}h1v1h-1z"
            for y, row in enumerate(matrix)
            for x, dark in enumerate(row)
            if dark
        ),
    }
    signed = auth._vault().sign("staff-totp-setup", {"u": user.id, "s": secret})
    return _page(
        "admin/totp_setup.html",
        status,
        qr=qr,
        secret=secret,
        signed=signed,
        error=error,
        required=two_factor.totp_required(session),
        has_totp=user.totp_secret is not None,
    )


@bp.post("/totp/setup")
def totp_setup() -> Response:
    session = db.session()
    user = _enrolling_user()
    if user is None:
        return redirect(url_for("admin_auth.sign_in_form"))
    try:
        payload = auth._vault().unsign("staff-totp-setup", _field("secret"), max_age_seconds=900)
    except (TokenInvalid, TokenExpired):
        return _setup_page(
            user,
            two_factor.new_totp_secret(),
            400,
            N_("The page expired. Please scan the new code and try again."),
        )
    if not isinstance(payload, dict) or payload.get("u") != user.id:
        return error_response(400)
    secret = str(payload.get("s", ""))
    if not two_factor.enable_totp(
        session,
        user,
        secret,
        _field("code", 20),
        actor=audit.user_actor(user.id),
        ip=auth.client_ip(),
    ):
        return _setup_page(user, secret, 422, N_("This code is not right. Please try again."))
    # A new session: the others of this account end (they signed in without TOTP).
    accounts.end_sessions(session, user)
    _signed_in(user, totp=True)
    return _home()


# --- passwords --------------------------------------------------------------------------


@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password(token: str) -> Response:
    session = db.session()
    try:
        user = accounts.user_of_setup_token(session, token)
    except TokenExpired:
        return message_page(
            410,
            title=N_("This link has expired"),
            text=N_("Please ask an owner of this Leadvault for a new link."),
        )
    except (TokenInvalid, accounts.AccountError):
        return invalid_link_page()
    if request.method != "POST":
        return _page("admin/set_password.html", token=token)
    password = _field("password", 2048)
    if password != _field("confirm", 2048):
        return _page(
            "admin/set_password.html",
            422,
            token=token,
            error=N_("The two passwords are not the same."),
        )
    problem = accounts.check_new_password(password)
    if problem:
        return _page("admin/set_password.html", 422, token=token, error=problem)
    accounts.set_password(
        session, user, password, actor=audit.user_actor(user.id), ip=auth.client_ip()
    )
    auth.end_current_session(session)
    return message_page(
        200,
        title=N_("Your password is set"),
        text=N_("You can sign in now."),
        extra_links=[(i18n.gettext("Sign in"), url_for("admin_auth.sign_in_form"))],
    )


@bp.get("/password")
@auth.require_signed_in
def password_form() -> Response:
    return _page("admin/password.html")


@bp.post("/password")
@auth.require_signed_in
def change_password() -> Response:
    session = db.session()
    user = auth.current_user()
    assert user is not None
    if auth.authenticated_by_token():
        return error_response(403)
    email = accounts.email_of(session, user)
    if auth.account_throttled(email):
        return _page("admin/password.html", 429, error=THROTTLED)
    if accounts.verify_password(session, email, _field("current")) is None:
        auth.count_failure(email)
        return _page("admin/password.html", 422, error=N_("Your current password is not right."))
    password = _field("password", 2048)
    if password != _field("confirm", 2048):
        return _page("admin/password.html", 422, error=N_("The two passwords are not the same."))
    problem = accounts.check_new_password(password)
    if problem:
        return _page("admin/password.html", 422, error=problem)
    # Every sign-in of the account ends; this browser gets a new one.
    accounts.set_password(
        session, user, password, actor=audit.user_actor(user.id), ip=auth.client_ip()
    )
    auth.start_session(session, user, SessionStage.FULL)
    return _page("admin/account.html", **_account_context(user, changed=True))


# --- the account page and signing out -------------------------------------------------


def _account_context(user: User, **extra: Any) -> dict[str, Any]:
    session = db.session()
    return {
        "email": accounts.email_of(session, user),
        "role": user.role,
        "role_label": permissions.ROLE_LABELS.get(user.role, user.role),  # type: ignore[call-overload]
        "has_totp": user.totp_secret is not None,
        **extra,
    }


@bp.get("/account")
@auth.require_signed_in
def account() -> Response:
    user = auth.current_user()
    assert user is not None
    return _page("admin/account.html", **_account_context(user))


@bp.post("/sign-out")
def sign_out() -> Response:
    session = db.session()
    user = auth.current_user()
    if user is not None and not auth.authenticated_by_token():
        auth.record_audit(session, audit.Action.LOGOUT, audit.ObjectType.USER, user.id)
    auth.end_current_session(session)
    return redirect(url_for("admin_auth.sign_in_form"))
