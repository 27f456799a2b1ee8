"""The console's scoring pages: the rules editor (validate, dry run, activate with a
confirm step), the version history with diffs, and the open and overdue handoffs.

Thin: the services are ``scoring.rulesets`` and ``scoring.handoff_board``, the
admin API's too. The rules text travels in the POST body only (CSRF-protected),
never in a URL.
"""

from __future__ import annotations

from typing import Any

from flask import Response, redirect, request, url_for

from admin import auth
from admin.api.scoring import handoff_scope
from admin.console.views import _error, bp, page
from admin.permissions import Permission
from leadvault import db, i18n
from leadvault.i18n import N_
from leadvault.model_base import ROW_ID_MAX
from scoring import handoff_board, rules, rulesets, unrouted

P = Permission


def _submitted_text() -> str | None:
    text = request.form.get("text")
    if text is None:
        return None
    return text.replace("\r\n", "\n")


def _valid_text() -> str | Response:
    """The submitted rules file, or the answer refusing it (empty: 400; the refused
    line marked in the editor: 422)."""
    text = _submitted_text()
    if not text or not text.strip():
        return _error(400, N_("The rules file is empty."))
    problem = rulesets.validate(text)
    if problem is not None:
        return _editor(text, 422, problem=problem, checked=True)
    return text


def numbered(text: str, problem: rulesets.Problem | None) -> list[dict[str, Any]]:
    """The file's lines with their numbers, the refused one marked with the reason."""
    return [
        {
            "number": number,
            "text": line,
            "problem": (
                problem.reason(i18n.current_language())
                if problem and problem.line == number
                else None
            ),
        }
        for number, line in enumerate(text.split("\n"), start=1)
    ]


def _editor(
    text: str,
    status: int = 200,
    *,
    problem: rulesets.Problem | None = None,
    preview: rulesets.DryRun | None = None,
    checked: bool = False,
) -> Response:
    session = db.session()
    active = rulesets.active_row(session)
    return page(
        "console/scoring.html",
        status,
        section="scoring",
        text=text,
        rows=max(12, text.count("\n") + 3),
        gutter=range(1, max(12, text.count("\n") + 3) + 1),
        active=active,
        problem=problem,
        reason=problem.reason(i18n.current_language()) if problem else None,
        listing=numbered(text, problem) if problem else None,
        preview=preview,
        checked=checked,
        may_activate=auth.can(P.SCORING_WRITE),
        dry_run_limit=rulesets.DRY_RUN_DEFAULT,
    )


@bp.get("/scoring")
@auth.require(P.SCORING_READ)
def scoring() -> Response:
    return _editor(rulesets.current_text(db.session()))


@bp.post("/scoring")
@auth.require(P.SCORING_READ)
def scoring_check() -> Response:
    """Validate the edited file; with ``action=dry_run`` also count what would change."""
    text = _valid_text()
    if isinstance(text, Response):
        return text
    preview = None
    if request.form.get("action") == "dry_run":
        preview = rulesets.dry_run(db.session(), text)
    return _editor(text, preview=preview, checked=True)


@bp.post("/scoring/confirm")
@auth.require(P.SCORING_WRITE)
def scoring_confirm() -> Response:
    """The confirm step: what changes against the active version, then one button."""
    text = _valid_text()
    if isinstance(text, Response):
        return text
    return _confirm_page(text, None)


def _confirm_page(text: str, restoring: Any) -> Response:
    """What activating ``text`` changes against the active version, and one button."""
    session = db.session()
    active = rulesets.active_row(session)
    return page(
        "console/scoring_confirm.html",
        section="scoring",
        text=text,
        active=active,
        diff=rulesets.diff_texts(
            rulesets.current_text(session),
            text,
            f"v{active.version}" if active else "example",
            f"v{restoring.version}" if restoring else "new",
        ),
        preview=rulesets.dry_run(session, text),
        restoring=restoring,
        scores_nothing=rulesets.scores_nothing(text),
        unrouted=unrouted.in_text(session, text),
    )


def _allow_empty() -> bool:
    """The confirm page's box for a file without a scoring rule (NoScoringRules)."""
    return request.form.get("allow_empty") == "1"


def _no_scoring_rules(text: str, exc: rulesets.NoScoringRules) -> Response:
    """Back to the editor, the reason above the file: nothing was activated."""
    return _editor(text, 422, problem=rulesets.Problem(None, exc.message, exc.values), checked=True)


@bp.post("/scoring/activate")
@auth.require(P.SCORING_WRITE)
def scoring_activate() -> Response:
    text = _valid_text()
    if isinstance(text, Response):
        return text
    try:
        row = rulesets.activate(
            db.session(),
            text,
            actor=auth.current_actor(),
            ip=auth.client_ip(),
            allow_empty=_allow_empty(),
        )
    except rules.RulesError:
        return _error(409, N_("The rules changed at the same time. Please try again."))
    except rulesets.NoScoringRules as exc:
        return _no_scoring_rules(text, exc)
    return redirect(url_for("console.scoring_version", version=row.version, activated=1))


# --- versions ---------------------------------------------------------------------------


@bp.get("/scoring/versions")
@auth.require(P.SCORING_READ)
def scoring_versions() -> Response:
    raw = request.args.get("before") or ""
    if raw and not raw.isdecimal():
        return _error(400, N_("This page of the list no longer exists; start again."))
    before = int(raw) if raw and int(raw) <= ROW_ID_MAX else None
    rows = rulesets.history(db.session(), limit=50, before=before)
    return page(
        "console/scoring_versions.html",
        section="scoring",
        rows=rows,
        older=rows[-1].version if len(rows) == 50 else None,
    )


def _version_or_404(version: int) -> Any:
    if not 0 < version <= ROW_ID_MAX:
        return None
    try:
        return rulesets.by_version(db.session(), version)
    except rulesets.RuleSetError:
        return None


@bp.get("/scoring/versions/<int:version>")
@auth.require(P.SCORING_READ)
def scoring_version(version: int) -> Response:
    row = _version_or_404(version)
    if row is None:
        return _error(404, N_("There is no such rules version."))
    return page(
        "console/scoring_version.html",
        section="scoring",
        row=row,
        diff=rulesets.diff(db.session(), version),
        lines=numbered(row.raw_text, None),
        activated=request.args.get("activated") == "1",
        may_activate=auth.can(P.SCORING_WRITE),
    )


@bp.get("/scoring/versions/<int:version>/restore")
@auth.require(P.SCORING_WRITE)
def scoring_restore_confirm(version: int) -> Response:
    """The confirm step of making an earlier version active again (a GET only shows)."""
    row = _version_or_404(version)
    if row is None:
        return _error(404, N_("There is no such rules version."))
    return _confirm_page(row.raw_text, row)


@bp.post("/scoring/versions/<int:version>/restore")
@auth.require(P.SCORING_WRITE)
def scoring_restore(version: int) -> Response:
    old = _version_or_404(version)
    if old is None:
        return _error(404, N_("There is no such rules version."))
    try:
        row = rulesets.restore(
            db.session(),
            version,
            actor=auth.current_actor(),
            ip=auth.client_ip(),
            allow_empty=_allow_empty(),
        )
    except rules.RulesError:
        return _error(409, N_("The rules changed at the same time. Please try again."))
    except rulesets.NoScoringRules as exc:
        return _no_scoring_rules(old.raw_text, exc)
    return redirect(url_for("console.scoring_version", version=row.version, activated=1))


# --- handoffs ---------------------------------------------------------------------------


@bp.get("/handoffs")
@auth.require(P.HANDOFFS_OWN)
def handoffs() -> Response:
    overdue_only = request.args.get("overdue") == "1"
    after = None
    if request.args.get("after"):
        try:
            after = handoff_board.decode_cursor(request.args["after"][:200])
        except ValueError:
            return _error(400, N_("This page of the list no longer exists; start again."))
    session = db.session()
    scope = handoff_scope()
    found = handoff_board.board(
        session, person_id=scope, overdue_only=overdue_only, limit=50, after=after
    )
    names = handoff_board.people_names(
        session, {row.person_id for row in found.rows if row.person_id is not None}
    )
    return page(
        "console/handoffs.html",
        section="handoffs",
        board=found,
        names=names,
        overdue_only=overdue_only,
        own_only=scope is not None,
        next_after=handoff_board.encode_cursor(found.next_after),
    )
