"""Signals capture sends for higher packages (scoring, export)."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# lead_id=UUID, form=Form, submission=Submission — inside the submission's transaction.
form_submitted = _signals.signal("form-submitted")
# form=Form — receivers return [(label, snippet)] to print with `leadvault forms show`.
form_snippets = _signals.signal("form-snippets")
