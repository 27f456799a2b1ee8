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
    from capture import service as capture_service
    from consent import service as consent_service
    from consent.ledger import RequestMeta
    from consent.models import OptInRequest

    purposes = list(purposes)
    if form_id is None:
        form_id = form(
            app,
            name="Factory",
            kind="contact",
            fields=[capture_service.FieldSpec(n, False) for n in (profile or {})],
            purposes=[capture_service.PurposeSpec(p, False) for p in purposes],
        )
    meta = RequestMeta(ip=META_IP, user_agent="factory")
    with uow(app) as s:
        found = capture_service.get_form(s, form_id)
        assert found is not None, form_id
        valid = capture_service.ValidSubmission(
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
            consent_service.confirm(s, request, meta=meta)
    return lead_id


def api_token(app: Any, name: str | None = None, scopes: Iterable[str] = ("consent:read",)) -> str:
    from leadvault import api

    with uow(app) as s:
        return api.create_token(s, name or f"token-{uuid.uuid4().hex[:6]}", list(scopes))


def salesperson(app: Any, email: str, name: str, *, language: str = "en", **kwargs: Any) -> int:
    from scoring import routing

    with uow(app) as s:
        return routing.add_person(s, email=email, name=name, language=language, **kwargs).id
