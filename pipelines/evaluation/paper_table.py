"""The paper's Table 1 as data, and the same table built from your own evaluations.

JMedLoRA's Table 1 has rows metric × shots (Accuracy, Exact match, Gestalt score for 0-shot
and 1-shot) plus training hours, and one column per model and training step (step 0 = the
base model). ``PUBLISHED`` holds their numbers (PAPER_NOTES.md); ``build_table1`` gives the
same frame for a list of evaluation summaries so both can sit side by side.

    jmedlora table [--workspace DIR] [--data FILE] [--reference] [--csv OUT]
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.core import cli
from pipelines.core.errors import cli_guard
from pipelines.evaluation import metrics
from pipelines.evaluation.summary import EvalSummary

HOURS_ROW = "Training hours"

# Published columns: (base model, step, label). None = not reported ("–" in the paper).
_PUB_COLS = [("OpenCALM-7B", 0), ("OpenCALM-7B", 1000), ("OpenCALM-7B", 3000), ("OpenCALM-7B", 10000),
             ("MedCALM", 0), ("MedCALM", 1000), ("MedCALM", 3000), ("MedCALM", 10000),
             ("Llama2-70B", 0), ("Llama2-70B", 900), ("Llama2-70B", 3000), ("ChatGPT", 0)]
_PUB_VALUES = {
    "Accuracy (0s)":      [.222, .219, .213, .239, .236, .216, .214, .223, .216, .295, .285, .438],
    "Exact match (0s)":   [.002, .019, .047, .039, .028, .029, .029, .034, .017, .038, .045, .112],
    "Gestalt score (0s)": [.033, .114, .141, .078, .032, .096, .113, .085, .071, .276, .287, .369],
    "Accuracy (1s)":      [.227, .244, .196, .223, .207, .188, .188, .204, .244, .296, .267, None],
    "Exact match (1s)":   [.009, .070, .026, .019, .021, 0, .001, .019, .045, .057, .056, None],
    "Gestalt score (1s)": [.053, .186, .087, .078, .028, 0, .002, .035, .247, .331, .314, None],
    HOURS_ROW:            [None, 4.6, 24.0, 37.0, None, 8.9, 23.7, 58.4, None, 12.7, 42.4, None],
}
ROWS = list(_PUB_VALUES)  # the published table's rows


def rows() -> list[str]:
    """Rows of your Table 1: each Table-1 metric of the registry × shots, then training hours."""
    return [metrics.table1_row(m, s) for s in (0, 1) for m in metrics.table1_metrics()] + [HOURS_ROW]


def step_label(step: int | None) -> str:
    """1000 -> '1k', 900 -> '0.9k', 0 -> '0' (the paper's column headings)."""
    if step is None:
        return "?"
    if step >= 1000 or (step >= 500 and step % 100 == 0):
        return f"{step / 1000:g}k"
    return str(step)


def column_label(base: str, step: int | None) -> str:
    return f"{base} · {step_label(step)}"


def published_table() -> pd.DataFrame:
    """The paper's Table 1 (rows as ``ROWS``; columns 'MODEL · STEP', prefixed 'paper: ')."""
    cols = ["paper: " + (b if b == "ChatGPT" else column_label(b, s)) for b, s in _PUB_COLS]
    return pd.DataFrame([[_nan(v) for v in _PUB_VALUES[r]] for r in ROWS], index=ROWS, columns=cols)


def published_long() -> pd.DataFrame:
    """The published numbers in the same long form as ``entries_long`` (no CIs: not reported)."""
    recs = []
    for j, (base, step) in enumerate(_PUB_COLS):
        for shots in (0, 1):
            for m in metrics.table1_metrics():
                v = _PUB_VALUES.get(metrics.table1_row(m, shots), [None] * len(_PUB_COLS))[j]
                if v is not None:
                    recs.append({"base": f"paper: {base}", "step": step, "shots": shots, "metric": m.key, "mean": v,
                                 "ci_low": None, "ci_high": None, "n": None,
                                 "train_hours": _PUB_VALUES[HOURS_ROW][j], "source": "paper",
                                 "series": f"paper: {base}"})
    return pd.DataFrame(recs)


def _nan(v):
    return math.nan if v is None else float(v)


# -- your own results -------------------------------------------------------------------

@dataclass
class Entry:
    """One evaluated checkpoint: which base model, which step, and its summary.json."""
    base: str
    step: int | None
    summary: EvalSummary      # a summary.json dict is parsed on the way in
    train_hours: float | None = None
    label: str = ""
    data: str = ""            # the question file it was scored on

    @property
    def question_set(self) -> tuple[str, int]:
        """(question file, questions answered): columns may be ranked together only when equal."""
        return self.data, max((s.n for s in self.summary.by_shots.values()), default=0)

    def __post_init__(self):
        if not isinstance(self.summary, EvalSummary):
            self.summary = EvalSummary.from_dict(self.summary)

    run: str = ""             # a trained adapter's run name: what the user named it, not its base
    imported: bool = False    # published predictions (pipelines/evaluation/imported.py): no model, no step
    out_dir: str = ""         # the evaluation folder it was read from

    @property
    def series(self) -> str:
        """What a chart line and a table column are named by: the run, or the base model."""
        return self.run or self.base

    @property
    def column(self) -> str:
        return self.series if self.imported else column_label(self.series, self.step)


def entries_from_registry(evaluations: list[dict], models: list[dict], *, data: str | None = None,
                          template: str | None = None) -> list[Entry]:
    """Finished evaluations (``Workspace.evaluations()``) placed by base model and step.

    A checkpoint registered as an adapter (``run@1000``) sits under its base model at its
    step; a base model is step 0; an unregistered reference is its own base at step 0.
    When one column is evaluated several times, the latest evaluation wins.
    """
    by_name = {m["name"]: m for m in models}
    chosen: dict[str, Entry] = {}
    for ev in sorted(evaluations, key=lambda e: e.get("updated_at") or 0):
        summary = ev.get("summary")
        if ev.get("status") != "finished" or not summary:
            continue
        if data is not None and ev.get("data") != data:
            continue
        if template is not None and (ev.get("config") or {}).get("template") != template:
            continue
        if (ev.get("config") or {}).get("imported"):
            e = Entry(base=ev["model"], step=None, summary=summary, label=ev["model"], imported=True)
        else:
            e = entry_for(ev["model"], ev.get("adapter"), summary, by_name)
        e.data, e.out_dir = ev.get("data") or "", ev.get("out_dir") or ""
        chosen[e.column] = e
    # imported predictions last: reference columns beside the checkpoints, not among them
    return sorted(chosen.values(), key=lambda e: (e.imported, e.base, e.step if e.step is not None else -1))


def entry_for(model: str, adapter: str | None, summary: dict, by_name: dict[str, dict]) -> Entry:
    reg = by_name.get(model)
    if reg and reg.get("kind") == "adapter":
        return Entry(base=reg.get("base_model") or model, step=reg.get("step"), summary=summary,
                     train_hours=reg.get("train_hours"), label=model, run=model.rsplit("@", 1)[0])
    if adapter:
        return Entry(base=model, step=None, summary=summary, label=f"{model}+{Path(adapter).name}")
    step = (reg or {}).get("step") or 0
    return Entry(base=model, step=step, summary=summary, train_hours=(reg or {}).get("train_hours"), label=model)


def entries_long(entries: list[Entry]) -> pd.DataFrame:
    """One row per entry × shots × mean metric with its 95% CI: what the charts plot."""
    recs = []
    for e in entries:
        for shots, s in e.summary.by_shots.items():
            for m in metrics.mean_metrics():
                v = s.means.get(m.key)
                if v is not None:
                    recs.append({"base": e.base, "step": e.step, "shots": shots, "metric": m.key,
                                 "mean": v.mean, "ci_low": v.ci_low, "ci_high": v.ci_high,
                                 "n": s.n, "train_hours": e.train_hours,
                                 "source": "imported" if e.imported else "yours",
                                 "label": e.label, "series": e.series, "column": e.column})
    cols = ["base", "step", "shots", "metric", "mean", "ci_low", "ci_high", "n", "train_hours", "source", "label",
            "series", "column"]
    return pd.DataFrame(recs, columns=cols)


def build_table1(entries: list[Entry], *, reference: bool = False) -> pd.DataFrame:
    """Rows ``rows()``, one column per entry (+ the published columns when ``reference``)."""
    cells = {metrics.table1_row(m, s): (m.key, s) for s in (0, 1) for m in metrics.table1_metrics()}
    index = rows()
    data = {}
    for e in entries:
        col = []
        for r in index:
            if r == HOURS_ROW:
                col.append(_nan(e.train_hours) if e.step else math.nan)
                continue
            v = e.summary.value(*cells[r])
            col.append(_nan(v.mean) if v else math.nan)
        data[e.column] = col
    table = pd.DataFrame(data, index=index)
    if reference:
        table = pd.concat([table, published_table()], axis=1)
    return table


def cell_details(entries: list[Entry]) -> dict[tuple[str, str], tuple[int, float, float]]:
    """(row, column) -> (n, 95% CI low, high) of every metric cell of your columns."""
    cells = {metrics.table1_row(m, s): (m.key, s) for s in (0, 1) for m in metrics.table1_metrics()}
    out = {}
    for e in entries:
        for row, (key, shots) in cells.items():
            v = e.summary.value(key, shots)
            s = e.summary.by_shots.get(shots)
            if v is not None and s is not None:
                out[(row, e.column)] = (s.n, v.ci_low, v.ci_high)
    return out


def top_two(table: pd.DataFrame, columns: list[str] | None = None) -> dict[str, list[str]]:
    """Per metric row, the columns holding the best and second-best value (as the paper marks),
    best first.

    Ties share a rank; training hours are not ranked (lower is not "better" in the table);
    a metric the registry marks lower-is-better ranks its lowest values first.
    """
    cols = columns if columns is not None else list(table.columns)
    lower_better = {metrics.table1_row(m, s) for s in (0, 1) for m in metrics.table1_metrics()
                    if not m.higher_is_better}
    marks: dict[str, list[str]] = {}
    for row in table.index:
        if row == HOURS_ROW:
            continue
        vals = table.loc[row, cols].dropna() if cols else pd.Series(dtype=float)
        distinct = sorted(set(vals.round(6)), reverse=row not in lower_better)[:2]
        marked = [c for c in cols if c in vals.index and round(vals[c], 6) in distinct]
        marks[row] = sorted(marked, key=lambda c: distinct.index(round(vals[c], 6)))  # best first
    return marks


@dataclass
class TableConfig:
    data: str | None = None             # only evaluations of this question file
    reference: bool = False             # add the paper's published columns
    csv: str | None = field(default=None, metadata=cli.metavar("FILE"))  # also write the table as CSV here
    workspace: str | None = None


@cli_guard
def main(argv: list[str] | None = None) -> None:
    from pipelines.core.workspace import Workspace

    parser = cli.config_parser("table", TableConfig, __doc__)
    cli.add_common(parser, "json")
    ns = parser.parse_args(argv)
    args = cli.config_from_args(TableConfig, ns)
    ws = Workspace.resolve(args.workspace)
    table = build_table1(entries_from_registry(ws.evaluations(), ws.models(), data=args.data),
                         reference=args.reference)
    if args.csv:
        table.to_csv(args.csv)
    if ns.json:
        print(table.to_json(orient="index", force_ascii=False, indent=2))
    else:
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
