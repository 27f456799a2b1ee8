"""Signals scoring sends for higher packages (export)."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# lead_id=UUID, from_stage=str|None, to_stage=str, cause_kind=str, at=datetime — a
# lifecycle transition, inside its transaction.
stage_changed = _signals.signal("stage-changed")
# lead_id=UUID, handoff_id=UUID, person_id=int|None — a salesperson accepted a lead.
handoff_accepted = _signals.signal("handoff-accepted")
