"""Staff accounts (issue 11.1): the users commands, set-password links, argon2id,
sign-in with rate limits and the same reply for unknown accounts, TOTP (optional
and mandatory), server-side sessions rotated at sign-in, idle and absolute
timeouts, sign-out everywhere on a password change."""

from __future__ import annotations

import datetime as dt
import re

import pyotp
import sqlalchemy as sa
from click.testing import CliRunner

from admin import accounts
from admin.models import StaffSession, User
from leadvault import audit, clock
from leadvault.cli import cli
from leadvault.models import AuditEntry
from tests import factories
from tests.conftest import DEPLOYED_HASHER, make_form, render_token, unique_email
from tests.factories import STAFF_PASSWORD, csrf_token, sign_in, staff_user, uow

NEW_PASSWORD = "another long passphrase 42"


def _invoke(app, *args):
    return CliRunner().invoke(cli, list(args), obj=app)


def _sessions(app, user_id):
    with uow(app) as s:
        return set(s.scalars(sa.select(StaffSession.id).where(StaffSession.user_id == user_id)))


def _audit(app, action):
    with uow(app) as s:
        return audit.entries(s, audit.Filters(action=action), limit=200)


def _signed_in(client) -> bool:
    response = client.get("/admin/account")
    return response.status_code == 200


# --- users add, set-password link --------------------------------------------------


def test_users_add_prints_a_one_time_link_and_the_password_is_argon2id(app, client, monkeypatch):
    # The application's own hasher (the other tests hash at argon2's cheapest cost).
    monkeypatch.setattr(accounts, "hasher", DEPLOYED_HASHER)
    email = factories.unique_email("owner")
    result = _invoke(app, "users", "add", email, "--role", "owner")
    assert result.exit_code == 0, result.output
    link = re.search(r"http\S+/admin/set-password/(\S+)", result.output)
    assert link, result.output
    path = "/admin/set-password/" + link.group(1)

    with uow(app) as s:
        user = accounts.find(s, email)
        assert user is not None and user.password_hash is None
        assert email.encode() not in user.payload  # sealed at rest
        assert accounts.email_of(s, user) == email

    page = client.get(path)
    assert page.status_code == 200
    assert "Choose your password" in page.get_data(as_text=True)
    token = csrf_token(client, path)
    short = client.post(path, data={"password": "short", "confirm": "short", "csrf_token": token})
    assert short.status_code == 422
    assert "at least 12 characters" in short.get_data(as_text=True)
    differ = client.post(
        path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "x", "csrf_token": token}
    )
    assert differ.status_code == 422
    done = client.post(
        path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "csrf_token": token}
    )
    assert done.status_code == 200
    assert "Your password is set" in done.get_data(as_text=True)

    with uow(app) as s:
        user = accounts.find(s, email)
        assert user.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert NEW_PASSWORD not in user.password_hash
    # The link works once.
    again = client.get(path)
    assert again.status_code == 400
    assert "This link is not valid" in again.get_data(as_text=True)
    assert sign_in(client, email, NEW_PASSWORD).status_code == 302
    assert [e.actor for e in _audit(app, "user.created")] == [audit.cli_actor()]


def test_set_password_link_expires(app, client):
    user_id, _email = staff_user(app, "viewer", password=None)
    with uow(app) as s:
        link = accounts.setup_link(s, s.get(User, user_id))
    path = link.split("localhost", 1)[-1].split(":5000", 1)[-1]
    path = path[path.index("/admin/") :]
    assert client.get(path).status_code == 200
    clock.freeze(clock.now() + dt.timedelta(hours=73))
    expired = client.get(path)
    assert expired.status_code == 410
    assert "This link has expired" in expired.get_data(as_text=True)


def test_users_add_refuses_bad_input(app):
    bad = _invoke(app, "users", "add", "not-an-address", "--role", "owner")
    assert bad.exit_code == 1 and "not a valid e-mail address" in bad.output
    role = _invoke(app, "users", "add", "x@example.org", "--role", "king")
    assert role.exit_code == 2
    sales = _invoke(app, "users", "add", "s@example.org", "--role", "sales")
    assert sales.exit_code == 1 and "--salesperson" in sales.output
    email = factories.unique_email()
    assert _invoke(app, "users", "add", email, "--role", "viewer").exit_code == 0
    twice = _invoke(app, "users", "add", email.upper(), "--role", "viewer")
    assert twice.exit_code == 1 and "exists already" in twice.output


def test_users_list_role_disable_reset(app, client):
    owner_id, owner = staff_user(app, "owner")
    _user_id, email = staff_user(app, "marketing")
    listed = _invoke(app, "users", "list")
    assert listed.exit_code == 0
    assert owner in listed.output and email in listed.output and "marketing" in listed.output

    assert _invoke(app, "users", "role", email, "privacy").exit_code == 0
    (entry,) = _audit(app, "user.role_changed")
    assert audit.detail_of(entry) == {"from": "marketing", "to": "privacy"}

    # The last owner can be neither demoted nor disabled.
    last = _invoke(app, "users", "role", owner, "viewer")
    assert last.exit_code == 1 and "last owner" in last.output
    assert _invoke(app, "users", "disable", owner).exit_code == 1

    assert sign_in(client, email).status_code == 302
    assert _invoke(app, "users", "disable", email).exit_code == 0
    assert not _signed_in(client)  # its session ended
    assert sign_in(app.test_client(), email).status_code == 401

    other = app.test_client()
    assert sign_in(other, owner).status_code == 302
    reset = _invoke(app, "users", "reset-password", owner)
    assert reset.exit_code == 0 and "/admin/set-password/" in reset.output
    assert not _signed_in(other)
    assert sign_in(app.test_client(), owner).status_code == 401  # the old password is gone
    assert _audit(app, "user.password_reset")[0].object_id == str(owner_id)


# --- sign-in -------------------------------------------------------------------------


def test_sign_in_rotates_the_session_id(app, client):
    user_id, email = staff_user(app, "owner")
    client.set_cookie("lv_staff", "planted-by-an-attacker")
    assert sign_in(client, email).status_code == 302
    first = client.get_cookie("lv_staff").value
    assert first != "planted-by-an-attacker"
    (first_id,) = _sessions(app, user_id)
    assert _signed_in(client)

    assert sign_in(client, email).status_code == 302  # signing in again: a new id
    second = client.get_cookie("lv_staff").value
    (second_id,) = _sessions(app, user_id)
    assert second_id != first_id and second != first
    # The session table holds only a hash of the token in the cookie.
    assert first_id not in first and second_id not in second
    assert [e.object_id for e in _audit(app, "auth.login")] == [str(user_id)] * 2


def test_wrong_password_and_unknown_account_get_the_same_reply(app):
    user_id, email = staff_user(app, "owner")

    def attempt(address: str, password: str):
        client = app.test_client()
        response = sign_in(client, address, password)
        body = response.get_data(as_text=True)
        body = re.sub(r'value="[^"]*"', 'value=""', body)  # CSRF token, typed address
        return response.status_code, body, client

    wrong = attempt(email, "not the password at all")
    unknown = attempt(factories.unique_email("nobody"), "not the password at all")
    assert wrong[0] == unknown[0] == 401
    assert wrong[1] == unknown[1]
    assert "The e-mail address or the password is not right." in wrong[1]
    assert not _signed_in(wrong[2])
    # Both failures are in the audit trail (kept although the answer is a 401).
    failed = _audit(app, "auth.login_failed")
    assert {(e.actor, e.object_id) for e in failed} == {
        (f"user:{user_id}", str(user_id)),
        ("unknown", None),
    }
    assert all(e.ip_prefix == "127.0.0.0" for e in failed)


def test_brute_force_is_rate_limited_per_account_and_per_ip(make_app, smtp_server):
    app = make_app(admin_login_limit_account="3/15minutes", admin_login_limit_ip="8/15minutes")
    _user_id, email = staff_user(app, "owner")
    client = app.test_client()
    for _ in range(3):
        assert sign_in(client, email, "guess guess guess").status_code == 401
    # The account is throttled now, even with the right password.
    blocked = sign_in(client, email)
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.get_data(as_text=True)
    # An unknown address is throttled alike (nothing tells the two apart).
    nobody = factories.unique_email("nobody")
    for _ in range(3):
        assert sign_in(client, nobody, "guess guess guess").status_code == 401
    assert sign_in(client, nobody, "guess guess guess").status_code == 429
    # Per IP: another client from the same address has used up the IP's 8 attempts.
    _other_id, other = staff_user(app, "viewer")
    assert sign_in(app.test_client(), other).status_code == 429
    # From another IP the other account signs in.
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    assert sign_in(elsewhere, other).status_code == 302


def test_idle_and_absolute_timeouts(app, client):
    _user_id, email = staff_user(app, "viewer")
    start = clock.now()
    clock.freeze(start)
    assert sign_in(client, email).status_code == 302
    # Active every 20 minutes: the idle timeout (30) never runs out …
    for step in range(1, 36):
        clock.freeze(start + dt.timedelta(minutes=20 * step))
        assert _signed_in(client), step
    # … but the absolute one (12 hours) does.
    clock.freeze(start + dt.timedelta(hours=12, minutes=1))
    assert not _signed_in(client)

    assert sign_in(client, email).status_code == 302
    clock.advance(dt.timedelta(minutes=29))
    assert _signed_in(client)
    clock.advance(dt.timedelta(minutes=31))
    response = client.get("/admin/account")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/sign-in")


def _staff_cookies(response) -> list[str]:
    return [h for h in response.headers.getlist("Set-Cookie") if h.startswith("lv_staff=")]


def test_the_cookie_is_renewed_or_cleared_only_where_the_request_looked_at_it(app, client):
    _user_id, email = staff_user(app, "viewer")
    assert sign_in(client, email).status_code == 302
    # A staff page renews it (the sliding idle timeout), with its flags, never cached.
    page = client.get("/admin/account")
    (renewed,) = _staff_cookies(page)
    assert {"HttpOnly", "SameSite=Lax", "Path=/"} <= {p.strip() for p in renewed.split(";")}
    assert page.headers["Cache-Control"] == "no-store" and "Cookie" in page.headers["Vary"]
    # A public form and its submission never look at it: left alone, even when stale.
    form_id = make_form(app)
    assert not _staff_cookies(client.get(f"/f/{form_id}"))
    stale = app.test_client()
    stale.set_cookie("lv_staff", "no-longer-valid")
    submitted = stale.post(
        f"/f/{form_id}",
        json={
            "email": unique_email(),
            "consent": ["newsletter"],
            "render_token": render_token(app, form_id),
        },
    )
    assert submitted.status_code == 200 and not _staff_cookies(submitted)
    # A staff page that finds it stale clears it; so does signing out.
    (cleared,) = _staff_cookies(stale.get("/admin/account"))
    assert cleared.startswith("lv_staff=;") and "Max-Age=0" in cleared
    token = csrf_token(client, "/admin/account")
    (signed_out,) = _staff_cookies(client.post("/admin/sign-out", data={"csrf_token": token}))
    assert signed_out.startswith("lv_staff=;")


def test_password_change_signs_out_everywhere_else(app):
    user_id, email = staff_user(app, "marketing")
    here, there = app.test_client(), app.test_client()
    assert sign_in(here, email).status_code == 302
    assert sign_in(there, email).status_code == 302
    before = client_cookie = here.get_cookie("lv_staff").value
    assert len(_sessions(app, user_id)) == 2

    token = csrf_token(here, "/admin/password")
    wrong = here.post(
        "/admin/password",
        data={
            "current": "wrong",
            "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
            "csrf_token": token,
        },
    )
    assert wrong.status_code == 422
    changed = here.post(
        "/admin/password",
        data={
            "current": STAFF_PASSWORD,
            "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
            "csrf_token": token,
        },
    )
    assert changed.status_code == 200
    assert "Every other sign-in of your account has ended" in changed.get_data(as_text=True)
    assert _signed_in(here) and here.get_cookie("lv_staff").value != before
    assert not _signed_in(there)
    assert len(_sessions(app, user_id)) == 1
    assert client_cookie
    assert sign_in(app.test_client(), email, NEW_PASSWORD).status_code == 302


def test_sign_out_ends_the_session(app, client):
    user_id, email = staff_user(app, "viewer")
    assert sign_in(client, email).status_code == 302
    cookie = client.get_cookie("lv_staff").value
    token = csrf_token(client, "/admin/account")
    out = client.post("/admin/sign-out", data={"csrf_token": token})
    assert out.status_code == 302
    assert not _sessions(app, user_id)
    # The old cookie, replayed, is worth nothing.
    replay = app.test_client()
    replay.set_cookie("lv_staff", cookie)
    assert not _signed_in(replay)
    assert _audit(app, "auth.logout")[0].actor == f"user:{user_id}"


def test_sign_in_without_csrf_token_is_refused(app, client):
    _user_id, email = staff_user(app, "viewer")
    response = client.post("/admin/sign-in", data={"email": email, "password": STAFF_PASSWORD})
    assert response.status_code == 400
    assert "The page expired" in response.get_data(as_text=True)


def test_first_run_hint_names_the_command(app, client):
    page = client.get("/admin/sign-in").get_data(as_text=True)
    assert "leadvault users add you@example.com --role owner" in page
    staff_user(app, "owner")
    assert "users add" not in client.get("/admin/sign-in").get_data(as_text=True)


# --- TOTP ----------------------------------------------------------------------------


def test_totp_sign_in(app, client):
    secret = pyotp.random_base32()
    user_id, email = staff_user(app, "privacy", totp_secret=secret)
    with uow(app) as s:
        stored = s.get(User, user_id).totp_secret
        assert secret.encode() not in stored  # sealed
    response = sign_in(client, email)
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/totp")
    assert not _signed_in(client)  # the password alone is not enough

    token = csrf_token(client, "/admin/totp")
    wrong = client.post("/admin/totp", data={"code": "000000", "csrf_token": token})
    assert wrong.status_code == 401
    code = pyotp.TOTP(secret).now()
    ok = client.post("/admin/totp", data={"code": code, "csrf_token": token})
    assert ok.status_code == 302
    assert _signed_in(client)
    (login,) = _audit(app, "auth.login")
    assert audit.detail_of(login) == {"totp": True}

    # The same code is not accepted twice (replay).
    other = app.test_client()
    assert sign_in(other, email).status_code == 302
    replay = other.post(
        "/admin/totp", data={"code": code, "csrf_token": csrf_token(other, "/admin/totp")}
    )
    assert replay.status_code == 401


def test_mandatory_totp_makes_accounts_set_it_up(app, client):
    _owner_id, _owner = staff_user(app, "owner")
    user_id, email = staff_user(app, "viewer")
    assert _invoke(app, "users", "require-totp", "on").exit_code == 0
    response = sign_in(client, email)
    assert response.headers["Location"].endswith("/admin/totp/setup")
    assert not _signed_in(client)
    page = client.get("/admin/totp/setup")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<svg" in html
    secret = re.search(r"<code>([A-Z2-7]{16,})</code>", html).group(1)
    token = csrf_token(client, "/admin/totp/setup")
    signed = re.search(r'name="secret" value="([^"]+)"', html).group(1)
    bad = client.post(
        "/admin/totp/setup", data={"code": "123456", "secret": signed, "csrf_token": token}
    )
    assert bad.status_code == 422
    done = client.post(
        "/admin/totp/setup",
        data={"code": pyotp.TOTP(secret).now(), "secret": signed, "csrf_token": token},
    )
    assert done.status_code == 302
    assert _signed_in(client)
    with uow(app) as s:
        assert s.get(User, user_id).totp_secret is not None
    assert _audit(app, "auth.totp_enabled")[0].object_id == str(user_id)


def test_no_personal_data_in_the_audit_trail(app, client):
    _user_id, email = staff_user(app, "owner")
    sign_in(client, email, "wrong wrong wrong")
    sign_in(client, email)
    with uow(app) as s:
        rows = s.scalars(sa.select(AuditEntry)).all()
        assert rows
        for row in rows:
            assert email not in f"{row.actor}{row.object_id}{row.detail}"
        assert audit.verify(s).ok
