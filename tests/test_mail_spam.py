"""Each kind of mail, branded, scores below 1.0 in SpamAssassin's local tests.

``spamassassin -t -L`` (Debian's package; ``.ci/run`` installs it): local rules
only, no network tests. Skipped when SpamAssassin is not installed. The reports
are kept in ``artifacts/branding/``.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests import branding_helpers as bh
from tests.conftest import _smtp_config

SPAMASSASSIN = shutil.which("spamassassin")
pytestmark = pytest.mark.skipif(SPAMASSASSIN is None, reason="spamassassin is not installed")
SCORE = re.compile(r"^Content analysis details:\s+\((-?\d+(?:\.\d+)?) points", re.MULTILINE)


SEPARATOR = b"From leadvault@localhost Thu Jan  1 00:00:00 2026\n"
MESSAGE_ID = re.compile(r"^Message-ID:\s*(\S+)", re.MULTILINE | re.IGNORECASE)


def spam_scores(raw_mails: list[bytes]) -> dict[str, tuple[float, str]]:
    """Message-ID -> (score, report), from one ``spamassassin -t -L --mbox`` over all the
    mails: loading its rules takes a second or more, scoring a mail much less."""
    assert SPAMASSASSIN is not None
    # Scored as sent: a line starting with "From " would need quoting (and so a change)
    # in an mbox. Our mails' texts are quoted-printable or base64: none has one.
    assert not any(re.search(rb"^From ", raw, re.MULTILINE) for raw in raw_mails)
    box = b"".join(SEPARATOR + raw.rstrip(b"\n") + b"\n\n" for raw in raw_mails)
    result = subprocess.run(
        [SPAMASSASSIN, "-t", "-L", "--mbox"],
        input=box,
        capture_output=True,
        timeout=300,
        check=False,
    )
    output = result.stdout.decode("utf-8", "replace")
    found: dict[str, tuple[float, str]] = {}
    for message in re.split(r"^From \S+ .*\n", output, flags=re.MULTILINE)[1:]:
        message_id, score = MESSAGE_ID.search(message), SCORE.search(message)
        assert message_id and score, message[-2000:]
        found[message_id.group(1)] = (float(score.group(1)), message[score.start() :])
    return found


@pytest.mark.parametrize("lang", ["de", "en"])
def test_every_mail_kind_scores_below_one(make_app, smtp_server, tmp_path, lang):
    app = make_app(smtp_url=_smtp_config(smtp_server.port), **bh.brand_settings(tmp_path))
    mails = bh.mails(app, smtp_server, lang, tmp_path)
    reports = spam_scores([bytes(mail) for mail in mails.values()])
    scores = {}
    for kind, mail in mails.items():
        score, report = reports[str(mail["Message-ID"])]
        (bh.artifacts() / f"spamassassin-{kind}-{lang}.txt").write_text(report, encoding="utf-8")
        scores[kind] = score
    assert sorted(scores) == sorted(bh.MAIL_KINDS)
    assert all(score < 1.0 for score in scores.values()), scores
