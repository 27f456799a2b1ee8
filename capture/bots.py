"""Bot defence without third parties: honeypot, signed render token, proof of work.

A submission judged a bot gets the same reply as a real one, stores nothing
personal and sends nothing; only a counter records it.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import altcha
from sqlalchemy.orm import Session

from capture.models import Form
from leadvault import clock, counters
from leadvault.crypto import TokenExpired, TokenInvalid
from leadvault.db import settings_of, vault_of

RENDER_TOKEN = "render"
POW_MAX_NUMBER = 50_000


class Verdict(enum.StrEnum):
    HUMAN = "human"
    HONEYPOT = "honeypot"
    NO_TOKEN = "token"
    TOO_FAST = "too_fast"
    EXPIRED = "expired"  # a person who left the tab open: told to reload, not silenced
    NO_PROOF = "proof_of_work"


def issue_render_token(session: Session, form: Form) -> str:
    return vault_of(session).sign(
        RENDER_TOKEN, {"f": form.public_id, "t": round(clock.now().timestamp(), 3)}
    )


def _pow_key(session: Session) -> bytes:
    return hmac.new(vault_of(session).keyring.signing_keys[-1], b"altcha", hashlib.sha256).digest()


def pow_challenge(session: Session) -> dict[str, Any]:
    """An ALTCHA (v1) challenge the browser solves with SHA-256 before submitting."""
    challenge = altcha.create_challenge_v1(
        altcha.ChallengeOptionsV1(
            hmac_key=_pow_key(session),
            max_number=POW_MAX_NUMBER,
            expires=clock.now() + dt.timedelta(minutes=20),
        )
    )
    return {
        "algorithm": challenge.algorithm,
        "challenge": challenge.challenge,
        "maxnumber": challenge.max_number,
        "salt": challenge.salt,
        "signature": challenge.signature,
    }


def _pow_ok(session: Session, payload: Any) -> bool:
    if not isinstance(payload, str) or len(payload) > 2000:
        return False
    try:
        base64.b64decode(payload, validate=True)
        ok, _error = altcha.verify_solution_v1(payload, _pow_key(session), check_expires=True)
    except (ValueError, TypeError, KeyError):
        return False
    return bool(ok)


def judge(session: Session, form: Form, raw: Mapping[str, Any]) -> Verdict:
    settings = settings_of(session)
    if raw.get("website"):
        return Verdict.HONEYPOT
    token = raw.get("render_token")
    if not isinstance(token, str) or not token:
        return Verdict.NO_TOKEN
    try:
        payload = vault_of(session).unsign(
            RENDER_TOKEN, token, max_age_seconds=settings.form_max_age_hours * 3600
        )
    except TokenExpired:
        return Verdict.EXPIRED
    except TokenInvalid:
        return Verdict.NO_TOKEN
    if not isinstance(payload, dict) or payload.get("f") != form.public_id:
        return Verdict.NO_TOKEN
    issued = payload.get("t")
    if (
        not isinstance(issued, int | float)
        or clock.now().timestamp() - issued < settings.form_min_fill_seconds
    ):
        return Verdict.TOO_FAST
    if form.proof_of_work and not _pow_ok(session, raw.get("altcha")):
        return Verdict.NO_PROOF
    return Verdict.HUMAN


def record_bot(session: Session, verdict: Verdict) -> None:
    counters.increment(session, f"capture.bot.{verdict.value}")
