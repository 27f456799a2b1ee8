"""Branding: settings, the brand's stylesheet and logo, the mail layout, `check`, the hold
of marketing mail on a production instance without imprint, privacy policy or sender."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from leadvault import branding, colors
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.settings import SettingsError, load
from tests import branding_helpers as bh
from tests.conftest import _smtp_config, deliver


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.unstyled: list[str] = []
        self.styles = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self.links.append(values.get("href") or "")
        if tag == "img":
            self.images.append(values.get("src") or "")
        if tag in {"p", "a", "h2", "h3", "li"} and not values.get("style"):
            self.unstyled.append(tag)
        if tag == "style":
            self.styles += 1
            assert values.get("data-css-inline") == "keep"  # only the dark-mode rules stay


@pytest.fixture
def branded(make_app, smtp_server, tmp_path):
    return make_app(smtp_url=_smtp_config(smtp_server.port), **bh.brand_settings(tmp_path))


# --- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BRAND_ACCENT_COLOR", "orange", "expected a colour"),
        ("BRAND_TEXT_COLOR", "#aaaaaa", "contrast of 2.3:1"),
        ("BRAND_FONT", "Arial; } body { display: none", "expected a font stack"),
        ("BRAND_LOGO", "/nonexistent/logo.png", "cannot read"),
        ("BRAND_LOGO", "/etc/hostname", "expected a .png"),
        ("BRAND_POSTAL_ADDRESS", ";".join(["x"] * 7), "1 to 6 lines"),
        ("MAIL_REPLY_TO", "nobody", "expected an email address"),
        ("BRAND_WEBSITE_URL", "javascript:alert(1)", "http://"),
    ],
)
def test_bad_brand_settings_name_the_variable(tmp_path, name, value, message):
    with pytest.raises(SettingsError) as caught:
        load({"LEADVAULT_INSTANCE": str(tmp_path), f"LEADVAULT_{name}": value})
    assert caught.value.key == f"LEADVAULT_{name}"
    assert message in caught.value.message


def test_brand_settings_are_normalised(tmp_path):
    logo = tmp_path / "logo.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>', encoding="utf-8")
    settings = load(
        {
            "LEADVAULT_INSTANCE": str(tmp_path),
            "LEADVAULT_BRAND_ACCENT_COLOR": "#F80",
            "LEADVAULT_BRAND_LOGO": str(logo),
            "LEADVAULT_BRAND_POSTAL_ADDRESS": "A GmbH;  Weg 1 ;10115 Berlin",
        }
    )
    assert settings.brand_accent_color == "#ff8800"
    assert settings.brand_postal_address == "A GmbH\nWeg 1\n10115 Berlin"
    assert not settings.imprint_configured and not settings.privacy_configured
    brand = branding.brand_of(settings)
    # Orange is too light for text on white: links darken it, buttons put black on it.
    assert colors.contrast(brand.link, "#ffffff") >= 4.5
    assert brand.button_text == "#000000"
    assert colors.contrast(brand.dark_link, branding.DARK_BACKGROUND) >= 4.5


def test_colour_contrast_matches_wcag():
    assert round(colors.contrast("#000000", "#ffffff"), 1) == 21.0
    assert round(colors.contrast("#767676", "#ffffff"), 2) == 4.54
    assert colors.text_on("#0b5cad") == "#ffffff"
    assert colors.text_on("#ffd400") == "#000000"


# --- pages -------------------------------------------------------------------------------


def test_pages_carry_the_brand_and_its_stylesheet(branded):
    client = branded.test_client()
    page = client.get("/manage").get_data(as_text=True)
    brand = branding.brand_of(runtime(branded).settings)
    assert f'href="/brand.css?v={brand.css_version}"' in page
    assert f'src="{brand.logo_path}"' in page and 'alt="Beispiel Maschinenbau"' in page
    assert f'href="{bh.WEBSITE}"' in page
    assert f'href="{bh.IMPRINT}"' in page and f'href="{bh.PRIVACY}"' in page
    css = client.get(f"/brand.css?v={brand.css_version}")
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert "--lv-accent: #c2410c;" in css.get_data(as_text=True)
    assert "--lv-font: Georgia, 'Times New Roman', serif;" in css.get_data(as_text=True)
    logo = client.get(brand.logo_path)
    assert logo.status_code == 200 and logo.mimetype == "image/png"
    assert logo.data == runtime(branded).settings.brand_logo.read_bytes()
    assert "sandbox" in logo.headers["Content-Security-Policy"]


def test_without_a_logo_there_is_no_logo_route_and_the_placeholder_names_no_setting(app):
    client = app.test_client()
    assert client.get("/brand/logo").status_code == 404
    page = client.get("/imprint", headers={"Accept-Language": "de"})
    assert page.status_code == 404
    text = page.get_data(as_text=True)
    assert "LEADVAULT_" not in text
    assert "Impressum" in text


# --- mails -------------------------------------------------------------------------------


def _allowed_link(link: str, base_url: str) -> bool:
    return (
        link.startswith(base_url + "/")
        or link.startswith(bh.WEBSITE + "/")
        or link in {bh.WEBSITE, bh.IMPRINT, bh.PRIVACY}
    )


@pytest.mark.parametrize(("lang", "logo"), [("de", True), ("en", False)])
def test_every_mail_has_both_parts_the_brand_and_only_allowed_links(
    make_app, smtp_server, tmp_path, lang, logo
):
    branded = make_app(
        smtp_url=_smtp_config(smtp_server.port),
        **bh.brand_settings(tmp_path),
        brand_logo_in_mails=logo,
    )
    settings = runtime(branded).settings
    brand = branding.brand_of(settings)
    found = bh.mails(branded, smtp_server, lang, tmp_path)
    assert sorted(found) == sorted(bh.MAIL_KINDS)
    for kind, mail in found.items():
        assert mail.get_content_type() == "multipart/alternative", kind
        assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
        assert mail["From"] == bh.SENDER and mail["Reply-To"] == bh.REPLY_TO, kind
        assert mail["Content-Language"] == lang
        text, html = bh.text_of(mail), bh.html_of(mail)
        for part in (text, html):
            assert "Beispiel Maschinenbau GmbH" in part and "10115 Berlin" in part, kind
            assert bh.IMPRINT in part and bh.PRIVACY in part, kind
        tags = _Tags()
        tags.feed(html)
        if logo:  # the one remote image: the instance's own logo
            assert tags.images == [brand.logo_url], (kind, tags.images)
            assert brand.logo_url.startswith(settings.base_url + "/brand/logo?v=")
        else:
            assert tags.images == [], (kind, tags.images)
        assert tags.links, kind
        bad = [link for link in tags.links if not _allowed_link(link, settings.base_url)]
        assert not bad, (kind, bad)
        text_links = re.findall(r"https?://[^\s)>\"]+", text)
        bad = [link for link in text_links if not _allowed_link(link, settings.base_url)]
        assert not bad, (kind, bad)
        assert tags.styles == 1 and not tags.unstyled, (kind, tags.unstyled)
        assert 'role="presentation"' in html and "prefers-color-scheme: dark" in html
        assert f'lang="{lang}"' in html
    _subjects_name_the_company_and_the_whitepaper(found, lang)
    _handoff_is_readable(found["handoff"], lang)


def _subjects_name_the_company_and_the_whitepaper(found: dict[str, Any], lang: str) -> None:
    subjects = {kind: str(mail["Subject"]) for kind, mail in found.items()}
    # Leadvault's own subjects to leads; a nurture mail's is the owner's own words.
    lead_mails = {kind for kind in subjects if kind not in {"handoff", "reminder", "nurture"}}
    company = " \N{EN DASH} Beispiel Maschinenbau"
    unnamed = {kind: subjects[kind] for kind in lead_mails if not subjects[kind].endswith(company)}
    assert not unnamed, unnamed
    paper = "Praxisleitfaden Predictive Maintenance"
    # The opt-in mail names what was asked for, and nothing else (BGH VI ZR 134/15).
    assert (
        subjects["optin_whitepaper"]
        == {
            "de": f"Bitte bestätigen Sie Ihre Anfrage für „{paper}“{company}",
            "en": f"Please confirm your request for “{paper}”{company}",
        }[lang]
    )
    assert paper in subjects["asset"]
    for kind in ("optin", "optin_whitepaper", "repermission"):
        tags = _Tags()
        tags.feed(bh.html_of(found[kind]))
        # Only the confirmation link, imprint and privacy policy: not even the website.
        assert bh.WEBSITE not in tags.links, (kind, tags.links)
    if lang == "de":  # one form of address: Sie
        for kind in lead_mails:
            words = set(re.findall(r"\b\w+\b", bh.text_of(found[kind])))
            assert not words & {"du", "dich", "dir", "dein", "deine", "Du", "Dein"}, kind


def _handoff_is_readable(mail: Any, lang: str) -> None:
    """Name and company in the subject; labels and journey in the salesperson's language."""
    subject = str(mail["Subject"])
    assert "Julia Example, Analytical Engines GmbH" in subject, subject
    text = bh.text_of(mail)
    (bh.artifacts() / f"handoff-{lang}.txt").write_text(text, encoding="utf-8")
    if lang == "de":
        assert subject.startswith("Neuer Lead für Sie: Julia Example")
        assert "Firma: Analytical Engines GmbH" in text
        assert "02.03.2026: Hat eine Seite angesehen: pricing" in text
        assert "Hat auf einen Link in einer E-Mail geklickt (15 Punkte)" in text
    else:
        assert subject.startswith("New lead for you: Julia Example")
        assert "Company: Analytical Engines GmbH" in text
        assert "Mar 2, 2026: Viewed a page: pricing" in text
        assert "Clicked a link in a mail (15 points)" in text
    assert "page_view" not in text and "  company: " not in text  # labels, not keys


@pytest.mark.committing  # check opens a connection of its own
def test_check_warns_about_missing_imprint_privacy_and_sender(make_app, smtp_server):
    app = make_app(smtp_url=_smtp_config(smtp_server.port), base_url="https://leads.example.net")
    result = CliRunner().invoke(cli, ["check"], obj=app, env=_env(app))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "WARNING      LEADVAULT_IMPRINT_URL is not set" in out
    assert "WARNING      LEADVAULT_PRIVACY_URL is not set" in out
    assert "WARNING      LEADVAULT_MAIL_FROM (leadvault@localhost)" in out
    assert "marketing mail is held until it is set" in out
    assert "LEADVAULT_BRAND_NAME is not set" in out


@pytest.mark.committing
def test_check_is_quiet_when_the_brand_is_complete(branded):
    result = CliRunner().invoke(cli, ["check"], obj=branded, env=_env(branded))
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output.lower()
    assert "brand        Beispiel Maschinenbau" in result.output


def _env(app: Any) -> dict[str, str]:
    settings = runtime(app).settings
    return {
        "LEADVAULT_INSTANCE": str(settings.instance),
        "LEADVAULT_DATABASE_URL": settings.database_url.replace("+psycopg", ""),
        "LEADVAULT_KEYRING": str(settings.keyring),
        "LEADVAULT_BASE_URL": settings.base_url,
        **({"LEADVAULT_IMPRINT_URL": settings.imprint_url} if settings.imprint_configured else {}),
        **({"LEADVAULT_PRIVACY_URL": settings.privacy_url} if settings.privacy_configured else {}),
        **({"LEADVAULT_BRAND_NAME": settings.brand_name} if settings.brand_name else {}),
        **(
            {"LEADVAULT_BRAND_POSTAL_ADDRESS": settings.brand_postal_address}
            if settings.brand_postal_address
            else {}
        ),
        "LEADVAULT_MAIL_FROM": settings.mail_from,
    }


def test_production_holds_marketing_mail_until_the_brand_is_complete(
    make_app, smtp_server, tmp_path
):
    import sqlalchemy as sa

    from leadvault.models import OutboxMessage, OutboxStatus
    from tests import factories

    production = {
        "smtp_url": _smtp_config(smtp_server.port),
        "base_url": "https://leads.example.net",
    }
    app = make_app(**production)
    email = "held@example.org"
    factories.lead(app, email, purposes=("newsletter",))
    deliver(app)
    # The opt-in mail (no advertising) goes; the welcome mail (marketing) waits, uncounted.
    assert [str(m["Subject"]) for m in smtp_server.messages] == [
        "Please confirm your email address"
    ]
    with factories.uow(app) as s:
        [held] = s.scalars(sa.select(OutboxMessage).where(OutboxMessage.template == "welcome"))
        assert held.status == OutboxStatus.PENDING and held.attempts == 0
        assert held.last_error.startswith("held: LEADVAULT_IMPRINT_URL is not set")
        held.next_attempt_at = held.created_at  # due again
    complete = make_app(**{**production, **bh.brand_settings(tmp_path)})
    deliver(complete)
    assert len(smtp_server.messages) == 2
    assert smtp_server.messages[1]["List-Unsubscribe"]


def test_loopback_instances_send_marketing_mail_while_trying_out(app, smtp_server):
    from tests import factories

    factories.lead(app, "try@example.org", purposes=("newsletter",))
    assert deliver(app) == 2
    assert branding.gaps(runtime(app).settings) and not branding.is_production(
        runtime(app).settings
    )


def test_real_sender_and_production_detection(tmp_path: Path):
    def settings(**env: str) -> Any:
        return load(
            {"LEADVAULT_INSTANCE": str(tmp_path), **{f"LEADVAULT_{k}": v for k, v in env.items()}}
        )

    assert not branding.sender_is_real(settings())
    assert not branding.sender_is_real(settings(MAIL_FROM="a <a@example.com>"))
    assert not branding.sender_is_real(settings(MAIL_FROM="a@mail.test"))
    assert branding.sender_is_real(settings(MAIL_FROM="Firma <news@firma.de>"))
    assert not branding.is_production(settings(BASE_URL="http://localhost:5000"))
    assert not branding.is_production(settings(BASE_URL="http://[::1]:5000"))
    assert branding.is_production(settings(BASE_URL="https://leads.firma.de"))
