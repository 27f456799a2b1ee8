"""The access logs carry no signed link's token, and no failed statement's parameters."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask import url_for
from werkzeug.routing import AnyConverter, PathConverter, UnicodeConverter
from werkzeug.test import create_environ

from leadvault.access_log import LOGGED_PATH, MASK, mask, token_pattern
from leadvault.app import runtime
from leadvault.engine import create_engine
from leadvault.settings import parse_database_url

SECRET = "SeCrEt-token_0123456789.abc"
# What a rule takes beside the token (any value: masking does not check them).
OTHER_ARGUMENTS = {"action": "confirm", "form_id": "frm_1"}


def _token_urls(app) -> list[str]:
    """A real URL of every route whose path carries a token, built by the app."""
    with app.test_request_context():
        return [
            url_for(
                rule.endpoint,
                token=SECRET,
                **{a: OTHER_ARGUMENTS[a] for a in rule.arguments if a != "token"},
            )
            for rule in app.url_map.iter_rules()
            if "token" in rule.arguments
        ]


def test_every_signed_link_route_is_masked(app):
    urls = _token_urls(app)
    # The kinds the review named are among them (the list is the URL map's, not ours).
    for start in ("/p/", "/e/", "/a/", "/admin/set-password/", "/c/", "/u/", "/n/", "/h/"):
        assert any(url.startswith(start) for url in urls), (start, urls)
    pattern = token_pattern(app.url_map)
    for url in urls:
        masked = mask(pattern, url)
        assert SECRET not in masked, url
        assert masked == url.replace(SECRET, MASK)


def test_paths_without_a_token_stay_as_they_are(app):
    pattern = token_pattern(app.url_map)
    for path in ("/", "/healthz", "/f/frm_1", "/admin/leads", "/privacy", "/pages/x"):
        assert mask(pattern, path) == path
    # A path that goes on past the token (404, trailing slash) is masked too.
    assert mask(pattern, f"/p/{SECRET}/") == f"/p/{MASK}/"
    assert mask(pattern, f"/e/{SECRET}/nothing/here") == f"/e/{MASK}/nothing/here"


def test_the_request_carries_the_masked_path(app):
    statuses: list[str] = []

    def start_response(status: str, _headers: object) -> None:
        statuses.append(status)

    for path, logged in ((f"/p/{SECRET}", f"/p/{MASK}"), ("/healthz", "/healthz")):
        environ = create_environ(path)
        body = app.wsgi_app(environ, start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()
        assert environ[LOGGED_PATH] == logged
    assert len(statuses) == 2


def test_a_failed_statement_does_not_say_its_parameters(database_url):
    engine = create_engine(parse_database_url(database_url), pool_size=1)
    try:
        with engine.connect() as connection, pytest.raises(sa.exc.DBAPIError) as failed:
            connection.execute(
                sa.text("INSERT INTO no_such_table (blind_index) VALUES (:blind_index)"),
                {"blind_index": SECRET},
            )
    finally:
        engine.dispose()
    text = str(failed.value)
    assert "no_such_table" in text  # the statement is still named
    assert SECRET not in text
    assert re.search(r"parameters hidden", text), text


def test_the_app_engine_hides_parameters(app):
    assert runtime(app).engine.hide_parameters


# --- every signed token a route reads is masked, whatever its argument's name -----------


FREE_TEXT = (UnicodeConverter, PathConverter)


def _unsigned_markers(app, monkeypatch) -> dict[str, tuple[str, str]]:
    """Every route walked with a marker in each path argument: the markers whose value
    a view gave to the key ring to verify as a signed token, with what the access log
    got for that request (``{marker: (rule, logged path)}``).

    The key ring's own ``unsign`` does the verifying; the walk only notes what it was
    given, so any route reading a signed link is found, whatever its argument is named."""
    from leadvault.crypto import Vault
    from tests.conftest import make_form

    unsigned: list[str] = []
    verify = Vault.unsign

    def noting(self, purpose, token, max_age_seconds):
        unsigned.append(token)
        return verify(self, purpose, token, max_age_seconds)

    monkeypatch.setattr(Vault, "unsign", noting)
    app.config["WTF_CSRF_ENABLED"] = False  # a POST reaches its view
    logged: list[str] = []
    masking = app.wsgi_app

    def keeping_the_logged_path(environ, start_response):
        try:
            return masking(environ, start_response)
        finally:
            logged.append(environ[LOGGED_PATH])

    app.wsgi_app = keeping_the_logged_path
    client = app.test_client()
    form_id = make_form(app)
    found: dict[str, tuple[str, str]] = {}
    for number, rule in enumerate(app.url_map.iter_rules()):
        converters = rule._converters  # what each argument takes: free text can be a token
        free = [
            a for a in rule.arguments if type(converters[a]) in (UnicodeConverter, PathConverter)
        ]
        if not free:
            continue
        markers = {name: f"Mk{number}x{name.replace('_', '')}xZ" for name in free}
        values: dict[str, object] = {**markers}
        if "form_id" in markers:
            values["form_id"] = form_id  # the view looks the form up before its token
        for name in rule.arguments - set(values):
            choice = converters[name]
            values[name] = sorted(choice.items)[0] if isinstance(choice, AnyConverter) else 1
        with app.test_request_context():
            path = url_for(rule.endpoint, **values)
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            unsigned.clear()
            client.open(path, method=method)
            for marker in markers.values():
                if any(marker in token for token in unsigned):
                    found[marker] = (f"{method} {rule.rule}", logged[-1])
    return found


def test_every_token_a_route_verifies_is_masked_in_the_log(app, monkeypatch):
    found = _unsigned_markers(app, monkeypatch)
    routes = {rule for rule, _logged in found.values()}
    # The walk reaches the signed links the review named (the list is the app's, not ours).
    for start in ("/p/", "/e/", "/a/", "/admin/set-password/", "/c/", "/u/", "/n/", "/h/", "/d/"):
        assert any(rule.split(" ")[1].startswith(start) for rule in routes), (start, routes)
    leaks = {rule: logged for marker, (rule, logged) in found.items() if marker in logged}
    assert not leaks, (
        f"signed tokens in the access log (mask them: leadvault/access_log.py): {leaks}"
    )


def test_the_walk_finds_a_signed_token_under_another_name(app, monkeypatch):
    """The check above is no list kept by hand: a new signed link whose argument is not
    called ``token`` is found, and found unmasked."""
    from leadvault.access_log import _LoggedPath
    from leadvault.crypto import TokenExpired, TokenInvalid
    from leadvault.db import session, vault_of

    def reading(token: str) -> str:
        try:
            vault_of(session()).unsign("review-test", token, 60)
        except (TokenInvalid, TokenExpired):
            return "not valid"
        return "valid"

    app.add_url_rule("/zz/<secret>", "zz_secret", lambda secret: reading(secret))
    app.add_url_rule("/zy/<token>", "zy_token", lambda token: reading(token))
    masking = app.wsgi_app
    assert isinstance(masking, _LoggedPath)
    masking.pattern = token_pattern(app.url_map)  # as access_log.init_app builds it
    found = _unsigned_markers(app, monkeypatch)
    leaked = {rule for marker, (rule, logged) in found.items() if marker in logged}
    assert leaked == {"GET /zz/<secret>"}
