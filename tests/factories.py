"""Small factories: rows made through the services, not through HTTP and SMTP.

For tests whose subject is not the sign-up flow itself (an API, scoring, the
handoff …). They call the same service functions the worker and the pages
call, inside one unit of work each (which, in a test, is a savepoint of the
test's transaction). Mails the services queue stay in the outbox until a test
runs ``deliver(app)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from leadvault.app import runtime
from leadvault.db import unit_of_work
from tests.conftest import make_form, unique_email

META_IP = "203.0.113.7"


def uow(app: Any) -> Any:
    """One unit of work in an app context (templates render mails)."""
    from contextlib import ExitStack

    stack = ExitStack()
    stack.enter_context(app.app_context())
    session = stack.enter_context(unit_of_work(runtime(app).session_factory))

    class _Ctx:
        def __enter__(self) -> Any:
            return session

        def __exit__(self, *exc: object) -> Any:
            return stack.__exit__(*exc)

    return _Ctx()


def form(app: Any, **kwargs: Any) -> str:
    """A form (newsletter by default; see ``make_form``); returns its public id."""
    return make_form(app, **kwargs)


def lead(
    app: Any,
    email: str | None = None,
    *,
    form_id: str | None = None,
    profile: Mapping[str, str] | None = None,
    purposes: Iterable[str] = ("newsletter",),
    confirmed: bool = True,
    language: str = "en",
    source: Mapping[str, str] | None = None,
) -> uuid.UUID:
    """A lead with sealed attributes who asked for ``purposes`` (and confirmed them)."""
    from capture import definitions, queueing
    from capture import service as capture_service
    from consent import optin
    from consent.ledger import RequestMeta
    from consent.models import OptInRequest

    purposes = list(purposes)
    if form_id is None:
        form_id = form(
            app,
            name="Factory",
            kind="contact",
            fields=[definitions.FieldSpec(n, False) for n in (profile or {})],
            purposes=[definitions.PurposeSpec(p, False) for p in purposes],
        )
    meta = RequestMeta(ip=META_IP, user_agent="factory")
    with uow(app) as s:
        found = capture_service.get_form(s, form_id)
        assert found is not None, form_id
        valid = queueing.ValidSubmission(
            email=email or unique_email(),
            profile=dict(profile or {}),
            message=None,
            purposes=purposes,
            source=dict(source or {}),
        )
        lead_id = capture_service.submit(s, found, valid, language=language, meta=meta).lead_id
    if confirmed:
        with uow(app) as s:
            request = s.scalars(
                sa.select(OptInRequest).where(
                    OptInRequest.lead_id == lead_id, OptInRequest.confirmed_at.is_(None)
                )
            ).first()
            assert request is not None
            optin.confirm(s, request, meta=meta)
    return lead_id


def api_token(app: Any, name: str | None = None, scopes: Iterable[str] = ("consent:read",)) -> str:
    from leadvault import api

    with uow(app) as s:
        return api.create_token(s, name or f"token-{uuid.uuid4().hex[:6]}", list(scopes))


def salesperson(app: Any, email: str, name: str, *, language: str = "en", **kwargs: Any) -> int:
    from scoring import routing

    with uow(app) as s:
        return routing.add_person(s, email=email, name=name, language=language, **kwargs).id


# --- staff (admin) ------------------------------------------------------------------

STAFF_PASSWORD = "correct horse battery staple"


def staff_user(
    app: Any,
    role: str = "owner",
    email: str | None = None,
    *,
    password: str | None = STAFF_PASSWORD,
    salesperson_id: int | None = None,
    totp_secret: str | None = None,
) -> tuple[int, str]:
    """A staff account of ``role`` with ``password`` set (None: invited only); returns
    (id, e-mail). A sales account without ``salesperson_id`` gets a salesperson."""
    from admin import accounts, two_factor

    email = email or unique_email("staff")
    if role == "sales" and salesperson_id is None:
        salesperson_id = salesperson(app, unique_email("sp"), "Sam Sales")
    with uow(app) as s:
        user = accounts.create(s, email, role, actor="system", salesperson_id=salesperson_id)
        if password is not None:
            accounts.set_password(s, user, password, actor="system")
        if totp_secret is not None:
            import pyotp

            assert two_factor.enable_totp(
                s, user, totp_secret, pyotp.TOTP(totp_secret).now(), actor="system"
            )
            user.totp_last_step = None  # the test may use the current code once more
        return user.id, email


def csrf_token(client: Any, path: str = "/admin/sign-in") -> str:
    """The CSRF token of a page's form (the client keeps the session cookie)."""
    import re

    page = client.get(path, follow_redirects=True).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def sign_in(client: Any, email: str, password: str = STAFF_PASSWORD) -> Any:
    """Sign in through the real sign-in form; returns the response."""
    return client.post(
        "/admin/sign-in",
        data={"email": email, "password": password, "csrf_token": csrf_token(client)},
    )


def signed_in_client(app: Any, role: str = "owner", **kwargs: Any) -> tuple[Any, int]:
    """A test client signed in as a new account of ``role``: (client, user id)."""
    user_id, email = staff_user(app, role, **kwargs)
    client = app.test_client()
    response = sign_in(client, email)
    assert response.status_code == 302, response.status_code
    return client, user_id


def personal_token(app: Any, role: str = "owner", scopes: Iterable[str] | None = None) -> str:
    """A personal API token of a new account of ``role`` (all the role's permissions
    unless ``scopes``)."""
    from admin import permissions, tokens
    from admin.models import User

    user_id, _email = staff_user(app, role)
    with uow(app) as s:
        user = s.get(User, user_id)
        wanted = (
            list(scopes) if scopes is not None else [p.value for p in permissions.of_role(role)]
        )
        _token, secret = tokens.create(s, user, name="test", scopes=wanted, days=30, actor="system")
        return secret


def tampered(signed: str) -> str:
    """``signed`` (a token, or a path ending in one) with one character of its signature
    changed. Never the last character: base64 leaves that one's low bits unused, so
    replacing the tail by a fixed text ("…zz") sometimes changed nothing and the
    "tampered" token still verified (a flaky test in CI)."""
    at = len(signed) - 4
    replacement = "A" if signed[at] != "A" else "B"
    return signed[:at] + replacement + signed[at + 1 :]
