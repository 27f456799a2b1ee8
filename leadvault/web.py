"""Core HTTP concerns: security headers, human error pages, CSRF, signed-link pages
(the health check: ``leadvault.health``; rate limits: ``leadvault.rate_limits``)."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    abort,
    current_app,
    has_request_context,
    jsonify,
    make_response,
    render_template,
    request,
    send_file,
)
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from jinja2 import pass_context
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import IntegerConverter

from leadvault import (
    branding,
    db,
    health,
    i18n,
    locale_formats,
    rate_limits,
    ratelimit_storage,
    untrusted,
)
from leadvault.i18n import N_
from leadvault.model_base import ROW_ID_MAX

log = logging.getLogger("leadvault.web")

bp = Blueprint("core", __name__, template_folder="templates", static_folder="static")
csrf = CSRFProtect()
health.add_routes(bp)


DEFAULT_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class RowIdConverter(IntegerConverter):
    """``<int:…>`` in every route: a number no row id can reach is a 404 at routing,
    once for all views. Flask's converter takes any size, and a number beyond 64 bits
    overflowed SQLite's driver (a 500). Raising NotFound rather than refusing the match
    keeps the answer a 404 for every method the path has (a refused match made the
    API's DELETE of such an id a 405)."""

    def to_python(self, value: str) -> int:
        number: int = super().to_python(value)
        if number > ROW_ID_MAX:
            raise NotFound()
        return number


@bp.get("/")
def index() -> str:
    return render_template("leadvault/index.html")


@bp.get("/imprint")
@bp.get("/privacy")
def placeholder() -> tuple[str, int]:
    """Shown until LEADVAULT_IMPRINT_URL / LEADVAULT_PRIVACY_URL name the operator's pages
    (``leadvault check`` tells the operator; the visitor is not told about settings)."""
    imprint = request.path == "/imprint"
    return render_template("leadvault/placeholder.html", imprint=imprint), 404


def _settings() -> Any:
    from leadvault.app import runtime

    return runtime(current_app).settings


@bp.get("/brand.css")
def brand_css() -> Response:
    """The brand's colours and font (pages may not carry inline style under the CSP)."""
    response = make_response(branding.stylesheet(_settings()))
    response.mimetype = "text/css"
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


@bp.get("/brand/logo")
def brand_logo() -> Response:
    """The operator's logo file, for pages and mails (no cookies, no tokens: nothing tracks)."""
    settings = _settings()
    if settings.brand_logo is None:
        abort(404)
    response = send_file(
        settings.brand_logo,
        mimetype=branding.logo_mimetype(settings),
        max_age=86400,
        conditional=True,
    )
    # An SVG opened on its own runs nothing and loads nothing.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    )
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def client_json(data: str | bytes) -> Any:
    """JSON a client sent, or ValueError: not JSON (or not UTF-8), nested deeper than
    Python can follow, or holding a lone surrogate (a ``\\ud800`` escape decodes to
    text that no encoder, database driver or mail accepts). Every JSON body is read
    through this (Flask's ``get_json`` too), so a handler sees only text it can keep."""
    try:
        value = json.loads(data)
        if not _surrogate_free(data):
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except UnicodeEncodeError:
        raise ValueError("JSON text holds a lone surrogate") from None
    return value


def _surrogate_free(data: str | bytes) -> bool:
    """Whether ``data`` plainly cannot hold a lone surrogate (then ``client_json`` skips
    encoding its value once more to find one): ASCII bytes without a ``\\u`` escape.
    In every encoding json.loads detects (UTF-8, -16, -32) a surrogate's code unit
    needs a byte of 0xD8 or more, and an escape is the only other way to write one."""
    return isinstance(data, bytes) and data.isascii() and b"\\u" not in data


class _ClientJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return client_json(s)


def mark_private(response: Response) -> Response:
    """Pages behind signed links: never cached, never leak the token as referrer."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def private_page(template: str, code: int = 200, /, **context: Any) -> Response:
    """A page behind a signed link (``code`` is the HTTP status; context may use "status")."""
    return mark_private(make_response(render_template(template, **context), code))


def message_page(code: int = 200, /, **context: Any) -> Response:
    """A private page with a heading and a paragraph: ``title`` and ``text`` are
    message ids (``N_("…")``), translated as the page renders; ``extra_links`` a
    list of (label, url)."""
    return private_page("leadvault/message.html", code, **context)


def invalid_link_page() -> Response:
    """The answer to a signed link that is broken, forged or of another kind."""
    return message_page(
        400,
        title=N_("This link is not valid"),
        text=N_(
            "The link is incomplete or was changed. "
            "Please use the link from the mail exactly as it is."
        ),
    )


@dataclasses.dataclass(frozen=True)
class RequestMeta:
    """Pseudonymised request metadata for a ledger entry (IP and user agent are
    truncated and hashed where they are stored)."""

    ip: str | None = None
    user_agent: str | None = None


def request_meta() -> RequestMeta:
    """This request's metadata, for services that record where a change came from."""
    return RequestMeta(ip=request.remote_addr, user_agent=request.headers.get("User-Agent"))


def language() -> str:
    """The language of this request's pages (see ``i18n.current_language``)."""
    return i18n.current_language()


def wants_json() -> bool:
    if request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


# The message of each error page, by HTTP status (others get the 400 one).
ERROR_MESSAGES = {
    400: N_("The request could not be understood."),
    403: N_("This is not allowed from here."),
    404: N_("There is nothing here."),
    405: N_("This address does not accept that kind of request."),
    409: N_("This was changed by another request at the same moment. Please try again."),
    413: N_("The request is too large."),
    415: N_("The request has a content type this address does not accept."),
    422: N_("Some fields need your attention."),
    429: N_("Too many requests. Please wait a moment and try again."),
    500: N_("Something went wrong on our side. Please try again later."),
    503: N_("The service is busy. Please try again in a moment."),
}


def error_response(status: int, message: str | None = None, **extra: Any) -> tuple[Any, int]:
    """A human message in the visitor's language; never an exception's text.

    ``message`` is an English message id (marked with ``N_``); by default the
    one for ``status``.
    """
    text = i18n.gettext(message or ERROR_MESSAGES.get(status, ERROR_MESSAGES[400]))
    if wants_json():
        return jsonify(error=text, status=status, **extra), status
    return render_template("leadvault/error.html", status=status, message=text), status


def _handle_http(exc: HTTPException) -> Any:
    body, code = error_response(exc.code or 500)
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    return body, code, headers


def _handle_csrf(_exc: CSRFError) -> Any:
    return error_response(400, N_("The page expired. Please reload it and try again."))


def _handle_unexpected(exc: Exception) -> Any:
    # Log the type and the place, not the message: it may hold personal data.
    log.error(
        "unhandled %s at %s %s",
        type(exc).__name__,
        request.method,
        request.url_rule,
        exc_info=False,
    )
    if isinstance(exc, SQLAlchemyError):
        # A failed flush leaves the request's session unusable until it is rolled back:
        # the console's error page (which reads the signed-in account) then raised again
        # and the visitor got Werkzeug's bare 500 instead of the page below.
        db.session().rollback()
    if isinstance(exc, IntegrityError):
        # A unique row another request wrote a moment before (a race the service's
        # check could not see): the visitor may simply try again.
        return error_response(409)
    if isinstance(exc, OperationalError):
        return error_response(503)
    return error_response(500)


# Every response's defaults, each unless the view set its own (lower-cased name first).
_DEFAULT_HEADERS = tuple(
    (name.lower(), name, value)
    for name, value in (
        ("Content-Security-Policy", DEFAULT_CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("Permissions-Policy", "interest-cohort=(), browsing-topics=()"),
    )
)


def _security_headers(response: Response) -> Response:
    # One look at the names already set, then appended in this order: what
    # Headers.setdefault would do, without a scan of every header per default.
    headers = response.headers
    present = {name.lower() for name, _value in headers}
    for lower, name, value in _DEFAULT_HEADERS:
        if lower not in present:
            headers.add(name, value)
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


class _CookieSessionOnDemand(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened only when the request carries one.

    Most requests (cross-site form posts, API calls, signed links) carry no
    session cookie; Flask would still build its signing serializer for each.
    """

    def open_session(self, app: Flask, incoming: Request) -> SecureCookieSession | None:
        if self.get_cookie_name(app) not in incoming.cookies:
            return self.session_class()
        return super().open_session(app, incoming)


@pass_context
def _field_label(context: Any, name: str, *, shown: bool = False) -> str:
    """``{{ field_label("first_name") }}``: a lead attribute's label in the page's language
    (``shown=True`` next to a value: without the input's hint)."""
    from leadvault import leads

    return leads.attribute_label(name, context.get("lang") or language(), shown=shown)


def init_app(app: Flask) -> None:
    from leadvault.app import runtime

    settings = runtime(app).settings
    # Before any blueprint: a rule takes its converter when it is added.
    app.url_map.converters["int"] = RowIdConverter
    app.session_interface = _CookieSessionOnDemand()
    app.json = _ClientJSONProvider(app)
    csrf.init_app(app)
    # In-process counters by default (see ratelimit_storage: no sweeping thread).
    app.config["RATELIMIT_STORAGE_URI"] = settings.redis_url or f"{ratelimit_storage.SCHEME}://"
    rate_limits.limiter.init_app(app)
    app.register_blueprint(bp)
    # Text a lead typed, shown in a mail: links broken visibly (see leadvault.untrusted).
    app.jinja_env.filters["defuse"] = untrusted.defuse_in_mail
    # A refused form's fields filled again with what was typed (see untrusted.typed_again).
    app.jinja_env.filters["typed"] = untrusted.typed_again
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(CSRFError, _handle_csrf)
    app.register_error_handler(Exception, _handle_unexpected)
    app.after_request(_security_headers)
    app.after_request(rate_limits.add_retry_after)
    i18n.init_app(app)
    locale_formats.init_app(app)
    app.jinja_env.globals["field_label"] = _field_label

    @app.context_processor
    def _template_globals() -> dict[str, Any]:
        brand = branding.brand_of(settings)
        if not has_request_context():
            # Mails pass their own language (db.mail_context); `_` follows it.
            return {
                "imprint_url": settings.imprint_url,
                "privacy_url": settings.privacy_url,
                "brand": brand,
                "time_zone": settings.zone,
            }
        return i18n.template_context(
            language(),
            settings.imprint_url,
            settings.privacy_url,
            brand=brand,
            time_zone=settings.zone,
        )
