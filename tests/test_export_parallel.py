"""Exports decrypted and formatted in worker processes (export.parallel): the same file
as in one process, in order, and no worker left behind however the export ends."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import multiprocessing
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from export import parallel, service
from leadvault.app import runtime
from leadvault.db import read_only
from leadvault.models import Lead
from tests.test_exports import people  # noqa: F401 (fixture)

_ON_ITS_OWN = "test_this_file_in_a_process_of_its_own"


@pytest.fixture(autouse=True)
def _can_fork(request: pytest.FixtureRequest):
    if request.node.name == _ON_ITS_OWN:
        yield
        return
    if not parallel.available():
        # Forking with other threads running is refused (the export then runs in one
        # process, see test_a_process_with_threads_does_not_fork); something in this
        # test session left a thread running, so the tests run in a pytest of their own
        # (test_this_file_in_a_process_of_its_own).
        pytest.skip(f"{threading.active_count()} threads running: run in a process of its own")
    yield
    assert multiprocessing.active_children() == []


def test_this_file_in_a_process_of_its_own():
    """A full test run leaves threads running (browser, SMTP sinks), and a process with
    threads does not fork: the pool is then tested by this file in a fresh pytest,
    on the same databases, so that CI exercises it."""
    if parallel.available():
        pytest.skip("this process can fork: the tests of this file run in it")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    summary = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, summary
    assert " passed" in summary and " skipped" in summary, summary  # this test skips there


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _pid_and(item: int) -> tuple[int, int]:
    return os.getpid(), item * item


def test_pieces_come_back_in_order_from_other_processes():
    answers = list(parallel.ordered_map(_pid_and, range(25), workers=2))
    assert [square for _pid, square in answers] == [n * n for n in range(25)]
    pids = {pid for pid, _square in answers}
    assert len(pids) == 2 and os.getpid() not in pids
    assert all(_gone(pid) for pid in pids)


def test_the_reader_takes_its_share_in_its_place():
    answers = list(parallel.ordered_map(_pid_and, range(20), workers=1, share=4))
    assert [square for _pid, square in answers] == [n * n for n in range(20)]
    here = [n for n, (pid, _square) in enumerate(answers) if pid == os.getpid()]
    assert here == [3, 7, 11, 15, 19]
    assert len({pid for pid, _square in answers} - {os.getpid()}) == 1


def _echo(item: bytes) -> bytes:
    return item[::-1]


def test_items_and_answers_larger_than_the_pipes_buffer_go_through():
    """Chunks of large rows are bigger than the pipes' buffer (PIPE_BYTES) both ways:
    neither side may wait for the other forever (the worker keeps taking items while it
    sends an answer the parent has not read yet)."""
    size = 3 * parallel.PIPE_BYTES
    items = [bytes([n]) * size + b"end" for n in range(6)]
    answers = list(parallel.ordered_map(_echo, items, workers=1))
    assert answers == [item[::-1] for item in items]


def _describe(item: object) -> str:
    return repr(item)


@dataclasses.dataclass
class _Box:
    value: int


def test_items_reach_the_worker_as_they_were_sent():
    """Plain rows go by marshal, anything else (UUIDs, datetimes, a dataclass) by
    pickle: both arrive the same, types included."""
    items = [
        ([("3f2b", b"\x00sealed", 1, None, 2.5, "Jürgen")], [], []),
        ([(uuid.UUID(int=7), dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC))], [], []),
        ["text", b"bytes", 3, -1.0, None, (1, (2, [3]))],
        _Box(4),
    ]
    answers = list(parallel.ordered_map(_describe, items, workers=1))
    assert answers == [repr(item) for item in items]
    assert parallel._pack(items[0])[:1] == b"m" and parallel._pack(items[1])[:1] == b"p"


def test_workers_stop_when_the_consumer_stops():
    pieces = parallel.ordered_map(_pid_and, range(1000), workers=2)
    pids = {next(pieces)[0], next(pieces)[0]}
    pieces.close()
    assert len(pids) == 2 and all(_gone(pid) for pid in pids)


def _fails_at_five(item: int) -> tuple[int, int]:
    if item == 5:
        raise ValueError("lead 5 does not decrypt")
    return os.getpid(), item


def test_an_error_in_a_worker_is_raised_and_the_workers_stop():
    pids: set[int] = set()
    with pytest.raises(ValueError, match="lead 5 does not decrypt"):
        for pid, item in parallel.ordered_map(_fails_at_five, range(100), workers=2):
            pids.add(pid)
            assert item < 5
    assert len(pids) == 2 and all(_gone(pid) for pid in pids)


def _dies_at_three(item: int) -> tuple[int, int]:
    if item == 3:
        os._exit(9)  # as if killed (out of memory)
    return os.getpid(), item


def test_a_worker_that_dies_fails_the_export():
    pids: set[int] = set()
    with pytest.raises(parallel.WorkerFailed):
        for pid, _item in parallel.ordered_map(_dies_at_three, range(100), workers=2):
            pids.add(pid)
    assert pids and all(_gone(pid) for pid in pids)


def test_a_process_with_threads_does_not_fork():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not parallel.available()
        answers = list(parallel.ordered_map(_pid_and, range(5), workers=2))
    finally:
        stop.set()
        thread.join()
    assert answers == [(os.getpid(), n * n) for n in range(5)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"format": "csv"},
        {"format": "csv", "dialect": "excel-de", "columns": "id,email,company,consent,score"},
        {"format": "csv", "preset": "salesforce"},
        {"format": "ndjson"},
    ],
)
def test_workers_write_the_same_file(app, people, kwargs):  # noqa: F811
    selection, _words = service.selection()

    def export(workers: int, chunk_size: int) -> bytes:
        with app.app_context(), read_only(runtime(app).session_factory) as s:
            plan = service.prepare(s, **kwargs)
            buffer = io.BytesIO()
            chunks: list[int] = []
            written = service.write(
                s,
                selection,
                plan,
                buffer,
                chunk_size=chunk_size,
                workers=workers,
                on_chunk=chunks.append,
            )
        assert written == sum(chunks)
        return buffer.getvalue()

    alone = export(0, 1000)
    assert alone.count(b"\n") >= 2
    assert export(2, 1) == alone and export(2, 2) == alone and export(1, 1000) == alone


def test_an_export_that_fails_while_writing_leaves_no_worker(app, people):  # noqa: F811
    class Full(io.BytesIO):
        def write(self, data: bytes) -> int:
            if self.tell():
                raise OSError(28, "No space left on device")
            return super().write(data)

    with app.app_context(), read_only(runtime(app).session_factory) as s:
        plan = service.prepare(s, format="csv", columns="id,email")
        with pytest.raises(OSError, match="No space left"):
            service.write(s, sa.select(Lead.id), plan, Full(), chunk_size=1, workers=2)
    # The autouse fixture checks that no child process is left.
