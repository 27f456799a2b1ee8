"""The admin API's forms: list, read, create, edit (PUT replaces, PATCH changes some
keys), archive and restore, delete while never used, and the allowed origins.

Registered on the API's blueprint (``admin_api``) with its request helpers; the
logic is ``admin.forms`` over ``capture.definition_service``, the console's too.
"""

from __future__ import annotations

from flask import Response

from admin import auth
from admin import forms as form_service
from admin.api import schemas
from admin.api.registry import operation
from admin.api.views import Refusal, _body, _dump, bp
from admin.permissions import Permission
from capture import definition_service, definitions
from capture.models import Form
from capture.schemas import definition_from
from leadvault import audit, db
from leadvault.i18n import N_

P = Permission
_FORM = (("form_id", "string"),)


def _form(public_id: str) -> Form:
    found = form_service.find(db.session(), public_id)
    if found is None:
        raise Refusal(404)
    return found


def _show(form: Form, status: int = 200) -> Response:
    return _dump(schemas.FormSchema, form_service.describe(db.session(), form), status)


def _refused(exc: definitions.FormError) -> Refusal:
    return Refusal(422, errors={exc.field or "_schema": [exc.translated()]})


@operation(
    bp,
    "GET",
    "/forms",
    summary="Every form (archived ones too), newest first",
    permission=P.FORMS_READ,
    response=schemas.FormSchema,
    many=True,
    tag="forms",
)
def forms_list() -> Response:
    session = db.session()
    rows = [form_service.describe(session, f.form) for f in form_service.overview(session)]
    return _dump(schemas.FormSchema, rows, many=True)


@operation(
    bp,
    "POST",
    "/forms",
    summary="Create a form (purposes default to the kind's own; consent texts to the newest)",
    permission=P.FORMS_WRITE,
    body=schemas.FormWriteSchema,
    response=schemas.FormSchema,
    status=201,
    tag="forms",
)
def forms_create() -> Response:
    args = _body(schemas.FormWriteSchema)
    asset = args.pop("asset", None)
    try:
        form = form_service.create(
            db.session(),
            definition_from(args),
            asset=asset,
            actor=auth.current_actor(),
            ip=auth.client_ip(),
        )
    except definitions.FormError as exc:
        raise _refused(exc) from None
    return _show(form, 201)


@operation(
    bp,
    "GET",
    "/forms/{form_id}",
    summary="One form",
    permission=P.FORMS_READ,
    response=schemas.FormSchema,
    path_params=_FORM,
    tag="forms",
)
def form_detail(form_id: str) -> Response:
    return _show(_form(form_id))


def _edit(form_id: str, *, partial: bool) -> Response:
    args = _body(schemas.FormPatchSchema if partial else schemas.FormWriteSchema)
    form = _form(form_id)
    session = db.session()
    asset = args.pop("asset", form_service.KEEP if partial else None)
    base = definition_service.definition_of(session, form) if partial else None
    try:
        form_service.update(
            session,
            form,
            definition_from(args, base),
            asset=asset,
            actor=auth.current_actor(),
            ip=auth.client_ip(),
        )
    except definitions.FormError as exc:
        raise _refused(exc) from None
    return _show(form)


@operation(
    bp,
    "PUT",
    "/forms/{form_id}",
    summary="Replace a form's definition (its id, and so every embed, stays)",
    permission=P.FORMS_WRITE,
    body=schemas.FormWriteSchema,
    response=schemas.FormSchema,
    path_params=_FORM,
    tag="forms",
)
def form_replace(form_id: str) -> Response:
    return _edit(form_id, partial=False)


@operation(
    bp,
    "PATCH",
    "/forms/{form_id}",
    summary="Change some of a form's keys (the others stay)",
    permission=P.FORMS_WRITE,
    body=schemas.FormPatchSchema,
    response=schemas.FormSchema,
    path_params=_FORM,
    tag="forms",
)
def form_update(form_id: str) -> Response:
    return _edit(form_id, partial=True)


@operation(
    bp,
    "DELETE",
    "/forms/{form_id}",
    summary="Delete a form that never took a submission (a used one is archived instead: 409)",
    permission=P.FORMS_WRITE,
    status=204,
    errors=(409,),
    path_params=_FORM,
    tag="forms",
)
def form_delete(form_id: str) -> Response:
    try:
        form_service.delete(
            db.session(), _form(form_id), actor=auth.current_actor(), ip=auth.client_ip()
        )
    except definitions.FormInUse:
        raise Refusal(
            409, N_("This form has taken submissions: archive it instead of deleting it.")
        ) from None
    return Response(status=204)


@operation(
    bp,
    "POST",
    "/forms/{form_id}/archive",
    summary="Archive a form (forms are never deleted once used): it takes no more submissions",
    permission=P.FORMS_WRITE,
    response=schemas.FormSchema,
    path_params=_FORM,
    tag="forms",
)
def form_archive(form_id: str) -> Response:
    return _set_active(form_id, active=False)


@operation(
    bp,
    "POST",
    "/forms/{form_id}/restore",
    summary="Take submissions again on an archived form",
    permission=P.FORMS_WRITE,
    response=schemas.FormSchema,
    path_params=_FORM,
    tag="forms",
)
def form_restore(form_id: str) -> Response:
    return _set_active(form_id, active=True)


def _set_active(form_id: str, *, active: bool) -> Response:
    form = _form(form_id)
    form_service.set_active(
        db.session(), form, active, actor=auth.current_actor(), ip=auth.client_ip()
    )
    return _show(form)


@operation(
    bp,
    "PUT",
    "/forms/{form_id}/origins",
    summary="Replace the sites (origins) a form may be embedded on and posted from",
    permission=P.FORMS_WRITE,
    body=schemas.OriginsSchema,
    response=schemas.FormSchema,
    path_params=_FORM,
    tag="forms",
)
def form_origins(form_id: str) -> Response:
    args = _body(schemas.OriginsSchema)
    form = _form(form_id)
    session = db.session()
    before = len(form.allowed_origins)
    definition = definition_service.definition_of(session, form)
    try:
        definition_service.update_form(
            session,
            form,
            definition_from({"allowed_origins": args["allowed_origins"]}, definition),
        )
    except definitions.FormError as exc:
        raise _refused(exc) from None
    auth.record_audit(
        session,
        audit.Action.FORM_ORIGINS_CHANGED,
        audit.ObjectType.FORM,
        form.public_id,
        detail={"before": before, "after": len(form.allowed_origins)},
    )
    return _show(form)
