"""A :class:`~.board.Leaderboard` as text: Markdown, CSV, JSON and self-contained HTML, and the report's files.

Every table shows the same cells (:func:`shown_value`): counts scaled to the column's unit and rounded,
flags as ``yes``/``no``. JSON also keeps the machine rows (absolute counts, degree a fraction).
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..choices import REPORT_FORMATS
from ..io import atomic_write_files
from .board import DESIGN_COLUMNS, LEADERBOARD_COLUMNS, PUBLISHED_BOPS, Column, Leaderboard, ReportError, headline
from .figures import pareto_figure
from .html import HtmlTable, render_html
from .priors import PUBLISHED_RESOLUTION

NOTE_COLUMNS = (
    Column("prior model", "model"),
    Column("tag", "tag"),
    Column("note", "note"),
)
# Every section's columns: BOPs in millions for local rows, in billions for published ones (Section.columns).
CSV_COLUMNS = tuple(column for c in LEADERBOARD_COLUMNS for column in ((c, PUBLISHED_BOPS) if c.key == "bops" else (c,))
                    ) + DESIGN_COLUMNS + NOTE_COLUMNS[1:]
NOTES_TITLE = "published figures: how sure each is (tag) and where sources disagree"
COUNTED_COLUMNS = (
    Column("prior model", "prior"),
    Column("bnextbench model", "model"),
    Column("ops rule", "ops_rule"),
    Column("figure", "figure"),
    Column("unit", "unit"),
    Column("published", "published_in_unit", 1, 4),
    Column("counted metric", "counted_metric"),
    Column("counted", "counted_in_unit", 1, 4),
    Column("difference (%)", "difference", 0.01, 2),
    Column("over 3 %", "flagged"),
    Column("tag", "tag"),
)


def shown_value(row: dict[str, Any], column: Column) -> Any:
    """The value a table shows: scaled and rounded numbers, ``yes``/``no`` for flags, text as is."""
    value = row.get(column.key)
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column.scale is not None:
        return round(value / column.scale, column.decimals)
    return value


def cell_text(row: dict[str, Any], column: Column) -> str:
    value = shown_value(row, column)
    if value is None:
        return ""
    if column.scale is not None:
        return f"{value:.{column.decimals}f}"
    return str(value)


def shown_rows(rows: list[dict[str, Any]], columns: Iterable[Column]) -> list[dict[str, Any]]:
    columns = tuple(columns)
    return [{c.header: shown_value(row, c) for c in columns} for row in rows]


def _markdown_text(text: str) -> str:
    """Text for a Markdown line: renderers pass raw HTML through, so ``<``, ``>`` and ``&`` are escaped (a study
    named ``<script>`` stays text), and it stays on one line."""
    return html.escape(text, quote=False).replace("\n", " ")


def _markdown_table(rows: list[dict[str, Any]], columns: tuple[Column, ...]) -> str:
    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(_markdown_text(cell).replace("|", "\\|") for cell in cells) + " |"

    out = [line(c.header for c in columns), "|" + "|".join("---" for _ in columns) + "|"]
    out += [line(cell_text(row, c) for c in columns) for row in rows]
    return "\n".join(out)


LEADERBOARD_INTRO = (
    "Rankings never mix data sets or resolutions. Counts are at the section's resolution (BOPs: binary MACs; "
    "FLOPs: other MACs under the ops rule; OPs = BOPs/64 + FLOPs); top-1 is the mean over seeds, its std the "
    "sample standard deviation in percentage points."
)
TAGS_INTRO = (
    "Tags (per field, from prior-bnns.md): read = read in a public source; derived = computed from the released "
    "architecture; arith = arithmetic on read values; unverified = recalled from a paper table, not read."
)
COUNTED_INTRO = (
    "Each published figure of a model bnextbench implements, next to bnextbench's own count; difference = "
    'counted / published - 1. The BNext README\'s "BOPs (G)" column is compared with both BOPs and OPs.'
)


def noted_rows(board: Leaderboard) -> list[dict[str, Any]]:
    """Published rows with a provenance tag or a note on disagreeing sources."""
    return [row for s in board.sections if s.kind == "published" for row in s.rows if row["tag"] or row["note"]]


def to_markdown(board: Leaderboard) -> str:
    parts = ["# bnextbench leaderboard", "", _markdown_text(headline(board.provenance)), "", LEADERBOARD_INTRO, ""]
    for section in board.sections:
        parts += [f"## {_markdown_text(section.title)}", "", _markdown_table(section.rows, section.columns), ""]
    parts += [f"## {NOTES_TITLE}", "", TAGS_INTRO, "", _markdown_table(noted_rows(board), NOTE_COLUMNS), ""]
    parts += [f"## Published against counted ({PUBLISHED_RESOLUTION} px, 1000 classes)", "", COUNTED_INTRO, "",
              _markdown_table(board.counted, COUNTED_COLUMNS), "", "## Provenance", ""]
    parts += [f"- **{key}**: {_markdown_text(_provenance_text(value))}" for key, value in board.provenance.items()]
    return "\n".join(parts) + "\n"


def _provenance_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _csv_text(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def to_csv(board: Leaderboard) -> str:
    """Every section in one CSV; the ``section`` column keeps rankings apart."""
    def cells(section, row) -> list[str]:
        shown = set(section.columns) | set(NOTE_COLUMNS[1:])
        return [cell_text(row, c) if c in shown else "" for c in CSV_COLUMNS]

    return _csv_text(["section", *(c.header for c in CSV_COLUMNS)],
                     ([section.title, *cells(section, row)] for section in board.sections for row in section.rows))


def counted_csv(rows: list[dict[str, Any]]) -> str:
    """The published-against-counted rows (:func:`.board.counted_rows`) as CSV."""
    return _csv_text((c.header for c in COUNTED_COLUMNS),
                     ([cell_text(row, c) for c in COUNTED_COLUMNS] for row in rows))


def html_tables(board: Leaderboard) -> list[HtmlTable]:
    """The tables of the HTML page, as shown; JSON keeps them too, so readers can check one against the other."""
    tables = [HtmlTable(s.title, [c.header for c in s.columns], shown_rows(s.rows, s.columns))
              for s in board.sections]
    tables.append(HtmlTable(NOTES_TITLE, [c.header for c in NOTE_COLUMNS], shown_rows(noted_rows(board),
                                                                                      NOTE_COLUMNS)))
    tables.append(HtmlTable(f"published against counted at {PUBLISHED_RESOLUTION} px (over 3 % flagged)",
                            [c.header for c in COUNTED_COLUMNS], shown_rows(board.counted, COUNTED_COLUMNS)))
    return tables


def to_json(board: Leaderboard) -> dict[str, Any]:
    """Machine rows (absolute counts, degree a fraction) per section, and the tables exactly as shown."""
    return {
        "provenance": board.provenance,
        "sections": [{"title": s.title, "kind": s.kind, "data": s.data, "resolution": s.resolution, "rows": s.rows}
                     for s in board.sections],
        "published_vs_counted": board.counted,
        "tables": [table._asdict() for table in html_tables(board)],
    }


def to_html(board: Leaderboard, figure_svg: str) -> str:
    title = "bnextbench leaderboard" + (f": study {board.study}" if board.study else "")
    return render_html(title, headline(board.provenance), html_tables(board), figure_svg, board.provenance)


def report_payloads(board: Leaderboard, formats: Iterable[str]) -> dict[str, bytes]:
    """File name -> contents: each requested format, the Pareto plot (PNG, SVG) and the provenance."""
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in REPORT_FORMATS]
    if unknown:
        raise ReportError(f"unknown report format(s) {', '.join(unknown)}; choose from {', '.join(REPORT_FORMATS)}")
    png, svg = pareto_figure(board)
    payloads = {"pareto.png": png, "pareto.svg": svg.encode()}
    if "md" in formats:
        payloads["leaderboard.md"] = to_markdown(board).encode()
    if "csv" in formats:
        payloads["leaderboard.csv"] = to_csv(board).encode()
        payloads["published-vs-counted.csv"] = counted_csv(board.counted).encode()
    if "json" in formats:
        payloads["leaderboard.json"] = json.dumps(to_json(board), indent=1).encode()
    if "html" in formats:
        payloads["leaderboard.html"] = to_html(board, svg).encode()
    payloads["provenance.json"] = json.dumps(board.provenance, indent=1).encode()
    return payloads


def write_report(board: Leaderboard, out_dir: str | Path, formats: Iterable[str] = REPORT_FORMATS) -> list[Path]:
    """Write :func:`report_payloads` into ``out_dir``, all of them or none (a failed report leaves no half)."""
    return atomic_write_files(report_payloads(board, formats), out_dir, "the report")
