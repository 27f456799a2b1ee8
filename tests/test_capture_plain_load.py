"""The submission's plain paths give what the schema and email-validator give.

A submission whose every value plainly passes is loaded without marshmallow; anything
else goes to the schema. Over many generated submissions, valid and not: where the
plain path answers, the schema loads the same dict; where the schema refuses, the
plain path does not answer. A plain address is checked in two parts, its domain's
result kept: the same normal form (or refusal) as email-validator's whole check, over
local parts and domains at and past every rule and limit.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from marshmallow import ValidationError

from capture import submission_checks
from capture.definitions import FIELD_NAMES
from capture.models import Form
from capture.service import COMPANY_SIZES, SOURCE_KEYS
from leadvault import addresses, profile

_VALUES: list[Any] = [
    None,
    "Ada",
    "  spaced  ",
    "x" * 40,
    "x" * 41,
    "x" * 100,
    "x" * 101,
    "x" * 2000,
    "x" * 2001,
    "https://example.com/page?utm=1",
    "www.example.com",
    "line\nbreak",
    "tab\there",
    "bell\x07",
    "zero\u200bwidth",
    "DE",
    "Germany",
    "Müller",
    3,
    1.5,
    True,
    [],
    ["a"],
    {"a": 1},
    *COMPANY_SIZES,
]
_CONSENTS: list[Any] = [
    [],
    ["newsletter"],
    ["newsletter", "newsletter"],
    ["newsletter", "other"],
    ["n" * 40],
    ["n" * 41],
    [None],
    [3],
    [["newsletter"]],
    "newsletter",
    None,
    {"newsletter": True},
]
_EMAILS: list[Any] = ["a@example.com", "x" * 250 + "@e.de", "x" * 255, 7, None, ["a@b.de"]]


def _form(fields: list[tuple[str, bool]]) -> Form:
    return Form(
        public_id="plainpath",
        fields=[{"name": name, "required": required} for name, required in fields],
        purposes=[{"purpose": "newsletter", "required": True}],
    )


def _pick(rng: random.Random, good: list[Any], anything: list[Any]) -> Any:
    """Mostly a value that passes, so that both ways are taken often."""
    return rng.choice(good) if rng.random() < 0.8 else rng.choice(anything)


def _payload(rng: random.Random, form: Form) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if rng.random() < 0.97:
        payload["email"] = _pick(rng, ["a@example.com"], _EMAILS)
    if rng.random() < 0.9:
        payload["consent"] = _pick(rng, [["newsletter"]], _CONSENTS)
    for spec in form.fields:
        if rng.random() < 0.6:
            good = list(COMPANY_SIZES) if spec["name"] == "company_size" else ["Ada", "DE"]
            payload[spec["name"]] = _pick(rng, good, _VALUES)
    for key in SOURCE_KEYS:
        if rng.random() < 0.3:
            payload[key] = _pick(rng, ["newsletter", None], _VALUES)
    if rng.random() < 0.05:
        payload[rng.choice([*FIELD_NAMES, "unknown"])] = "stray"
    return payload


@pytest.mark.parametrize("seed", range(6))
def test_the_plain_path_loads_what_the_schema_loads(seed: int) -> None:
    rng = random.Random(seed)
    names = list(FIELD_NAMES)
    fields = [(name, rng.random() < 0.4) for name in rng.sample(names, rng.randint(0, len(names)))]
    form = _form(fields)
    schema = submission_checks.build_schema(form, "en", check_deliverability=False)
    answered = refused = 0
    for _ in range(3000):
        payload = _payload(rng, form)
        plain = submission_checks._load_plain(form, payload)
        try:
            loaded = schema.load(payload)
        except ValidationError:
            assert plain is None, payload
            refused += 1
            continue
        if plain is not None:
            assert plain == loaded, payload
            answered += 1
    assert answered > 50 and refused > 50  # both ways were taken


def test_the_common_submission_takes_the_plain_path() -> None:
    form = _form([("first_name", False), ("company_size", True), ("message", False)])
    payload = {
        "email": "ada@example.com",
        "consent": ["newsletter"],
        "company_size": COMPANY_SIZES[0],
        "first_name": "Ada",
        "message": "line one\nline two",
        "utm_source": "newsletter",
    }
    loaded = submission_checks._load_plain(form, payload)
    schema = submission_checks.build_schema(form, "en", check_deliverability=False)
    assert loaded == schema.load(payload)
    assert loaded is not None and loaded["page_url"] is None
    # The limits are the schema's own.
    assert profile.MAX_LENGTH["first_name"] < 2000
    too_long = {**payload, "first_name": "x" * (profile.MAX_LENGTH["first_name"] + 1)}
    assert submission_checks._load_plain(form, too_long) is None


_LOCALS = [
    "ada",
    "Ada.Lovelace",
    "first.last+tag",
    "x_y-z!#$%&'*+/=?^`{|}~",
    "Postmaster",
    "abuse",
    "info.x",
    "x" * 64,
    "x" * 65,
    "x" * 200,
    ".x",
    "x.",
    "x..y",
    "müller",
    '"quoted name"',
    "sp ace",
    "",
    "a<b",
]
_DOMAINS = [
    "example.com",
    "EXAMPLE.Com",
    "sub.example.co.uk",
    "bücher.de",
    "BÜCHER.de",
    "xn--bcher-kva.de",
    "localhost",
    "a.test",
    "a.local",
    "a.invalid",
    "a.onion",
    "a.arpa",
    "com",
    "1.2.3.4",
    "[1.2.3.4]",
    "a-.com",
    "-a.com",
    "a_b.com",
    "a..com",
    ".a.com",
    "a.com.",
    "a.123",
    "a.b1",
    ("a" * 63) + ".com",
    ("a" * 64) + ".com",
    ".".join(["b" * 60] * 4) + ".com",
    "y<z>",
    "ex ample.com",
    "",
    "a@b.com",
]


def test_the_plain_address_check_gives_what_email_validator_gives() -> None:
    addresses.domain_forms.cache_clear()
    for _round in range(2):  # the second round from the domain cache
        for local in _LOCALS:
            for domain in _DOMAINS:
                value = f"{local}@{domain}"
                checked = submission_checks._checked_email(value, check_deliverability=False)
                expected = checked.normalized if checked is not None else None
                got = submission_checks._normal_form(value, check_deliverability=False)
                assert got == expected, value
    for value in ["no-at-sign", "@example.com", "a@", "a@@b.com", "a@b.com@c.com"]:
        assert submission_checks._normal_form(value, check_deliverability=False) is None
    assert addresses.domain_forms.cache_info().hits > 0
