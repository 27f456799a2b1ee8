"""Bots cannot lock out a real person (issue 10, point 4).

- The per-address limit of the form counts only submissions that passed the
  bot checks (and would be stored), so junk posted with a victim's address
  does not use it up.
- Manage-my-data and the resend of a download (or opt-in) link are limited
  per IP (a 429) and per address: past the address's limit the reply stays
  the same and no further mail goes out, while the mails already sent still
  work, so whoever floods an address locks nobody out.
- An expired download link may ask for a new one only within another
  opt-in lifetime; older links cannot.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from capture.definitions import PurposeSpec
from leadvault import clock
from leadvault.app import runtime
from tests.conftest import _smtp_config, deliver, make_form, process, render_token, unique_email

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(response: Any) -> str:
    match = CSRF.search(response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)
    return match.group(1)


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def text_of(mail: Any) -> str:
    return mail.get_body(preferencelist=("plain",)).get_content()


def from_ip(ip: str) -> dict[str, Any]:
    return {"environ_base": {"REMOTE_ADDR": ip}}


def test_junk_with_a_victims_address_does_not_use_up_its_limit(make_app, smtp_server):
    app = make_app(smtp_url=_smtp_config(smtp_server.port), rate_limit_email="2/hour")
    client = app.test_client()
    form_id = make_form(app)
    victim = unique_email("victim")
    token = render_token(app, form_id)
    junk = [
        {"render_token": "forged"},
        {"render_token": render_token(app, form_id), "website": "http://spam.example"},
        {},  # no token at all
        {"render_token": token},  # spent below, then replayed
    ]
    assert (
        client.post(
            f"/f/{form_id}", json={"email": unique_email(), "consent": ["newsletter"], **junk[3]}
        ).status_code
        == 200
    )  # the token's one honest use, for another address
    for payload in junk * 3:
        response = client.post(
            f"/f/{form_id}", json={"email": victim, "consent": ["newsletter"], **payload}
        )
        assert response.status_code == 200  # the bot reply
    # The person themself: accepted, twice (the limit), then told to wait.
    statuses = [
        client.post(
            f"/f/{form_id}",
            json={
                "email": victim,
                "consent": ["newsletter"],
                "render_token": render_token(app, form_id),
            },
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert process(app) == 3


def _known_lead(app: Any, client: Any, smtp_server: Any) -> str:
    email = unique_email("known")
    form_id = make_form(app)
    client.post(
        f"/f/{form_id}",
        json={
            "email": email,
            "consent": ["newsletter"],
            "render_token": render_token(app, form_id),
        },
    )
    deliver(app)
    smtp_server.wait_for(1)
    return email


def test_manage_is_limited_per_ip_and_flooding_an_address_locks_nobody_out(make_app, smtp_server):
    app = make_app(smtp_url=_smtp_config(smtp_server.port), rate_limit_manage="2/hour")
    client = app.test_client()
    victim = _known_lead(app, client, smtp_server)
    token = csrf_of(client.get("/manage", **from_ip("203.0.113.1")))

    def ask(email: str, ip: str) -> Any:
        return client.post("/manage", data={"csrf_token": token, "email": email}, **from_ip(ip))

    # A bot from many addresses asks for the victim's link again and again.
    replies = [ask(victim, f"198.51.100.{n}") for n in range(1, 7)]
    assert {r.status_code for r in replies} == {200}
    assert len({r.get_data() for r in replies}) == 1
    # The person asks too: the same reply, no 429 ...
    own = ask(victim, "192.0.2.7")
    assert own.status_code == 200 and own.get_data() == replies[0].get_data()
    deliver(app)
    links = [m for m in smtp_server.messages if "/p/" in text_of(m)]
    # ... and at most the limit's mails went out; each holds a working link.
    assert len(links) == 2
    for mail in links:
        assert mail["To"] == victim
        page = client.get(path_of(re.search(r"http://\S+/p/\S+", text_of(mail)).group(0)))
        assert page.status_code == 200
    # One IP is limited on its own: its third request is refused, whatever the address.
    bot_ip = "203.0.113.9"
    statuses = [ask(unique_email("many"), bot_ip).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def _whitepaper(app: Any, tmp_path: Any) -> str:
    from capture import service as capture_service
    from leadvault.db import unit_of_work
    from widgets import service

    form_id = make_form(
        app, name="Guide", kind="whitepaper", purposes=[PurposeSpec("whitepaper", True)]
    )
    source = tmp_path / "guide.pdf"
    source.write_bytes(b"%PDF-1.4\n%%EOF\n")
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        asset = service.add_asset(s, source, title="Guide")
        service.attach(s, asset, capture_service.get_form(s, form_id))
    return form_id


def _download_link(app: Any, client: Any, smtp_server: Any, tmp_path: Any) -> str:
    form_id = _whitepaper(app, tmp_path)
    client.post(
        f"/f/{form_id}",
        json={
            "email": unique_email("reader"),
            "consent": ["whitepaper"],
            "render_token": render_token(app, form_id),
        },
    )
    deliver(app)
    [optin] = smtp_server.wait_for(1)
    confirm = path_of(re.search(r"http://\S+/c/\S+", text_of(optin)).group(0))
    client.post(confirm, data={"csrf_token": csrf_of(client.get(confirm))})
    deliver(app)
    asset_mail = smtp_server.wait_for(2)[1]
    return path_of(re.search(r"http://\S+/d/\S+", text_of(asset_mail)).group(0))


def test_download_resend_is_limited_per_ip_and_per_address(make_app, smtp_server, tmp_path):
    app = make_app(smtp_url=_smtp_config(smtp_server.port), rate_limit_resend="2/hour")
    client = app.test_client()
    start = clock.now()
    clock.freeze(start)
    link = _download_link(app, client, smtp_server, tmp_path)
    days = runtime(app).settings.optin_max_age_days
    clock.freeze(start + dt.timedelta(days=days + 1))
    expired = client.get(link, **from_ip("198.51.100.1"))
    assert expired.status_code == 410
    token = csrf_of(expired)
    replies = [
        client.post(link + "/resend", data={"csrf_token": token}, **from_ip(f"198.51.100.{n}"))
        for n in range(1, 6)
    ]
    assert {r.status_code for r in replies} == {200}  # per address: quietly no more mails
    assert deliver(app) == 2
    one_ip = [
        client.post(link + "/resend", data={"csrf_token": token}, **from_ip("203.0.113.5"))
        for _ in range(3)
    ]
    assert [r.status_code for r in one_ip] == [200, 200, 429]


def test_a_download_link_older_than_two_lifetimes_cannot_ask_for_a_new_one(
    app, client, smtp_server, tmp_path
):
    start = clock.now()
    clock.freeze(start)
    link = _download_link(app, client, smtp_server, tmp_path)
    days = runtime(app).settings.optin_max_age_days
    clock.freeze(start + dt.timedelta(days=2 * days + 1))
    old = client.get(link)
    assert old.status_code == 410
    body = old.get_data(as_text=True)
    assert "/resend" not in body
    page = client.get("/manage")
    resent = client.post(link + "/resend", data={"csrf_token": csrf_of(page)})
    assert resent.status_code == 410
    assert deliver(app) == 0
    # Within the second lifetime the offer stands.
    clock.freeze(start + dt.timedelta(days=2 * days - 1))
    assert "/resend" in client.get(link).get_data(as_text=True)
