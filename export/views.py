"""The export package's blueprint (its templates; HTTP endpoints join it with the admin API)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("export", __name__, template_folder="templates")
