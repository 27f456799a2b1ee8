"""Form definitions: create, edit, archive and delete the forms owners embed.

One set of functions for the command line, the admin API and the console: each
takes a session, checks the whole definition (``capture.definition_checks``) and
flushes; the caller's unit of work commits. A form that took a submission is
never deleted, only archived: the consent ledger and the leads' sources name it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from capture.definition_checks import check
from capture.definitions import Definition, FieldSpec, FormInUse, PurposeSpec
from capture.models import Form, Submission
from consent import service as consent_service
from consent.models import LedgerEntry
from leadvault.crypto import public_id
from leadvault.i18n import N_

_change_listeners: list[Callable[[str], None]] = []


def on_change(listener: Callable[[str], None]) -> None:
    """Call ``listener(public_id)`` whenever a form's definition or state changes
    (caches of forms forget it)."""
    _change_listeners.append(listener)


def _changed(form: Form) -> None:
    for listener in _change_listeners:
        listener(form.public_id)


def create_form(session: Session, definition: Definition | None = None, **values: Any) -> Form:
    """A new form from ``definition`` (or the same values as keywords)."""
    checked = check(session, definition or Definition(**values), current=None)
    form = Form(public_id=public_id(), **checked)
    session.add(form)
    session.flush()
    return form


def update_form(session: Session, form: Form, definition: Definition) -> list[str]:
    """Replace the form's definition; returns the names of what changed (for the audit trail).

    The public id stays, so every embed keeps working. Consent text versions
    not named keep the version the form showed so far (a new version is chosen
    on purpose, never by an unrelated edit).
    """
    checked = check(session, definition, current=form)
    changed = [key for key, value in checked.items() if getattr(form, key) != value]
    for key in changed:
        setattr(form, key, checked[key])
    session.flush()
    _changed(form)
    return changed


def definition_of(session: Session, form: Form) -> Definition:
    """The form's definition as it stands (the start of an edit)."""
    return Definition(
        name=form.name,
        kind=form.kind,
        fields=[FieldSpec(f["name"], bool(f["required"])) for f in form.fields],
        purposes=[PurposeSpec(p["purpose"], bool(p["required"])) for p in form.purposes],
        allowed_origins=list(form.allowed_origins),
        title=dict(form.title) if form.title else None,
        intro=dict(form.intro) if form.intro else None,
        thank_you=dict(form.thank_you) if form.thank_you else None,
        redirect_url=form.redirect_url,
        proof_of_work=form.proof_of_work,
        follow_up_fields=list(form.follow_up_fields),
        consent_versions=consent_versions_of(session, form),
    )


def consent_versions_of(session: Session, form: Form) -> dict[str, dict[str, int]]:
    """{language: {purpose: version}} of the consent texts the form shows."""
    shown: dict[str, dict[str, int]] = {}
    for lang, texts in (form.consent_texts or {}).items():
        for purpose, text_id in texts.items():
            text = consent_service.text_by_id(session, text_id)
            if text is not None:
                shown.setdefault(lang, {})[purpose] = text.version
    return shown


def set_active(session: Session, form: Form, active: bool) -> bool:
    """Archive (``active=False``: no more submissions; the form stays with its history) or
    take submissions again; False if the form already was so."""
    if form.active == active:
        return False
    form.active = active
    session.flush()
    _changed(form)
    return True


def archive_form(session: Session, form: Form) -> bool:
    return set_active(session, form, False)


def in_use(session: Session, form: Form) -> bool:
    """Whether a submission or a consent ledger entry names the form (then it is only archived)."""
    submitted = session.scalar(
        sa.select(Submission.id).where(Submission.form_id == form.id).limit(1)
    )
    if submitted is not None:
        return True
    named = session.scalar(
        sa.select(LedgerEntry.id).where(LedgerEntry.form_ref == form.public_id).limit(1)
    )
    return named is not None


def delete_form(session: Session, form: Form) -> None:
    """Delete a form that was never used; a used one raises :class:`FormInUse`."""
    if in_use(session, form):
        raise FormInUse(
            N_("This form has taken submissions: archive it instead of deleting it."), "form"
        )
    session.delete(form)
    session.flush()
    _changed(form)
