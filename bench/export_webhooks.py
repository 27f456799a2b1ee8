"""Webhook deliveries for ``bench/export.py``: one worker against the HTTP client alone.

``--webhooks`` events are queued through the outbox to one endpoint on a loopback
receiver (a separate process answering 204) and delivered by one worker
(``Worker.deliver_other``); the baseline posts the same signed body as often with the
deliverer's HTTP client alone. The receiver counts what arrived; a missing or doubled
delivery fails the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import sqlalchemy as sa
from harness import BenchError, free_port, verdict

TARGET_DELIVERIES_S = 300

RECEIVER = r"""
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
seen = {}
lock = threading.Lock()
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            key = self.headers.get("webhook-id", "")
            seen[key] = seen.get(key, 0) + 1
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_GET(self):
        with lock:
            body = ("%d %d" % (len(seen), sum(seen.values()))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def webhooks(app, count: int, port: int) -> tuple[float, float, int, int]:
    """Deliveries/s with one worker, and with the HTTP client alone; what arrived."""
    from export import signing, transport
    from export import webhooks as service
    from leadvault.app import runtime
    from leadvault.db import unit_of_work
    from leadvault.models import Lead
    from leadvault.worker import Worker

    rt = runtime(app)
    url = f"http://127.0.0.1:{port}/hook"
    with app.app_context(), unit_of_work(rt.session_factory) as session:
        endpoint, secret = service.create_endpoint(
            session, url=url, event_types=["lead.updated"], purpose=None, description="bench"
        )
        ids = list(session.scalars(sa.select(Lead.id).limit(count)))
        for n in range(count):
            service.emit(
                session,
                "lead.updated",
                lead_id=ids[n % len(ids)],
                data={"fields": ["company"]},
                endpoint_ids=[endpoint.id],
            )
    worker = Worker(app)
    started = time.perf_counter()
    try:
        while worker.deliver_other():
            pass
    finally:
        worker.close()
    took = time.perf_counter() - started

    body = json.dumps({"type": "lead.updated", "data": {"fields": ["company"]}}).encode()
    client = transport.Client(
        transport.Guard(rt.settings.webhook_allow_networks),
        timeout=rt.settings.webhook_timeout_seconds,
    )
    started = time.perf_counter()
    try:
        for n in range(count):
            msg_id = f"msg_bare{n}"
            headers = signing.headers([secret], msg_id, int(time.time()), body)
            response = client.post(url, body, headers)
            if response.status != 204:
                raise BenchError(f"receiver answered {response.status}")
    finally:
        client.close()
    bare = time.perf_counter() - started
    distinct, total = received(port)
    return took, bare, distinct, total


def received(port: int) -> tuple[int, int]:
    """What the receiver counted: distinct webhook-ids, requests."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=10) as response:
        distinct, total = (int(x) for x in response.read().decode().split())
    return distinct, total


def report_webhooks(app, count: int) -> None:
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    try:
        _wait_for(port)
        took, bare, distinct, total = webhooks(app, count, port)
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    rate = count / took
    print(
        f"webhooks: {count} deliveries with one worker in {took:.2f} s = {rate:.0f}/s; "
        f"HTTP client alone {count / bare:.0f}/s (worker / client alone = {bare / took:.2f})"
    )
    print(f"target >= {TARGET_DELIVERIES_S} deliveries/s: {verdict(rate >= TARGET_DELIVERIES_S)}")
    if distinct != 2 * count or total != 2 * count:
        raise BenchError(
            f"the receiver got {total} requests for {distinct} ids, "
            f"expected {2 * count} of each (one per event)"
        )


def _wait_for(port: int) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise BenchError("the webhook receiver did not start")
