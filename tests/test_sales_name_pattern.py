"""A salesperson's name: the API document's pattern says exactly what the service takes.

Schemathesis generates names from the document; a name the pattern allows but the
service refused (a control character the pattern did not list) was a schema-valid
request answered 422. The pattern and ``routing.contact_name`` share one character
set (``untrusted.ONE_LINE_REFUSED``): line breaks, tabs, C0/C1 controls and bidi
overrides are refused, other text (zero-width joiners, emoji, soft hyphens) is a name.
"""

from __future__ import annotations

import re

import pytest

from leadvault import untrusted
from scoring import routing

SAMPLES = [chr(code) for code in range(0x250)] + [
    "\u200b",
    "\u200d",
    "\u200e",
    "\u00ad",
    "\ufeff",
    "\u2028",
    "\u2029",
    *(chr(code) for code in range(0x202A, 0x202F)),
    *(chr(code) for code in range(0x2066, 0x206A)),
    "\U000e0001",
    "\U0001f600",
]


def _service_takes(name: str) -> bool:
    try:
        routing.contact_name(name)
    except routing.SalesError:
        return False
    return True


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_the_pattern_and_the_service_agree(where):
    disagree = []
    for char in SAMPLES:
        name = {"start": char + "Anna", "middle": "An" + char + "na", "end": "Anna" + char}[where]
        pattern_takes = re.fullmatch(untrusted.ONE_LINE_PATTERN, name) is not None
        if pattern_takes != _service_takes(name):
            disagree.append(f"U+{ord(char):04X}")
    assert disagree == []


def test_line_breaks_and_controls_are_refused_by_both():
    for name in ["Anna\nBcc: x@example.org", "Anna\tB", "Anna\x00", "Anna\u202egnp.exe", " ", ""]:
        assert re.fullmatch(untrusted.ONE_LINE_PATTERN, name) is None
        assert not _service_takes(name)


def test_the_api_document_carries_the_pattern(app, client):
    document = client.get("/api/v1/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    patterns = [
        schema["properties"]["name"].get("pattern")
        for title, schema in schemas.items()
        if title.startswith("Salesperson") and "name" in schema.get("properties", {})
    ]
    assert untrusted.ONE_LINE_PATTERN in patterns
