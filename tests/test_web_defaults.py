"""Every response's default headers and the JSON bodies clients send (leadvault.web):
the shortcuts capture's CPU work took keep what the plain versions did."""

from __future__ import annotations

import json

import pytest
from flask import Flask, Response
from werkzeug.datastructures import Headers

from leadvault import web


def _with_setdefault(headers: Headers, secure: bool) -> list[tuple[str, str]]:
    """The defaults as four Headers.setdefault calls added them (before lv/pgcapture)."""
    expected = Headers(list(headers.items()))
    expected.setdefault("Content-Security-Policy", web.DEFAULT_CSP)
    expected.setdefault("X-Content-Type-Options", "nosniff")
    expected.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    expected.setdefault("Permissions-Policy", "interest-cohort=(), browsing-topics=()")
    if secure:
        expected.setdefault("Strict-Transport-Security", "max-age=31536000")
    return list(expected.items())


@pytest.mark.parametrize(
    "own",
    [
        [],
        [("Content-Security-Policy", "default-src 'self'")],
        [("content-security-policy", "frame-ancestors 'self'"), ("Vary", "Origin")],
        [("REFERRER-POLICY", "no-referrer"), ("Permissions-Policy", "camera=()")],
        [
            ("X-Content-Type-Options", "nosniff"),
            ("Strict-Transport-Security", "max-age=1"),
            ("Cache-Control", "no-store"),
        ],
    ],
)
@pytest.mark.parametrize("secure", [False, True])
def test_security_headers_are_what_setdefault_made(
    own: list[tuple[str, str]], secure: bool
) -> None:
    flask_app = Flask(__name__)
    base = "https://example.test/" if secure else "http://example.test/"
    with flask_app.test_request_context("/", base_url=base):
        response = Response("x", headers=own)
        expected = _with_setdefault(response.headers, secure)
        assert list(web._security_headers(response).headers.items()) == expected
    # A view's own value is kept, whatever the case of its name.
    for name, value in own:
        assert (name.lower(), value) in [(k.lower(), v) for k, v in expected]


@pytest.mark.parametrize(
    "body",
    [
        b'{"email": "\\ud800@example.com"}',  # an escaped lone high surrogate
        b'{"a": ["\\uDC00"]}',  # an escaped lone low surrogate, upper case
        b'{"\\udbff": 1}',  # in a key
        '{"a": "\ud800"}'.encode("utf-8", "surrogatepass"),  # CESU-8 bytes
        '{"a": "\udfff"}'.encode("utf-16-le", "surrogatepass"),  # UTF-16, no BOM
        '{"a": "\ud800"}'.encode("utf-32-be", "surrogatepass"),  # UTF-32
        '{"a": "\ud800"}',  # text, as Flask may hand it over
    ],
)
def test_a_lone_surrogate_is_refused_however_it_is_written(body: str | bytes) -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        web.client_json(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"email": "lead@example.com", "consent": ["newsletter"]}',
        b'{"name": "\\ud83d\\ude00"}',  # an escaped pair is one character
        '{"name": "Jürgen 😀"}'.encode(),
        '{"name": "Jürgen"}'.encode("utf-16"),
        b"[" * 50 + b"]" * 50,
    ],
)
def test_json_without_lone_surrogates_reads_as_json_loads_reads_it(body: bytes) -> None:
    assert web.client_json(body) == json.loads(body)


def test_only_ascii_bytes_without_an_escape_skip_the_surrogate_check() -> None:
    assert web._surrogate_free(b'{"email": "lead@example.com"}')
    assert web._surrogate_free('{"a": 1}'.encode("utf-16-le"))  # ASCII bytes, no surrogate
    assert not web._surrogate_free(b'{"a": "\\u00e4"}')
    assert not web._surrogate_free('{"a": "ä"}'.encode())
    assert not web._surrogate_free('{"a": 1}')  # text is always checked


def test_json_nested_too_deeply_is_refused() -> None:
    with pytest.raises(ValueError, match="too deeply"):
        web.client_json(b"[" * 100_000 + b"]" * 100_000)
