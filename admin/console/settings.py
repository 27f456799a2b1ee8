"""The console's settings (issue 12.8, the owner's): staff accounts and roles, personal
API tokens, the TOTP policy, the branding in effect and ``leadvault check``.

Thin pages over the services the command line uses (``admin.accounts``,
``admin.tokens``, ``leadvault.checks``); every change is audited by them. A
set-password link or a token secret is shown once, in the answer to its POST.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, redirect, request, url_for

from admin import accounts, auth, permissions, tokens, two_factor
from admin.console.views import bp, page
from admin.models import PersonalToken, Role, User
from admin.permissions import Permission
from leadvault import db
from leadvault.i18n import N_
from leadvault.model_base import ROW_ID_MAX

# The services' refusals (English, for the command line) as the console says them.
ACCOUNT_MESSAGES = {
    "this is not a valid e-mail address": N_("This is not a valid e-mail address."),
    "an account with this address exists already": N_(
        "An account with this address exists already."
    ),
    "this is the last owner; make another account owner first": N_(
        "This is the last owner; make another account owner first."
    ),
    "a sales account needs the salesperson it works as (--salesperson)": N_(
        "A sales account needs the salesperson it works as."
    ),
    "there is no salesperson with this id": N_("There is no such salesperson."),
}
# The field of "Add an account" each of those refusals is about.
ACCOUNT_FIELDS = {
    "this is not a valid e-mail address": "email",
    "an account with this address exists already": "email",
    "a sales account needs the salesperson it works as (--salesperson)": "salesperson",
    "there is no salesperson with this id": "salesperson",
}
TOKEN_DAYS = (7, 30, 90, 365)


def _account_message(exc: Exception) -> str:
    return ACCOUNT_MESSAGES.get(str(exc), N_("The request could not be understood."))


def _salespeople() -> list[tuple[int, str]]:
    from scoring import routing
    from scoring.models import Salesperson

    session = db.session()
    people = session.scalars(sa.select(Salesperson).order_by(Salesperson.id)).all()
    return [(person.id, routing.contact(session, person).name) for person in people]


# --- general: TOTP policy, branding, the check ---------------------------------------------


@bp.get("/settings")
@auth.require(Permission.SETTINGS_MANAGE)
def settings() -> Response:
    from leadvault import checks
    from leadvault.app import runtime

    rt = runtime(current_app)
    ran = request.args.get("check") == "1"
    return page(
        "console/settings.html",
        section="settings",
        totp_required=two_factor.totp_required(db.session()),
        brand=rt.settings,
        brand_lines=checks.branding_lines(rt.settings),
        check_lines=(
            checks.run(current_app, rt.settings, connection=db.session().connection())
            if ran
            else None
        ),
    )


@bp.post("/settings/totp")
@auth.require(Permission.USERS_MANAGE)
def require_totp() -> Response:
    two_factor.require_totp(
        db.session(),
        request.form.get("required") == "1",
        actor=auth.current_actor(),
        ip=auth.client_ip(),
    )
    return redirect(url_for("console.settings", saved="totp"))


# --- staff accounts ----------------------------------------------------------------------


def _users_page(status: int = 200, **extra: Any) -> Response:
    return page(
        "console/users.html",
        status,
        section="settings",
        accounts=accounts.listing(db.session()),
        roles=[role.value for role in Role],
        role_labels=permissions.ROLE_LABELS,
        salespeople=_salespeople(),
        me=auth.current_user(),
        **extra,
    )


def _user(user_id: int) -> User:
    found = db.session().get(User, user_id) if 0 < user_id <= ROW_ID_MAX else None
    if found is None:
        from flask import abort

        abort(404)
    return found


def _salesperson_choice() -> int | None:
    raw = (request.form.get("salesperson") or "").strip()
    return int(raw) if raw.isdecimal() and len(raw) < 10 else None


@bp.get("/settings/users")
@auth.require(Permission.USERS_MANAGE)
def users() -> Response:
    return _users_page()


@bp.post("/settings/users")
@auth.require(Permission.USERS_MANAGE)
def add_user() -> Response:
    session = db.session()
    email = (request.form.get("email") or "").strip()[:320]
    role = (request.form.get("role") or "")[:16]
    if role not in {r.value for r in Role}:
        return _users_page(422, error=N_("Please choose a role."), field="role", typed=request.form)
    try:
        user = accounts.create(
            session,
            email,
            role,
            actor=auth.current_actor(),
            salesperson_id=_salesperson_choice() if role == Role.SALES else None,
            ip=auth.client_ip(),
        )
    except accounts.AccountError as exc:
        field = ACCOUNT_FIELDS.get(str(exc), "email")
        return _users_page(422, error=_account_message(exc), field=field, typed=request.form)
    link = accounts.setup_link(session, user)
    return _users_page(201, made={"email": email, "link": link})


@bp.post("/settings/users/<int:user_id>/role")
@auth.require(Permission.USERS_MANAGE)
def change_role(user_id: int) -> Response:
    user = _user(user_id)
    role = (request.form.get("role") or "")[:16]
    if role not in {r.value for r in Role}:
        return _users_page(422, error=N_("Please choose a role."))
    try:
        accounts.change_role(
            db.session(),
            user,
            role,
            actor=auth.current_actor(),
            salesperson_id=_salesperson_choice() if role == Role.SALES else None,
            ip=auth.client_ip(),
        )
    except accounts.AccountError as exc:
        return _users_page(422, error=_account_message(exc))
    return redirect(url_for("console.users", saved="role"))


@bp.post("/settings/users/<int:user_id>/disable")
@auth.require(Permission.USERS_MANAGE)
def disable_user(user_id: int) -> Response:
    try:
        accounts.disable(
            db.session(), _user(user_id), actor=auth.current_actor(), ip=auth.client_ip()
        )
    except accounts.AccountError as exc:
        return _users_page(422, error=_account_message(exc))
    return redirect(url_for("console.users", saved="disabled"))


@bp.post("/settings/users/<int:user_id>/reset")
@auth.require(Permission.USERS_MANAGE)
def reset_password(user_id: int) -> Response:
    session = db.session()
    user = _user(user_id)
    if not user.active:
        return _users_page(422, error=N_("This account is disabled."))
    link = accounts.reset_password(session, user, actor=auth.current_actor(), ip=auth.client_ip())
    return _users_page(200, made={"email": accounts.email_of(session, user), "link": link})


# --- personal API tokens ---------------------------------------------------------------------


def _tokens_page(status: int = 200, **extra: Any) -> Response:
    session = db.session()
    rows = session.scalars(
        sa.select(PersonalToken).order_by(PersonalToken.created_at.desc()).limit(500)
    ).all()
    owners = {account.id: account.email for account in accounts.listing(session)}
    user = auth.current_user()
    assert user is not None
    return page(
        "console/tokens.html",
        status,
        section="settings",
        tokens=rows,
        owners=owners,
        scopes=sorted(p.value for p in permissions.of_role(user.role)),
        days=TOKEN_DAYS,
        **extra,
    )


@bp.get("/settings/tokens")
@auth.require(Permission.SETTINGS_MANAGE)
def api_tokens() -> Response:
    return _tokens_page()


@bp.post("/settings/tokens")
@auth.require(Permission.SETTINGS_MANAGE)
def create_token() -> Response:
    user = auth.current_user()
    assert user is not None
    raw_days = request.form.get("days") or ""
    days = int(raw_days) if raw_days.isdecimal() and len(raw_days) < 5 else 0
    try:
        token, secret = tokens.create(
            db.session(),
            user,
            name=(request.form.get("name") or "")[:100],
            scopes=[scope[:40] for scope in request.form.getlist("scope")[:40]],
            days=days,
            actor=auth.current_actor(),
            ip=auth.client_ip(),
        )
    except tokens.TokenError as exc:
        return _tokens_page(
            422,
            error=N_("Give the token a name, at least one scope and a lifetime."),
            field=_token_field(exc),
            typed=request.form,
        )
    return _tokens_page(201, made={"name": token.name, "secret": secret})


def _token_field(refusal: tokens.TokenError) -> str:
    """The field of the token form a refusal is about (the form's "scope" is the
    service's "scopes")."""
    return refusal.field if refusal.field in {"name", "days"} else "scope"


@bp.post("/settings/tokens/<int:token_id>/revoke")
@auth.require(Permission.SETTINGS_MANAGE)
def revoke_token(token_id: int) -> Response:
    session = db.session()
    token = session.get(PersonalToken, token_id) if 0 < token_id <= ROW_ID_MAX else None
    if token is None:
        from flask import abort

        abort(404)
    tokens.revoke(session, token, actor=auth.current_actor(), ip=auth.client_ip())
    return redirect(url_for("console.api_tokens", saved="revoked"))
