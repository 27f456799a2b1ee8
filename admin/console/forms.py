"""The console's forms section (issue 12.4): the list with submissions and confirmation
rate, a form's page (its definition, a live preview of the hosted page in both
languages, the embed snippets with copy buttons), create and edit, archive, restore,
and delete while never used.

Pages on the console's blueprint (``console.forms`` …); the logic is ``admin.forms``
over ``capture.definition_service`` (the admin API's too); the editor is ``form_editor``.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, current_app, redirect, request, url_for

from admin import auth
from admin import forms as form_service
from admin.console import form_editor
from admin.console.views import bp, page, typed_again
from admin.permissions import Permission
from capture import definition_service, definitions
from capture import service as capture_service
from capture.models import Form
from consent import service as consent_service
from leadvault import db, i18n
from widgets import service as widgets

SNIPPET_LABELS = {
    "hosted": i18n.N_("Link to the hosted page"),
    "iframe": i18n.N_("Iframe"),
    "javascript": i18n.N_("JavaScript loader"),
}
HTML_SNIPPET_LABEL = i18n.N_("HTML form (works without JavaScript)")


def _form_or_404(public_id: str) -> Form:
    found = form_service.find(db.session(), public_id)
    if found is None:
        abort(404)
    return found


@bp.get("/forms")
@auth.require(Permission.FORMS_READ)
def forms() -> Response:
    return page(
        "console/forms.html",
        section="forms",
        rows=form_service.overview(db.session()),
        kinds=form_editor.KINDS,
        may_write=auth.can(Permission.FORMS_WRITE),
    )


@bp.get("/forms/<form_id>")
@auth.require(Permission.FORMS_READ)
def form(form_id: str) -> Response:
    found = _form_or_404(form_id)
    session = db.session()
    from leadvault.app import runtime

    snippets = [
        (kind, SNIPPET_LABELS.get(kind, HTML_SNIPPET_LABEL), code)
        for kind, code in capture_service.embed_snippets(
            session, found, runtime(current_app).settings.base_url
        )
    ]
    return page(
        "console/form.html",
        section="forms",
        form=found,
        figures=form_service.figures(session, found),
        snippets=snippets,
        kinds=form_editor.KINDS,
        versions=definition_service.consent_versions_of(session, found),
        asset=widgets.asset_for_form(session, found),
        in_use=definition_service.in_use(session, found),
        may_write=auth.can(Permission.FORMS_WRITE),
        done=request.args.get("done"),
        purpose_label=lambda key: consent_service.purpose_label(key, i18n.current_language()),
    )


def _editor_page(
    editor: Any,
    purposes: list[form_editor.PurposeChoice],
    *,
    found: Form | None,
    groups: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Response:
    return page(
        "console/form_edit.html",
        status,
        section="forms",
        editor=typed_again(editor) if status >= 400 else editor,
        form=found,
        purposes=purposes,
        assets=widgets.list_assets(db.session()),
        groups=groups or {},
        kinds=form_editor.KINDS,
        asked=form_editor.ASKED,
        field_names=definitions.FIELD_NAMES,
        profile_fields=definitions.PROFILE_FIELDS,
    )


def _editor(found: Form | None) -> tuple[Any, list[form_editor.PurposeChoice]]:
    session = db.session()
    purposes = form_editor.purpose_choices(session)
    assets = [a.public_id for a in widgets.list_assets(session)]
    editor_class = form_editor.editor_class(purposes, assets)
    if request.method == "POST":
        return editor_class(), purposes
    data = (
        form_editor.data_of(session, found, purposes)
        if found is not None
        else form_editor.defaults(purposes)
    )
    return editor_class(formdata=None, data=data), purposes


@bp.route("/forms/new", methods=["GET", "POST"])
@auth.require(Permission.FORMS_WRITE)
def form_new() -> Response:
    return _edit(None)


@bp.route("/forms/<form_id>/edit", methods=["GET", "POST"])
@auth.require(Permission.FORMS_WRITE)
def form_edit(form_id: str) -> Response:
    return _edit(_form_or_404(form_id))


def _edit(found: Form | None) -> Response:
    """The editor (GET, HEAD), or the posted form saved (then its page) or refused (422)."""
    editor, purposes = _editor(found)
    if request.method != "POST":
        return _editor_page(editor, purposes, found=found)
    groups: dict[str, list[str]] = {}
    if editor.validate():
        session, actor, ip = db.session(), auth.current_actor(), auth.client_ip()
        asset = editor.asset.data or None
        try:
            definition = form_editor.definition(editor, purposes)
            if found is None:
                saved = form_service.create(session, definition, asset=asset, actor=actor, ip=ip)
            else:
                form_service.update(session, found, definition, asset=asset, actor=actor, ip=ip)
                saved = found
        except definitions.FormError as exc:
            form_editor.show_refusal(editor, exc, groups)
        else:
            done = "created" if found is None else "saved"
            return redirect(url_for("console.form", form_id=saved.public_id, done=done))
    return _editor_page(editor, purposes, found=found, groups=groups, status=422)


@bp.post("/forms/<form_id>/archive")
@auth.require(Permission.FORMS_WRITE)
def form_archive(form_id: str) -> Response:
    return _set_active(form_id, active=False)


@bp.post("/forms/<form_id>/restore")
@auth.require(Permission.FORMS_WRITE)
def form_restore(form_id: str) -> Response:
    return _set_active(form_id, active=True)


def _set_active(form_id: str, *, active: bool) -> Response:
    found = _form_or_404(form_id)
    form_service.set_active(
        db.session(), found, active, actor=auth.current_actor(), ip=auth.client_ip()
    )
    done = "restored" if active else "archived"
    return redirect(url_for("console.form", form_id=found.public_id, done=done))


@bp.get("/forms/<form_id>/delete")
@auth.require(Permission.FORMS_WRITE)
def form_delete_confirm(form_id: str) -> Response:
    found = _form_or_404(form_id)
    return page(
        "console/form_delete.html",
        section="forms",
        form=found,
        in_use=definition_service.in_use(db.session(), found),
    )


@bp.post("/forms/<form_id>/delete")
@auth.require(Permission.FORMS_WRITE)
def form_delete(form_id: str) -> Response:
    found = _form_or_404(form_id)
    try:
        form_service.delete(db.session(), found, actor=auth.current_actor(), ip=auth.client_ip())
    except definitions.FormInUse:
        return page("console/form_delete.html", 409, section="forms", form=found, in_use=True)
    return redirect(url_for("console.forms", deleted="1"))
