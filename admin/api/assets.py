"""The admin API's gated assets (whitepapers): list, upload, read, edit the title and
description per language, archive.

Operations go on the API's one blueprint (``admin.api.views.bp``: its CSRF guard
and problem+json answers); the logic is ``widgets.assets``, the command line's.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request
from marshmallow import ValidationError
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge

from admin import auth
from admin.api.registry import operation
from admin.api.views import Refusal, _body, _dump, _query, bp
from admin.permissions import Permission
from leadvault import audit, db, i18n
from leadvault.i18n import N_
from widgets import assets, schemas, service
from widgets.models import Asset

_ASSET = (("asset_id", "string"),)
# The texts of a multipart upload are small; the file itself is spooled to disk.
_FORM_MEMORY = 64 * 1024


def asset_rows(session: Session, found: list[Asset]) -> list[dict[str, Any]]:
    """Assets with the forms that deliver each (the console shows the same)."""
    forms = assets.forms_delivering(session, [a.id for a in found])
    return [
        {
            "public_id": a.public_id,
            "title": a.title,
            "titles": dict(a.titles or {i18n.DEFAULT_LANGUAGE: a.title}),
            "descriptions": dict(a.descriptions or {}),
            "filename": a.filename,
            "content_type": a.content_type,
            "size": a.size,
            "sha256": a.sha256,
            "download_count": a.download_count,
            "created_at": a.created_at,
            "archived_at": a.archived_at,
            "forms": [{"id": f.public_id, "name": f.name, "active": f.active} for f in forms[a.id]],
        }
        for a in found
    ]


def texts_of(args: dict[str, Any]) -> assets.AssetTexts:
    return assets.AssetTexts(
        titles={lang: args.get(f"title_{lang}") or "" for lang in i18n.LANGUAGES},
        descriptions={lang: args.get(f"description_{lang}") or "" for lang in i18n.LANGUAGES},
    )


def record(session: Session, asset: Asset, action: audit.Action) -> None:
    """One audit entry per change of an asset (the console's forms write the same)."""
    auth.record_audit(session, action, audit.ObjectType.ASSET, asset.public_id)


def _refused(exc: assets.AssetError) -> Refusal:
    if exc.conflict:
        return Refusal(409, exc.translated())
    if exc.too_large:
        return Refusal(413, exc.translated(), errors={"file": [exc.translated()]})
    return Refusal(422, errors={exc.field or "_schema": [exc.translated()]})


def _asset(asset_id: str) -> Asset:
    found = service.get_asset(db.session(), asset_id) if len(asset_id) <= 32 else None
    if found is None:
        raise Refusal(404)
    return found


@operation(
    bp,
    "GET",
    "/assets",
    summary="Gated assets, newest first (the live ones, or with archived=true the archived)",
    permission=Permission.ASSETS_READ,
    query=schemas.AssetQuerySchema,
    response=schemas.AssetSchema,
    many=True,
    tag="assets",
)
def assets_list() -> Response:
    args = _query(schemas.AssetQuerySchema)
    session = db.session()
    found = assets.listing(session, archived=args["archived"], limit=args["limit"])
    return _dump(schemas.AssetSchema, asset_rows(session, found), many=True)


@operation(
    bp,
    "POST",
    "/assets",
    summary="Upload a gated asset (multipart/form-data: file, title_en, title_de, "
    "description_en, description_de)",
    permission=Permission.ASSETS_WRITE,
    body=schemas.AssetUploadSchema,
    body_types=("multipart/form-data",),
    response=schemas.AssetSchema,
    status=201,
    # Raised by the API's guard before the CSRF check of a console sign-in reads the body
    # (read at request time: tests lower assets.MAX_BYTES).
    max_bytes=lambda: assets.MAX_BYTES + _FORM_MEMORY,
    # Whether the guard, the CSRF check or the view hits the limit: the file and its limit.
    too_large=lambda: _refused(assets.too_large()),
    tag="assets",
)
def asset_upload() -> Response:
    request.max_form_memory_size = _FORM_MEMORY
    if request.mimetype != "multipart/form-data":
        raise Refusal(415, N_("Send the file as multipart/form-data (field 'file')."))
    try:
        upload = request.files.get("file")
    except RequestEntityTooLarge:
        raise _refused(assets.too_large()) from None
    try:
        args = schemas.AssetTextsSchema().load(
            {k: v for k, v in request.form.items() if k != "file"}
        )
    except ValidationError as exc:
        raise Refusal(422, errors=dict(exc.messages)) from None  # type: ignore[arg-type]
    if upload is None or not upload.filename:
        raise Refusal(422, errors={"file": [i18n.gettext(N_("Choose a file to upload."))]})
    session = db.session()
    try:
        asset = assets.store(session, upload.stream, filename=upload.filename, texts=texts_of(args))
    except assets.AssetError as exc:
        raise _refused(exc) from None
    record(session, asset, audit.Action.ASSET_UPLOADED)
    return _dump(schemas.AssetSchema, asset_rows(session, [asset])[0], status=201)


@operation(
    bp,
    "GET",
    "/assets/{asset_id}",
    summary="One asset with the forms that deliver it",
    permission=Permission.ASSETS_READ,
    response=schemas.AssetSchema,
    path_params=_ASSET,
    tag="assets",
)
def asset_detail(asset_id: str) -> Response:
    return _dump(schemas.AssetSchema, asset_rows(db.session(), [_asset(asset_id)])[0])


@operation(
    bp,
    "PUT",
    "/assets/{asset_id}/texts",
    summary="Replace an asset's title and description per language",
    permission=Permission.ASSETS_WRITE,
    body=schemas.AssetTextsSchema,
    response=schemas.AssetSchema,
    path_params=_ASSET,
    tag="assets",
)
def asset_texts(asset_id: str) -> Response:
    args = _body(schemas.AssetTextsSchema)
    asset = _asset(asset_id)
    session = db.session()
    try:
        assets.update_texts(session, asset, texts_of(args))
    except assets.AssetError as exc:
        raise _refused(exc) from None
    record(session, asset, audit.Action.ASSET_TEXTS_CHANGED)
    return _dump(schemas.AssetSchema, asset_rows(session, [asset])[0])


@operation(
    bp,
    "POST",
    "/assets/{asset_id}/archive",
    summary="Archive an asset no active form delivers (links already mailed keep working)",
    permission=Permission.ASSETS_WRITE,
    response=schemas.AssetSchema,
    path_params=_ASSET,
    errors=(409,),
    tag="assets",
)
def asset_archive(asset_id: str) -> Response:
    asset = _asset(asset_id)
    session = db.session()
    was_live = asset.archived_at is None
    try:
        assets.archive(session, asset)
    except assets.AssetError as exc:
        raise _refused(exc) from None
    if was_live:
        record(session, asset, audit.Action.ASSET_ARCHIVED)
    return _dump(schemas.AssetSchema, asset_rows(session, [asset])[0])
