"""Public form endpoints: the hosted page, the submission, the widget's config.

What they answer with (the form page, the thank-you reply, a refusal) and the CORS and
framing headers that go with it are built in ``capture/form_pages.py``.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    make_response,
    request,
)
from werkzeug.exceptions import BadRequest

from capture import bots, form_pages, queueing, service, submission_checks
from capture.models import Form
from leadvault import db, i18n, leads, links, sqlite_writer
from leadvault.app import runtime
from leadvault.i18n import N_
from leadvault.rate_limits import refund_limits, within_limits
from leadvault.web import csrf, error_response, request_meta

log = logging.getLogger("leadvault.capture")

bp = Blueprint(
    "capture",
    __name__,
    template_folder="templates",
    static_folder="static",
    # Not /static: the core blueprint serves that path, and its rule would win.
    static_url_path="/capture/static",
)

_FORM_CONTENT_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}
# The texts widget.js shows, by the names it looks them up with.
WIDGET_STRINGS = {
    "label.email": N_("Email address"),
    "form.consent": N_("Your consent"),
    "form.submit": N_("Submit"),
    "form.sending": N_("Sending…"),
    "error.422": N_("Some fields need your attention."),
    "error.network": N_("The form could not be sent. Please check your connection and try again."),
}


_form_cache = service.FormCache()


def _form_or_404(form_id: str) -> Form:
    known, form = _form_cache.peek(form_id)
    if not known:
        if request.method in db.SAFE_METHODS:
            form = _form_cache.get(db.session(), form_id)
        else:
            # A submission reads its form in a read-only session of its own: the request
            # then opens no session at all when it is accepted (see _store), and on
            # SQLite it takes the write lock for its INSERTs only.
            with runtime(current_app).read_only_session_factory() as session:
                form = _form_cache.get(session, form_id)
    if form is None:
        abort(404)
    return form


def _form_language(form_lang: str | None = None) -> str:
    return i18n.set_language(
        i18n.negotiate(
            form_lang or request.args.get("lang"), request.headers.get("Accept-Language")
        )
    )


def _request_origin() -> str | None:
    """The Origin header, with our own hosted form page recognised.

    Our pages set ``<meta name="referrer" content="no-referrer">``, so browsers
    send ``Origin: null`` when the hosted form posts to itself (standalone, in
    the iframe snippet, and in the second step of the no-JavaScript snippet).
    ``Sec-Fetch-Site`` is set by the browser alone and tells that apart from a
    foreign page's ``null``.
    """
    origin = request.headers.get("Origin")
    if origin == "null" and request.headers.get("Sec-Fetch-Site") == "same-origin":
        return form_pages.own_origin()
    return origin


@bp.get("/f/<form_id>", provide_automatic_options=False)
def show(form_id: str) -> Response:
    form = _form_or_404(form_id)
    return form_pages.render_form_page(form, _form_language())


@bp.get("/f/<form_id>/config")
def config(form_id: str) -> Response:
    """Everything the embeddable widget needs to render the form itself."""
    form = _form_or_404(form_id)
    lang = _form_language()
    session = db.session()
    payload = {
        "id": form.public_id,
        "kind": form.kind,
        "lang": lang,
        "fields": [
            {**spec, "label": leads.attribute_label(spec["name"], lang)} for spec in form.fields
        ],
        "consents": [
            {"purpose": c["purpose"], "required": c["required"], "text": c["text"].text}
            for c in service.consent_texts_for(session, form, lang)
        ],
        "render_token": bots.issue_render_token(session, form),
        "challenge": bots.pow_challenge(session) if form.proof_of_work else None,
        "company_sizes": list(service.COMPANY_SIZES),
        "strings": {key: i18n.translate(lang, text) for key, text in WIDGET_STRINGS.items()},
    }
    response = jsonify(payload)
    response.headers["Cache-Control"] = "no-store"
    return form_pages.cors(response, form)


@bp.route("/f/<form_id>", methods=["OPTIONS"], provide_automatic_options=False)
def preflight(form_id: str) -> Response:
    form = _form_or_404(form_id)
    return form_pages.cors(make_response("", 204), form)


def _read_body() -> tuple[dict[str, Any], bool]:
    """The submitted fields and whether the client speaks JSON; 4xx on bad bodies."""
    mimetype = request.mimetype
    if mimetype == "application/json":
        try:
            raw = request.get_json(force=False, silent=False)
        except BadRequest:
            abort(400)
        if not isinstance(raw, dict):
            abort(400)
        return raw, True
    if mimetype in _FORM_CONTENT_TYPES:
        data: dict[str, Any] = {}
        for key in request.form:
            values = request.form.getlist(key)
            data[key] = values if key == "consent" or len(values) > 1 else values[0]
        return data, False
    abort(415)
    return None


@bp.post("/f/<form_id>", provide_automatic_options=False)
@csrf.exempt  # public endpoint: protected by the signed render token and Origin check
def submit(form_id: str) -> Response | tuple[Any, int]:
    form = _form_or_404(form_id)
    if not service.origin_allowed(form, _request_origin(), form_pages.own_origin()):
        return error_response(403)
    raw, as_json = _read_body()
    app_runtime = runtime(current_app)
    settings = app_runtime.settings
    body_lang = raw.get("lang") if isinstance(raw.get("lang"), str) else None
    if not within_limits("capture", settings.rate_limit_ip):
        _form_language(body_lang)
        return error_response(429)
    lang = _form_language(body_lang)

    judgement = bots.judge_with(settings, app_runtime.vault, form, raw)
    verdict = judgement.verdict
    if verdict == bots.Verdict.NO_TOKEN and not as_json and "render_token" not in raw:
        # A plain HTML form on the host page (no JavaScript, so no render token):
        # show the filled-in hosted form once more; its second send is verified.
        values = {k: v for k, v in raw.items() if isinstance(v, str | list) and k != "website"}
        # Our page sends no referrer: the second send carries the way back (the host page,
        # or its origin as the browser told it) for the thank-you page.
        back = form_pages.back_link(form, raw)
        values.pop("page_url", None)
        if back is not None:
            values["page_url"] = back[0]
        notice = i18n.translate(
            lang, "One more step: please check your details and send the form once more."
        )
        return form_pages.render_form_page(form, lang, values=values, notice=notice, status=200)
    if verdict == bots.Verdict.EXPIRED:
        errors = {
            "render_token": i18n.translate(
                lang, "This form was open too long. Please reload the page and send it again."
            )
        }
        return form_pages.refused_reply(form, lang, raw, errors, as_json)
    if verdict != bots.Verdict.HUMAN:
        bots.record_bot(db.session(), form, verdict)
        return form_pages.accepted_reply(form, lang, as_json, raw)

    valid, errors = submission_checks.validate_submission(
        form, raw, lang, check_deliverability=settings.email_check_deliverability
    )
    if valid is None:
        return form_pages.refused_reply(form, lang, raw, errors, as_json)
    reply = form_pages.accepted_reply(form, lang, as_json, raw)
    vault = app_runtime.vault
    email_index = (
        vault.blind_index_of_form(valid.email_index_form)
        if valid.email_index_form is not None
        else vault.blind_index(valid.email)
    )
    # Counted before the write (on SQLite: outside the write lock), given back below
    # should the token turn out replayed: only submissions that passed the bot checks
    # count against the address, so junk sent with someone's address cannot lock them
    # out. A 429 writes nothing, so its token stays unspent.
    if not within_limits("capture", settings.rate_limit_email, ip=False, email_index=email_index):
        return error_response(429)
    # A pooled connection the server dropped is replaced at checkout (engine.create_engine);
    # one dropped after that fails the write before it was committed (on PostgreSQL
    # the write is one statement: if it did commit, its token makes the second run a
    # replay): the write runs once more on a fresh connection instead of answering 503.
    try:
        try:
            stored = _store(form, judgement, valid, lang, email_index)
        except sa.exc.DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            log.warning("database connection lost mid-request; writing again on a new one")
            stored = _store(form, judgement, valid, lang, email_index)
    except db.CommitFailed as failed:
        return db.commit_failed(failed.error)
    # Bot counters go in the request's session, committed after the response is made.
    if not stored:  # a render token or ALTCHA solution used before: the bot reply
        refund_limits("capture", settings.rate_limit_email, email_index=email_index)
        bots.record_bot(db.session(), form, bots.Verdict.REPLAY)
    elif judgement.fast:  # faster than the fill time: accepted, double opt-in decides
        bots.record_bot(db.session(), form, bots.Verdict.TOO_FAST)
    return reply


def _store(
    form: Form,
    judgement: bots.Judgement,
    valid: queueing.ValidSubmission,
    lang: str,
    email_index: bytes,
) -> bool:
    """Spend the submission's single-use tokens and queue it, committed before the reply
    is made; False (nothing queued) when a token was used before.

    No ORM session (``db.short_write``): on SQLite a short transaction of a prepared
    INSERT per token and one for the sealed inbox row; on PostgreSQL one statement
    doing both, in autocommit (one round trip)."""
    app_runtime = runtime(current_app)
    factory = app_runtime.session_factory
    meta = request_meta()
    if app_runtime.engine.dialect.name == "postgresql":
        with db.short_write(factory, one_statement=True) as connection:
            stored = queueing.spend_and_accept(
                connection,
                app_runtime.vault,
                judgement.single_use,
                form,
                valid,
                language=lang,
                meta=meta,
                email_index=email_index,
            )
    else:
        # Sealed and bound first: under SQLite's write lock, which the worker and the
        # other requests queue for, only the INSERTs run (a replay seals for nothing).
        dialect = app_runtime.engine.dialect
        spend = bots.spending(dialect, judgement)
        queue = queueing.sealed_submission(
            dialect,
            app_runtime.vault,
            form,
            valid,
            language=lang,
            meta=meta,
            email_index=email_index,
        )
        # The queue file's lock only: not the one the worker holds while it stores leads.
        with db.short_write(factory, files=sqlite_writer.QUEUE) as connection:
            # The keys a replay did spend stay spent (their first use is this one).
            stored = links.spend_bound(connection, spend)
            if stored:
                queue.rowcount(connection)
    if stored:
        app_runtime.wake.set()  # an in-process worker starts at once
    return stored
