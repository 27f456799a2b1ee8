"""The leads ``bench/export.py`` exports: sealed fields, consents and scoring states in bulk.

``seed(app, count)`` inserts ``count`` leads with real wrapped data keys, a sealed
address, first and last name and company, and a granted newsletter (half also
``sales_contact``); nine in ten also get a scoring state as the worker writes one at
a lead's first form submission. Lead n is created at ``START`` + n seconds.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid

import sqlalchemy as sa

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
FORMS = ("k3J9xQ2mVb", "p8Lw4Zr1Tc", "f0Hs7Ny5Ue", "a6Dq2Mx8Wg")
UTM_SOURCES = ("google", "newsletter", "linkedin", "partner", None)
UTM_CAMPAIGNS = ("spring-webinar", "whitepaper-2026", "retargeting", None, None)
# Where leads are in the lifecycle (the share that got at least that far), as in
# bench/console.py.
STAGES = (("mql", 0.40), ("sal", 0.15), ("sql", 0.05), ("won", 0.02))


def score_state(rng: random.Random, lead_id: uuid.UUID, created: dt.datetime) -> dict:
    """A lead's scoring state as the product leaves it after some activity."""
    stage = "new"
    roll = rng.random()
    for name, share in STAGES:
        if roll < share:
            stage = name
    return {
        "lead_id": lead_id,
        "score": rng.uniform(0, 120),
        "as_of": created + dt.timedelta(hours=rng.uniform(0, 240)),
        "fit_points": rng.uniform(0, 40),
        "fit_grade": rng.choice("ABCD"),
        "suspect": rng.random() < 0.03,
        "flags": [],
        "stage": stage,
        "stage_changed_at": created + dt.timedelta(hours=rng.uniform(0, 96)),
        "first_form": rng.choice(FORMS),
        "utm_source": rng.choice(UTM_SOURCES),
        "utm_campaign": rng.choice(UTM_CAMPAIGNS),
        "enrichment_pending": False,
        "enrichment_cost": 0.0,
        "rules_version": 0,
        "updated_at": created,
    }


def seed(app, count: int) -> None:
    """Leads with sealed fields, consents and (nine in ten) scoring states, inserted in
    bulk (real keys)."""
    from consent.models import Consent
    from leadvault.app import runtime
    from leadvault.models import Lead, LeadAttribute
    from scoring.models import LeadScore

    rt = runtime(app)
    vault = rt.vault
    with rt.session_factory() as session:
        text_ids = {
            p: session.scalar(
                sa.text("SELECT id FROM consent_texts WHERE purpose = :p LIMIT 1"), {"p": p}
            )
            for p in ("newsletter", "sales_contact")
        }
    rng = random.Random(14)
    chunk = 5000
    with rt.engine.begin() as conn:
        for start in range(0, count, chunk):
            leads, attributes, consents, states = [], [], [], []
            for n in range(start, min(start + chunk, count)):
                lead_id = uuid.uuid4()
                email = f"lead{n}@bench.example"
                key, wrapped = vault.new_data_key(lead_id)
                created = START + dt.timedelta(seconds=n)
                leads.append(
                    {
                        "id": lead_id,
                        "email_index": vault.blind_index(email),
                        "email": key.encrypt("email", email),
                        "wrapped_key": wrapped.wrapped,
                        "key_version": wrapped.version,
                        "language": "de" if n % 2 else "en",
                        "created_at": created,
                        "last_activity_at": created,
                    }
                )
                for name, value in (
                    ("first_name", f"Jürgen{n}"),
                    ("last_name", "Müller"),
                    ("company", f"Bäckerei {n % 500}"),
                ):
                    attributes.append(
                        {
                            "lead_id": lead_id,
                            "name": name,
                            "value": key.encrypt(f"attr/{name}", value),
                            "updated_at": created,
                        }
                    )
                if n % 10:
                    states.append(score_state(rng, lead_id, created))
                for purpose in ("newsletter", "sales_contact") if n % 2 else ("newsletter",):
                    consents.append(
                        {
                            "lead_id": lead_id,
                            "purpose": purpose,
                            "status": "granted",
                            "text_id": text_ids[purpose],
                            "requested_at": created,
                            "granted_at": created,
                        }
                    )
            conn.execute(sa.insert(Lead.__table__), leads)
            conn.execute(sa.insert(LeadAttribute.__table__), attributes)
            conn.execute(sa.insert(Consent.__table__), consents)
            if states:
                conn.execute(sa.insert(LeadScore.__table__), states)
