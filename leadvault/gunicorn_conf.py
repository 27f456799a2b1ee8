"""Gunicorn settings: ``gunicorn -c python:leadvault.gunicorn_conf leadvault.wsgi:app``.

The access log leaves out the client address and the query string: both can be
personal data (an IP address, ``/api/v1/consent?email=…``).
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
accesslog = "-"
access_log_format = '"%(m)s %(U)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
