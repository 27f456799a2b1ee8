"""Bot defence: single-use tokens (10.5), no person silently dropped and verdicts the owner
can see (10.3).

A render token and an ALTCHA solution are accepted once; the store is a table
(several web processes, PostgreSQL nodes), so a second app on the same
database refuses a token the first one accepted. A submission faster than the
minimum fill time is accepted: double opt-in proves the address.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any

import altcha
import sqlalchemy as sa
from click.testing import CliRunner

from leadvault import clock
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.models import InboxItem, SpentToken
from tests.conftest import _smtp_config, deliver, make_form, process, render_token, unique_email
from tests.hostile import Statements, count_rows, uow

HOST = "https://www.example.com"


def inbox_count(app: Any) -> int:
    return count_rows(app, InboxItem)


def post(client: Any, form_id: str, **payload: Any) -> Any:
    body = {"email": unique_email(), "consent": ["newsletter"], **payload}
    return client.post(f"/f/{form_id}", json=body, headers={"Origin": HOST})


def bot_counts(app: Any, since: dt.date | None = None) -> dict[tuple[str, str], int]:
    from capture import service

    with uow(app) as s:
        rows = service.bot_report(s, since or clock.now().date())
    found: dict[tuple[str, str], int] = {}
    for row in rows:
        found[(row.form, row.reason)] = found.get((row.form, row.reason), 0) + row.count
    return found


# --- 10.5 single-use tokens ------------------------------------------------------------


def test_a_render_token_is_accepted_once(app, client):
    form_id = make_form(app)
    token = render_token(app, form_id)
    first = post(client, form_id, render_token=token)
    assert first.status_code == 200
    assert inbox_count(app) == 1
    replay = post(client, form_id, render_token=token)
    assert replay.status_code == 200
    assert replay.get_data() == first.get_data()  # the bot reply is the same reply
    assert inbox_count(app) == 1  # nothing stored for the replay
    assert bot_counts(app)[(form_id, "replay")] == 1


def test_a_refused_submission_does_not_use_up_its_token(app, client):
    form_id = make_form(app)
    token = render_token(app, form_id)
    assert post(client, form_id, render_token=token, email="not an address").status_code == 422
    assert post(client, form_id, render_token=token).status_code == 200
    assert inbox_count(app) == 1


def test_another_web_process_refuses_a_spent_token(make_app, smtp_server):
    """Two apps (as two gunicorn workers or two nodes) share the store: the database."""
    first = make_app(smtp_url=_smtp_config(smtp_server.port))
    second = make_app(smtp_url=_smtp_config(smtp_server.port))
    form_id = make_form(first)
    token = render_token(first, form_id)
    assert post(first.test_client(), form_id, render_token=token).status_code == 200
    assert post(second.test_client(), form_id, render_token=token).status_code == 200
    assert inbox_count(first) == 1


def _solved(challenge: dict[str, Any]) -> str:
    solution = altcha.solve_challenge_v1(
        challenge["challenge"], challenge["salt"], challenge["algorithm"], challenge["maxnumber"], 0
    )
    fields = {k: challenge[k] for k in ("algorithm", "challenge", "salt", "signature")}
    return base64.b64encode(json.dumps({**fields, "number": solution.number}).encode()).decode()


def test_an_altcha_solution_is_accepted_once(app, client):
    form_id = make_form(app, proof_of_work=True)
    config = client.get(f"/f/{form_id}/config").get_json()
    solution = _solved(config["challenge"])
    first = post(client, form_id, render_token=config["render_token"], altcha=solution)
    assert first.status_code == 200
    assert inbox_count(app) == 1
    # A fresh render token does not make an old solution new.
    fresh = client.get(f"/f/{form_id}/config").get_json()["render_token"]
    assert post(client, form_id, render_token=fresh, altcha=solution).status_code == 200
    assert inbox_count(app) == 1
    assert bot_counts(app)[(form_id, "replay")] == 1


def test_an_accepted_submission_costs_one_more_statement(app, client, backend):
    """The hot path: the spent token and the inbox row, two INSERTs, nothing else
    (on PostgreSQL both in one statement)."""
    form_id = make_form(app)
    assert post(client, form_id, render_token=render_token(app, form_id)).status_code == 200
    token = render_token(app, form_id)
    with Statements() as statements:
        assert post(client, form_id, render_token=token).status_code == 200
    if backend == "sqlite":
        assert statements.kinds() == ["INSERT spent_tokens", "INSERT inbox"]
    else:
        assert statements.kinds() == ["WITH"]
        [statement] = [s for s in statements.seen if s.startswith("WITH")]
        assert re.findall(r"\bINSERT INTO (\w+)", statement) == ["spent_tokens", "inbox"]


def test_a_submission_in_the_render_millisecond_is_not_too_fast(app, client):
    """With no minimum fill time nothing counts as too fast, and the render time is
    never rounded up past the submission (CI once submitted within half a millisecond
    of the render and was counted as too fast)."""
    form_id = make_form(app)
    clock.freeze(dt.datetime(2026, 12, 5, 9, 0, 0, 999_900, tzinfo=dt.UTC))
    try:
        token = render_token(app, form_id)
        assert post(client, form_id, render_token=token).status_code == 200
    finally:
        clock.freeze(None)
    assert bot_counts(app) == {}


def test_spent_tokens_are_purged_after_they_expire(app, client):
    from consent import retention

    form_id = make_form(app)
    assert post(client, form_id, render_token=render_token(app, form_id)).status_code == 200
    with uow(app) as s:
        [spent] = s.scalars(sa.select(SpentToken)).all()
        assert spent.expires_at > clock.now()
    clock.freeze(spent.expires_at + dt.timedelta(seconds=1))
    with uow(app) as s:
        assert retention.purge(s)["spent_links_forgotten"] == 1
        assert s.scalars(sa.select(SpentToken)).all() == []


# --- 10.3 a person who is fast is not dropped; the owner sees the verdicts ------------------


def test_a_submission_faster_than_the_fill_time_is_accepted_and_counted(make_app, smtp_server):
    app = make_app(smtp_url=_smtp_config(smtp_server.port), form_min_fill_seconds=5.0)
    client = app.test_client()
    form_id = make_form(app)
    email = unique_email("autofill")
    token = render_token(app, form_id)  # autofill and a click: well under a second
    response = post(client, form_id, render_token=token, email=email)
    assert response.status_code == 200
    assert process(app) == 1
    assert deliver(app) == 1  # the opt-in mail: the address's owner decides
    [mail] = smtp_server.wait_for(1)
    assert mail["To"] == email
    assert bot_counts(app) == {(form_id, "too_fast"): 1}


def test_report_bots_counts_per_form_and_reason_per_day(make_app, smtp_server):
    app = make_app(smtp_url=_smtp_config(smtp_server.port), form_min_fill_seconds=5.0)
    client = app.test_client()
    one, two = make_form(app, name="Footer"), make_form(app, name="Sidebar")
    clock.freeze(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
    post(client, one, render_token=render_token(app, one), website="http://spam.example")
    post(client, one, render_token="forged")
    post(client, two, render_token="forged")
    clock.advance(dt.timedelta(days=1))
    fast = render_token(app, two)
    post(client, two, render_token=fast)  # too fast: accepted
    post(client, two, render_token=fast)  # the same token again: a replay
    with uow(app) as s:
        from capture import service

        rows = [
            (r.day.isoformat(), r.form, r.reason, r.count, r.outcome)
            for r in service.bot_report(s, dt.date(2026, 3, 1))
        ]
    assert rows == sorted(
        [
            ("2026-03-02", one, "honeypot", 1, "dropped"),
            ("2026-03-02", one, "token", 1, "dropped"),
            ("2026-03-02", two, "token", 1, "dropped"),
            ("2026-03-03", two, "replay", 1, "dropped"),
            ("2026-03-03", two, "too_fast", 1, "accepted"),
        ]
    )
    settings = runtime(app).settings
    env = {
        "LEADVAULT_INSTANCE": str(settings.instance),
        "LEADVAULT_DATABASE_URL": settings.database_url.replace("+psycopg", ""),
        "LEADVAULT_KEYRING": str(settings.keyring),
    }
    result = CliRunner().invoke(cli, ["report", "bots", "--since", "2026-03-01"], env=env, obj=app)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split()[:4] == ["2026-03-02", one, "honeypot", "1"] for line in lines)
    assert any("Footer" in line for line in lines)
    fast = ["2026-03-03", two, "too_fast", "1", "accepted"]
    assert any(line.split()[:5] == fast for line in lines)
    since_later = CliRunner().invoke(
        cli, ["report", "bots", "--since", "2026-03-03"], env=env, obj=app
    )
    assert "honeypot" not in since_later.output
