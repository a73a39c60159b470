"""The pieces both HTML pages are made of (the report, html.py; the history, history.py):
the page frame with plotly inlined once, tables whose columns sort, charts, and writing a page
so that a reader never sees half of it."""

from __future__ import annotations

import dataclasses
import os
from html import escape
from pathlib import Path

import plotly.graph_objects as go


def write_page(path: Path, text: str) -> None:
    """Write through a temporary file beside ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def chart(figure: go.Figure, kind: str, count: int = 1) -> str:
    """A figure's div and script (plotly's library is in the page head once)."""
    div = figure.to_html(full_html=False, include_plotlyjs=False,
                         config={"displaylogo": False, "responsive": True})
    return f"<div class='chart' data-chart='{kind}' data-traces='{count}'>{div}</div>"


@dataclasses.dataclass(frozen=True)
class Cell:
    """A table cell with the number it sorts by (None: text, sorted as text)."""

    text: str
    value: float | None = None


def number(value: float | int | None, form: str) -> Cell:
    if value is None:
        return Cell("-", float("-inf"))
    return Cell(form.format(value), float(value))


def row(cells: list[str | Cell], css: str = "") -> str:
    html_cells = []
    for cell in cells:
        if isinstance(cell, Cell):
            # JavaScript's parseFloat reads "-Infinity" (missing figures sort first), not "-inf".
            value = "-Infinity" if cell.value == float("-inf") else repr(cell.value)
            html_cells.append(f"<td class='num' data-value='{value}'>{escape(cell.text)}</td>")
        else:
            html_cells.append(f"<td>{escape(str(cell))}</td>")
    attribute = f" class='{css}'" if css else ""
    return f"<tr{attribute}>{''.join(html_cells)}</tr>"


def table(header: list[str], rows: list[str], sortable: bool = False) -> str:
    css = " class='sortable'" if sortable else ""
    head = "".join(f"<th>{escape(title)}</th>" for title in header)
    return f"<table{css}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


# Click a header to sort by it; numbers by their data-value, text by its text.
SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(header => {
  header.addEventListener('click', () => {
    const column = header.cellIndex;
    const body = header.closest('table').tBodies[0];
    const ascending = header.dataset.order !== 'ascending';
    header.dataset.order = ascending ? 'ascending' : 'descending';
    const key = row => {
      const cell = row.cells[column];
      return cell.dataset.value !== undefined ? parseFloat(cell.dataset.value) : cell.textContent;
    };
    const rows = Array.from(body.rows).sort((a, b) => {
      const x = key(a), y = key(b);
      const order = typeof x === 'number' ? (x > y) - (x < y) : String(x).localeCompare(y);
      return ascending ? order : -order;
    });
    rows.forEach(row => body.appendChild(row));
  });
});
"""

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; }
th { background: #eee; }
table.sortable th { cursor: pointer; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.regressed td { background: #fdd; }
tr.fallback td, tr.unavailable td { background: #fff4e0; }
section { margin-bottom: 2em; }
section.device { border-top: 2px solid #888; padding-top: 0.5em; }
.flags li, .flag { color: #a00; }
.ok { color: #070; }
.hint { color: #555; font-size: 0.85em; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{style}</style>
<script>{plotly}</script>
</head><body>
{body}
<script>{sort_script}</script>
</body></html>
"""
