"""Browser events: the signed token that names their lead, one event at a time, and
the link that hands the token to the loader after the ``tracking`` consent.

Browser events count only for a lead with the ``tracking`` consent, identified
by a signed tracking token; before that nothing is stored. Once admitted, an
event is scored like any other (:func:`scoring.events.record_event`).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from consent import service as consent_service
from leadvault import counters
from leadvault.crypto import payload_id
from leadvault.db import vault_of
from scoring import events

TRACKING_TOKEN = "tracking"
TRACKING_MAX_AGE = 395 * 86400  # about 13 months, as consent for analytics usually runs
NO_CONSENT = "scoring.events.no_tracking_consent"


def tracking_token(session: Session, lead_id: uuid.UUID) -> str:
    """The token the loader keeps in first-party storage after the tracking consent."""
    return vault_of(session).sign(TRACKING_TOKEN, {"l": lead_id.hex})


def lead_of_tracking_token(session: Session, token: str) -> uuid.UUID:
    """Raises TokenInvalid (or TokenExpired) for a token that is not ours."""
    payload = vault_of(session).unsign(TRACKING_TOKEN, token, TRACKING_MAX_AGE)
    return payload_id(payload, "l")


def track(session: Session, lead_id: uuid.UUID, event: events.RawEvent) -> str:
    """One browser event: "stored", "ignored" (unknown type) or "no_consent"."""
    if not consent_service.has_consent(session, lead_id, "tracking"):
        counters.increment(session, NO_CONSENT)
        return "no_consent"
    stored = events.record_event(
        session, lead_id, event.type, event.properties, event.occurred_at, source="browser"
    )
    return "stored" if stored else "ignored"


def tracking_return_link(
    session: Session,
    *,
    lead_id: uuid.UUID,
    purposes: list[str],
    language: str,
    **_: Any,
) -> list[tuple[str, str]]:
    """After the tracking consent, a link back to the page the lead came from that
    hands the loader its token in the URL fragment (never sent to any server).

    The page comes from the submission, which anyone can write: it becomes a
    link only on one of its form's allowed origins, so neither the visitor nor
    the token is ever sent to another site. Otherwise there is no link.
    """
    from urllib.parse import urlunsplit

    from capture import origins
    from capture import service as capture_service
    from capture.models import Form
    from leadvault import i18n

    if "tracking" not in purposes or not consent_service.has_consent(session, lead_id, "tracking"):
        return []
    for submission in reversed(capture_service.submissions_of(session, lead_id)):
        page = capture_service.read_submission(session, submission).get("page_url", "")
        form = session.get(Form, submission.form_id)
        parts = origins.page_on_owner_site(form, page) if form and page else None
        if parts is not None:
            back = urlunsplit((*parts[:4], f"lv_t={tracking_token(session, lead_id)}"))
            return [(i18n.translate(language, "Back to the website"), back)]
    return []
