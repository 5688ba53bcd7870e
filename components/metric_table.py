"""Table 1 as HTML: numbers to three decimals with n and the 95% interval under each of your
cells, the top two per row marked as in the paper (best bold and shaded, second underlined)
where the caller ranks, published reference columns set apart and headed as published."""
from __future__ import annotations

import html
import math

import pandas as pd

CSS = """
.t1wrap{overflow-x:auto}
table.t1{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
table.t1 th,table.t1 td{border-bottom:1px solid #d0d7de;padding:4px 8px;text-align:right;white-space:nowrap}
table.t1 th:first-child,table.t1 td:first-child{text-align:left}
table.t1 thead th{background:#f6f8fa;position:sticky;top:0}
table.t1 .ref{color:#57606a;background:#fbfbfc}
table.t1 .best{font-weight:700;background:#dafbe1}
table.t1 .second{text-decoration:underline;font-weight:600}
table.t1 .ci{display:block;font-size:11px;color:#57606a;font-weight:400}
table.t1 .pub{display:block;font-size:11px;font-weight:400}
"""


def _ci(v: float) -> str:
    return f"{v:.2f}".replace("0.", ".", 1) if 0 <= v < 1 else f"{v:.2f}"


def _is_hours(row: str) -> bool:
    return row.lower().startswith("training hours") or row.startswith("学習時間")


def _fmt(v, row: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if _is_hours(row):
        return f"{v:.2f}" if v < 10 else f"{v:.1f}"
    return f"{v:.3f}".replace("0.", ".", 1) if 0 <= v < 1 else f"{v:.3f}"


def table_html(table: pd.DataFrame, marks: dict[str, list[str]], *, reference_prefix: str = "paper: ",
               row_labels: dict[str, str] | None = None,
               details: dict[tuple[str, str], tuple[int, float, float]] | None = None,
               published_note: str = "", reference_cell_note: str = "", imported: frozenset | set = frozenset(),
               imported_note: str = "", corner: str = "") -> str:
    """``marks`` = ``top_two()`` result: per row the best columns, best first (lower may be
    better: the order, not the value, says which is best). ``details``: (row, column) -> (n,
    CI low, CI high), shown under the value; reference columns carry ``published_note`` in
    their heading and ``reference_cell_note`` where a cell of yours shows n and its interval;
    ``imported`` columns (published predictions scored here) carry ``imported_note``; ``corner``
    heads the row labels' column (what the rows are)."""
    if table.empty:
        return ""
    details = details or {}

    def heading(c) -> str:
        if str(c).startswith(reference_prefix):
            note = f'<span class="pub">{html.escape(published_note)}</span>' if published_note else ""
            return f'<th class="ref">{html.escape(str(c)[len(reference_prefix):])}{note}</th>'
        if c in imported and imported_note:
            return f'<th class="imported">{html.escape(str(c))}<span class="pub">{html.escape(imported_note)}</span></th>'
        return f"<th>{html.escape(str(c))}</th>"
    head = "".join(heading(c) for c in table.columns)
    body = []
    for row in table.index:
        vals = table.loc[row]
        best_cols = marks.get(row, [])
        best = round(float(vals[best_cols[0]]), 6) if best_cols else None
        cells = []
        for c in table.columns:
            cls = ["ref"] if str(c).startswith(reference_prefix) else []
            if c in best_cols:
                cls.append("best" if round(float(vals[c]), 6) == best else "second")
            sub = ""
            if (row, c) in details:
                n, lo, hi = details[(row, c)]
                sub = f'<span class="ci">[{_ci(lo)}, {_ci(hi)}] n={n}</span>'
            elif "ref" in cls and reference_cell_note and not _is_hours(row):
                sub = f'<span class="ci">{html.escape(reference_cell_note)}</span>'
            cells.append(f'<td class="{" ".join(cls)}">{_fmt(vals[c], row)}{sub}</td>')
        label = (row_labels or {}).get(row, row)
        body.append(f"<tr><td>{html.escape(label)}</td>{''.join(cells)}</tr>")
    return (f'<div class="t1wrap"><table class="t1"><thead><tr><th>{html.escape(corner)}</th>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')
