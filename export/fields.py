"""An export's output columns: a header, a kind and how to read the value from a record."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from export.columns import Column, Kind
from export.rows import Record, getter


@dataclasses.dataclass(frozen=True)
class Field:
    """One output column: its header, its kind and how to read it from a record."""

    header: str
    kind: Kind
    get: Callable[[Record], Any]
    # The column it shows, when it is one of ``export.columns``' (not a preset's own
    # field): the CSV writer then reads and formats the cell in one step.
    column: Column | None = None


def fields_of(columns: Sequence[Column]) -> list[Field]:
    return [Field(c.key, c.kind, getter(c), c) for c in columns]
