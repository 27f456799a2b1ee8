"""What the access logs show of a request's path: a signed link's token masked.

A signed link's token is a credential (``/p/<token>`` shows a lead's data for a day,
``/e/<token>`` erases, ``/admin/set-password/<token>`` sets a password): whoever reads
the log could use it. The paths to mask come from the URL map itself, every rule with a
``token`` argument, so a new signed-link route is masked without a list kept by hand.
A signed link must call its argument ``token``: tests/test_access_log.py walks every
route with a marker in each path argument and fails when a marker the key ring was asked
to verify reaches the logged path, whatever the argument is named.

The middleware puts the masked path into the WSGI environ, where both access logs read
it: gunicorn's (``%({leadvault.logged_path}e)s``, :mod:`leadvault.gunicorn_conf`) and
``leadvault run``'s. Neither logs the query string; no link carries a token there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.routing import Map

# Lower case: gunicorn offers the environ's keys to its log format in lower case.
LOGGED_PATH = "leadvault.logged_path"
TOKEN_ARGUMENT = "token"
MASK = "<token>"

# ``<name>``, ``<converter:name>``, ``<converter(arguments):name>``
_PLACEHOLDER = re.compile(r"<(?:(?P<converter>[^<>:(]+)(?:\([^<>]*\))?:)?(?P<name>[^<>:]+)>")


def token_pattern(url_map: Map) -> re.Pattern[str]:
    """The start of every path that carries a token, the token as group ``token``.

    Only the part up to the token has to match: a path that goes on differently (a
    trailing slash, an unknown action, a 404) is masked as well."""
    prefixes = sorted(
        {_prefix(rule.rule) for rule in url_map.iter_rules() if TOKEN_ARGUMENT in rule.arguments}
    )
    if not prefixes:
        return re.compile(r"(?!)")
    return re.compile(f"(?:{'|'.join(prefixes)})(?P<token>[^/]+)")


def _prefix(rule: str) -> str:
    """The rule's text before its token placeholder, as a pattern."""
    parts: list[str] = []
    position = 0
    for placeholder in _PLACEHOLDER.finditer(rule):
        parts.append(re.escape(rule[position : placeholder.start()]))
        if placeholder["name"] == TOKEN_ARGUMENT:
            return "".join(parts)
        parts.append(".+?" if placeholder["converter"] == "path" else "[^/]+")
        position = placeholder.end()
    raise ValueError(f"{rule} has no <{TOKEN_ARGUMENT}>")


def mask(pattern: re.Pattern[str], path: str) -> str:
    """``path`` with the token, if it carries one, replaced by ``<token>``."""
    found = pattern.match(path)
    if found is None:
        return path
    return path[: found.start("token")] + MASK + path[found.end("token") :]


class _LoggedPath:
    """Sets ``environ[LOGGED_PATH]`` before the app sees the request."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], pattern: re.Pattern[str]) -> None:
        self.wsgi_app = wsgi_app
        self.pattern = pattern

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = mask(self.pattern, environ.get("PATH_INFO", ""))
        environ[LOGGED_PATH] = environ.get("SCRIPT_NAME", "") + path
        return self.wsgi_app(environ, start_response)


def init_app(app: Flask) -> None:
    """After every blueprint: the pattern is built from the URL map as it is now."""
    app.wsgi_app = _LoggedPath(app.wsgi_app, token_pattern(app.url_map))  # type: ignore[method-assign]
