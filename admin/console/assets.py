"""Console: gated assets (whitepapers). The list (live or archived) with the forms that
deliver each, an upload, the title and description per language, archiving. The logic
is ``widgets.assets`` (the API's and the command line's); each change is audited.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, redirect, request, url_for
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from admin import auth
from admin.api.assets import asset_rows, record, texts_of
from admin.console.views import bp, page, typed_again
from admin.permissions import Permission
from leadvault import audit, db, sizes
from leadvault.i18n import lazy_gettext
from leadvault.web import csrf
from widgets import assets, service
from widgets.models import Asset

# The texts beside the file are small; the file itself is spooled to disk.
_FORM_MEMORY = 64 * 1024
_TOO_LONG = lazy_gettext("At most %(max)s characters.")


def _title(label: Any, *, required: bool) -> StringField:
    first = (
        InputRequired(message=lazy_gettext("Please give the asset a title."))
        if required
        else Optional()
    )
    return StringField(label, validators=[first, Length(max=assets.MAX_TITLE, message=_TOO_LONG)])


def _description(label: Any) -> TextAreaField:
    return TextAreaField(
        label, validators=[Optional(), Length(max=assets.MAX_DESCRIPTION, message=_TOO_LONG)]
    )


class AssetTextsForm(FlaskForm):
    title_en = _title(lazy_gettext("Title in English"), required=True)
    title_de = _title(lazy_gettext("Title in German (empty: the English one)"), required=False)
    description_en = _description(lazy_gettext("Description in English"))
    description_de = _description(lazy_gettext("Description in German"))


class AssetUploadForm(AssetTextsForm):
    file = FileField(lazy_gettext("File"))


class ArchiveForm(FlaskForm):
    """Only its CSRF token."""


def _asset_or_404(asset_id: str) -> Asset:
    found = service.get_asset(db.session(), asset_id[:32])
    if found is None:
        abort(404)
    return found


def _apply_error(form: FlaskForm, exc: assets.AssetError) -> None:
    field = getattr(form, exc.field or "", None) if exc.field else None
    target = field if field is not None else form.file if hasattr(form, "file") else None
    if target is None:
        form.form_errors.append(exc.translated())
    else:
        target.errors = [*target.errors, exc.translated()]


def _list_page(upload: AssetUploadForm, status: int = 200) -> Response:
    archived = request.args.get("archived") == "1"
    session = db.session()
    found = assets.listing(session, archived=archived, limit=200)
    return page(
        "console/assets.html",
        status,
        section="assets",
        rows=asset_rows(session, found),
        archived=archived,
        upload=typed_again(upload) if status >= 400 else upload,
        max_size=sizes.readable(assets.MAX_BYTES),
        kinds=", ".join(sorted(k.lstrip(".").upper() for k in assets.KINDS)),
        done=request.args.get("done", "")[:20],
    )


@bp.get("/assets")
@auth.require(Permission.ASSETS_READ)
def assets_page() -> Response:
    return _list_page(AssetUploadForm(formdata=None))


@bp.post("/assets")
@auth.require(Permission.ASSETS_WRITE)
# The global CSRF check would read the body before the upload limit is raised: the
# form checks its token itself instead.
@csrf.exempt
def asset_upload() -> Response:
    request.max_content_length = assets.MAX_BYTES + _FORM_MEMORY
    request.max_form_memory_size = _FORM_MEMORY
    try:
        form = AssetUploadForm()  # validates the CSRF token itself
    except RequestEntityTooLarge:  # the body is over the limit: nothing of it is read
        empty = AssetUploadForm(formdata=None)
        _apply_error(empty, assets.too_large())
        return _list_page(empty, 413)
    if not form.validate_on_submit():
        return _list_page(form, 422)
    upload = form.file.data
    if upload is None or not getattr(upload, "filename", ""):
        form.file.errors = [*form.file.errors, lazy_gettext("Choose a file to upload.")]
        return _list_page(form, 422)
    session = db.session()
    try:
        asset = assets.store(
            session, upload.stream, filename=upload.filename, texts=texts_of(form.data)
        )
    except assets.AssetError as exc:
        _apply_error(form, exc)
        return _list_page(form, 413 if exc.too_large else 422)
    record(session, asset, audit.Action.ASSET_UPLOADED)
    return redirect(url_for("console.asset_page", asset_id=asset.public_id, done="uploaded"), 303)


def _asset_page(asset: Asset, form: AssetTextsForm, status: int = 200, **extra: Any) -> Response:
    return page(
        "console/asset.html",
        status,
        section="assets",
        asset=asset,
        row=asset_rows(db.session(), [asset])[0],
        form=typed_again(form) if status >= 400 else form,
        archive_form=ArchiveForm(formdata=None),
        done=request.args.get("done", "")[:20],
        **extra,
    )


def _texts_form(asset: Asset) -> AssetTextsForm:
    """The form filled with what the asset says now."""
    return AssetTextsForm(
        formdata=None,
        title_en=(asset.titles or {}).get("en") or asset.title,
        title_de=(asset.titles or {}).get("de", ""),
        description_en=asset.description_in("en"),
        description_de=asset.description_in("de"),
    )


@bp.get("/assets/<string:asset_id>")
@auth.require(Permission.ASSETS_READ)
def asset_page(asset_id: str) -> Response:
    asset = _asset_or_404(asset_id)
    return _asset_page(asset, _texts_form(asset))


@bp.post("/assets/<string:asset_id>")
@auth.require(Permission.ASSETS_WRITE)
def asset_update(asset_id: str) -> Response:
    asset = _asset_or_404(asset_id)
    form = AssetTextsForm()
    if not form.validate_on_submit():
        return _asset_page(asset, form, 422)
    session = db.session()
    try:
        assets.update_texts(session, asset, texts_of(form.data))
    except assets.AssetError as exc:
        _apply_error(form, exc)
        return _asset_page(asset, form, 422)
    record(session, asset, audit.Action.ASSET_TEXTS_CHANGED)
    return redirect(url_for("console.asset_page", asset_id=asset.public_id, done="saved"), 303)


@bp.post("/assets/<string:asset_id>/archive")
@auth.require(Permission.ASSETS_WRITE)
def asset_archive(asset_id: str) -> Response:
    asset = _asset_or_404(asset_id)
    if not ArchiveForm().validate_on_submit():
        abort(400)
    session = db.session()
    was_live = asset.archived_at is None
    try:
        assets.archive(session, asset)
    except assets.AssetError as exc:
        return _asset_page(asset, _texts_form(asset), 409, archive_error=exc.translated())
    if was_live:
        record(session, asset, audit.Action.ASSET_ARCHIVED)
    return redirect(url_for("console.asset_page", asset_id=asset.public_id, done="archived"), 303)
