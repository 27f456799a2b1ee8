"""``leadvault check`` (and the console's settings page, which shows the same lines)
names the inbox items the worker gave up on: how many, how long the oldest has waited,
each one's id and error class, and nothing of the payload; the command then exits 1, as
for a database or SMTP server that does not answer."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from leadvault import checks, clock
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.models import InboxItem, InboxStatus
from tests import factories
from tests.factories import uow
from tests.test_scoring import cli_env

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def _items(app: Any, *specs: tuple[str, str | None, dt.timedelta]) -> list[int]:
    with uow(app) as s:
        s.execute(sa.delete(InboxItem))
        rows = [
            InboxItem(
                kind="submission",
                payload=b"ada@example.org",  # stands for the sealed payload
                payload_owner="o",
                payload_key=b"k",
                payload_key_version=1,
                status=status,
                last_error=error,
                attempts=9 if status == InboxStatus.FAILED else 0,
                received_at=NOW - age,
            )
            for status, error, age in specs
        ]
        s.add_all(rows)
        s.flush()
        return [row.id for row in rows]


def _line(app: Any) -> checks.Line:
    with app.app_context(), uow(app) as s:
        return checks.inbox_line(s.connection(), now=NOW)


def test_failed_items_are_named_by_id_and_error_class_only(app):
    assert _line(app) == checks.Line("inbox", "no failed items", "ok")
    ids = _items(
        app,
        (InboxStatus.FAILED, "IntegrityError", dt.timedelta(days=2, hours=3)),
        (InboxStatus.PENDING, None, dt.timedelta(days=9)),  # waiting: the queue's, not failed
        (InboxStatus.FAILED, "KeyError: 'ada@example.org'", dt.timedelta(hours=1)),
        (InboxStatus.FAILED, None, dt.timedelta(minutes=5)),
    )
    line = _line(app)
    assert line.level == "error" and line.label == "inbox"
    assert line.text.startswith("3 FAILED"), line.text
    assert "oldest received 2 d 3 h ago" in line.text
    assert (
        f"#{ids[0]} IntegrityError, #{ids[2]} KeyError, #{ids[3]} (no error recorded)" in line.text
    )
    assert f"#{ids[1]}" not in line.text
    assert "ada" not in line.text and "example.org" not in line.text


def test_more_failed_items_than_listed_are_counted(app, monkeypatch):
    monkeypatch.setattr(checks, "LISTED_FAILURES", 2)
    _items(
        app, *[(InboxStatus.FAILED, "ValueError", dt.timedelta(minutes=m)) for m in (30, 20, 10)]
    )
    text = _line(app).text
    assert text.startswith("3 FAILED") and text.count("ValueError") == 2 and "and 1 more" in text
    assert "oldest received 30 min ago" in text


def test_settings_page_shows_the_failed_items(app):
    ids = _items(app, (InboxStatus.FAILED, "IntegrityError", dt.timedelta(hours=5)))
    client, _ = factories.signed_in_client(app, "owner")
    html = client.get("/console/settings?check=1").get_data(as_text=True)
    assert f"#{ids[0]} IntegrityError" in html and "1 FAILED" in html


@pytest.mark.committing  # check opens a connection of its own
def test_check_exits_1_naming_the_failed_items(app, monkeypatch):
    ids = _items(app, (InboxStatus.FAILED, "IntegrityError", dt.timedelta(hours=5)))
    monkeypatch.setattr(clock, "now", lambda: NOW)
    result = CliRunner().invoke(cli, ["check"], obj=app, env=cli_env(app))
    assert result.exit_code == 1, result.output
    assert (
        "inbox        1 FAILED (given up on; the oldest received 5 h 0 min ago): "
        f"#{ids[0]} IntegrityError" in result.output
    )
    with uow(app) as s:
        s.execute(sa.delete(InboxItem))
    healthy = CliRunner().invoke(cli, ["check"], obj=app, env=cli_env(app))
    assert "inbox        no failed items" in healthy.output
    assert runtime(app).settings is not None
