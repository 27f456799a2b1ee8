"""initial schema: leads, outbox, forms, submissions, consent

Also seeds the ledger head, the four purposes and their first consent texts.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 19:37:45.362718
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=True),
        sa.Column("form_ref", sa.String(length=40), nullable=True),
        sa.Column("text_id", sa.Integer(), nullable=True),
        sa.Column("text_version", sa.Integer(), nullable=True),
        sa.Column("text_sha256", sa.String(length=64), nullable=True),
        sa.Column("ip_prefix", sa.String(length=64), nullable=True),
        sa.Column("user_agent_hash", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_ledger")),
        sa.UniqueConstraint("entry_hash", name=op.f("uq_consent_ledger_entry_hash")),
    )
    with op.batch_alter_table("consent_ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_ledger_subject"), ["subject"], unique=False)

    op.create_table(
        "consent_ledger_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_ledger_head")),
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", "day", name=op.f("pk_counters")),
    )
    op.create_table(
        "forms",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("follow_up_fields", sa.JSON(), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("consent_texts", sa.JSON(), nullable=False),
        sa.Column("allowed_origins", sa.JSON(), nullable=False),
        sa.Column("thank_you", sa.JSON(), nullable=True),
        sa.Column("redirect_url", sa.String(length=500), nullable=True),
        sa.Column("proof_of_work", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forms")),
        sa.UniqueConstraint("public_id", name=op.f("uq_forms_public_id")),
    )
    op.create_table(
        "leads",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("email", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        sa.UniqueConstraint("email_index", name=op.f("uq_leads_email_index")),
    )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_leads_key_version"), ["key_version"], unique=False)

    op.create_table(
        "purposes",
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("marketing", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_purposes")),
    )
    op.create_table(
        "suppressions",
        sa.Column("email_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("email_index", name=op.f("pk_suppressions")),
    )
    op.create_table(
        "consent_texts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["purpose"], ["purposes.key"], name=op.f("fk_consent_texts_purpose_purposes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_texts")),
        sa.UniqueConstraint(
            "purpose", "language", "version", name=op.f("uq_consent_texts_purpose_language_version")
        ),
    )
    op.create_table(
        "lead_attributes",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_lead_attributes_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("lead_id", "name", name=op.f("pk_lead_attributes")),
    )
    op.create_table(
        "optin_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("text_ids", sa.JSON(), nullable=False),
        sa.Column("form_ref", sa.String(length=40), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_optin_requests_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_optin_requests")),
    )
    with op.batch_alter_table("optin_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_optin_requests_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_optin_requests_lead_id"), ["lead_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("template", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=True),
        sa.Column("lead_id", sa.Uuid(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_owner", sa.String(length=64), nullable=False),
        sa.Column("payload_key", sa.LargeBinary(), nullable=True),
        sa.Column("payload_key_version", sa.Integer(), nullable=True),
        sa.Column("subject", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_by", sa.String(length=64), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_outbox_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_lead_id"), ["lead_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_outbox_payload_key_version"), ["payload_key_version"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_outbox_purpose"), ["purpose"], unique=False)

    op.create_table(
        "submissions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("form_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("utm_source", sa.String(length=100), nullable=True),
        sa.Column("utm_campaign", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["form_id"], ["forms.id"], name=op.f("fk_submissions_form_id_forms")
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_submissions_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
    )
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_submissions_form_id"), ["form_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_submissions_lead_id"), ["lead_id"], unique=False)

    op.create_table(
        "consents",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("text_id", sa.Integer(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_consents_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["purpose"], ["purposes.key"], name=op.f("fk_consents_purpose_purposes")
        ),
        sa.ForeignKeyConstraint(
            ["text_id"], ["consent_texts.id"], name=op.f("fk_consents_text_id_consent_texts")
        ),
        sa.PrimaryKeyConstraint("lead_id", "purpose", name=op.f("pk_consents")),
    )
    op.create_table(
        "outbox_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("worker", sa.String(length=64), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_outbox_attempts_outbox_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_attempts")),
    )
    with op.batch_alter_table("outbox_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_attempts_outbox_id"), ["outbox_id"], unique=False
        )

    _seed()


def _seed() -> None:
    import datetime as dt
    import hashlib

    now = dt.datetime.now(dt.UTC)
    head = sa.table(
        "consent_ledger_head", sa.column("id"), sa.column("last_id"), sa.column("last_hash")
    )
    op.bulk_insert(head, [{"id": 1, "last_id": 0, "last_hash": "0" * 64}])
    purposes = sa.table(
        "purposes",
        sa.column("key"),
        sa.column("marketing"),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        purposes,
        [
            {"key": "newsletter", "marketing": True, "created_at": now},
            {"key": "whitepaper", "marketing": False, "created_at": now},
            {"key": "sales_contact", "marketing": True, "created_at": now},
            {"key": "tracking", "marketing": False, "created_at": now},
        ],
    )
    texts = {
        (
            "newsletter",
            "en",
        ): "Yes, send me the newsletter by email. I can unsubscribe at any time with a link in every mail.",
        (
            "newsletter",
            "de",
        ): "Ja, senden Sie mir den Newsletter per E-Mail. Ich kann ihn jederzeit über einen Link in jeder E-Mail abbestellen.",
        ("whitepaper", "en"): "Yes, send me the requested whitepaper by email.",
        ("whitepaper", "de"): "Ja, senden Sie mir das angeforderte Whitepaper per E-Mail.",
        (
            "sales_contact",
            "en",
        ): "Yes, your sales team may contact me about my request by email or phone. I can withdraw this at any time.",
        (
            "sales_contact",
            "de",
        ): "Ja, Ihr Vertrieb darf mich zu meiner Anfrage per E-Mail oder Telefon kontaktieren. Ich kann dies jederzeit widerrufen.",
        (
            "tracking",
            "en",
        ): "Yes, you may record which pages of your website I visit, to offer me relevant content. I can withdraw this at any time.",
        (
            "tracking",
            "de",
        ): "Ja, Sie dürfen erfassen, welche Seiten Ihrer Website ich besuche, um mir passende Inhalte anzubieten. Ich kann dies jederzeit widerrufen.",
    }
    consent_texts = sa.table(
        "consent_texts",
        sa.column("purpose"),
        sa.column("language"),
        sa.column("version"),
        sa.column("text"),
        sa.column("sha256"),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        consent_texts,
        [
            {
                "purpose": purpose,
                "language": language,
                "version": 1,
                "text": text,
                "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                "created_at": now,
            }
            for (purpose, language), text in texts.items()
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("outbox_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_attempts_outbox_id"))

    op.drop_table("outbox_attempts")
    op.drop_table("consents")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submissions_lead_id"))
        batch_op.drop_index(batch_op.f("ix_submissions_form_id"))

    op.drop_table("submissions")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_purpose"))
        batch_op.drop_index(batch_op.f("ix_outbox_payload_key_version"))
        batch_op.drop_index(batch_op.f("ix_outbox_lead_id"))
        batch_op.drop_index("ix_outbox_due")

    op.drop_table("outbox")
    with op.batch_alter_table("optin_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_optin_requests_lead_id"))
        batch_op.drop_index(batch_op.f("ix_optin_requests_created_at"))

    op.drop_table("optin_requests")
    op.drop_table("lead_attributes")
    op.drop_table("consent_texts")
    op.drop_table("suppressions")
    op.drop_table("purposes")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leads_key_version"))

    op.drop_table("leads")
    op.drop_table("forms")
    op.drop_table("counters")
    op.drop_table("consent_ledger_head")
    with op.batch_alter_table("consent_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_ledger_subject"))

    op.drop_table("consent_ledger")
