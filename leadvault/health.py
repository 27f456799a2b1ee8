"""``/healthz``: whether the database takes a write now, answered within a deadline
whatever the database does (the container's health check and load balancers ask).

On the core blueprint (``core.healthz``): ``leadvault/web.py`` adds it with
:func:`add_routes`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from leadvault import db

# The health check's warnings keep the logger they always had (log filters name it).
log = logging.getLogger("leadvault.web")

# /healthz answers within this many seconds, whatever the database does.
HEALTH_DEADLINE = 1.5


def add_routes(bp: Blueprint) -> None:
    """``/healthz`` on ``bp`` (the core blueprint), under its function's name as endpoint."""
    bp.add_url_rule("/healthz", view_func=healthz, methods=["GET"])


class _WriteProbe:
    """At most one write probe in flight per app: a probe stuck behind a lock keeps
    its thread until the database lets go, and meanwhile every check answers at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.outcome: list[str | None] = []

    def run(self, factory: Any) -> str | None:
        with self.lock:
            if self.thread is not None and self.thread.is_alive():
                return "locked"  # the last probe still waits for the database
            outcome: list[str | None] = []

            def probe() -> None:
                try:
                    outcome.append(db.probe_write(factory))
                except Exception as exc:
                    outcome.append("unavailable")
                    log.warning("health probe failed: %s", type(exc).__name__)

            self.thread = threading.Thread(target=probe, name="leadvault-health", daemon=True)
            self.thread.start()
            thread = self.thread
        thread.join(HEALTH_DEADLINE)
        return outcome[0] if outcome else "locked"


def healthz() -> tuple[Response, int]:
    """JSON within HEALTH_DEADLINE: 200 when the database takes a write now, else 503
    with the reason (``locked``, ``read-only``, ``full``, ``unavailable``). Nothing is
    written: the probe begins a write transaction and rolls it back."""
    from leadvault.app import runtime

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    probe: _WriteProbe = app.extensions.setdefault("leadvault.health", _WriteProbe())
    reason = probe.run(runtime(app).session_factory)
    if reason is not None:
        return jsonify(status="unavailable", database=reason), 503
    return jsonify(status="ok", database="ok"), 200
