"""Signals by which lower packages tell higher ones that something happened.

Receivers get the session as ``sender`` and keyword arguments; they must only
flush, never commit: they run inside the transaction of the change.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# lead_id=UUID — a new lead was stored (``leads.get_or_create``), in its transaction.
lead_created = _signals.signal("lead-created")
# lead_id=UUID — before the lead's rows are deleted; receivers delete theirs.
lead_erasing = _signals.signal("lead-erasing")
# lead_id=UUID, purpose=str, form_ref=str | None, at=datetime — a purpose was confirmed
# by double opt-in (``at``: the confirmation's time, one for all its purposes).
purpose_confirmed = _signals.signal("purpose-confirmed")
# lead_id=UUID, purpose=str — a purpose was withdrawn (unsubscribe, preference center).
purpose_withdrawn = _signals.signal("purpose-withdrawn")
# lead_id=UUID, fields=list[str] — profile fields whose values changed (names only).
lead_updated = _signals.signal("lead-updated")
# lead_id=UUID — receivers return (section_name, json_value) for the access export.
collect_access_data = _signals.signal("collect-access-data")
# lead_id=UUID, event_type=str, properties=dict, occurred_at=datetime — behaviour
# worth scoring that a package below scoring observed (e.g. an asset download).
lead_event = _signals.signal("lead-event")
# lead_id=UUID, purposes=list[str], form_ref=str|None, language=str — receivers
# return a list of (label, url) to offer on the confirmation page (downloads …).
confirmation_links = _signals.signal("confirmation-links")
# lead_id=UUID, lang=str — receivers return a list of (datetime, text): where the
# lead's data came from, readable ("Whitepaper 'X' on www.example.com"), for the
# preference center.
describe_sources = _signals.signal("describe-sources")
# text=ConsentText, adopt=bool — a new consent text version was published; with
# ``adopt`` receivers move what shows an older version of it (capture: the forms) and
# return the public ids of what they moved.
consent_text_published = _signals.signal("consent-text-published")
