"""The application factory: reads settings and wires things, nothing more.

It never creates tables, runs migrations or prompts; ``leadvault db upgrade``
and ``leadvault run`` do that before serving.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any, Protocol

from flask import Flask
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from leadvault import db
from leadvault import settings as settings_module
from leadvault.crypto import Keyring, KeyringError, Vault
from leadvault.engine import create_engine
from leadvault.settings import Settings, SettingsError


class Deliverer(Protocol):
    """Delivers due outbox rows of one kind; made once per worker, closed when it stops."""

    def deliver_due(self, *, worker_id: str, limit: int) -> int: ...

    def close(self) -> None: ...


@dataclasses.dataclass
class Job:
    """A periodic job the worker runs in its own transaction."""

    name: str
    interval_seconds: float
    run: Callable[[Session], Any]


@dataclasses.dataclass
class Runtime:
    """What the app, the worker and the CLI share; lives in ``app.extensions``."""

    settings: Settings
    vault: Vault
    engine: Engine
    session_factory: sessionmaker[Session]
    # For GET, HEAD and OPTIONS requests: the database refuses every write.
    read_only_session_factory: sessionmaker[Session]
    jobs: list[Job] = dataclasses.field(default_factory=list)
    # Inbox item kind -> handler(session, payload), registered by the packages.
    inbox_handlers: dict[str, Callable[[Session, dict[str, Any]], None]] = dataclasses.field(
        default_factory=dict
    )
    # Outbox kind -> factory(app) of a deliverer for rows of that kind other than
    # mail (webhooks …), registered by the packages; each worker makes its own.
    deliverers: dict[str, Callable[[Flask], Deliverer]] = dataclasses.field(default_factory=dict)
    # Set after a request queued inbox work, so an in-process worker starts at once.
    wake: threading.Event = dataclasses.field(default_factory=threading.Event)


def load_vault(settings: Settings) -> Vault:
    try:
        return Vault(Keyring.load(settings.keyring))
    except KeyringError as exc:
        raise SettingsError("LEADVAULT_KEYRING", str(exc)) from None


def runtime(app: Flask) -> Runtime:
    return app.extensions["leadvault"]


def create_app(
    overrides: dict[str, Any] | None = None, *, environ: dict[str, str] | None = None
) -> Flask:
    """Build the Flask app from ``LEADVAULT_*`` settings (``overrides`` win)."""
    settings = settings_module.load(environ, **(overrides or {}))
    vault = load_vault(settings)
    engine = create_engine(settings.database_url)

    app = Flask("leadvault", instance_path=str(settings.instance))
    app.config.update(
        SECRET_KEY=vault.session_secret,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        WTF_CSRF_TIME_LIMIT=3600,
        JSON_SORT_KEYS=False,
    )
    app.extensions["leadvault"] = Runtime(
        settings=settings,
        vault=vault,
        engine=engine,
        session_factory=db.make_session_factory(engine, settings, vault),
        read_only_session_factory=db.make_session_factory(engine, settings, vault, read_only=True),
    )
    if settings.proxy_fix:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.proxy_fix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    from leadvault import access_log, keys, web

    web.init_app(app)
    # Scheduled master key rotation: erasure final in old row versions (leadvault/keys.py).
    runtime(app).jobs.append(Job("key-rotation", keys.ROTATION_JOB_SECONDS, keys.rotation_job))
    _register_domains(app)
    # After the blueprints: the access logs' mask is built from every rule with a token.
    access_log.init_app(app)
    # Last, so its commit runs first among the after-request hooks: on SQLite the
    # write lock is then held for the INSERT and COMMIT only, not for the headers.
    db.init_app(app)
    return app


def _register_domains(app: Flask) -> None:
    """Blueprints and jobs of the domain packages, registered explicitly."""
    import admin
    import capture
    import consent
    import nurture
    import scoring
    import widgets
    from export import wiring as export_wiring

    consent.init_app(app)
    capture.init_app(app)
    widgets.init_app(app)
    scoring.init_app(app)
    export_wiring.init_app(app)
    nurture.init_app(app)
    admin.init_app(app)


def import_models() -> None:
    """Import every package's models so ``Base.metadata`` is complete (Alembic)."""
    import importlib

    for package in MODEL_PACKAGES:
        importlib.import_module(f"{package}.models")


# Every package with tables, in dependency order.
MODEL_PACKAGES = (
    "leadvault",
    "consent",
    "capture",
    "widgets",
    "scoring",
    "nurture",
    "export",
    "admin",
)
