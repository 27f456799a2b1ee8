"""Turning an export's chunks into file pieces in worker processes, in order.

Decrypting and formatting a lead costs several times what SQLite takes to read
it, and one process uses one core. Here the caller's process keeps reading (in
its one transaction: one snapshot of the database) and hands each chunk's rows
to one of a few worker processes in turn; their pieces come back and are
yielded in the chunks' order, so the file is the same byte for byte.

Workers are forked, never spawned: they inherit the work function with
everything it closes over (the columns, the vault's key ring in memory), so no
key or personal data is ever written anywhere to reach them, and starting one
costs milliseconds, not a fresh interpreter's imports. Forking is only safe in a
process with one thread (a lock held by another thread at the fork stays held in
the child forever), so :func:`available` refuses otherwise: the CLI uses a pool,
a web worker serving a download does not (it has threads, and its requests share
the cores anyway).

No worker outlives the pool: closing the generator (the consumer stopped, an
error, Ctrl-C) stops and joins them, terminating any that do not stop; a worker
whose parent died sees its pipe close and exits.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import gc
import marshal
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Any

# Chunks handed to each worker before the oldest piece is waited for: enough that a
# worker always has the next chunk when it finishes one, few enough to keep memory flat.
AHEAD = 2
# With one worker, the reader may decrypt and format one chunk in SHARE itself (0: none),
# when the worker's part of a lead costs more than reading it. It did (one in 12: reading
# ~13.5 us a lead, the worker ~16.8 us); since the CSV rows come straight from the
# driver's rows (export.direct) the worker's part is the cheaper one (200 000 leads,
# SQLite, CPU: reader 2.5 s, worker 2.4 s with no share; one in 12 or 24 made the
# reader the slower side: 71 900-75 500 rows/s against 77 000-77 900 with none).
SHARE = 0
_STOP = None
# The pipes' buffer (bytes): more than a chunk's items or answers (see _widen); 1 MB is
# what Linux lets any user ask for (/proc/sys/fs/pipe-max-size).
PIPE_BYTES = 1 << 20


class WorkerFailed(RuntimeError):
    """A worker process died without an answer (killed, out of memory)."""


def available() -> bool:
    """Whether this process may fork workers (see the module's docstring)."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def default_workers() -> int:
    """Worker processes for a command-line export: one on two cores or more (the reader
    and one worker keep two cores busy), none on one. A second worker was ~8 % faster
    on two cores but held ~13 MB more: a forked worker's memory is the pages of the
    parent's heap it writes to (reference counts, freed blocks reused), 10 to 20 MB."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 1 if (cores or 1) > 1 else 0


def _serve(
    conn: Connection, answers: Connection, work: Callable[[Any], Any], parents: list[Connection]
) -> None:
    """A worker: takes items from ``conn`` and answers each on ``answers`` with
    ``("ok", work(item))`` or ``("error", exception)``, until told to stop or the pipe
    closes."""
    # The parent's ends of every pipe so far came along with the fork: held open here,
    # they would keep this worker (and the others) from seeing the parent close them.
    for parent in parents:
        parent.close()
    # Ctrl-C goes to the whole process group: the parent stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def receive() -> None:
        # Items are taken off the pipe as they come, so the parent's send never waits
        # for this worker to finish its current item (while the parent waits for that
        # item's answer: a deadlock with both pipes full). Only the bytes: the main
        # thread unpickles them, so this one needs the GIL just to read.
        try:
            while True:
                inbox.put(conn.recv_bytes())
        except (EOFError, OSError):
            pass
        inbox.put(_STOP)

    # The receiving thread takes the GIL for every piece of an item it reads off the
    # pipe, and the main thread, working, gives it up only every switch interval (5 ms
    # by default): meanwhile the parent's send waited (a chunk is one piece with the
    # wide pipes of _widen, unless the pipe could not be widened or a chunk is larger).
    sys.setswitchinterval(0.0005)
    threading.Thread(target=receive, daemon=True).start()
    # Items from the parent that forked this worker (see _pack).
    while (data := inbox.get()) is not _STOP and (item := _unpack(data)) is not _STOP:
        try:
            answer: tuple[str, Any] = ("ok", work(item))
        except Exception as exc:  # handed to the parent, which raises it
            answer = ("error", exc)
        try:
            answers.send(answer)
        except (BrokenPipeError, OSError):
            return  # the parent is gone
        except Exception as exc:  # an exception that does not pickle
            answers.send(("error", WorkerFailed(f"{type(exc).__name__}: {exc}")))


def ordered_map(
    work: Callable[[Any], Any], items: Iterable[Any], *, workers: int, share: int = 0
) -> Iterator[Any]:
    """``map(work, items)`` computed in ``workers`` forked processes, in order.

    ``items`` is consumed in this process (only as far as the workers need: at most
    ``AHEAD`` items per worker wait or are being worked on). With ``share``, this
    process works on one item in every ``share`` itself, where the workers' load
    would otherwise leave it idle. An exception raised by ``work`` is raised here;
    the workers are stopped however the generator ends.
    """
    if workers < 1 or not available():
        yield from map(work, items)
        return
    context = multiprocessing.get_context("fork")
    processes: list[Any] = []
    # Per worker, two one-way pipes: items out to it, answers back (see _widen).
    outs: list[Connection] = []
    ins: list[Connection] = []
    # Objects that exist now are left alone by the workers' garbage collector: it would
    # otherwise touch (copy) every page of the parent's heap, and could run the
    # finalisers of the parent's garbage (a database connection's) in a worker.
    gc.freeze()
    try:
        for _ in range(workers):
            their_in, my_out = context.Pipe(duplex=False)
            my_in, their_out = context.Pipe(duplex=False)
            _widen(my_out)
            _widen(their_out)
            process = context.Process(
                target=_serve,
                args=(their_in, their_out, work, [*outs, *ins, my_out, my_in]),
                name="leadvault-export",
                daemon=True,
            )
            process.start()
            their_in.close()
            their_out.close()
            processes.append(process)
            outs.append(my_out)
            ins.append(my_in)
    finally:
        gc.unfreeze()
    # In order: the pipe an answer will come from, or (None, the answer worked out here).
    waiting: collections.deque[tuple[Connection | None, Any]] = collections.deque()
    sent = 0
    try:
        for number, item in enumerate(items):
            if len(waiting) >= workers * AHEAD:
                yield _answer(*waiting.popleft())
            if share and number % share == share - 1:
                waiting.append((None, work(item)))
                continue
            worker = sent % workers
            try:
                outs[worker].send_bytes(_pack(item))
            except OSError:  # BrokenPipeError: the worker is gone (killed, out of memory)
                raise WorkerFailed("an export worker process ended without an answer") from None
            sent += 1
            waiting.append((ins[worker], None))
        while waiting:
            yield _answer(*waiting.popleft())
    finally:
        _stop(processes, [*outs, *ins])


def _pack(item: Any) -> bytes:
    """An item as bytes for a worker: ``marshal`` where it can (plain tuples, lists, text,
    bytes and numbers: the SQLite driver's rows), three times cheaper to write than
    pickle and a third cheaper to read (a chunk of 500 leads: 1.6 -> 0.5 us a lead in
    the reader); pickle for anything else (PostgreSQL's rows hold UUIDs and datetimes).
    Both ends are the same interpreter (forked), so marshal's format is theirs."""
    try:
        return b"m" + marshal.dumps(item)
    except ValueError:  # an object marshal does not write
        return b"p" + pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)


def _unpack(data: bytes) -> Any:
    """An item written by :func:`_pack` (in the parent that forked this worker)."""
    body = memoryview(data)[1:]
    return marshal.loads(body) if data[:1] == b"m" else pickle.loads(body)  # noqa: S301,S302


def _widen(end: Connection) -> None:
    """Give the pipe behind ``end`` a buffer of PIPE_BYTES (Linux; else it keeps its own).

    A chunk's rows pickled are ~300 KB and its CSV ~200 KB: through the duplex socket
    pair ``Pipe()`` made before, each went over in pieces, every piece a wake-up of the
    other side (and of the worker's receiving thread, which needs the GIL for it), and
    the writer waited between them; reader and worker each idled ~20 % of the export.
    With a buffer larger than a chunk, a send is one write that does not wait and a
    receive one read (200 000 leads: 23 200-26 100 -> 24 800-29 500 rows/s, same file).
    The buffer is kernel memory, not the export's; a user over the kernel's limit for
    pipe buffers gets the default size, which only costs speed.
    """
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(end.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _answer(pipe: Connection | None, answer: Any) -> Any:
    if pipe is None:
        return answer
    try:
        status, value = pipe.recv()
    except (EOFError, OSError):
        raise WorkerFailed("an export worker process ended without an answer") from None
    if status == "error":
        raise value
    return value


def _stop(processes: list[Any], pipes: list[Connection]) -> None:
    # Closing our ends stops a worker wherever it is: waiting for an item (the pipe
    # closed), or answering one nobody will read any more (a broken pipe).
    for pipe in pipes:
        pipe.close()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()
        process.close()
