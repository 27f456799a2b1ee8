"""Marketing mail names its list; a 429 says when to come back (issue 10.14).

- Every marketing mail (the newsletter welcome, each nurture mail, any mail
  through ``consent.rights.queue_marketing_mail``) carries exactly one RFC 2919
  ``List-Id``, made in one place (``leadvault.mail.marketing_headers``) together
  with the RFC 8058 unsubscribe headers; mails that are not marketing have none.
- Every 429, whichever limiter gave it, has a ``Retry-After`` of whole seconds
  no longer than the window that is full.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from werkzeug.exceptions import TooManyRequests

from consent import rights
from leadvault import leads, mail
from tests import factories
from tests.conftest import _smtp_config, deliver, make_form, render_token, unique_email
from tests.test_lockout import _download_link, csrf_of, from_ip, path_of, text_of

LIST_ID = re.compile(r'^"[^"\x00-\x1f]*" <[a-z0-9-]+(\.[a-z0-9-]+)+>$')


def test_list_id_is_made_in_one_place():
    headers = mail.marketing_headers(
        "Bücherei <news@bücher.de>",
        unsubscribe=["https://lv.example/u/t", "mailto:u@example.org?subject=unsubscribe"],
        list_key="Spring Sale.nurture",
        list_name='Spring "Sale"\r\nBcc: x@example.org',
    )
    assert (
        headers["List-Id"]
        == '"Spring SaleBcc: x@example.org" <spring-sale.nurture.xn--bcher-kva.de>'
    )
    assert headers["List-Unsubscribe"] == (
        "<https://lv.example/u/t>, <mailto:u@example.org?subject=unsubscribe>"
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_welcome_mail_has_one_list_id_and_the_optin_none(app, client, smtp_server):
    form_id = make_form(app)
    client.post(
        f"/f/{form_id}",
        json={
            "email": unique_email(),
            "consent": ["newsletter"],
            "render_token": render_token(app, form_id),
        },
    )
    deliver(app)
    [optin] = smtp_server.wait_for(1)
    assert optin.get_all("List-Id") is None  # the opt-in mail is no marketing
    confirm = path_of(re.search(r"http://\S+/c/\S+", text_of(optin)).group(0))
    client.post(confirm, data={"csrf_token": csrf_of(client.get(confirm))})
    deliver(app)
    welcome = smtp_server.wait_for(2)[1]
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [list_id] = welcome.get_all("List-Id")
    assert LIST_ID.match(str(list_id)), list_id
    assert str(list_id) == '"Newsletter" <newsletter.localhost>'


def test_every_queued_marketing_mail_has_exactly_one_list_id(app, smtp_server):
    lead_id = factories.lead(app, purposes=("newsletter",))
    with factories.uow(app) as s:
        lead = leads.get(s, lead_id)
        rights.queue_marketing_mail(
            s, lead, "newsletter", template="news", subject="News", text="x", html="<p>x</p>"
        )
    deliver(app)
    [news] = [m for m in smtp_server.messages if m["Subject"] == "News"]
    assert len(news.get_all("List-Id")) == 1


# --- Retry-After on every 429 ---------------------------------------------------


def _assert_retry_after(response: Any, window: int = 3600) -> None:
    assert response.status_code == 429
    value = response.headers.get("Retry-After")
    assert value is not None and value.isdigit(), response.headers
    assert 1 <= int(value) <= window


@pytest.fixture
def limited(make_app, smtp_server):
    return make_app(
        smtp_url=_smtp_config(smtp_server.port),
        rate_limit_ip="1/hour",
        rate_limit_email="1/hour",
        rate_limit_manage="1/hour",
        rate_limit_resend="1/hour",
        rate_limit_track="1/hour",
    )


def test_capture_429s_say_when(limited):
    client = limited.test_client()
    form_id = make_form(limited)
    email = unique_email()

    def submit(address: str, ip: str, **kwargs: Any) -> Any:
        body = {
            "email": address,
            "consent": ["newsletter"],
            "render_token": render_token(limited, form_id),
        }
        return client.post(f"/f/{form_id}", **from_ip(ip), **kwargs, json=body)

    assert submit(email, "198.51.100.1").status_code == 200
    _assert_retry_after(submit(email, "198.51.100.2"))  # per address
    assert submit(unique_email(), "203.0.113.1").status_code == 200
    _assert_retry_after(submit(unique_email(), "203.0.113.1"))  # per IP, JSON
    html = client.post(
        f"/f/{form_id}",
        data={"email": unique_email(), "render_token": render_token(limited, form_id)},
        **from_ip("203.0.113.1"),
    )
    _assert_retry_after(html)  # per IP, the HTML page


def test_manage_429_says_when(limited):
    client = limited.test_client()
    token = csrf_of(client.get("/manage"))
    replies = [
        client.post("/manage", data={"csrf_token": token, "email": unique_email()})
        for _ in range(2)
    ]
    assert replies[0].status_code == 200
    _assert_retry_after(replies[1])


def test_optin_resend_429_says_when(limited, smtp_server):
    client = limited.test_client()
    form_id = make_form(limited)
    client.post(
        f"/f/{form_id}",
        json={
            "email": unique_email(),
            "consent": ["newsletter"],
            "render_token": render_token(limited, form_id),
        },
    )
    deliver(limited)
    [optin] = smtp_server.wait_for(1)
    link = path_of(re.search(r"http://\S+/c/\S+", text_of(optin)).group(0))
    token = csrf_of(client.get(link))
    replies = [client.post(link + "/resend", data={"csrf_token": token}) for _ in range(2)]
    assert replies[0].status_code == 200
    _assert_retry_after(replies[1])


def test_download_resend_429_says_when(limited, smtp_server, tmp_path):
    client = limited.test_client()
    link = _download_link(limited, client, smtp_server, tmp_path)
    token = csrf_of(client.get(link))
    replies = [client.post(link + "/resend", data={"csrf_token": token}) for _ in range(2)]
    assert replies[0].status_code == 200
    _assert_retry_after(replies[1])


def test_track_429_says_when(limited):
    client = limited.test_client()
    replies = [client.post("/api/v1/track", json={}) for _ in range(2)]
    assert replies[0].status_code != 429
    _assert_retry_after(replies[1])


def test_any_other_429_says_when(limited):
    """An abort(429) with no window behind it (a future limiter) still gets one."""

    @limited.get("/_test/busy")
    def busy() -> Any:
        raise TooManyRequests()

    _assert_retry_after(limited.test_client().get("/_test/busy"), window=60)
