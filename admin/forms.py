"""Forms as staff manage them (the console and the admin API): the capture package's
definitions plus the asset a whitepaper form hands out (widgets), one audit entry per
change, and the list's figures from aggregate queries.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from capture import definition_service
from capture.definitions import Definition, FormError
from capture.models import Form, Submission
from consent.models import OptInRequest
from leadvault import audit
from leadvault.i18n import N_
from widgets import service as widgets

LIST_MAX = 500
# The asset argument when an edit leaves the attached asset as it is.
KEEP = object()


def find(session: Session, public_id: str) -> Form | None:
    """A form by its public id, archived ones too (None for ids no form can have)."""
    if not public_id or len(public_id) > 32 or not public_id.isprintable():
        return None
    return session.scalars(sa.select(Form).where(Form.public_id == public_id)).one_or_none()


def create(
    session: Session,
    definition: Definition,
    *,
    asset: str | None = None,
    actor: str,
    ip: str | None,
) -> Form:
    form = definition_service.create_form(session, definition)
    if asset:
        _attach(session, form, asset)
    _record(session, audit.Action.FORM_CREATED, form, actor, ip)
    return form


def update(
    session: Session,
    form: Form,
    definition: Definition,
    *,
    asset: Any = KEEP,
    actor: str,
    ip: str | None,
) -> list[str]:
    """Replace the definition (and the asset unless ``KEEP``); returns what changed."""
    changed = definition_service.update_form(session, form, definition)
    if asset is not KEEP:
        before = widgets.asset_for_form(session, form)
        if asset:
            if before is None or before.public_id != asset:
                _attach(session, form, asset)
                changed.append("asset")
        elif widgets.detach(session, form):
            changed.append("asset")
    elif "kind" in changed or "purposes" in changed:
        _check_kept_asset(session, form)
    if changed:
        _record(session, audit.Action.FORM_CHANGED, form, actor, ip, changed=changed)
    return changed


def set_active(session: Session, form: Form, active: bool, *, actor: str, ip: str | None) -> bool:
    """Archive a form or take submissions again (audited when it changed)."""
    done = definition_service.set_active(session, form, active)
    if done:
        _record(
            session,
            audit.Action.FORM_RESTORED if active else audit.Action.FORM_ARCHIVED,
            form,
            actor,
            ip,
        )
    return done


def delete(session: Session, form: Form, *, actor: str, ip: str | None) -> None:
    """Delete a never-used form (else :class:`capture.definitions.FormInUse`)."""
    public_id = form.public_id
    widgets.detach(session, form)
    definition_service.delete_form(session, form)
    audit.record(
        session,
        actor=actor,
        action=audit.Action.FORM_DELETED,
        object_type=audit.ObjectType.FORM,
        object_id=public_id,
        ip=ip,
    )


def asset_of(session: Session, form: Form) -> str | None:
    found = widgets.asset_for_form(session, form)
    return found.public_id if found else None


def describe(session: Session, form: Form) -> dict[str, Any]:
    """The form as the API shows it (no personal data: a form holds none)."""
    return {
        "public_id": form.public_id,
        "name": form.name,
        "kind": form.kind,
        "title": form.title or {},
        "intro": form.intro or {},
        "fields": form.fields,
        "purposes": form.purposes,
        "consent_versions": definition_service.consent_versions_of(session, form),
        "allowed_origins": form.allowed_origins,
        "thank_you": form.thank_you or {},
        "redirect_url": form.redirect_url,
        "proof_of_work": form.proof_of_work,
        "follow_up_fields": form.follow_up_fields,
        "asset": asset_of(session, form),
        "active": form.active,
        "created_at": form.created_at,
    }


def _attach(session: Session, form: Form, asset_id: str) -> None:
    found = widgets.get_asset(session, asset_id[:32])
    if found is None:
        raise FormError(N_("There is no asset %(asset)s."), "asset", asset=repr(asset_id))
    try:
        widgets.attach(session, found, form)
    except widgets.AssetError:
        raise FormError(
            N_("Only a whitepaper form that asks for the whitepaper purpose hands out an asset."),
            "asset",
        ) from None


def _check_kept_asset(session: Session, form: Form) -> None:
    kept = widgets.asset_for_form(session, form)
    if kept is not None:
        _attach(session, form, kept.public_id)


def _record(
    session: Session, action: audit.Action, form: Form, actor: str, ip: str | None, **detail: Any
) -> None:
    audit.record(
        session,
        actor=actor,
        action=action,
        object_type=audit.ObjectType.FORM,
        object_id=form.public_id,
        detail=detail or None,
        ip=ip,
    )


# --- the list -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FormFigures:
    form: Form
    submissions: int
    last_submission: dt.datetime | None
    optins_requested: int
    optins_confirmed: int

    @property
    def confirmation_rate(self) -> float | None:
        """Share of the form's opt-in mails whose link was followed (None: none sent)."""
        if not self.optins_requested:
            return None
        return self.optins_confirmed / self.optins_requested


def overview(session: Session) -> list[FormFigures]:
    """Every form (newest first, archived ones too) with its submissions and confirmation
    rate: two grouped queries, never a lead or a submission row loaded."""
    forms = list(session.scalars(sa.select(Form).order_by(Form.id.desc()).limit(LIST_MAX)))
    return _with_figures(session, forms)


def figures(session: Session, form: Form) -> FormFigures:
    """One form's submissions and confirmation rate."""
    return _with_figures(session, [form], only=form)[0]


def _with_figures(
    session: Session, forms: list[Form], only: Form | None = None
) -> list[FormFigures]:
    submissions = sa.select(
        Submission.form_id, sa.func.count(), sa.func.max(Submission.created_at)
    ).group_by(Submission.form_id)
    optin_query = (
        sa.select(OptInRequest.form_ref, sa.func.count(), sa.func.count(OptInRequest.confirmed_at))
        .where(OptInRequest.form_ref.is_not(None))
        .group_by(OptInRequest.form_ref)
    )
    if only is not None:
        submissions = submissions.where(Submission.form_id == only.id)
        optin_query = optin_query.where(OptInRequest.form_ref == only.public_id)
    submitted = {form_id: (count, last) for form_id, count, last in session.execute(submissions)}
    optins = {
        ref: (requested, confirmed or 0)
        for ref, requested, confirmed in session.execute(optin_query)
    }
    figures = []
    for form in forms:
        count, last = submitted.get(form.id, (0, None))
        requested, confirmed = optins.get(form.public_id, (0, 0))
        figures.append(FormFigures(form, count, last, requested, confirmed))
    return figures
