"""No timing oracle on /manage (issue 10, point 9).

The request does the same work for a known and an unknown address: it checks
the address and its limits, seals the request into the inbox and answers.
Whether the address belongs to a lead is decided later by the worker. The
test compares the statements each request sends to the database, in order,
and the work done by the key ring (field encryption, blind index).
"""

from __future__ import annotations

import re
from typing import Any

from leadvault.app import runtime
from tests.conftest import deliver, make_form, render_token, unique_email
from tests.hostile import Statements

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _statements(app: Any, client: Any, email: str, token: str) -> tuple[list[str], Any]:
    with Statements() as statements:
        response = client.post("/manage", data={"csrf_token": token, "email": email})
    return statements.kinds(), response


def test_known_and_unknown_addresses_cost_the_same_on_the_request_path(app, client, smtp_server):
    known = unique_email("known")
    form_id = make_form(app)
    client.post(
        f"/f/{form_id}",
        json={
            "email": known,
            "consent": ["newsletter"],
            "render_token": render_token(app, form_id),
        },
    )
    deliver(app)
    smtp_server.wait_for(1)
    token = CSRF.search(client.get("/manage").get_data(as_text=True)).group(1)

    vault = runtime(app).vault
    calls: list[str] = []
    originals = {}
    for name in ("blind_index", "new_data_key", "unwrap", "keyed_hash"):
        originals[name] = getattr(vault, name)

        def counting(*args, _name=name, **kwargs):
            calls.append(_name)
            return originals[_name](*args, **kwargs)

        setattr(vault, name, counting)
    try:
        known_sql, known_reply = _statements(app, client, known, token)
        known_calls = list(calls)
        calls.clear()
        unknown_sql, unknown_reply = _statements(app, client, unique_email("stranger"), token)
        unknown_calls = list(calls)
    finally:
        for name, original in originals.items():
            setattr(vault, name, original)

    assert known_reply.status_code == unknown_reply.status_code == 200
    assert known_reply.get_data() == unknown_reply.get_data()
    assert known_sql == unknown_sql
    assert known_sql == ["INSERT inbox"]  # one sealed inbox row, no lookup
    assert known_calls == unknown_calls
    # The worker then mails the known address only.
    before = len(smtp_server.messages)
    deliver(app)
    new = smtp_server.messages[before:]
    assert [m["To"] for m in new] == [known]
    assert "/p/" in new[0].get_body(preferencelist=("plain",)).get_content()
