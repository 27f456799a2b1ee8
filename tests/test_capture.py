"""The public submission endpoint: validation, bots, enumeration, concurrency."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from capture import definitions, service
from capture.models import Submission
from leadvault import clock, counters
from leadvault.app import runtime
from leadvault.models import Lead, OutboxMessage
from tests.conftest import LiveServer, deliver, make_form, process, render_token, unique_email


def count(app, model) -> int:
    with runtime(app).session_factory() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


def test_hosted_form_page(app, client):
    form_id = make_form(
        app, allowed_origins=["https://www.example.com", "https://shop.example.com:8443"]
    )
    page = client.get(f"/f/{form_id}", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<html lang="de">' in html
    assert '<label for="lv-email">E-Mail-Adresse' in html
    assert 'id="lv-email"' in html
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://shop.example.com:8443 https://www.example.com" in csp
    assert "default-src 'none'" in csp
    # No third-party requests: every src/href is relative or our own.
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith("/") or url.startswith("http://127.0.0.1:5000"), url
    english = client.get(f"/f/{form_id}?lang=en", headers={"Accept-Language": "de"})
    assert '<label for="lv-email">Email address' in english.get_data(as_text=True)
    assert client.get("/f/doesnotexist").status_code == 404


def test_html_post_gets_thank_you_page_and_redirect(app, client):
    form_id = make_form(app)
    response = client.post(
        f"/f/{form_id}",
        data={
            "email": unique_email(),
            "consent": "newsletter",
            "render_token": render_token(app, form_id),
        },
    )
    assert response.status_code == 200
    assert "Thank you" in response.get_data(as_text=True)
    redirecting = make_form(app, redirect_url="https://www.example.com/thanks")
    response = client.post(
        f"/f/{redirecting}",
        data={
            "email": unique_email(),
            "consent": "newsletter",
            "render_token": render_token(app, redirecting),
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "https://www.example.com/thanks"


def test_field_errors_in_the_visitors_language(app, client):
    form_id = make_form(app, fields=[definitions.FieldSpec("first_name", True)])
    response = client.post(
        f"/f/{form_id}",
        json={
            "email": "not-an-address",
            "consent": ["newsletter"],
            "lang": "de",
            "render_token": render_token(app, form_id),
        },
    )
    assert response.status_code == 422
    body = response.get_json()
    assert body["fields"]["email"].startswith("Bitte geben Sie eine gültige E-Mail-Adresse ein")
    assert body["fields"]["first_name"] == "Bitte füllen Sie dieses Feld aus."
    html = client.post(
        f"/f/{form_id}",
        data={"email": "", "consent": "newsletter", "render_token": render_token(app, form_id)},
        headers={"Accept-Language": "en"},
    )
    assert html.status_code == 422
    text = html.get_data(as_text=True)
    assert 'aria-invalid="true" aria-describedby="lv-email-error"' in text
    assert "Please enter your email address." in text


def test_replies_for_new_and_existing_address_are_identical(app, client, smtp_server):
    form_id = make_form(app)
    email = unique_email()

    def post() -> tuple[int, bytes]:
        response = client.post(
            f"/f/{form_id}",
            json={
                "email": email,
                "consent": ["newsletter"],
                "render_token": render_token(app, form_id),
            },
        )
        return response.status_code, response.get_data()

    first = post()
    second = post()
    assert first == second
    html_new = client.post(
        f"/f/{form_id}",
        data={
            "email": unique_email(),
            "consent": "newsletter",
            "render_token": render_token(app, form_id),
        },
    )
    html_old = client.post(
        f"/f/{form_id}",
        data={"email": email, "consent": "newsletter", "render_token": render_token(app, form_id)},
    )
    assert (html_new.status_code, html_new.get_data()) == (
        html_old.status_code,
        html_old.get_data(),
    )
    process(app)
    assert count(app, Lead) == 2
    assert count(app, Submission) == 4


def test_origin_check(app, client):
    form_id = make_form(app)
    token = render_token(app, form_id)
    good = {"email": unique_email(), "consent": ["newsletter"], "render_token": token}
    allowed = client.post(f"/f/{form_id}", json=good, headers={"Origin": "https://www.example.com"})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://www.example.com"
    refused = client.post(f"/f/{form_id}", json=good, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
    preflight = client.options(f"/f/{form_id}", headers={"Origin": "https://www.example.com"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://www.example.com"


def test_bots_get_the_same_reply_and_leave_nothing(make_app, smtp_server):
    from tests.conftest import _smtp_config

    app = make_app(smtp_url=_smtp_config(smtp_server.port), form_min_fill_seconds=5.0)
    client = app.test_client()
    form_id = make_form(app)
    human_reply = None
    for case in ("honeypot", "no_token"):
        payload = {
            "email": unique_email(),
            "consent": ["newsletter"],
            "render_token": render_token(app, form_id),
        }
        if case == "honeypot":
            payload["website"] = "http://spam.example"
        if case == "no_token":
            payload.pop("render_token")
        response = client.post(f"/f/{form_id}", json=payload)
        assert response.status_code == 200
        human_reply = human_reply or response.get_data()
        assert response.get_data() == human_reply
    assert count(app, Lead) == 0
    assert count(app, OutboxMessage) == 0
    with runtime(app).session_factory() as s:
        assert counters.total(s, f"capture.bot.honeypot.{form_id}") == 1
        assert counters.total(s, f"capture.bot.token.{form_id}") == 1


def test_fill_time_is_measured_on_leadvault_clock(make_app, smtp_server):
    """The minimum fill time and the render token's age read the frozen clock."""
    import datetime as dt

    from tests.conftest import _smtp_config

    app = make_app(smtp_url=_smtp_config(smtp_server.port), form_min_fill_seconds=5.0)
    client = app.test_client()
    form_id = make_form(app)
    clock.freeze(dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC))

    def send_after(seconds: float) -> int:
        """Render the form now, send it ``seconds`` later (each token used once)."""
        token = render_token(app, form_id)
        clock.advance(dt.timedelta(seconds=seconds))
        payload = {"email": unique_email(), "consent": ["newsletter"], "render_token": token}
        return client.post(f"/f/{form_id}", json=payload).status_code

    assert send_after(4) == 200  # too fast: accepted (double opt-in decides) and counted
    assert send_after(6) == 200
    assert send_after(24 * 3600 + 1) == 422  # older than LEADVAULT_FORM_MAX_AGE_HOURS
    with runtime(app).session_factory() as s:
        assert counters.total(s, f"capture.bot.too_fast.{form_id}") == 1
    assert process(app) == 2  # both sends were stored


def _bad_inputs(form_id: str, token: str, expired_token: str) -> list[tuple[str, dict, int | str]]:
    ok = {"consent": ["newsletter"], "render_token": token}
    return [
        ("missing email", {"json": ok}, 422),
        ("invalid email", {"json": {**ok, "email": "a@@b"}}, 422),
        ("oversized email", {"json": {**ok, "email": "a" * 300 + "@example.org"}}, 422),
        ("email not a string", {"json": {**ok, "email": ["x@example.org"]}}, 422),
        ("unknown field", {"json": {**ok, "email": "x@example.org", "salary": "1"}}, 422),
        ("undeclared known field", {"json": {**ok, "email": "x@example.org", "phone": "1"}}, 422),
        ("no consent", {"json": {"email": "x@example.org", "render_token": token}}, 422),
        (
            "unknown purpose",
            {"json": {**ok, "email": "x@example.org", "consent": ["tracking", "newsletter"]}},
            422,
        ),
        ("JSON array", {"data": "[1,2]", "content_type": "application/json"}, 400),
        ("broken JSON", {"data": "{", "content_type": "application/json"}, 400),
        (
            "non-UTF-8 JSON",
            {"data": b'{"email": "\xff\xfe"}', "content_type": "application/json"},
            400,
        ),
        (
            "non-UTF-8 form",
            {
                "data": b"email=%FF%FE&consent=newsletter&render_token=" + token.encode(),
                "content_type": "application/x-www-form-urlencoded",
            },
            422,
        ),
        ("wrong content type", {"data": "email=x", "content_type": "text/plain"}, 415),
        ("no content type", {"data": "email=x"}, 415),
        ("huge body", {"data": "x" * 200_000, "content_type": "application/json"}, 413),
        ("honeypot filled", {"json": {**ok, "email": "x@example.org", "website": "x"}}, "silent"),
        (
            "too-fast submission",
            {"json": {**ok, "email": "x@example.org", "render_token": "forged"}},
            "silent",
        ),
        (
            "expired render token",
            {"json": {**ok, "email": "x@example.org", "render_token": expired_token}},
            422,
        ),
        ("unknown form", {"json": {**ok, "email": "x@example.org"}, "url": "/f/nope"}, 404),
        ("GET-only method", {"method": "put", "json": ok}, 405),
    ]


def test_bad_input_never_500(app, client):
    import datetime as dt

    form_id = make_form(app)
    token = render_token(app, form_id)
    clock.freeze(clock.now() - dt.timedelta(days=2))
    expired = render_token(app, form_id)
    clock.freeze(None)
    silent = client.post(
        f"/f/{form_id}",
        json={"email": unique_email(), "consent": ["newsletter"], "render_token": token},
    ).get_data()
    failures = []
    for name, request, expected in _bad_inputs(form_id, token, expired):
        request = dict(request)
        url = request.pop("url", f"/f/{form_id}")
        method = request.pop("method", "post")
        response = getattr(client, method)(url, **request)
        if expected == "silent":
            ok = response.status_code == 200 and response.get_data() == silent
        else:
            ok = response.status_code == expected
        body = response.get_data(as_text=True)
        if not ok or "Traceback" in body or response.status_code >= 500:
            failures.append(f"{name}: {response.status_code} {body[:200]}")
        if response.is_json and response.status_code >= 400:
            assert response.get_json()["error"], name
    assert not failures, failures
    process(app)
    assert count(app, Lead) == 1  # only the one good submission


@pytest.mark.committing
@pytest.mark.parametrize("rounds", [1])
def test_concurrent_submissions_of_one_new_address(app, smtp_server, rounds):
    form_id = make_form(app)
    email = unique_email()
    tokens = [render_token(app, form_id) for _ in range(20)]
    with LiveServer(app) as server:

        def post(token: str) -> int:
            body = json.dumps(
                {"email": email, "consent": ["newsletter"], "render_token": token}
            ).encode()
            request = urllib.request.Request(
                f"{server.url}/f/{form_id}", data=body, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(post, tokens))
    assert statuses == [200] * 20
    process(app)
    assert count(app, Lead) == 1
    assert count(app, Submission) == 20
    assert deliver(app) == 1
    smtp_server.wait_for(1)
    assert len(smtp_server.messages) == 1


def test_rate_limit_per_email(make_app, smtp_server):
    from tests.conftest import _smtp_config

    app = make_app(smtp_url=_smtp_config(smtp_server.port), rate_limit_email="3/hour")
    client = app.test_client()
    form_id = make_form(app)
    email = unique_email()
    statuses = [
        client.post(
            f"/f/{form_id}",
            json={
                "email": email,
                "consent": ["newsletter"],
                "render_token": render_token(app, form_id),
            },
        ).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    other = client.post(
        f"/f/{form_id}",
        json={
            "email": unique_email(),
            "consent": ["newsletter"],
            "render_token": render_token(app, form_id),
        },
    )
    assert other.status_code == 200


def test_proof_of_work_form(app, client):
    import altcha

    form_id = make_form(app, proof_of_work=True)
    config = client.get(f"/f/{form_id}/config").get_json()
    challenge = config["challenge"]
    payload = {
        "email": unique_email(),
        "consent": ["newsletter"],
        "render_token": config["render_token"],
    }
    # Without a solution: silently dropped.
    client.post(f"/f/{form_id}", json=payload)
    process(app)
    assert count(app, Lead) == 0
    solution = altcha.solve_challenge_v1(
        challenge["challenge"], challenge["salt"], challenge["algorithm"], challenge["maxnumber"], 0
    )
    import base64

    payload["altcha"] = base64.b64encode(
        json.dumps(
            {
                **{k: challenge[k] for k in ("algorithm", "challenge", "salt", "signature")},
                "number": solution.number,
            }
        ).encode()
    ).decode()
    assert client.post(f"/f/{form_id}", json=payload).status_code == 200
    process(app)
    assert count(app, Lead) == 1


def test_sources_are_stored_encrypted(app, client):
    form_id = make_form(app, fields=[definitions.FieldSpec("message", False)])
    client.post(
        f"/f/{form_id}",
        json={
            "email": unique_email(),
            "consent": ["newsletter"],
            "render_token": render_token(app, form_id),
            "page_url": "https://www.example.com/pricing?user=ada",
            "referrer": "https://search.example/",
            "utm_source": "newsletter",
            "utm_campaign": "spring-2027",
            "utm_medium": "email",
            "message": "Call me",
        },
    )
    process(app)
    with app.app_context(), runtime(app).session_factory() as s:
        [submission] = s.scalars(sa.select(Submission))
        data = service.read_submission(s, submission)
        assert b"pricing" not in submission.data
    assert data["page_url"] == "https://www.example.com/pricing?user=ada"
    assert data["utm_medium"] == "email"
    assert data["message"] == "Call me"
    assert submission.utm_source == "newsletter"
    assert submission.utm_campaign == "spring-2027"
