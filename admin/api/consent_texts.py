"""The admin API's consent texts: purposes with their versions per language and the
forms that show each, and a new version (published versions never change).

Operations go on the API's one blueprint (``admin.api.views.bp``: its CSRF guard
and problem+json answers); the logic is ``consent.texts``, the command line's.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from sqlalchemy.orm import Session

from admin import auth
from admin.api.registry import operation
from admin.api.views import Refusal, _body, _dump, _query, bp
from admin.permissions import Permission
from capture import consent_texts as form_texts
from consent import schemas, service
from consent import texts as consent_texts
from consent.models import ConsentText
from leadvault import audit, db

_PURPOSE = (("purpose", "string"),)


def _text_row(text: ConsentText, forms: dict[int, list[Any]]) -> dict[str, Any]:
    return {
        "id": text.id,
        "purpose": text.purpose,
        "language": text.language,
        "version": text.version,
        "text": text.text,
        "sha256": text.sha256,
        "created_at": text.created_at,
        "forms": [
            {"id": f.public_id, "name": f.name, "active": f.active} for f in forms.get(text.id, [])
        ],
    }


def purpose_rows(
    session: Session, entries: list[consent_texts.PurposeTexts]
) -> list[dict[str, Any]]:
    """Purposes with their versions and, for each, the forms that show it."""
    ids = {t.id for e in entries for rows in e.versions.values() for t in rows}
    forms = form_texts.forms_by_text(session, ids)
    return [
        {
            "key": entry.purpose.key,
            "label": service.purpose_label(entry.purpose.key, "en"),
            "marketing": entry.purpose.marketing,
            "versions": {
                lang: [_text_row(t, forms) for t in rows] for lang, rows in entry.versions.items()
            },
        }
        for entry in entries
    ]


@operation(
    bp,
    "GET",
    "/consent/purposes",
    summary="Every purpose with its consent text versions per language (newest first) "
    "and the forms that show each",
    permission=Permission.CONSENT_TEXTS_READ,
    query=schemas.PurposeQuerySchema,
    response=schemas.PurposeSchema,
    many=True,
    tag="consent texts",
)
def purposes_list() -> Response:
    args = _query(schemas.PurposeQuerySchema)
    session = db.session()
    entries = consent_texts.overview(session, per_language=args["versions"])
    return _dump(schemas.PurposeSchema, purpose_rows(session, entries), many=True)


def _one(purpose: str, per_language: int) -> consent_texts.PurposeTexts:
    found = consent_texts.overview(db.session(), purpose=purpose[:40], per_language=per_language)
    if not found:
        raise Refusal(404)
    return found[0]


@operation(
    bp,
    "GET",
    "/consent/purposes/{purpose}",
    summary="One purpose with its consent text versions per language and their forms",
    permission=Permission.CONSENT_TEXTS_READ,
    query=schemas.PurposeQuerySchema,
    response=schemas.PurposeSchema,
    path_params=_PURPOSE,
    tag="consent texts",
)
def purpose_detail(purpose: str) -> Response:
    args = _query(schemas.PurposeQuerySchema)
    entry = _one(purpose, args["versions"])
    return _dump(schemas.PurposeSchema, purpose_rows(db.session(), [entry])[0])


@operation(
    bp,
    "POST",
    "/consent/purposes/{purpose}/texts",
    summary="Publish a new version of a purpose's consent text in one language; "
    "by default the forms showing an older one show it from now",
    permission=Permission.CONSENT_TEXTS_WRITE,
    body=schemas.NewTextSchema,
    response=schemas.PublishedSchema,
    status=201,
    path_params=_PURPOSE,
    errors=(409,),
    tag="consent texts",
)
def text_publish(purpose: str) -> Response:
    args = _body(schemas.NewTextSchema)
    entry = _one(purpose, 1)
    session = db.session()
    try:
        published = consent_texts.publish(
            session,
            purpose=entry.purpose.key,
            language=args["language"],
            text=args["text"],
            adopt=args["adopt"],
        )
    except service.TextUnchanged as exc:
        raise Refusal(409, exc.translated()) from None
    except service.ConsentError as exc:
        raise Refusal(422, errors={"text": [exc.translated()]}) from None
    record_published(session, published)
    forms = form_texts.forms_by_text(session, {published.text.id})
    return _dump(
        schemas.PublishedSchema,
        {
            "text": _text_row(published.text, forms),
            "previous_version": published.previous.version if published.previous else None,
            "diff": published.diff,
            "forms_moved": published.forms_moved,
        },
        status=201,
    )


def record_published(session: Session, published: consent_texts.Published) -> None:
    """One audit entry per new version (the console's form writes the same)."""
    text = published.text
    auth.record_audit(
        session,
        audit.Action.CONSENT_TEXT_PUBLISHED,
        audit.ObjectType.CONSENT_TEXT,
        text.id,
        detail={
            "purpose": text.purpose,
            "language": text.language,
            "version": text.version,
            "forms_moved": len(published.forms_moved),
        },
    )
