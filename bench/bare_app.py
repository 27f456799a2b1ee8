"""The baseline for bench/capture.py: a bare Flask app with the same route shape.

It parses the JSON body and answers like Leadvault does, but stores nothing, so
the difference to Leadvault is the cost of the real work (validation, crypto,
database, consent ledger, rate limits).
"""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/f/<form_id>")
def submit(form_id: str):
    data = request.get_json()
    if not isinstance(data, dict) or "email" not in data:
        return jsonify(status="error"), 400
    return jsonify(status="ok", message="Thank you! Please confirm your address in your inbox.")


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
