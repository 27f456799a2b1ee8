"""Gunicorn settings: ``gunicorn -c python:leadvault.gunicorn_conf leadvault.wsgi:app``.

The access log leaves out the client address and the query string: both can be
personal data (an IP address, ``/api/v1/consent?email=…``). Its path is the one
:mod:`leadvault.access_log` put into the environ, a signed link's token masked.
"""

import os
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
accesslog = "-"
access_log_format = '"%(m)s %({leadvault.logged_path}e)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def when_ready(server: Any) -> None:
    """Say at start when rate limits are counted per process: without Redis each
    worker keeps its own counters, so sign-in attempts, failed sign-ins per address
    and submissions are limited per worker, and a client gets up to ``workers`` times
    each limit (README, Production deployment)."""
    shared = os.environ.get("LEADVAULT_REDIS_URL") or os.environ.get("LEADVAULT_REDIS_URL_FILE")
    if workers > 1 and not shared:
        server.log.warning(
            "LEADVAULT_REDIS_URL is not set: each of the %d web processes counts rate limits "
            "(sign-in attempts, failed sign-ins per address, submissions) on its own, so a "
            "client gets up to %d times each limit; set LEADVAULT_REDIS_URL to share them",
            workers,
            workers,
        )
