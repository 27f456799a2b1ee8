"""Console: consent texts and purposes (issue 12.5). Each purpose with its versions per
language side by side and the forms that show each; a new version is written, its
difference to the current one shown (words removed and added, marked in text, not
only in colour), then published. The logic is ``consent.texts`` (the API's and the
command line's); published versions never change.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, redirect, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, TextAreaField
from wtforms.validators import InputRequired, Length

from admin import auth
from admin.api.consent_texts import record_published
from admin.console.views import bp, page, typed_again
from admin.permissions import Permission
from capture import consent_texts as form_texts
from consent import service
from consent import texts as consent_texts
from consent.models import ConsentText
from leadvault import db, i18n
from leadvault.crypto import sha256_hex
from leadvault.i18n import lazy_gettext

# Versions shown per language on the overview (older ones: the purpose's own page).
OVERVIEW_VERSIONS = 5


class NewTextForm(FlaskForm):
    text = TextAreaField(
        lazy_gettext("Wording shown next to the checkbox"),
        validators=[
            InputRequired(message=lazy_gettext("Please write the consent text.")),
            Length(
                max=service.MAX_TEXT_LENGTH,
                message=lazy_gettext(
                    "The consent text may have at most %(count)s characters.",
                    count=service.MAX_TEXT_LENGTH,
                ),
            ),
        ],
    )
    adopt = BooleanField(
        lazy_gettext("Forms that show an older version show this one from now"), default=True
    )


def _purpose_or_404(purpose: str, per_language: int) -> consent_texts.PurposeTexts:
    found = consent_texts.overview(db.session(), purpose=purpose[:40], per_language=per_language)
    if not found:
        abort(404)
    return found[0]


def _forms_for(entries: list[consent_texts.PurposeTexts]) -> dict[int, list[Any]]:
    ids = {t.id for e in entries for rows in e.versions.values() for t in rows}
    return form_texts.forms_by_text(db.session(), ids)


@bp.get("/consent")
@auth.require(Permission.CONSENT_TEXTS_READ)
def consent_texts_page() -> Response:
    entries = consent_texts.overview(db.session(), per_language=OVERVIEW_VERSIONS)
    published = None
    published_raw = request.args.get("published", "")
    if published_raw.isdecimal() and len(published_raw) < 10:
        published = db.session().get(ConsentText, int(published_raw))
    return page(
        "console/consent_texts.html",
        section="consent",
        entries=entries,
        forms=_forms_for(entries),
        published=published,
        moved=[m for m in request.args.getlist("moved") if m.isprintable()][:50],
        label=service.purpose_label,
    )


@bp.get("/consent/<string:purpose>")
@auth.require(Permission.CONSENT_TEXTS_READ)
def consent_purpose(purpose: str) -> Response:
    entry = _purpose_or_404(purpose, consent_texts.MAX_VERSIONS)
    diffs = {
        lang: {
            row.id: consent_texts.diff(rows[i + 1].text if i + 1 < len(rows) else "", row.text)
            for i, row in enumerate(rows)
        }
        for lang, rows in entry.versions.items()
    }
    return page(
        "console/consent_purpose.html",
        section="consent",
        entry=entry,
        forms=_forms_for([entry]),
        diffs=diffs,
        label=service.purpose_label,
    )


def _new_page(
    entry: consent_texts.PurposeTexts,
    language: str,
    form: NewTextForm,
    status: int = 200,
    *,
    diff: list[consent_texts.DiffPart] | None = None,
    previewed: str | None = None,
) -> Response:
    current = entry.current(language)
    forms = form_texts.forms_by_text(db.session(), {current.id} if current else set())
    return page(
        "console/consent_new.html",
        status,
        section="consent",
        entry=entry,
        language=language,
        current=current,
        showing=forms.get(current.id, []) if current else [],
        form=typed_again(form) if status >= 400 else form,
        diff=diff,
        previewed=previewed,
        label=service.purpose_label,
    )


def _language() -> str:
    chosen = request.args.get("language") or ""
    return chosen if chosen in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE


@bp.get("/consent/<string:purpose>/new")
@auth.require(Permission.CONSENT_TEXTS_WRITE)
def consent_new(purpose: str) -> Response:
    entry = _purpose_or_404(purpose, 1)
    language = _language()
    current = entry.current(language)
    form = NewTextForm(formdata=None, text=current.text if current else "")
    return _new_page(entry, language, form)


@bp.post("/consent/<string:purpose>/new")
@auth.require(Permission.CONSENT_TEXTS_WRITE)
def consent_create(purpose: str) -> Response:
    """ "Show changes" renders the difference; "Publish" (only offered with it) publishes."""
    entry = _purpose_or_404(purpose, 1)
    language = _language()
    form = NewTextForm()
    if not form.validate_on_submit():
        return _new_page(entry, language, form, 422)
    session = db.session()
    try:
        diff = consent_texts.preview(
            session, purpose=entry.purpose.key, language=language, text=form.text.data or ""
        )
    except service.ConsentError as exc:
        form.text.errors = [exc.translated()]
        return _new_page(entry, language, form, 422)
    # Published only as previewed: a text changed after "Show changes" is shown again.
    previewed = sha256_hex(service.normalise_text(form.text.data or ""))
    if request.form.get("step") != "publish" or request.form.get("previewed") != previewed:
        return _new_page(entry, language, form, diff=diff, previewed=previewed)
    published = consent_texts.publish(
        session,
        purpose=entry.purpose.key,
        language=language,
        text=form.text.data or "",
        adopt=bool(form.adopt.data),
    )
    record_published(session, published)
    return redirect(
        url_for(
            "console.consent_texts_page",
            published=published.text.id,
            moved=published.forms_moved,
            _anchor=f"p-{entry.purpose.key}",
        ),
        303,
    )
