"""The worker's CPU per lead, a base revision against this tree, taking turns (issue 13).

    python bench/worker_ab.py --base REV [--rounds 10] [--items 500] [--batch-size 100]
                              [--database-url URL]

Whole runs of ``worker_cpu.py`` swing by 20 to 50 % on a shared machine, more than the
changes worth measuring. Here two child processes run the same set-up as
``worker_cpu.py`` (a fresh instance, one form, a warm-up, start-up's objects frozen out
of the collector): one imports the code of ``--base`` (``git archive`` into a temporary
directory, on ``PYTHONPATH``), the other the code of this working tree (uncommitted
changes included). They take turns, one at a time, round by round in ABBA order: each
round (after one not timed) queues ``--items`` submissions (not timed), drains the inbox with
``Worker.process_inbox`` and delivers the opt-in mails with ``Worker.deliver_mail`` to
an SMTP sink (a process of its own), each stage timed by the child's CPU time
(``time.process_time``). A slow patch of the machine then lands on both sides of a
round alike. A full collection runs before each round's timed part, in both children.

Prints CPU ms per lead of each side by round and stage, the means, their ratio (this
tree / base) and how many rounds each side was cheaper. Exits 1 when a round did not
turn every submission into a lead with one mail received, or a ledger does not verify.
``--base HEAD`` against a clean tree is an A/A run: the noise left.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from harness import BenchError, LockUse, bench_env, run_cli
from load import bench_database
from worker_cpu import (  # last: it takes the bench directory off sys.path
    WARM,
    _Sink,
    check,
    make_form,
    queue_submissions,
    tally,
    unsent,
    until_empty,
)

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
STAGES = ("inbox", "mail")
# On SQLite also the inbox stage's CPU holding the write lock (what capture waits for).
LOCKED = "inbox under the write lock"
REPLY = "worker_ab: "


# --- the child: one tree's code, driven over stdin/stdout -------------------------


def child(args: argparse.Namespace) -> int:
    out = sys.stdout
    sys.stdout = sys.stderr  # only replies on the pipe
    tmp = Path(tempfile.mkdtemp(prefix="lv-bench-ab-"))
    sink = _Sink()
    try:
        with bench_database(args.database_url, tmp) as url:
            env = bench_env(
                tmp / "instance",
                smtp_url=f"smtp://127.0.0.1:{sink.port}",
                worker_batch_size=str(args.batch_size),
                database_url=url,
            )
            run_cli(["db", "upgrade"], env)
            _serve_rounds(args, env, sink, out)
    finally:
        sink.close()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _serve_rounds(args: argparse.Namespace, env: dict[str, str], sink: Any, out: TextIO) -> None:
    import leadvault
    from leadvault import inbox
    from leadvault.app import create_app
    from leadvault.worker import Worker

    # One batch is one batch here: a slow shared machine must not split it.
    if hasattr(inbox, "SQLITE_BATCH_SECONDS"):
        inbox.SQLITE_BATCH_SECONDS = 3600.0
    app = create_app(environ=env)
    locks = None if args.database_url else LockUse()
    form_id = make_form(app)
    worker = Worker(app, batch_size=args.batch_size)
    queue_submissions(app, form_id, WARM)
    until_empty(worker.process_inbox)
    until_empty(worker.deliver_mail)
    gc.collect()
    gc.freeze()  # as `leadvault worker` does once it has its app
    # A round not timed: full batches' statements compiled and cached, as in later rounds.
    queue_submissions(app, form_id, args.items)
    handled_total = until_empty(worker.process_inbox)
    until_empty(worker.deliver_mail)
    _reply(out, {"code": str(Path(leadvault.__file__).resolve().parent.parent)})
    for line in sys.stdin:
        if line.strip() != "round":
            break
        sent, before = sink.count, tally(app)
        queue_submissions(app, form_id, args.items)
        gc.collect()
        locked = locks.cpu if locks else 0.0
        cpu = time.process_time()
        handled = until_empty(worker.process_inbox)
        inbox_cpu = time.process_time() - cpu
        locked = (locks.cpu if locks else 0.0) - locked
        cpu = time.process_time()
        until_empty(worker.deliver_mail)
        mail_cpu = time.process_time() - cpu
        # The sink counts in its own process: give its last message a moment.
        deadline = time.monotonic() + 5
        while sink.count - sent < handled and time.monotonic() < deadline:
            time.sleep(0.01)
        handled_total += handled
        after = tally(app)
        _reply(
            out,
            {
                "inbox": inbox_cpu,
                "mail": mail_cpu,
                **({LOCKED: locked} if locks else {}),
                "handled": handled,
                "leads": after["leads"] - before["leads"],
                "sent": after.get("sent", 0) - before.get("sent", 0),
                "received": sink.count - sent,
                "unsent": unsent(after),
            },
        )
    worker.close()
    try:
        check(app, handled_total, handled_total, sink.count - WARM)
        _reply(out, {"ok": True})
    except BenchError as exc:
        _reply(out, {"ok": False, "error": str(exc)})


def _reply(out: TextIO, message: dict[str, Any]) -> None:
    out.write(REPLY + json.dumps(message) + "\n")
    out.flush()


# --- the parent: two children taking turns ----------------------------------------


class Side:
    def __init__(self, name: str, tree: Path, args: argparse.Namespace) -> None:
        self.name = name
        self.tree = tree
        self.rounds: dict[str, list[float]] = {stage: [] for stage in (*STAGES, LOCKED)}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child"]
        cmd += ["--items", str(args.items), "--batch-size", str(args.batch_size)]
        if args.database_url:
            cmd += ["--database-url", args.database_url]
        env = dict(os.environ, PYTHONPATH=str(tree))
        self.proc = subprocess.Popen(
            cmd, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        code = self._read()["code"]
        if Path(code) != tree.resolve():
            raise BenchError(f"{name}: imported the code in {code}, not {tree}")

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(REPLY):
                return json.loads(line.removeprefix(REPLY))
        raise BenchError(f"{self.name}: the child exited ({self.proc.wait()})")

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def round(self, items: int) -> dict[str, float]:
        self._send("round")
        figures = self._read()
        counts = [figures[key] for key in ("handled", "leads", "sent", "received")]
        if any(count != items for count in counts):
            raise BenchError(
                f"{self.name}: {items} queued, {figures['handled']} handled, "
                f"{figures['leads']} new leads, {figures['sent']} mails sent, "
                f"{figures['received']} mails received; "
                f"outbox rows not sent: {figures['unsent']}"
            )
        for stage in (*STAGES, LOCKED):
            if stage in figures:
                self.rounds[stage].append(figures[stage] * 1000 / items)
        return figures

    def finish(self) -> None:
        self._send("done")
        verdict = self._read()
        self.proc.wait(60)
        if not verdict["ok"]:
            raise BenchError(f"{self.name}: {verdict['error']}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def export_tree(rev: str, into: Path) -> str:
    """``rev``'s files in ``into`` (``git archive``); returns its short commit."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if sha.returncode != 0:
        raise BenchError(f"--base {rev!r} is not a commit: {sha.stderr.strip()}")
    with tempfile.TemporaryFile() as archive:
        subprocess.run(["git", "-C", str(ROOT), "archive", rev], stdout=archive, check=True)
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            tar.extractall(into, filter="data")
    return sha.stdout.strip()


def summary(stage: str, base: list[float], head: list[float]) -> str:
    ratios = [h / b for b, h in zip(base, head, strict=True)]
    won = sum(h < b for b, h in zip(base, head, strict=True))
    change = (statistics.mean(head) / statistics.mean(base) - 1) * 100
    return (
        f"{stage:5}  base {statistics.mean(base):.3f}  this tree {statistics.mean(head):.3f} "
        f"CPU ms/lead (means)  change {change:+.1f} %  this tree cheaper in {won} of "
        f"{len(base)} rounds (per round {(min(ratios) - 1) * 100:+.1f} … "
        f"{(max(ratios) - 1) * 100:+.1f} %, median {(statistics.median(ratios) - 1) * 100:+.1f} %)"
    )


def parent(args: argparse.Namespace) -> int:
    sides: list[Side] = []
    with tempfile.TemporaryDirectory(prefix="lv-bench-ab-base-") as tmp:
        try:
            base_sha = export_tree(args.base, Path(tmp))
            dirty = subprocess.run(
                ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            head_sha = subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip() + (" + uncommitted changes" if dirty else "")
            backend = "PostgreSQL" if args.database_url else "SQLite"
            print(
                f"worker A/B on {backend}: base {base_sha}, this tree {head_sha}; "
                f"{args.rounds} rounds of {args.items} submissions, batches of {args.batch_size}"
            )
            sides = [Side("base", Path(tmp), args), Side("this tree", ROOT, args)]
            for n in range(args.rounds):
                order = sides if n % 4 in (0, 3) else sides[::-1]  # ABBA BAAB …
                for side in order:
                    side.round(args.items)
                print(
                    f"round {n + 1:2} ({order[0].name} first): "
                    + "  ".join(
                        f"{stage} {sides[0].rounds[stage][-1]:.3f} → "
                        f"{sides[1].rounds[stage][-1]:.3f}"
                        for stage in STAGES
                    ),
                    flush=True,
                )
            for side in sides:
                side.finish()
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
        finally:
            for side in sides:
                side.close()
    for stage in STAGES:
        print(summary(stage, sides[0].rounds[stage], sides[1].rounds[stage]))
    both = [
        [i + m for i, m in zip(side.rounds["inbox"], side.rounds["mail"], strict=True)]
        for side in sides
    ]
    print(summary("both", both[0], both[1]))
    if sides[0].rounds[LOCKED]:
        print(summary(LOCKED, sides[0].rounds[LOCKED], sides[1].rounds[LOCKED]))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="the git revision to compare this tree with")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--items", type=int, default=500, help="submissions a round")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--database-url", help="postgresql://… (each side a fresh database)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if not args.base:
        parser.error("--base is required")
    if args.rounds < 1 or args.items < 1 or args.batch_size < 1:
        parser.error("--rounds, --items and --batch-size take a positive number")
    return parent(args)


if __name__ == "__main__":
    raise SystemExit(main())
