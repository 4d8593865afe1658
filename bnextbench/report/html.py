"""A self-contained HTML report: sortable tables, an inline SVG figure and the provenance of the numbers.

The page loads nothing from anywhere: CSS, the sorting script and the figure are inline, and a
Content-Security-Policy allows no network source and only the page's own script (by its hash), so
even a name that slipped through unescaped could not run. Every name and value is HTML-escaped.

Stable hooks for tests and readers: tables are ``table#table-<index>.bnb-table``, their body rows
``tr.bnb-row``, header cells ``th[data-column=NAME]``, cells ``td[data-column=NAME][data-value=EXACT]``;
the figure is ``figure#figure``, the provenance ``dl#provenance``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import NamedTuple

from ..errors import BnextbenchError


class HtmlTable(NamedTuple):
    """One table of the page: ``rows`` are mappings from each of ``columns`` to a value (missing = empty)."""

    caption: str
    columns: Sequence[str]
    rows: Sequence[Mapping[str, object]]


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; }
.table-scroll { overflow-x: auto; margin: 1.5em 0; }
table { border-collapse: collapse; font-size: 12px; }
caption { text-align: left; font-weight: 600; font-size: 14px; padding-bottom: .4em; }
th, td { border-bottom: 1px solid #ddd; padding: .2em .3em; vertical-align: top; }
td { max-width: 10em; overflow-wrap: anywhere; }
td:not(.number) { min-width: 4em; }
th { background: #f3f3f3; cursor: pointer; user-select: none; }
p.headline { color: #555; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; }
figure svg { max-width: 100%; height: auto; }
dl#provenance { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dt { font-weight: 600; }
dd { margin: 0; font-family: ui-monospace, monospace; white-space: pre-wrap; word-break: break-all; }
"""

# Clicking a header sorts that table's body rows by the cells' exact data-value: numerically when both
# values are numbers, as text otherwise; empty cells stay last; a second click reverses the order.
SORT_SCRIPT = """
document.querySelectorAll("table.bnb-table").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (header, column) {
    header.addEventListener("click", function () {
      var descending = header.getAttribute("aria-sort") === "ascending";
      table.querySelectorAll("thead th").forEach(function (other) { other.removeAttribute("aria-sort"); });
      header.setAttribute("aria-sort", descending ? "descending" : "ascending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].getAttribute("data-value"), y = b.cells[column].getAttribute("data-value");
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var nx = Number(x), ny = Number(y), order;
        if (!isNaN(nx) && !isNaN(ny)) { order = nx - ny; }
        else { order = x.localeCompare(y, undefined, {numeric: true}); }
        return descending ? -order : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

_BEFORE_SVG = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)  # XML prolog, doctype and comments before <svg


def format_value(value: object) -> tuple[str, str, bool]:
    """(shown text, exact value the sorting reads, right-aligned as a number) of one cell."""
    if value is None:
        return "", "", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), str(int(value)), False
    if isinstance(value, int):
        return f"{value:,}", str(value), True
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value), "" if math.isnan(value) else str(value).replace("inf", "Infinity"), True
        magnitude = abs(value)
        if value == 0:
            shown = "0"
        elif magnitude >= 1:  # at most 4 decimals, so values rounded by the caller show as given
            shown = f"{value:,.4f}".rstrip("0").rstrip(".")
        else:
            shown = f"{value:.4g}"
        return shown, repr(value), True
    if isinstance(value, (Mapping, list, tuple)):
        text = json.dumps(value, sort_keys=True, default=str)
        return text, text, False
    return str(value), str(value), False


def inline_svg(svg: str) -> str:
    """SVG text ready to embed in HTML: everything before the ``<svg`` element (prolog, doctype) dropped."""
    if not re.search(r"<svg\b", svg):
        raise BnextbenchError("the report figure is not SVG text (no <svg> element)")
    return _BEFORE_SVG.sub("", svg, count=1).strip()


def _table(index: int, table: HtmlTable) -> str:
    headers = "".join(f'<th scope="col" data-column="{escape(c)}">{escape(c)}</th>' for c in table.columns)
    body = []
    for number, row in enumerate(table.rows):
        cells = []
        for column in table.columns:
            shown, exact, numeric = format_value(row.get(column))
            kind = ' class="number"' if numeric else ""
            cells.append(f'<td{kind} data-column="{escape(column)}" data-value="{escape(exact)}">{escape(shown)}</td>')
        body.append(f'<tr class="bnb-row" data-row="{number}">{"".join(cells)}</tr>')
    return (f'<div class="table-scroll"><table id="table-{index}" class="bnb-table"><caption>{escape(table.caption)}'
            f'</caption><thead><tr>{headers}</tr></thead><tbody>\n{chr(10).join(body)}\n</tbody></table></div>')


def _provenance(provenance: Mapping[str, object]) -> str:
    items = []
    for key, value in provenance.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        items.append(f'<dt>{escape(str(key))}</dt><dd data-key="{escape(str(key))}">{escape(text)}</dd>')
    return f'<dl id="provenance">{"".join(items)}</dl>'


def render_html(title: str, headline: str, tables: list[HtmlTable], figure_svg: str,
                provenance: Mapping[str, object]) -> str:
    """A complete, self-contained HTML page: the title with a ``headline`` under it (what is ranked), the SVG
    figure, ``tables`` (click a header to sort), provenance."""
    script_hash = base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{script_hash}'"
    sections = "\n".join(_table(index, table) for index, table in enumerate(tables))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{escape(title)}</h1>
<p class="headline">{escape(headline)}</p>
<figure id="figure">
{inline_svg(figure_svg)}
</figure>
{sections}
<h2>Provenance</h2>
{_provenance(provenance)}
<script>{SORT_SCRIPT}</script>
</body>
</html>
"""
