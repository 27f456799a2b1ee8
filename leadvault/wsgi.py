"""WSGI entry point for gunicorn: ``gunicorn leadvault.wsgi:app``."""

from __future__ import annotations

import gc
import logging
import sys

from leadvault.app import create_app
from leadvault.instance import secure
from leadvault.settings import SettingsError

try:
    app = create_app()
except SettingsError as exc:  # one line, not a traceback, in the server log
    print(f"Error: {exc}", file=sys.stderr)
    sys.exit(2)

logging.basicConfig(level=app.extensions["leadvault"].settings.log_level)
# Files 0600, folders 0700; an existing instance folder is made owner-only.
secure(app.extensions["leadvault"].settings)

# What is loaded by now (SQLAlchemy, Flask, templates: ~100k objects) lives as
# long as the process; keep it out of the collector's full passes, which would
# otherwise walk all of it every few thousand requests.
gc.freeze()
