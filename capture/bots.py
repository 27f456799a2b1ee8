"""Bot defence without third parties: honeypot, signed render token, proof of work.

A submission judged a bot gets the same reply as a real one, stores nothing
personal and sends nothing; only a counter (per form, reason and day)
records it, and ``leadvault report bots`` shows the counters.

Each render token and each ALTCHA solution is accepted once: its key goes
into the ``spent_tokens`` table (one INSERT, unique key) in the transaction
that accepts the submission, so every web process and node sees it; a replay
gets the bot reply. A submission faster than ``LEADVAULT_FORM_MIN_FILL_SECONDS``
is accepted and counted: autofill and a click take under a second, and the
double opt-in, not the clock, proves the address.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from typing import Any

import altcha
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from capture.models import Form
from leadvault import clock, counters, links
from leadvault.crypto import TokenExpired, TokenInvalid, Vault, random_token, sha256_hex
from leadvault.db import settings_of, vault_of
from leadvault.models import Counter
from leadvault.prepared import Bound
from leadvault.settings import Settings

RENDER_TOKEN = "render"
POW_MAX_NUMBER = 50_000
POW_LIFETIME = dt.timedelta(minutes=20)
COUNTER_PREFIX = "capture.bot."


class Verdict(enum.StrEnum):
    HUMAN = "human"
    HONEYPOT = "honeypot"
    NO_TOKEN = "token"
    TOO_FAST = "too_fast"  # accepted and counted: double opt-in proves the address
    EXPIRED = "expired"  # a person who left the tab open: told to reload, not silenced
    NO_PROOF = "proof_of_work"
    REPLAY = "replay"  # a render token or ALTCHA solution used before


# What became of submissions with each verdict, as the owner's report says it.
OUTCOMES = {
    Verdict.HONEYPOT: "dropped",
    Verdict.NO_TOKEN: "dropped",
    Verdict.NO_PROOF: "dropped",
    Verdict.REPLAY: "dropped",
    Verdict.TOO_FAST: "accepted",
}


@dataclasses.dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    # Faster than the minimum fill time (accepted, counted).
    fast: bool = False
    # Keys of the single-use tokens this submission uses, with when they may be forgotten.
    single_use: tuple[tuple[str, dt.datetime], ...] = ()


def issue_render_token(session: Session, form: Form) -> str:
    # The nonce makes every token unique, even two rendered in the same millisecond.
    # Milliseconds rounded down: rounded to nearest, a submission within half a
    # millisecond of its render (a test client) came before it and counted as too fast.
    issued = math.floor(clock.now().timestamp() * 1000) / 1000
    return vault_of(session).sign(
        RENDER_TOKEN, {"f": form.public_id, "t": issued, "n": random_token(9)}
    )


def _pow_key(session: Session) -> bytes:
    return _pow_key_of(vault_of(session))


def _pow_key_of(vault: Vault) -> bytes:
    return hmac.new(vault.keyring.signing_keys[-1], b"altcha", hashlib.sha256).digest()


def pow_challenge(session: Session) -> dict[str, Any]:
    """An ALTCHA (v1) challenge the browser solves with SHA-256 before submitting."""
    challenge = altcha.create_challenge_v1(
        altcha.ChallengeOptionsV1(
            hmac_key=_pow_key(session),
            max_number=POW_MAX_NUMBER,
            expires=clock.now() + POW_LIFETIME,
        )
    )
    return {
        "algorithm": challenge.algorithm,
        "challenge": challenge.challenge,
        "maxnumber": challenge.max_number,
        "salt": challenge.salt,
        "signature": challenge.signature,
    }


def _solved_challenge(vault: Vault, payload: Any) -> str | None:
    """The challenge a valid ALTCHA solution answers (its single-use key), else None."""
    if not isinstance(payload, str) or len(payload) > 2000:
        return None
    try:
        decoded = json.loads(base64.b64decode(payload, validate=True))
        ok, _error = altcha.verify_solution_v1(payload, _pow_key_of(vault), check_expires=True)
    except (ValueError, TypeError, KeyError):
        return None
    challenge = decoded.get("challenge") if isinstance(decoded, dict) else None
    return challenge if ok and isinstance(challenge, str) and challenge else None


def _render_key(payload: dict[str, Any], token: str) -> str:
    nonce = payload.get("n")
    if isinstance(nonce, str) and 8 <= len(nonce) <= 32:
        return f"render:{nonce}"
    return f"render:{sha256_hex(token)[:48]}"  # a token rendered before tokens had nonces


def judge(session: Session, form: Form, raw: Mapping[str, Any]) -> Judgement:
    return judge_with(settings_of(session), vault_of(session), form, raw)


def judge_with(settings: Settings, vault: Vault, form: Form, raw: Mapping[str, Any]) -> Judgement:
    """:func:`judge` with the instance's settings and vault (the endpoint opens no
    session for a submission it accepts)."""
    if raw.get("website"):
        return Judgement(Verdict.HONEYPOT)
    token = raw.get("render_token")
    if not isinstance(token, str) or not token:
        return Judgement(Verdict.NO_TOKEN)
    max_age = dt.timedelta(hours=settings.form_max_age_hours)
    try:
        payload = vault.unsign(RENDER_TOKEN, token, max_age_seconds=max_age.total_seconds())
    except TokenExpired:
        return Judgement(Verdict.EXPIRED)
    except TokenInvalid:
        return Judgement(Verdict.NO_TOKEN)
    if not isinstance(payload, dict) or payload.get("f") != form.public_id:
        return Judgement(Verdict.NO_TOKEN)
    issued = payload.get("t")
    if not isinstance(issued, int | float) or isinstance(issued, bool):
        return Judgement(Verdict.NO_TOKEN)
    now = clock.now()
    # With no minimum nothing is too fast (a wall clock stepped back is no bot).
    minimum = settings.form_min_fill_seconds
    fast = minimum > 0 and now.timestamp() - issued < minimum
    keys = [(_render_key(payload, token), now + max_age)]
    if form.proof_of_work:
        challenge = _solved_challenge(vault, raw.get("altcha"))
        if challenge is None:
            return Judgement(Verdict.NO_PROOF)
        keys.append((f"altcha:{challenge[:56]}", now + POW_LIFETIME))
    return Judgement(Verdict.HUMAN, fast=fast, single_use=tuple(keys))


def spend(session: Session, judgement: Judgement) -> bool:
    """Use up the submission's tokens (one INSERT); False when one was used before."""
    return links.spend_all(session, judgement.single_use)


def spending(dialect: Dialect, judgement: Judgement) -> list[Bound]:
    """:func:`spend`'s INSERTs with their parameters bound, for the endpoint's write
    (``db.short_write``) to run with ``links.spend_bound``: built before it, so on
    SQLite not under the write lock."""
    return links.spending(dialect, judgement.single_use)


def record_bot(session: Session, form: Form, verdict: Verdict) -> None:
    counters.increment(session, f"{COUNTER_PREFIX}{verdict.value}.{form.public_id}")


# --- the owner's report ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BotCount:
    day: dt.date
    form: str  # the form's public id ("-" for counts from before they were per form)
    reason: str
    count: int
    outcome: str  # "dropped" or "accepted"


def report(session: Session, since: dt.date, until: dt.date | None = None) -> list[BotCount]:
    """Bot verdicts per day, form and reason, from ``since`` to ``until`` (inclusive)."""
    query = sa.select(Counter.name, Counter.day, Counter.value).where(
        Counter.name.startswith(COUNTER_PREFIX, autoescape=True), Counter.day >= since
    )
    if until is not None:
        query = query.where(Counter.day <= until)
    rows = []
    for name, day, value in session.execute(query):
        reason, _, form = name[len(COUNTER_PREFIX) :].partition(".")
        outcome = OUTCOMES.get(reason, "dropped")  # type: ignore[call-overload]
        rows.append(BotCount(day, form or "-", reason, int(value), outcome))
    return sorted(rows, key=lambda r: (r.day, r.form, r.reason))
