"""A number of bytes as people read a limit: whole MB, else whole KB, else bytes.

Rounded down, so a named limit is never more than the real one (a 1.5 MB limit reads
"1 MB"); a limit under 1 MB reads in KB instead of "0 MB"."""

from __future__ import annotations

KB = 1024
MB = 1024 * KB


def readable(n_bytes: int) -> str:
    if n_bytes >= MB:
        return f"{n_bytes // MB} MB"
    if n_bytes >= KB:
        return f"{n_bytes // KB} KB"
    return f"{n_bytes} B"
