"""``leadvault.qp.body_encode`` writes what ``email.quoprimime.body_encode`` writes."""

from __future__ import annotations

import email.quoprimime
import random

import pytest

from leadvault import qp

# Every kind of character the encoder treats apart: safe ASCII, "=", white space
# (at a line's end it is quoted), line breaks of each kind, other break characters
# (\v, \x85, \u2028: quoted, never a break), two- to four-byte UTF-8.
ALPHABET = ["a", "Z", "0", " ", "\t", "=", "\n", "\r", "\r\n", "\x0b", "\x85", "\u2028"]
ALPHABET += ["é", "ß", "\u00a0", "€", "„", "😀", "~", "<", ">", ".", "From "]


def _random_texts(count: int) -> list[str]:
    rng = random.Random(2026)
    texts = []
    for _ in range(count):
        # Runs of one character make lines of every length around the 76 limit.
        parts = [rng.choice(ALPHABET) * rng.choice([1, 1, 1, 2, 3, 40, 75, 76, 77, 150])]
        parts += [rng.choice(ALPHABET) for _ in range(rng.randint(0, 200))]
        rng.shuffle(parts)
        texts.append("".join(parts))
    return texts


EDGES = [
    "",
    "\n",
    "\r\n",
    "a",
    " ",
    "a \n",
    "x" * 76,
    "x" * 77,
    "x" * 75 + " ",
    "x" * 76 + " ",
    "x" * 77 + "\t",
    "x" * 74 + "é" * 3,
    "x" * 73 + "=" + "x" * 10,
    "é" * 300 + "\n= sign and trailing space \nFrom x",
    "Hallo Ada,\nFrom here on, bitte bestätigen:\r\nhttps://x.example/c/abc\n.\n",
]


@pytest.mark.parametrize("text", EDGES)
def test_edges(text):
    stdlib = email.quoprimime.body_encode(text.encode("utf-8").decode("latin-1"))
    assert qp.body_encode(text) == stdlib
    assert qp.body_encode(text, {}) == stdlib  # line by line


def test_random_texts():
    texts = _random_texts(4000)
    stdlib = [email.quoprimime.body_encode(t.encode("utf-8").decode("latin-1")) for t in texts]
    assert [qp.body_encode(text) for text in texts] == stdlib
    assert sum("=\n" in encoded for encoded in stdlib) > 1000  # soft breaks were made
    # Line by line with lines shared between bodies (a batch's), twice: the second time
    # every line comes from the memo.
    memo: dict[str, str] = {}
    for _ in range(2):
        assert [qp.body_encode(text, memo) for text in texts] == stdlib
    assert len(memo) > 1000
