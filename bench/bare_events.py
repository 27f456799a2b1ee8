"""The baseline for bench/events.py: the same routes, parsing the JSON and nothing more."""

from __future__ import annotations

import json

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/api/v1/events")
def events():
    body = json.loads(request.get_data() or b"null")
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        return jsonify(status="error"), 400
    return jsonify(accepted=len(body["events"]), unknown_type=0, unknown_lead=0), 202


@app.post("/api/v1/track")
def track():
    body = json.loads(request.get_data() or b"null")
    if not isinstance(body, dict) or "token" not in body:
        return jsonify(status="error"), 400
    return jsonify(status="stored"), 202


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
