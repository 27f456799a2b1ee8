"""Event endpoints and the salesperson's handoff page (thin: parse, call, reply)."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    make_response,
    request,
    url_for,
)
from marshmallow import ValidationError

from leadvault import clock, db, i18n, looks
from leadvault.api import require_token
from leadvault.app import runtime
from leadvault.crypto import TokenExpired, TokenInvalid
from leadvault.i18n import N_
from leadvault.rate_limits import within_limits
from leadvault.web import client_json, csrf, invalid_link_page, private_page
from scoring import events, handoff, handoff_summary, schemas, stages, tracking
from scoring import rules as rules_module
from scoring.models import Handoff, Salesperson

bp = Blueprint("scoring", __name__, template_folder="templates")

_batch = schemas.BatchSchema()
_browser = schemas.BrowserEventSchema()


def _problem(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message, status=status), status


def _json_body() -> Any:
    # sendBeacon posts text/plain (no CORS preflight); accept any type that parses.
    try:
        return client_json(request.get_data(cache=False) or b"null")
    except ValueError:
        return None


@bp.post("/api/v1/events")
@csrf.exempt  # server-to-server: the API token authorizes
@require_token("events:write")
def api_events() -> tuple[Response, int]:
    body = _json_body()
    if not isinstance(body, dict):
        return _problem(
            400, i18n.gettext('the body must be a JSON object such as {"events": [...]}')
        )
    try:
        loaded = _batch.load(body)
    except ValidationError as exc:
        return jsonify(
            error=schemas.first_problem(exc.messages), errors=exc.normalized_messages(), status=422
        ), 422
    raw = [
        events.RawEvent(
            type=item["type"],
            occurred_at=item.get("occurred_at") or clock.now(),
            properties=item.get("properties") or {},
            lead_id=item.get("lead_id"),
            email=item.get("email"),
        )
        for item in loaded["events"]
    ]
    result = events.ingest(db.session(), raw, source="api")
    return jsonify(
        accepted=result.accepted, unknown_type=result.unknown_type, unknown_lead=result.unknown_lead
    ), 202


def _cors(response: Response) -> Response:
    # Any origin may call: the signed token, not the origin, says whose event it is;
    # no cookies are involved (no Allow-Credentials).
    origin = request.headers.get("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
    response.headers.add("Vary", "Origin")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/api/v1/track", methods=["OPTIONS"], provide_automatic_options=False)
def track_preflight() -> Response:
    return _cors(make_response("", 204))


@bp.post("/api/v1/track", provide_automatic_options=False)
@csrf.exempt  # called from the host's pages: the signed tracking token authorizes
def track() -> Response:
    # Anyone can post here; a token only matters once parsed. Count first.
    if not within_limits("track", runtime(current_app).settings.rate_limit_track):
        response = jsonify(
            error=i18n.gettext("too many tracking events from this address; try later"),
            status=429,
        )
        response.status_code = 429
        return _cors(response)
    body = _json_body()
    if not isinstance(body, dict):
        response, status = _problem(400, i18n.gettext("the body must be a JSON object"))
        response.status_code = status
        return _cors(response)
    try:
        loaded = _browser.load(body)
    except ValidationError as exc:
        response = jsonify(error=schemas.first_problem(exc.messages), status=422)
        response.status_code = 422
        return _cors(response)
    session = db.session()
    try:
        lead_id = tracking.lead_of_tracking_token(session, loaded["token"])
    except (TokenInvalid, TokenExpired):
        response = jsonify(error=i18n.gettext("the tracking token is not valid"), status=403)
        response.status_code = 403
        return _cors(response)
    raw = events.RawEvent(
        type=loaded["type"],
        occurred_at=loaded.get("occurred_at") or clock.now(),
        properties=loaded.get("properties") or {},
    )
    outcome = tracking.track(session, lead_id, raw)
    if outcome == "no_consent":
        response = jsonify(error=i18n.gettext("no tracking consent"), status=403)
        response.status_code = 403
        return _cors(response)
    response = jsonify(status=outcome)
    response.status_code = 202
    return _cors(response)


# --- the salesperson's page ------------------------------------------------------


def _resolve(token: str) -> Handoff | Response:
    """The token's handoff, or the page refusing the link: 400 for a broken, forged or
    foreign token (as every signed link answers, ``leadvault.web.invalid_link_page``),
    410 for one that expired or whose lead was erased since."""
    session = db.session()
    try:
        found = handoff.read_token(session, token)
    except TokenInvalid:
        return invalid_link_page()
    except TokenExpired:
        found = None
    if found is None:
        return private_page(
            "scoring/message.html",
            410,
            title=N_("This link has expired"),
            text=N_(
                "Handoff links work for 90 days, and no longer once the lead's data is erased."
            ),
        )
    if found.person_id is not None:
        person = session.get(Salesperson, found.person_id)
        if person is not None:
            i18n.set_language(person.language)
    return found


def _page(
    token: str,
    found: Handoff,
    *,
    error: str | None = None,
    status: int = 200,
    view: str | None = None,
    notice: str | None = None,
    bant_errors: dict[str, str] | None = None,
    bant_values: dict[str, str] | None = None,
) -> Response:
    session = db.session()
    rules = rules_module.active(session)
    lead = handoff_summary.summary(session, found, rules)
    if lead and found.status in handoff_summary.OPEN_TO_PERSON:  # the page shows the contact
        looks.record(
            found.lead_id,
            actor=handoff.person_label(found),
            fields=handoff_summary.fields_shown(lead),
            via="handoff_page",
        )
    return private_page(
        "scoring/handoff.html",
        status,
        token=token,
        status=found.status,
        lead=lead,
        reasons=list(stages.REJECT_REASONS),
        selected_reason=request.args.get("reason"),
        bant_points=stages.BANT,
        reason_labels=stages.REASON_LABELS,
        bant_labels=stages.BANT_LABELS,
        outcome_labels=stages.OUTCOME_LABELS,
        bant_questions=stages.BANT_QUESTIONS,
        bant_answers=stages.BANT_ANSWERS,
        stage_labels=stages.STAGE_LABELS,
        bant_errors=bant_errors or {},
        # What was just chosen (a form with errors), else what is stored.
        bant_values=bant_values if bant_values is not None else (lead.get("bant") or {}),
        notice=notice,
        error=error,
        view=view,  # "accept" or "reject": that decision's own page; None: the overview
    )


def _invalid() -> Response:
    """An action this page does not have (GET or POST): no such page (404)."""
    return private_page(
        "scoring/message.html",
        404,
        title=N_("Something is not right"),
        text=N_("This link is not valid or has expired."),
    )


# The decisions that have a page of their own (GET /h/<token>/<action>).
PAGES = frozenset({"accept", "reject"})


@bp.get("/h/<token>")
@bp.get("/h/<token>/<action>")
def page(token: str, action: str | None = None) -> Response:
    """GET never changes anything (mail scanners follow links): it shows the forms."""
    found = _resolve(token)
    if isinstance(found, Response):
        return found
    if action is not None and action not in PAGES:
        return _invalid()  # only the two decisions have a page of their own
    return _page(token, found, view=action)


@bp.post("/h/<token>/<action>")
def act(token: str, action: str) -> Response:
    found = _resolve(token)
    if isinstance(found, Response):
        return found
    session = db.session()
    try:
        # A refused action leaves nothing behind; the page that answers it shows the
        # lead again, and that look stays in the audit trail (leadvault.looks).
        with session.begin_nested():
            if action == "accept":
                handoff.accept(session, found)
            elif action == "reject":
                handoff.reject(session, found, request.form.get("reason", ""))
            elif action == "bant":
                answers, problems = handoff.read_bant(request.form)
                if problems:
                    return _page(
                        token, found, status=422, bant_errors=problems, bant_values=answers
                    )
                handoff.record_bant(session, found, answers)
                return _page(token, found, notice=N_("Your answers are saved."))
            elif action in {"sql", "won", "lost"}:
                handoff.mark(session, found, action)
            else:
                return _invalid()
    except handoff.BantIncomplete as exc:
        missing = handoff.bant_missing(found)
        return _page(
            token,
            found,
            error=str(exc),
            status=409,
            bant_errors=dict.fromkeys(missing, N_("For SQL, this must be answered yes.")),
        )
    except handoff.HandoffError as exc:
        view = action if action in PAGES else None
        return _page(token, found, error=str(exc), status=409, view=view)
    return private_page(
        "scoring/message.html",
        title=N_("Thank you"),
        text=N_("Your decision is recorded."),
        back=url_for("scoring.page", token=token),
    )
