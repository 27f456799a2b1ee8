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


def spam_score(raw: bytes) -> tuple[float, str]:
    assert SPAMASSASSIN is not None
    result = subprocess.run(
        [SPAMASSASSIN, "-t", "-L"], input=raw, capture_output=True, timeout=120, check=False
    )
    report = result.stdout.decode("utf-8", "replace")
    found = SCORE.search(report)
    assert found, report[-2000:]
    return float(found.group(1)), report[found.start() :]


@pytest.mark.parametrize("lang", ["de", "en"])
def test_every_mail_kind_scores_below_one(make_app, smtp_server, tmp_path, lang):
    app = make_app(smtp_url=_smtp_config(smtp_server.port), **bh.brand_settings(tmp_path))
    scores = {}
    for kind, mail in bh.mails(app, smtp_server, lang, tmp_path).items():
        score, report = spam_score(bytes(mail))
        (bh.artifacts() / f"spamassassin-{kind}-{lang}.txt").write_text(report, encoding="utf-8")
        scores[kind] = score
    assert sorted(scores) == sorted(bh.MAIL_KINDS)
    assert all(score < 1.0 for score in scores.values()), scores
