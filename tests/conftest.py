"""Fixtures: real databases through the real migrations, a real SMTP server.

Every test that takes ``app`` runs on SQLite and, when
``LEADVAULT_TEST_DATABASE_URL`` is set, once more on PostgreSQL (in a schema
of its own, dropped at the end). The schema is migrated once per backend.

Each test runs inside one transaction that is rolled back afterwards (as
Warehouse does): every app the test makes binds its sessions to the test's
connection, and their commits only release savepoints. Tests whose work
spans threads or processes (a served app, a worker thread, a subprocess, the
browser, a second engine) are marked ``@pytest.mark.committing``: they commit
for real and the tables are emptied afterwards.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask.testing import FlaskClient
from sqlalchemy import event
from werkzeug.routing import rules as werkzeug_rules
from werkzeug.serving import make_server

from leadvault import clock, migrate
from leadvault.app import create_app, runtime
from leadvault.crypto import Keyring

PG_URL = os.environ.get("LEADVAULT_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
# Rows the migrations seed; kept between tests.
SEEDED = {
    "purposes",
    "consent_texts",
    "consent_ledger_head",
    "audit_head",
    "alembic_version",
    "report_state",  # the zone the dashboard's aggregates count in (migration 0021)
}


# Nearly every test makes an app, and Werkzeug compiles two URL builders (Python
# code, through ast and compile()) for each of the app's ~180 routes every time: about
# 0.1 s of CPU an app, the largest part of create_app. The code of a builder depends
# only on the rule's parsed parts, the names of its defaults and append_unknown (the
# rule itself is bound as the function's first argument later), so the tests compile
# each builder once. A rule whose default fills one of its own variables is compiled
# as usual (that default's converted value goes into the code).
_compile_builder = werkzeug_rules.Rule._compile_builder
_builders: dict[tuple[Any, ...], Any] = {}


def _cached_builder(self: werkzeug_rules.Rule, append_unknown: bool = True) -> Any:
    defaults = self.defaults or {}
    if any(dynamic and name in defaults for dynamic, name in self._trace):
        return _compile_builder(self, append_unknown)
    key = (self.rule, tuple(self._trace), tuple(defaults), append_unknown)  # _trace: host too
    builder = _builders.get(key)
    if builder is None:
        builder = _builders[key] = _compile_builder(self, append_unknown)
    return builder


werkzeug_rules.Rule._compile_builder = _cached_builder  # type: ignore[method-assign]

# Parsing the rules is the rest of it (12 of an app's 16 ms of CPU): what Rule.compile
# makes of a rule depends only on its text, its host or subdomain, merge_slashes and the
# map's converter classes. The tests keep its parts and trace (never changed once made)
# and the converters it asked for, and give each new rule fresh converter instances of
# its own map; the builders come from the cache above.
_compile = werkzeug_rules.Rule.compile
_compiled: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def _cached_compile(self: werkzeug_rules.Rule) -> None:
    routes = self.map
    assert routes is not None
    key = (
        self.rule,
        routes.host_matching,
        self.host if routes.host_matching else self.subdomain,
        self.merge_slashes,
        tuple(routes.converters.items()),
    )
    known = _compiled.get(key)
    if known is None:
        asked: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = []
        get_converter = self.get_converter

        def recording(variable: str, name: str, args: Any, kwargs: Any) -> Any:
            asked.append((variable, name, tuple(args), dict(kwargs)))
            return get_converter(variable, name, args, kwargs)

        self.get_converter = recording  # type: ignore[method-assign]
        try:
            _compile(self)
        finally:
            del self.get_converter
        _compiled[key] = (list(self._parts), list(self._trace), asked)
        return
    parts, trace, asked = known
    self._parts, self._trace, self._converters = list(parts), list(trace), {}
    for variable, name, args, kwargs in asked:
        self._converters[variable] = self.get_converter(variable, name, args, kwargs)
        self.arguments.add(variable)
    self._build = self._compile_builder(False).__get__(self, None)
    self._build_unknown = self._compile_builder(True).__get__(self, None)


werkzeug_rules.Rule.compile = _cached_compile  # type: ignore[method-assign]


# Staff passwords are hashed with argon2id at the library's defaults (64 MiB, three passes,
# four lanes): about 0.15 s of CPU for each hash and each sign-in, half the time of the
# console and admin tests. The tests hash and verify with the same algorithm and code path
# at the cheapest cost argon2 allows; tests/test_admin_accounts.py checks that the
# application's own hasher keeps the defaults (accounts.hasher is restored there).
# Processes the tests start (`leadvault` subprocesses, a served gunicorn) hash as deployed.
def _cheap_hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def _deployed_hasher() -> Any:
    """accounts.hasher as the application has it; the cheap one from here on."""
    import functools

    from admin import accounts

    deployed = getattr(accounts.hasher, "deployed", accounts.hasher)
    cheap: Any = functools.cache(_cheap_hasher)
    cheap.deployed = deployed  # this module imported twice still knows the real one
    accounts.hasher = cheap
    return deployed


DEPLOYED_HASHER = _deployed_hasher()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def keyring_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keyring.json"
    Keyring.generate().save(path)
    return path


def _pg_url_with_schema(schema: str) -> str:
    assert PG_URL is not None
    joiner = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{joiner}options={quote(f'-csearch_path={schema}')}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-examples",
        type=int,
        default=300,
        help="Hypothesis examples per endpoint in tests/test_fuzz.py (default 300)",
    )


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    from leadvault.engine import create_engine
    from leadvault.settings import parse_database_url

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'leadvault.db'}"
        migrate.upgrade(create_engine(url))
        yield url
        return
    schema = f"lv_test_{secrets.token_hex(4)}"
    admin = create_engine(parse_database_url(PG_URL or ""))
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = _pg_url_with_schema(schema)
    engine = create_engine(parse_database_url(url))
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def test_engine(database_url: str) -> Iterator[sa.Engine]:
    """One engine per backend for the tests' outer transactions."""
    from leadvault.engine import create_engine
    from leadvault.settings import parse_database_url

    engine = create_engine(parse_database_url(database_url), pool_size=1)
    yield engine
    engine.dispose()


def committing(request: pytest.FixtureRequest) -> bool:
    node = request.node
    return any(node.get_closest_marker(name) for name in ("committing", "browser"))


# The engine whose one connection the running test's apps share (None: no such test).
_test_engine: list[sa.Engine | None] = [None]


@event.listens_for(sa.Engine, "engine_connect")
def _no_second_connection(connection: sa.Connection) -> None:
    """Fail at once, not by waiting forever for SQLite's write lock: inside the
    test's transaction another connection to the test database sees nothing."""
    engine = _test_engine[0]
    if engine is None or connection.engine is engine:
        return
    if connection.engine.url.render_as_string() == engine.url.render_as_string():
        raise RuntimeError(
            "a second connection to the test database inside a test's transaction: pass "
            "the app to the command line (CliRunner().invoke(cli, args, obj=app)), use "
            "runtime(app).session_factory instead of runtime(app).engine, or mark the "
            "test @pytest.mark.committing (threads, processes, a served app)"
        )


@pytest.fixture
def db_connection(request: pytest.FixtureRequest, test_engine: sa.Engine) -> Iterator[Any]:
    """The test's connection, in a transaction rolled back after the test
    (None for ``committing`` tests)."""
    if committing(request):
        test_engine.dispose()  # no idle connection of ours beside the test's own engines
        yield None
        return
    connection = test_engine.connect()
    outer = connection.begin()
    _test_engine[0] = test_engine
    try:
        yield connection
    finally:
        _test_engine[0] = None
        outer.rollback()
        connection.close()


@pytest.fixture
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    folder = tmp_path / "instance"
    folder.mkdir()
    return folder


@pytest.fixture
def settings_overrides(database_url: str, keyring_path: Path, instance: Path) -> dict[str, Any]:
    from leadvault.settings import parse_database_url

    return {
        "instance": str(instance),
        "database_url": parse_database_url(database_url),
        "keyring": str(keyring_path),
        "form_min_fill_seconds": 0.0,
        "rate_limit_ip": "1000/minute",
        "rate_limit_email": "1000/minute",
        "outbox_retry_seconds": 0.2,
        "outbox_lease_seconds": 3.0,
        "worker_poll_seconds": 0.1,
    }


class BufferedClient(FlaskClient):
    """A test client that reads every response to its end and closes it before
    returning it, as a server would.

    A streamed body (an export) holds a session on the test's connection until it
    ends: left unread, its savepoint stays open under later requests' and its
    audit entry is not written. Buffered, no test depends on reading it."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


@pytest.fixture
def make_app(settings_overrides: dict[str, Any], db_connection: Any) -> Iterator[Any]:
    """Apps on the test database; in the test's transaction unless ``committing``."""
    created: list[Any] = []

    def factory(**overrides: Any) -> Any:
        app = create_app({**settings_overrides, **overrides}, environ={})
        app.config["TESTING"] = True
        app.test_client_class = BufferedClient
        if db_connection is not None:
            for factory in (runtime(app).session_factory, runtime(app).read_only_session_factory):
                factory.configure(bind=db_connection, join_transaction_mode="create_savepoint")
        created.append(app)
        return app

    yield factory
    emptied: set[str] = set()
    for app in created:
        url = runtime(app).engine.url.render_as_string()
        if db_connection is None and url not in emptied:  # the test's apps share a database
            emptied.add(url)
            _empty_tables(app)
        runtime(app).engine.dispose()
    clock.freeze(None)


@pytest.fixture
def app(make_app: Any, smtp_server: SmtpSink) -> Any:
    return make_app(smtp_url=_smtp_config(smtp_server.port))


def _smtp_config(port: int) -> Any:
    from leadvault.settings import parse_smtp_url

    return parse_smtp_url(f"smtp://127.0.0.1:{port}")


def _empty_tables(app: Any) -> None:
    from leadvault.model_base import Base

    engine = runtime(app).engine
    tables = [t for t in reversed(Base.metadata.sorted_tables) if t.name not in SEEDED]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # TRUNCATE costs milliseconds a table, even an empty one (0.07 s for all of
            # them, 0.1 s with a few rows): DELETE from the tables the test wrote to (one
            # statement finds them), children first. Sequences go on counting, as they
            # do after every rolled-back test: no test may count on ids.
            probe = " UNION ALL ".join(
                f"SELECT '{t.name}' WHERE EXISTS (SELECT 1 FROM \"{t.name}\")" for t in tables
            )
            used = set(connection.scalars(sa.text(probe)))
            tables = [t for t in tables if t.name in used]
        for table in tables:
            connection.execute(table.delete())
        connection.execute(sa.text("DELETE FROM consent_texts WHERE version > 1"))
        connection.execute(
            sa.text("UPDATE consent_ledger_head SET last_id = 0, last_hash = :h"), {"h": "0" * 64}
        )
        connection.execute(
            sa.text("UPDATE audit_head SET last_id = 0, last_hash = :h"), {"h": "0" * 64}
        )


@pytest.fixture
def session(app: Any) -> Iterator[Any]:
    """A unit of work inside an app context, committed at the end of the test
    (within the test's transaction, unless ``committing``)."""
    from leadvault.db import unit_of_work

    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        yield s


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


# --- SMTP ----------------------------------------------------------------


class _Collector:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelope_senders: list[str] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelope_senders.append(envelope.mail_from)
        return "250 OK"


class SmtpSink:
    """A real SMTP server on loopback that keeps what it receives."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.collector = _Collector()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.collector, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        with self.collector.lock:
            return list(self.collector.messages)

    @property
    def envelope_senders(self) -> list[str]:
        """MAIL FROM of each received message, in the order of ``messages``."""
        with self.collector.lock:
            return list(self.collector.envelope_senders)

    def wait_for(self, count: int, timeout: float = 15.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.05)
        raise AssertionError(f"expected {count} mails, got {len(self.messages)}")


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


def deliver(app: Any) -> int:
    """Run the inbox and the outbox until both are empty, as the worker does; count mails."""
    from leadvault.worker import Worker

    worker = Worker(app)
    mails = 0
    while True:
        work = worker.process_inbox()
        sent = worker.deliver_mail()
        mails += sent
        if not work and not sent:
            break
    worker.close()
    return mails


def process(app: Any) -> int:
    """Run the inbox once (accepted submissions become leads), without sending mail."""
    from leadvault.worker import Worker

    worker = Worker(app)
    total = 0
    while handled := worker.process_inbox():
        total += handled
    return total


# --- a served app (for concurrency and browser tests) -----------------------


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


_screenshots_taken: set[Path] = set()


def screenshot(target: Any, path: Path, **options: Any) -> None:
    """A page's (or element's) picture for a person to look at, taken once per session and
    file: on the second database the same page would only overwrite the first picture."""
    path = Path(path).resolve()
    if path in _screenshots_taken:
        return
    _screenshots_taken.add(path)
    target.screenshot(path=str(path), **options)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, launched once for the session: each test opens contexts of
    its own in it (cookies, storage and viewport are a context's, not the browser's)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


class LiveServer:
    """The app served on a loopback port, in threads: for ``committing`` tests."""

    def __init__(self, app: Any) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


# --- helpers ---------------------------------------------------------------


def make_form(app: Any, **kwargs: Any) -> str:
    from capture import definition_service, definitions
    from leadvault.db import unit_of_work

    spec = {
        "name": "Newsletter",
        "kind": "newsletter",
        "fields": [
            definitions.FieldSpec("first_name", False),
            definitions.FieldSpec("last_name", False),
        ],
        "purposes": [definitions.PurposeSpec("newsletter", True)],
        "allowed_origins": ["https://www.example.com"],
    }
    spec.update(kwargs)
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        return definition_service.create_form(s, **spec).public_id


def render_token(app: Any, public_id: str) -> str:
    from capture import bots, service
    from leadvault.db import unit_of_work

    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        form = service.get_form(s, public_id)
        assert form is not None
        return bots.issue_render_token(s, form)


def unique_email(prefix: str = "ada") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}@example.org"
