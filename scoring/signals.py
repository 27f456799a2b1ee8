"""Signals scoring sends for higher packages (nurture, export).

Receivers get the session as ``sender`` and run inside the transaction of the
change; they only flush, never commit.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# lead_id=UUID, from_stage=str|None, to_stage=str, cause_kind=str, at=datetime — a
# lifecycle transition, inside its transaction.
stage_changed = _signals.signal("stage-changed")
# lead_id=UUID, handoff_id=UUID, person_id=int|None — a salesperson accepted a lead.
handoff_accepted = _signals.signal("handoff-accepted")
# lead_id=UUID, status=str ("offered", "accepted") — a lead was handed to sales.
handoff_changed = _signals.signal("handoff-changed")
# events=list[(lead_id, type, properties)] — events that were stored and scored.
events_recorded = _signals.signal("events-recorded")
