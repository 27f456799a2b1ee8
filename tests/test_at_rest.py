"""No personal data in plaintext at rest: database files, WAL, instance folder."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from capture.definitions import FieldSpec
from leadvault.app import runtime
from leadvault.models import OutboxMessage, OutboxStatus
from tests.conftest import deliver, make_form, render_token

FIRST_NAME = "Quokkabelle"
LAST_NAME = "Tarantallegra"
COMPANY = "Snorkelwidget GmbH"
MESSAGE = "Kindly phone me about the Xylophrenic plan"


def submit_distinctive_lead(app, client, smtp_server) -> list[str]:
    # The email's letters are outside [0-9a-f], so it cannot hide in hex dumps by chance.
    email = f"zyxwv.quokka.{uuid.uuid4().hex[:8]}@example.org"
    form_id = make_form(
        app,
        fields=[
            FieldSpec("first_name", False),
            FieldSpec("last_name", False),
            FieldSpec("company", False),
            FieldSpec("message", False),
        ],
    )
    response = client.post(
        f"/f/{form_id}",
        json={
            "email": email,
            "first_name": FIRST_NAME,
            "last_name": LAST_NAME,
            "company": COMPANY,
            "message": MESSAGE,
            "consent": ["newsletter"],
            "render_token": render_token(app, form_id),
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert deliver(app) == 1
    [mail] = smtp_server.wait_for(1)
    # The mail really carried the data, so the stored rows are about it.
    assert mail["To"] == email
    with runtime(app).session_factory() as s:
        statuses = list(s.scalars(sa.select(OutboxMessage.status)))
    assert statuses == [OutboxStatus.SENT]
    return [email, email.partition("@")[0], "zyxwv.quokka", FIRST_NAME, LAST_NAME, COMPANY, MESSAGE]


def needles_bytes(plaintexts: list[str]) -> list[bytes]:
    return [text.lower().encode("utf-8") for text in plaintexts]


def assert_absent(haystack: bytes, plaintexts: list[str], where: str) -> None:
    lowered = haystack.lower()
    for needle in needles_bytes(plaintexts):
        assert needle not in lowered, f"{needle!r} in plaintext in {where}"


def read_tree(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.committing
def test_nothing_personal_in_plaintext_at_rest(app, client, smtp_server, backend, instance):
    plaintexts = submit_distinctive_lead(app, client, smtp_server)
    engine = runtime(app).engine

    if backend == "sqlite":
        database = Path(engine.url.database or "")
        files = read_tree(database.parent)
        assert database in files
        assert any(path.name.endswith("-wal") for path in files), sorted(files)
        for path, content in files.items():
            assert_absent(content, plaintexts, str(path))
    else:
        with engine.connect() as connection:
            tables = list(
                connection.scalars(
                    sa.text(
                        "SELECT table_name FROM information_schema.tables"
                        " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                    )
                )
            )
            assert {"leads", "lead_attributes", "outbox"} <= set(tables)
            dumped = []
            for table in tables:
                rows = connection.scalars(sa.text(f'SELECT t::text FROM "{table}" t'))
                dumped.extend(rows)
        text = "\n".join(dumped).lower()
        assert "\\x" in text  # bytea columns are in the dump, hex-encoded
        for plaintext in plaintexts:
            assert plaintext.lower() not in text, f"{plaintext!r} in the database"
            hexed = plaintext.encode("utf-8").hex()
            assert hexed not in text, f"{plaintext!r} hex-encoded in the database"
            assert plaintext.lower().encode("utf-8").hex() not in text

    files = read_tree(instance)
    for path, content in files.items():
        assert_absent(content, plaintexts, str(path))


def test_the_check_would_see_plaintext(tmp_path):
    """The byte search above finds a stored plaintext, whatever its case."""
    probe = tmp_path / "probe.bin"
    probe.write_bytes(b"\x00\x01QUOKKABELLE Tarantallegra\xff")
    content = read_tree(tmp_path)[probe]
    for name in (FIRST_NAME, LAST_NAME):
        with pytest.raises(AssertionError, match=name.lower()):
            assert_absent(content, [name], str(probe))
    assert_absent(content, [COMPANY], str(probe))
