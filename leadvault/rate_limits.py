"""Rate limits: the counters, the explicit checks views make per client IP and per
address, and the ``Retry-After`` every 429 carries.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

from flask import Flask, Response, current_app, g, request
from limits import parse_many
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter


class _RateCounters:
    """The rate-limit counters (``limits``, the engine of Flask-Limiter): in this
    process, or in Redis with LEADVAULT_REDIS_URL; fixed windows, one counter per hit.

    Only views count, explicitly (``within_limits``, the sign-in's limits):
    Flask-Limiter's hooks ran on every request and counted nothing, at a tenth
    of a form submission's CPU."""

    limiter: FixedWindowRateLimiter

    def init_app(self, app: Flask) -> None:
        self.limiter = FixedWindowRateLimiter(
            storage_from_string(app.config["RATELIMIT_STORAGE_URI"])
        )


limiter = _RateCounters()


@functools.cache
def _parse_limits(limits: str) -> list[Any]:
    return parse_many(limits)


def within_limits(
    scope: str,
    limits: str,
    *,
    ip: bool = True,
    email: str | None = None,
    email_index: bytes | None = None,
) -> bool:
    """Count this request against ``limits`` per client IP and, when given, per address
    (``email``, or a lead's stored blind index ``email_index``).

    Limits are checked explicitly by the views that have them, on the counters'
    storage (memory, or Redis with LEADVAULT_REDIS_URL); the address is keyed by
    its blind index and the IP by a keyed hash. Every window is counted, even after
    one is full.
    """
    from leadvault.app import runtime

    vault = runtime(current_app).vault
    strategy = limiter.limiter
    # Counters may live in Redis: keyed by pseudonyms, never by an IP or an address.
    ip_key = vault.keyed_hash("rate-limit-ip", request.remote_addr or "-")[:32] if ip else None
    if email_index is None and email and email.strip():
        email_index = vault.blind_index(email)
    email_key = email_index.hex() if email_index else None
    counted = [(f"{scope}-ip", ip_key), (f"{scope}-email", email_key)]
    allowed = True
    for item in _parse_limits(limits):
        for namespace, key in counted:
            if key and not strategy.hit(item, namespace, key):
                allowed = False
                reset_at, _remaining = strategy.get_window_stats(item, namespace, key)
                _note_retry_after(reset_at - time.time())
    return allowed


def refund_limits(scope: str, limits: str, *, email_index: bytes) -> None:
    """Give back the hit :func:`within_limits` counted for ``email_index`` (a request
    counted before the database showed it was not to count: a replayed token)."""
    strategy = limiter.limiter
    for item in _parse_limits(limits):
        strategy.hit(item, f"{scope}-email", email_index.hex(), cost=-1)


# A 429 without a known window (an abort(429) anywhere) asks for a minute.
DEFAULT_RETRY_AFTER = 60


def _note_retry_after(seconds: float) -> None:
    """Remember the longest wait a full window asks of this request (for Retry-After)."""
    wait = max(1, math.ceil(seconds))
    g.leadvault_retry_after = max(wait, g.get("leadvault_retry_after", 0))


def add_retry_after(response: Response) -> Response:
    """Every 429, whichever view or limiter gave it, says when to try again (RFC 9110)."""
    if response.status_code == 429 and "Retry-After" not in response.headers:
        wait = g.get("leadvault_retry_after", DEFAULT_RETRY_AFTER)
        response.headers["Retry-After"] = str(wait)
    return response
