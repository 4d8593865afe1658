"""One emitter for what every command prints: a rich table, JSON or CSV of a list of records.

Commands hand records (dicts) and the fields to show; how a value looks in a table is the field's
business, JSON and CSV get the raw values. Files and pipes get whole tables, not an 80-column squeeze.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from rich.console import Console
from rich.table import Table

FORMATS = ("table", "json", "csv")
PIPE_WIDTH = 200

console = Console()
if not console.is_terminal:
    console = Console(width=PIPE_WIDTH)


def fixed(spec: str, scale: float = 1.0) -> Callable[[Any], str]:
    """A formatter: ``value / scale`` with format ``spec`` (e.g. ``fixed(".3f", 1e6)`` for millions)."""
    return lambda value: format(value / scale, spec)


def percent(fraction: float) -> str:
    """A fraction as a percentage with two decimals."""
    return f"{100 * fraction:.2f}"


class Field(NamedTuple):
    """One column: the record's key, its header and how a table shows a value (None shows as blank)."""

    key: str
    header: str
    text: Callable[[Any], str] = str
    left: bool = False  # left-justified (names), else right (numbers)
    wrap: bool = False

    def cell(self, record: dict[str, Any]) -> str:
        value = record.get(self.key)
        return "" if value is None else self.text(value)


def table(rows: Iterable[dict[str, Any]], fields: Sequence[Field], title: str | None = None,
          drop_empty: bool = False) -> Table:
    """A rich table of ``rows``; ``drop_empty`` leaves out columns that are blank in every row."""
    rows = list(rows)
    if drop_empty:
        fields = [f for f in fields if any(f.cell(row) for row in rows)]
    shown = Table(title=title)
    for field in fields:
        shown.add_column(field.header, justify="left" if field.left else "right", no_wrap=not field.wrap,
                         overflow="fold")
    for row in rows:
        shown.add_row(*(field.cell(row) for field in fields))
    return shown


def emit(rows: list[dict[str, Any]], fields: Sequence[Field], output: str, title: str | None = None,
         document: Any = None, csv_keys: Sequence[str] | None = None) -> None:
    """Print ``rows`` as ``output`` (table, json or csv). JSON prints ``document`` when given (a command's
    full result), else the rows; CSV writes ``csv_keys`` (default: the fields' keys) with raw values."""
    if output == "json":
        print(json.dumps(rows if document is None else document))
    elif output == "csv":
        keys = list(csv_keys or [field.key for field in fields])
        writer = csv.DictWriter(sys.stdout, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        console.print(table(rows, fields, title))


RECORD_FIELDS = (Field("field", "field", left=True), Field("value", "value"))


def _record_value(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def emit_record(record: dict[str, Any], output: str, title: str) -> None:
    """One record: a field/value table, one JSON object, or a one-row CSV."""
    rows = [{"field": key, "value": _record_value(value)} for key, value in record.items()]
    emit([record] if output == "csv" else rows, RECORD_FIELDS, output, title, document=record,
         csv_keys=list(record))


def say(message: str) -> None:
    """A one-line message to the user (what a command did)."""
    console.print(message)
