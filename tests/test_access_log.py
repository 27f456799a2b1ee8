"""The access logs carry no signed link's token, and no failed statement's parameters."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask import url_for
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
