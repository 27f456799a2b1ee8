"""Envelope encryption, blind index, signed tokens and master key rotation."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import uuid

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from leadvault import clock, leads, outbox
from leadvault import keys as key_service
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.crypto import (
    DataKey,
    DecryptionError,
    Keyring,
    KeyringError,
    TokenExpired,
    TokenInvalid,
    Vault,
    WrappedKey,
)
from leadvault.db import unit_of_work
from leadvault.mail import MailContent
from leadvault.models import Lead, OutboxMessage
from tests.conftest import unique_email


@pytest.fixture
def vault():
    return Vault(Keyring.generate())


# --- field encryption is bound to its lead and field -------------------------------


def test_field_ciphertext_is_bound_to_owner_and_field():
    raw = os.urandom(32)
    lead_a, lead_b = uuid.uuid4(), uuid.uuid4()
    sealed = DataKey(raw, lead_a).encrypt("email", "ada@example.org")
    assert DataKey(raw, lead_a).decrypt("email", sealed) == "ada@example.org"
    # Same key, other lead: the associated data differs.
    with pytest.raises(DecryptionError):
        DataKey(raw, lead_b).decrypt("email", sealed)
    # Same key and lead, other field.
    with pytest.raises(DecryptionError):
        DataKey(raw, lead_a).decrypt("first_name", sealed)
    with pytest.raises(DecryptionError):
        DataKey(raw, lead_a).decrypt("attr/first_name", sealed)
    # Tampering with one byte is detected.
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(DecryptionError):
        DataKey(raw, lead_a).decrypt("email", tampered)
    with pytest.raises(DecryptionError):
        DataKey(raw, lead_a).decrypt("email", b"short")


def test_decrypt_many_opens_each_field_bound_to_owner_and_field(vault):
    """The bulk path (exports) checks as much as one field at a time does."""
    lead_a, lead_b = uuid.uuid4(), uuid.uuid4()
    key, wrapped = vault.new_data_key(lead_a)
    email, name = key.encrypt("email", "ada@example.org"), key.encrypt("attr/first_name", "Ada")
    opened = vault.unwrap_stored(wrapped.wrapped, wrapped.version, str(lead_a)).decrypt_many(
        [("email", email), ("attr/company", None), ("attr/first_name", name)]
    )
    assert opened == ["ada@example.org", None, "Ada"]
    with pytest.raises(DecryptionError):  # fields swapped
        key.decrypt_many([("email", name)])
    with pytest.raises(DecryptionError):  # another lead's key
        vault.new_data_key(lead_b)[0].decrypt_many([("email", email)])
    with pytest.raises(DecryptionError):
        key.decrypt_many([("email", b"short")])
    with pytest.raises(DecryptionError):  # the wrapped key is bound to its owner too
        vault.unwrap_stored(wrapped.wrapped, wrapped.version, str(lead_b))


def test_open_fields_checks_as_much_as_the_data_key_does(vault):
    """The export's one-call path: key unwrapped and fields opened from the stored columns."""
    lead_a, lead_b = str(uuid.uuid4()), str(uuid.uuid4())
    key, wrapped = vault.new_data_key(lead_a)
    email, name = key.encrypt("email", "ada@example.org"), key.encrypt("attr/first_name", "Ada")
    names = [b"email", b"attr/company", b"attr/first_name"]
    stored = wrapped.wrapped, wrapped.version
    assert vault.open_fields(*stored, lead_a, names, [email, None, name]) == [
        "ada@example.org",
        None,
        "Ada",
    ]
    for owner, sealed in [
        (lead_a, [name, None, email]),  # fields swapped
        (lead_b, [email, None, name]),  # the wrapped key is bound to its owner
        (lead_a, [email[:-1] + bytes([email[-1] ^ 1]), None, name]),  # tampered
        (lead_a, [b"short", None, name]),
    ]:
        with pytest.raises(DecryptionError):
            vault.open_fields(*stored, owner, names, sealed)
    with pytest.raises(DecryptionError):  # a tampered data key
        forged = stored[0][:-1] + bytes([stored[0][-1] ^ 1])
        vault.open_fields(forged, stored[1], lead_a, names, [email, None, name])


def test_encryption_is_randomised(vault):
    key, _wrapped = vault.new_data_key(uuid.uuid4())
    first, second = key.encrypt("email", "ada@example.org"), key.encrypt("email", "ada@example.org")
    assert first != second
    assert b"ada" not in first


def test_wrapped_data_key_is_bound_to_its_owner(vault):
    lead_a, lead_b = uuid.uuid4(), uuid.uuid4()
    key, wrapped = vault.new_data_key(lead_a)
    sealed = key.encrypt("email", "ada@example.org")
    assert vault.unwrap(wrapped, lead_a).decrypt("email", sealed) == "ada@example.org"
    with pytest.raises(DecryptionError):
        vault.unwrap(wrapped, lead_b)
    # Under another key ring the wrapped key cannot be opened at all.
    with pytest.raises(DecryptionError):
        Vault(Keyring.generate()).unwrap(wrapped, lead_a)
    # A version the key ring does not hold is a DecryptionError, not a KeyError.
    with pytest.raises(DecryptionError):
        vault.unwrap(WrappedKey(wrapped.wrapped, 99), lead_a)


def test_ciphertext_moved_between_stored_leads_does_not_decrypt(session):
    lead_a, _ = leads.get_or_create(session, unique_email("a"), language="en")
    lead_b, _ = leads.get_or_create(session, unique_email("b"), language="en")
    leads.set_attributes(session, lead_a, {"first_name": "Ada"})
    leads.set_attributes(session, lead_b, {"first_name": "Bob"})
    a_email = lead_a.email
    a_first = next(attr.value for attr in lead_a.attributes if attr.name == "first_name")
    key_a = leads.data_key(session, lead_a)
    # A's email ciphertext read as B's email, or as A's first_name.
    with pytest.raises(DecryptionError):
        leads.data_key(session, lead_b).decrypt("email", a_email)
    with pytest.raises(DecryptionError):
        key_a.decrypt("attr/first_name", a_email)
    with pytest.raises(DecryptionError):
        key_a.decrypt("email", a_first)
    # Swapped into B's row, it does not decrypt either.
    lead_b.email = a_email
    with pytest.raises(DecryptionError):
        leads.email_of(session, lead_b)


# --- blind index ------------------------------------------------------------------


def test_blind_index_normalises_and_depends_on_the_key(vault):
    plain = vault.blind_index("ada@example.org")
    assert vault.blind_index(" Ada@Example.ORG ") == plain
    assert vault.blind_index("ADA@EXAMPLE.ORG\n") == plain
    assert len(plain) == 32
    assert vault.blind_index("ada2@example.org") != plain
    assert vault.blind_index("ada@example.com") != plain
    assert Vault(Keyring.generate()).blind_index("ada@example.org") != plain


def test_lookup_by_email_uses_normalised_index(session):
    email = unique_email("grace")
    lead, created = leads.get_or_create(session, email, language="en")
    assert created
    again, created_again = leads.get_or_create(session, f"  {email.upper()} ", language="en")
    assert not created_again
    assert again.id == lead.id
    assert leads.find_by_email(session, email.upper()).id == lead.id
    assert leads.email_of(session, lead) == email


# --- signed tokens ----------------------------------------------------------------


def test_token_round_trip(vault):
    token = vault.sign("optin", {"lead": "x", "n": 1})
    assert vault.unsign("optin", token, max_age_seconds=60) == {"lead": "x", "n": 1}


def test_token_for_another_purpose_is_invalid(vault):
    token = vault.sign("optin", {"lead": "x"})
    with pytest.raises(TokenInvalid):
        vault.unsign("prefs", token, max_age_seconds=60)


def test_tampered_token_or_foreign_key_is_invalid(vault):
    token = vault.sign("optin", {"lead": "x"})
    _payload, _dot, rest = token.partition(".")
    forged = vault.sign("optin", {"lead": "y"}).partition(".")[0] + "." + rest
    assert forged != token
    with pytest.raises(TokenInvalid):
        vault.unsign("optin", forged, max_age_seconds=60)
    with pytest.raises(TokenInvalid):
        Vault(Keyring.generate()).unsign("optin", token, max_age_seconds=60)
    with pytest.raises(TokenInvalid):
        vault.unsign("optin", "garbage", max_age_seconds=60)


def test_expired_token_raises_token_expired_with_payload(vault):
    token = vault.sign("optin", {"lead": "x"})
    with pytest.raises(TokenExpired) as caught:
        vault.unsign("optin", token, max_age_seconds=-1)
    assert caught.value.payload == {"lead": "x"}
    assert not isinstance(caught.value, TokenInvalid)


def test_token_age_is_measured_on_leadvault_clock(vault):
    """Tests freeze ``leadvault.clock`` instead of patching itsdangerous' time."""
    clock.freeze(dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC))
    try:
        token = vault.sign("optin", {"lead": "x"})
        clock.advance(dt.timedelta(seconds=59))
        assert vault.unsign("optin", token, max_age_seconds=60) == {"lead": "x"}
        clock.advance(dt.timedelta(seconds=2))
        with pytest.raises(TokenExpired):
            vault.unsign("optin", token, max_age_seconds=60)
    finally:
        clock.freeze(None)


def test_new_signing_key_keeps_old_tokens_valid():
    keyring = Keyring.generate()
    vault = Vault(keyring)
    old_token = vault.sign("prefs", "p")
    keyring.signing_keys.append(os.urandom(32))
    assert vault.unsign("prefs", old_token, max_age_seconds=60) == "p"
    new_token = vault.sign("prefs", "p")
    # Signed with the new key: a ring holding only the old key refuses it.
    old_only = Vault(
        Keyring(keyring.master_keys, 1, keyring.blind_index_key, [keyring.signing_keys[0]])
    )
    with pytest.raises(TokenInvalid):
        old_only.unsign("prefs", new_token, max_age_seconds=60)


def test_a_token_is_what_itsdangerous_signs():
    """Vault.sign derives its key once per purpose and key set; the token is the one
    itsdangerous' own serializer (its default digest, a key derived per token) makes,
    compressed payloads and a rotated key ring included."""
    from itsdangerous import URLSafeTimedSerializer

    from leadvault.crypto import ClockSigner

    keyring = Keyring.generate()
    vault = Vault(keyring)
    payloads = [
        {"r": uuid.uuid4().hex},
        {"l": uuid.uuid4().hex, "p": "newsletter"},
        {"s": 7, "k": 2, "u": "https://www.example.com/" + "a/" * 40},  # compressed
        "p",
        {"u": 1, "n": "ß€\u2028"},
    ]
    clock.freeze(dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC))
    try:
        for rotated in (False, True):
            if rotated:
                keyring.signing_keys.append(os.urandom(32))
            reference = URLSafeTimedSerializer(
                secret_key=list(keyring.signing_keys), salt="leadvault.optin", signer=ClockSigner
            )
            for payload in payloads:
                token = vault.sign("optin", payload)
                assert token == reference.dumps(payload)
                assert vault.unsign("optin", token, max_age_seconds=60) == payload
            assert any(vault.sign("optin", p).startswith(".") for p in payloads)
    finally:
        clock.freeze(None)


# --- the key ring file ------------------------------------------------------------


def test_keyring_saved_with_mode_0600_and_loads_back(tmp_path):
    old_umask = os.umask(0)
    try:
        keyring = Keyring.generate()
        path = tmp_path / "sub" / "keyring.json"
        keyring.save(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # No temporary files left next to it.
    assert [p.name for p in path.parent.iterdir()] == ["keyring.json"]
    loaded = Keyring.load(path)
    assert loaded.master_keys == keyring.master_keys
    assert loaded.active_version == 1
    assert loaded.blind_index_key == keyring.blind_index_key
    assert loaded.signing_keys == keyring.signing_keys
    # Saving again (rotation) keeps the mode.
    loaded.add_master_version()
    loaded.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keyring.load(path).active_version == 2


def test_keyring_load_errors(tmp_path):
    with pytest.raises(KeyringError, match="does not exist"):
        Keyring.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[]", encoding="utf-8")
    with pytest.raises(KeyringError):
        Keyring.load(bad)
    bad.write_text(
        '{"format": 1, "active_version": 2, "master_keys": {"1": "AAAA"},'
        ' "blind_index_key": "AAAA", "signing_keys": ["AAAA"]}',
        encoding="utf-8",
    )
    with pytest.raises(KeyringError):
        Keyring.load(bad)


def test_active_version_cannot_be_retired():
    keyring = Keyring.generate()
    with pytest.raises(KeyringError, match="active"):
        keyring.retire_master_version(1)
    with pytest.raises(KeyringError):
        keyring.retire_master_version(7)


# --- rotation end to end through the CLI ------------------------------------------


PEOPLE = [
    ("Ada", "Analytical Engines Ltd"),
    ("Grace", "Compilers Inc"),
    ("Edsger", "Structured GmbH"),
]


def invoke(env, *args):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.committing
def test_key_rotation_end_to_end(make_app, database_url, instance, keyring_path, tmp_path):
    ring = tmp_path / "keyring.json"
    shutil.copy(keyring_path, ring)
    app = make_app(keyring=str(ring))
    env = {name: None for name in os.environ if name.startswith("LEADVAULT_")}
    env.update(
        LEADVAULT_INSTANCE=str(instance),
        LEADVAULT_DATABASE_URL=database_url,
        LEADVAULT_KEYRING=str(ring),
    )

    # Nothing stored yet: version 1 is unused but active, so it cannot be retired.
    code, output = invoke(env, "keys", "retire", "1")
    assert code == 1, output
    assert "active" in output
    assert Keyring.load(ring).master_keys.keys() == {1}

    emails = [unique_email(name.lower()) for name, _ in PEOPLE]
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        for email, (name, company) in zip(emails, PEOPLE, strict=True):
            lead, created = leads.get_or_create(s, email, language="en")
            assert created
            leads.set_attributes(s, lead, {"first_name": name, "company": company})
        outbox.enqueue_mail(
            s,
            MailContent(to=emails[0], subject="For Ada", text="Hi Ada", html="<p>Hi Ada</p>"),
            template="test",
            lead=lead,
        )
        loose = outbox.enqueue_mail(
            s,
            MailContent(
                to="ops@example.org", subject="Nobody's", text="lead-less", html="<p>x</p>"
            ),
            template="test",
            lead=None,
        )
        loose_id = loose.id
    data_keys = len(PEOPLE) + 1  # leads plus the lead-less outbox row

    with runtime(app).session_factory() as s:
        before = {row.id: (row.email, row.wrapped_key) for row in s.scalars(sa.select(Lead))}
        assert key_service.count_using(s, 1) == data_keys

    code, output = invoke(env, "keys", "status")
    assert code == 0, output
    assert f"version 1 (active): {data_keys} data keys" in output

    code, output = invoke(env, "keys", "retire", "1")
    assert code == 1, output
    assert "data keys" in output

    code, output = invoke(env, "keys", "rotate")
    assert code == 0, output
    assert f"Master key version 2 is active; {data_keys} data keys re-wrapped." in output
    assert stat.S_IMODE(ring.stat().st_mode) == 0o600

    with runtime(app).session_factory() as s:
        after = {row.id: (row.email, row.wrapped_key) for row in s.scalars(sa.select(Lead))}
        assert key_service.count_using(s, 1) == 0
        assert key_service.count_using(s, 2) == data_keys
        versions = set(s.scalars(sa.select(Lead.key_version)))
        assert versions == {2}
        loose_row = s.get(OutboxMessage, loose_id)
        assert loose_row.payload_key_version == 2
    assert after.keys() == before.keys()
    for lead_id, (email_sealed, wrapped) in before.items():
        assert after[lead_id][0] == email_sealed  # field ciphertexts untouched
        assert after[lead_id][1] != wrapped  # data key re-wrapped

    code, output = invoke(env, "keys", "retire", "1")
    assert code == 0, output
    assert Keyring.load(ring).master_keys.keys() == {2}

    # A new master version added without re-wrapping: version 2 still wraps every
    # data key and must not be retired.
    pending = Keyring.load(ring)
    assert pending.add_master_version() == 3
    pending.save()
    code, output = invoke(env, "keys", "retire", "2")
    assert code == 1, output
    assert f"still wraps {data_keys} data keys" in output
    assert Keyring.load(ring).master_keys.keys() == {2, 3}

    code, output = invoke(env, "keys", "rotate")
    assert code == 0, output
    assert "Master key version 4 is active" in output
    for version in ("2", "3"):
        code, output = invoke(env, "keys", "retire", version)
        assert code == 0, output
    assert Keyring.load(ring).master_keys.keys() == {4}

    # A fresh app that only has version 4 reads everything.
    fresh = make_app(keyring=str(ring))
    with fresh.app_context(), unit_of_work(runtime(fresh).session_factory) as s:
        stored = list(s.scalars(sa.select(Lead)))
        assert {leads.email_of(s, lead) for lead in stored} == set(emails)
        profiles = {leads.email_of(s, lead): leads.attributes_of(s, lead) for lead in stored}
        for email, (name, company) in zip(emails, PEOPLE, strict=True):
            assert profiles[email] == {"first_name": name, "company": company}
        rows = {row.id: row for row in s.scalars(sa.select(OutboxMessage))}
        assert len(rows) == 2
        content = outbox.read_content(s, rows[loose_id])
        assert content.to == "ops@example.org"
        assert content.text == "lead-less"
        assert outbox.read_subject(s, rows[loose_id]) == "Nobody's"
        [lead_mail] = [row for row_id, row in rows.items() if row_id != loose_id]
        assert outbox.read_content(s, lead_mail).subject == "For Ada"
        assert rows[loose_id].payload_key_version == 4

    # The original key ring (version 1 only) can no longer unwrap the data keys.
    old = make_app()
    with old.app_context(), unit_of_work(runtime(old).session_factory) as s:
        stored = list(s.scalars(sa.select(Lead)))
        assert stored
        with pytest.raises(DecryptionError):
            leads.email_of(s, stored[0])


def test_public_ids_never_start_with_a_dash(monkeypatch, app, tmp_path):
    """Form and asset ids are typed on the command line, where `-abc` is an option
    (CI once drew an asset id starting with "-" and `assets archive` refused it)."""
    from leadvault import crypto

    drawn = iter(["-first", "-second", "third"])
    monkeypatch.setattr(crypto, "random_token", lambda nbytes=16: next(drawn))
    assert crypto.public_id() == "third"

    drawn = iter(["-asset", "asset"])
    source = tmp_path / "guide.pdf"
    source.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    added = CliRunner().invoke(cli, ["assets", "add", str(source), "--title", "Guide"], obj=app)
    assert added.exit_code == 0, added.output
    assert added.output.split()[1] == "asset"
