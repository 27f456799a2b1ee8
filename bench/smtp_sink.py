"""SMTP sinks on loopback for the benchmarks: they receive mail and count it.

The sink shares the two cores with what is measured, so its own CPU per mail is
taken from the workers and from capture. aiosmtpd (what the tests use) spends
~0.65-1.0 ms of CPU a mail, 4-5 times the worker's own sending; a relay in production
(Postfix, a provider) runs on other cores, in C. ``LeanSink`` speaks just the part
of SMTP a relay answers a client with (EHLO with PIPELINING, MAIL, RCPT, DATA and
its end, RSET, NOOP, QUIT) in one asyncio protocol, so the figures measure
Leadvault rather than the sink. ``AiosmtpdSink`` stays for comparison
(``--sink aiosmtpd``).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from harness import free_port

EHLO_REPLY = (
    b"250-127.0.0.1\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 33554432\r\n"
)
END_OF_DATA = b"\r\n.\r\n"


class _Session(asyncio.Protocol):
    """One client connection. Replies to everything that arrived in one read go out in
    one write, so a pipelined group (RFC 2920) costs one round trip as at a relay."""

    def __init__(self, sink: LeanSink) -> None:
        self.sink = sink
        self.buffer = bytearray()
        self.in_data = False
        self.recipients = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 127.0.0.1 ESMTP bench sink\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies = bytearray()
        closing = False
        while True:
            if self.in_data:
                end = self.buffer.find(END_OF_DATA)
                if end < 0:
                    # Keep what could be the start of the end-of-data line.
                    del self.buffer[: max(0, len(self.buffer) - len(END_OF_DATA) + 1)]
                    break
                del self.buffer[: end + len(END_OF_DATA)]
                self.in_data = False
                self.sink.received(self.recipients)
                self.recipients = 0
                replies += b"250 OK queued\r\n"
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            verb = bytes(self.buffer[:4]).upper()
            del self.buffer[: end + 2]
            if verb == b"EHLO":
                replies += EHLO_REPLY
            elif verb == b"RCPT":
                self.recipients += 1
                replies += b"250 OK\r\n"
            elif verb == b"DATA":
                if not self.recipients:
                    replies += b"503 Error: need RCPT command\r\n"
                    continue
                replies += b"354 End data with <CR><LF>.<CR><LF>\r\n"
                self.in_data = True
                # The content's first line may itself be the lone dot.
                self.buffer[:0] = b"\r\n"
            elif verb in (b"MAIL", b"RSET"):
                self.recipients = 0
                replies += b"250 OK\r\n"
            elif verb in (b"HELO", b"NOOP"):
                replies += b"250 OK\r\n"
            elif verb == b"QUIT":
                replies += b"221 Bye\r\n"
                closing = True
                break
            else:
                replies += b"502 Command not implemented\r\n"
        if self.transport is not None:
            if replies:
                self.transport.write(bytes(replies))
            if closing:
                self.transport.close()


class LeanSink:
    """Counts the recipients of each message it accepts, on an event loop in a thread."""

    def __init__(self) -> None:
        self.count = 0
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(
            self._loop.create_server(lambda: _Session(self), "127.0.0.1", self.port)
        )
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="bench-smtp-sink", daemon=True
        )
        self._thread.start()

    def received(self, recipients: int) -> None:
        # Only the loop's thread writes the count; readers see whole ints.
        self.count += recipients

    def close(self) -> None:
        async def shut() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


class AiosmtpdSink:
    """The same on aiosmtpd, the SMTP server the tests use."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.count = 0
        self._lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_EHLO(  # noqa: N802
        self, _server: Any, session: Any, _envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        # aiosmtpd reads the commands in order from its stream, so it takes pipelined
        # input as a relay does (RFC 2920); it only does not say so.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        with self._lock:
            self.count += len(envelope.rcpt_tos)
        return "250 OK"

    def close(self) -> None:
        self.controller.stop()


SINKS = {"lean": LeanSink, "aiosmtpd": AiosmtpdSink}
