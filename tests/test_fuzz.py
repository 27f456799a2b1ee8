"""Every input gets a 4xx, never a 5xx, and an accepted submission is never lost
(issue 10.7).

Hypothesis sends each public JSON and form endpoint what a hostile or broken
client might: any JSON (lone surrogates such as ``\\ud800`` in keys and values,
nesting far deeper than Python's recursion limit, numbers, nulls), raw bytes
as form bodies, broken tokens in the path. No answer may be a 5xx. For the
submission endpoint, every 2xx for a human submission (fresh render token, no
honeypot) must end, after the worker ran, as a lead with its opt-in mail sent,
and no inbox item may be left behind: the request validates everything the
worker needs before it answers.

The number of examples per endpoint is ``--fuzz-examples`` (default 300, see
tests/conftest.py); a derandomised run keeps CI repeatable.
"""

from __future__ import annotations

import json
import string
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadvault import leads
from leadvault.app import runtime
from leadvault.models import InboxItem, OutboxMessage, OutboxStatus
from tests import factories
from tests.conftest import _smtp_config, deliver, make_form, render_token

LONE_SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]

# Text: any code point, lone surrogates included, and now and then one on its own.
text = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
    st.sampled_from(LONE_SURROGATES).map(lambda s: f"a{s}b"),
    st.sampled_from(["", " ", "\x00", "\r\n", "ä" * 300, "x" * 5000]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(text, children, max_size=4)
    ),
    max_leaves=12,
)


def deep(depth: int, kind: str) -> str:
    """JSON nested ``depth`` levels: past Python's recursion limit at 100 000."""
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


deep_json = st.builds(
    deep, st.sampled_from([50, 999, 1001, 100_000]), st.sampled_from(["list", "dict"])
)
emails = st.one_of(
    st.emails(),
    st.builds(
        lambda local, domain: f"{local}@{domain}",
        st.sampled_from(["ada", "jörg", "Ada.Lovelace", "a+b", "x" * 64, "x" * 65]),
        st.sampled_from(
            ["example.org", "bücher.de", "xn--bcher-kva.de", "EXAMPLE.ORG", "x" * 250 + ".de"]
        ),
    ),
    text,
)
# A valid address with a lone surrogate (or a control character) somewhere inside.
emails = st.one_of(
    emails,
    st.builds(
        lambda email, bad, at: email[:at] + bad + email[at:],
        st.emails(),
        st.sampled_from([*LONE_SURROGATES, "\x00", "\n", "\u202e"]),
        st.integers(0, 3),
    ),
)
# Form bodies as raw bytes: invalid UTF-8, CESU-8 surrogates, stray separators.
form_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.tuples(
            st.sampled_from(["email", "first_name", "consent", "utm_source", "lang", "x"]),
            st.one_of(st.binary(max_size=30), st.sampled_from([b"\xed\xa0\x80", b"%ED%A0%80"])),
        ),
        max_size=6,
    ).map(lambda pairs: b"&".join(k.encode() + b"=" + v for k, v in pairs)),
)
tokens = st.one_of(
    st.text(string.ascii_letters + string.digits + "-_.~", max_size=200),
    st.text(max_size=20).map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")),
)


def examples(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--fuzz-examples"))


FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def no_5xx(response: Any, what: str) -> None:
    assert response.status_code < 500, (what, response.status_code, response.get_data()[:300])


@pytest.fixture
def fuzz_app(make_app, smtp_server):
    return make_app(
        smtp_url=_smtp_config(smtp_server.port),
        rate_limit_ip="1000000/minute",
        rate_limit_email="1000000/minute",
        rate_limit_manage="1000000/minute",
        rate_limit_resend="1000000/minute",
        rate_limit_track="1000000/minute",
    )


# --- the submission endpoint ------------------------------------------------------------

submission = st.fixed_dictionaries(
    {
        "email": emails,
        "consent": st.one_of(
            st.just(["newsletter"]),
            st.lists(st.sampled_from(["newsletter", "x"]), max_size=3),
            json_values,
        ),
    },
    optional={
        "first_name": st.one_of(text, text, json_values),
        "last_name": text,
        "lang": st.one_of(st.sampled_from(["de", "en", "xx"]), text),
        "utm_source": text,
        "utm_campaign": text,
        "page_url": st.one_of(st.just("https://www.example.com/a?b=c"), text),
        "referrer": text,
        "website": text,  # the honeypot
    },
)


def _check_accepted(app: Any, body: dict[str, Any]) -> None:
    """A human submission answered 2xx: after the worker, a lead with its opt-in mail."""
    deliver(app)
    with runtime(app).session_factory() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(InboxItem)) == 0, "left behind"
        lead = leads.find_by_email(s, body["email"])
        assert lead is not None, ("2xx but no lead", body)
        optin = s.scalars(
            sa.select(OutboxMessage).where(
                OutboxMessage.lead_id == lead.id, OutboxMessage.template == "optin"
            )
        ).all()
        assert optin and all(m.status == OutboxStatus.SENT for m in optin), ("opt-in", body)


def test_fuzz_submission_json(fuzz_app, request):
    form_id = make_form(fuzz_app)
    client = fuzz_app.test_client()
    accepted: list[str] = []

    @settings(FUZZ, max_examples=examples(request))
    @given(body=submission)
    def run(body: dict[str, Any]) -> None:
        human = "website" not in body
        body = {**body, "render_token": render_token(fuzz_app, form_id)}
        raw = json.dumps(body)  # lone surrogates travel as \\ud800 escapes, valid JSON
        response = client.post(f"/f/{form_id}", data=raw, content_type="application/json")
        no_5xx(response, raw[:200])
        if response.status_code < 300 and human:
            _check_accepted(fuzz_app, body)
            accepted.append(body["email"])

    run()
    # Not vacuous: a good share of the examples were accepted and followed to the end.
    assert len(accepted) >= examples(request) // 20, len(accepted)


# --- raw JSON and form bodies on every public POST endpoint ------------------------------

json_bodies = st.one_of(
    deep_json,
    json_values.map(json.dumps),  # surrogates as \\ud800 escapes
    st.fixed_dictionaries(
        {},
        optional={
            "email": st.one_of(emails, json_values),
            "type": st.one_of(st.sampled_from(["page_view", "download"]), text, json_values),
            "token": st.one_of(text, json_values),
            "url": st.one_of(text, json_values),
            "lang": text,
            "consent": json_values,
            "events": st.lists(
                st.fixed_dictionaries(
                    {"type": st.one_of(st.just("webinar_attended"), text)},
                    optional={
                        "email": st.one_of(emails, json_values),
                        "occurred_at": st.one_of(st.just("2026-01-01T00:00:00Z"), text),
                        "id": st.one_of(text, json_values),
                        "properties": json_values,
                    },
                ),
                max_size=3,
            ),
        },
    ).map(json.dumps),
    st.text(max_size=60),  # not JSON at all
)


@pytest.fixture
def endpoints(fuzz_app) -> list[tuple[str, dict[str, str]]]:
    """Every public POST endpoint, with the headers its real callers send."""
    form_id = make_form(fuzz_app)
    events_token = factories.api_token(fuzz_app, scopes=("events:write",))
    consent_token = factories.api_token(fuzz_app, scopes=("consent:read",))
    return [
        (f"/f/{form_id}", {}),
        ("/manage", {}),
        ("/api/v1/track", {}),
        ("/api/v1/events", {"Authorization": f"Bearer {events_token}"}),
        ("/api/v1/consent/lookup", {"Authorization": f"Bearer {consent_token}"}),
    ]


def test_fuzz_json_bodies(fuzz_app, endpoints, request):
    fuzz_app.config["WTF_CSRF_ENABLED"] = False  # reach the handlers behind CSRF too
    client = fuzz_app.test_client()

    @settings(FUZZ, max_examples=examples(request))
    @given(body=json_bodies, content_type=st.sampled_from(["application/json", "text/plain"]))
    def run(body: str, content_type: str) -> None:
        for path, headers in endpoints:
            response = client.post(path, data=body, content_type=content_type, headers=headers)
            no_5xx(response, f"{path} {body[:200]!r}")

    run()


def test_fuzz_form_bodies(fuzz_app, endpoints, request):
    fuzz_app.config["WTF_CSRF_ENABLED"] = False
    client = fuzz_app.test_client()

    @settings(FUZZ, max_examples=examples(request))
    @given(body=form_bytes, multipart=st.booleans())
    def run(body: bytes, multipart: bool) -> None:
        content_type = (
            "multipart/form-data; boundary=x" if multipart else "application/x-www-form-urlencoded"
        )
        for path, headers in endpoints:
            response = client.post(path, data=body, content_type=content_type, headers=headers)
            no_5xx(response, f"{path} {body[:200]!r}")

    run()


# --- signed-link endpoints with broken tokens --------------------------------------------

LINK_ENDPOINTS = [
    "/c/{t}",
    "/c/{t}/resend",
    "/u/{t}",
    "/p/{t}/confirm",
    "/p/{t}/withdraw",
    "/p/{t}/correct",
    "/address/{t}",
    "/a/{t}",
    "/e/{t}",
    "/d/{t}",
    "/d/{t}/resend",
    "/n/{t}",
    "/h/{t}/accept",
    "/h/{t}/reject",
    "/f/{form}/more/{t}",
]


def test_fuzz_signed_links(fuzz_app, request):
    fuzz_app.config["WTF_CSRF_ENABLED"] = False
    form_id = make_form(fuzz_app)
    client = fuzz_app.test_client()

    @settings(FUZZ, max_examples=examples(request))
    @given(token=tokens, body=form_bytes, method=st.sampled_from(["GET", "POST"]))
    def run(token: str, body: bytes, method: str) -> None:
        for template in LINK_ENDPOINTS:
            path = template.format(t=token or "x", form=form_id)
            response = client.open(
                path,
                method=method,
                data=body if method == "POST" else None,
                content_type="application/x-www-form-urlencoded",
            )
            no_5xx(response, f"{method} {path[:200]}")

    run()


# --- the preference center's correction form, behind a valid link ----------------------

correction_bodies = st.lists(
    st.tuples(
        st.sampled_from(
            ["email", "first_name", "last_name", "company", "phone", "country", "company_size"]
        ),
        st.one_of(
            st.binary(max_size=30),
            st.sampled_from([b"\xed\xa0\x80", b"%00", b"DE", b"50-249", b"a%40example.org"]),
        ),
    ),
    max_size=8,
).map(lambda pairs: b"&".join(k.encode() + b"=" + v for k, v in pairs))


def test_fuzz_correction_form(fuzz_app, request):
    from consent import rights

    fuzz_app.config["WTF_CSRF_ENABLED"] = False
    lead_id = factories.lead(fuzz_app, profile={"first_name": "Ada"})
    with factories.uow(fuzz_app) as s:
        path = "/p/" + rights.prefs_url(s, lead_id).rsplit("/p/", 1)[1] + "/correct"
    client = fuzz_app.test_client()

    @settings(FUZZ, max_examples=max(20, examples(request) // 5))
    @given(body=correction_bodies)
    def run(body: bytes) -> None:
        response = client.post(path, data=body, content_type="application/x-www-form-urlencoded")
        no_5xx(response, f"{path} {body[:200]!r}")
        assert response.status_code in {200, 422}, response.status_code

    run()
