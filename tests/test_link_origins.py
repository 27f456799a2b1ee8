"""No link Leadvault makes leads outside the owner's sites (issue 10, point 2).

The confirmation page of a tracking consent links back to the page the lead
came from, with the tracking token in the fragment. That page comes from the
submission (``page_url``), which anyone can set: only an address on one of
the form's allowed origins becomes a link; anything else gives no link.
"""

from __future__ import annotations

import re

import pytest

from capture.definitions import PurposeSpec
from tests.conftest import deliver, make_form, render_token, unique_email

HOST = "https://www.example.com"


def _confirmation_page(app, client, smtp_server, form_id: str, page_url: str | None) -> str:
    payload = {
        "email": unique_email(),
        "consent": ["newsletter", "tracking"],
        "render_token": render_token(app, form_id),
    }
    if page_url is not None:
        payload["page_url"] = page_url
    response = client.post(f"/f/{form_id}", json=payload)  # no Origin: server to server
    assert response.status_code == 200, response.get_data(as_text=True)
    before = len(smtp_server.messages)
    deliver(app)
    mail = smtp_server.wait_for(before + 1)[before]
    link = re.search(r"http://\S+/c/\S+", mail.get_body(("plain",)).get_content()).group(0)
    path = "/" + link.split("/", 3)[3]
    page = client.get(path).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    done = client.post(path, data={"csrf_token": csrf})
    assert done.status_code == 200
    return done.get_data(as_text=True)


def _links(page: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', page)


def _tracking_form(app, origins=(HOST,)) -> str:
    return make_form(
        app,
        purposes=[PurposeSpec("newsletter", True), PurposeSpec("tracking", False)],
        allowed_origins=list(origins),
    )


def test_back_link_to_the_owners_page_carries_the_token(app, client, smtp_server):
    form_id = _tracking_form(app)
    page = _confirmation_page(app, client, smtp_server, form_id, f"{HOST}/pricing?x=1")
    [back] = [link for link in _links(page) if "lv_t=" in link]
    assert back.startswith(f"{HOST}/pricing?x=1#lv_t=")


@pytest.mark.parametrize(
    "page_url",
    [
        "https://evil.example/landing",
        "http://www.example.com/pricing",  # another scheme is another origin
        "https://www.example.com:8443/pricing",  # another port too
        "https://www.example.com.evil.example/pricing",
        "https://www.example.com@evil.example/pricing",  # user info hides the host
        "https://evil.example/?next=https://www.example.com/",
        "//evil.example/pricing",
        "javascript:alert(1)//https://www.example.com/",
        None,  # the hosted page: no page at all
    ],
)
def test_no_back_link_to_a_page_outside_the_forms_origins(app, client, smtp_server, page_url):
    form_id = _tracking_form(app)
    page = _confirmation_page(app, client, smtp_server, form_id, page_url)
    assert "lv_t=" not in page
    for link in _links(page):
        assert "evil" not in link, link
        assert not link.startswith("javascript:"), link


def test_a_form_without_origins_gets_no_back_link(app, client, smtp_server):
    form_id = _tracking_form(app, origins=())
    page = _confirmation_page(app, client, smtp_server, form_id, f"{HOST}/pricing")
    assert "lv_t=" not in page
