"""Accuracy against compute: each checkpoint's score against its training hours and tokens.

Table 1 of the JMedLoRA paper reports training hours beside the scores (4.6 h for OpenCALM-7B's
1k steps, 42.4 h for Llama2-70B's 3k …): the question a researcher asks of it is how much
accuracy an hour of training bought. Here every evaluated checkpoint is a point at

* hours: its registered ``train_hours`` (the run's wall time up to that checkpoint, saved with
  it; a base model is 0: no training of ours);
* tokens: the training tokens up to its step, from its run's ``metrics.jsonl`` (the last record
  at or before the checkpoint's step; a base model is 0);

and the paper's published columns sit at the hours their paper gives (they report no tokens,
so they are absent from the tokens chart; their step-0 columns are at 0 h). Evaluations with
no training record (an API model, imported predictions, an unregistered folder) have no
compute to place: they are counted in ``unplaced`` so a chart can say so rather than drop them
silently.

    jmedlora compute [--data FILE] [--metric accuracy] [--no-reference] [--json]
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.core import cli
from pipelines.core.errors import UserError, cli_guard
from pipelines.evaluation import metrics, paper_table

COLUMNS = ["series", "base", "label", "step", "shots", "metric", "mean", "ci_low", "ci_high", "n", "hours", "tokens",
           "source"]


def tokens_at(run_dir: str | Path, step: int) -> int | None:
    """Training tokens of a run up to ``step``: ``tokens_total`` of its last metrics record at or before it."""
    path = Path(run_dir) / "metrics.jsonl"
    best: tuple[int, int] | None = None
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:          # a line cut by a kill: the others still count
                    continue
                s, t = rec.get("step"), rec.get("tokens_total")
                if isinstance(s, int) and isinstance(t, (int, float)) and s <= step and (best is None or s >= best[0]):
                    best = (s, int(t))
    except OSError:
        return None
    return best[1] if best else None


def _compute_of(entry: paper_table.Entry, by_name: dict[str, dict]) -> tuple[float | None, int | None]:
    """(hours, tokens) of an evaluated column, or Nones where nothing records them."""
    reg = by_name.get(entry.label) or by_name.get(entry.base)
    if reg is None or reg.get("kind") == "endpoint":
        return None, None
    if reg.get("kind") == "base" and not reg.get("run_id"):     # a base model: no training of ours
        return 0.0, 0
    try:
        meta = json.loads(reg.get("meta") or "{}")
    except ValueError:
        meta = {}
    step = reg.get("step")
    tokens = tokens_at(meta["run_dir"], step) if meta.get("run_dir") and isinstance(step, int) else None
    return reg.get("train_hours"), tokens


def compute_points(entries: list[paper_table.Entry], models: list[dict], metric: str = "accuracy", *,
                   shots: tuple[int, ...] = (0, 1), reference: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """(points, unplaced): one row per column × shots with its metric, 95% CI, hours and tokens
    (your checkpoints, then the paper's when ``reference``); ``unplaced``: your columns with no
    compute record."""
    by_name = {m["name"]: m for m in models}
    recs, unplaced = [], []
    for e in entries:
        hours, tokens = _compute_of(e, by_name)
        if hours is None and tokens is None:
            unplaced.append(e.column)
            continue
        for s in shots:
            v = e.summary.value(metric, s)
            stats = e.summary.by_shots.get(s)
            if v is None or stats is None:
                continue
            recs.append({"series": e.series, "base": e.base, "label": e.column, "step": e.step, "shots": s, "metric": metric,
                         "mean": v.mean, "ci_low": v.ci_low, "ci_high": v.ci_high, "n": stats.n,
                         "hours": hours, "tokens": tokens, "source": "yours"})
    if reference:
        pub = paper_table.published_long()
        pub = pub[(pub["metric"] == metric) & pub["shots"].isin(shots)]
        for r in pub.itertuples():
            hours = 0.0 if r.step == 0 else r.train_hours
            if hours is None or pd.isna(hours):
                continue
            recs.append({"series": r.series, "base": r.series, "label": paper_table.column_label(r.series, r.step), "step": r.step,
                         "shots": r.shots, "metric": metric, "mean": r.mean, "ci_low": None, "ci_high": None,
                         "n": None, "hours": hours, "tokens": None, "source": "paper"})
    return pd.DataFrame(recs, columns=COLUMNS), unplaced


def accuracy_per_hour(points: pd.DataFrame) -> pd.DataFrame:
    """Each trained point's gain over its base model's step-0 point (same shots), divided by the
    hours it took: what an hour of training bought. Points whose base was not evaluated are left out."""
    base_mean = {(r.series, r.shots): r.mean for r in points[points["step"] == 0].itertuples()}
    out = []
    for r in points[(points["step"] != 0) & (points["hours"] > 0)].itertuples():
        b = base_mean.get((r.base, r.shots))
        if b is not None:
            out.append({"series": r.series, "shots": r.shots, "step": r.step, "hours": r.hours,
                        "gain": r.mean - b, "gain_per_hour": (r.mean - b) / r.hours})
    return pd.DataFrame(out, columns=["series", "shots", "step", "hours", "gain", "gain_per_hour"])


@dataclass
class ComputeConfig:
    data: str | None = None             # only evaluations of this question file
    metric: str = "accuracy"            # a metric key (jmedlora evaluate's summary names them)
    reference: bool = True              # place the paper's published columns at their hours
    workspace: str | None = None


@cli_guard
def main(argv: list[str] | None = None) -> None:
    from pipelines.core.workspace import Workspace

    parser = cli.config_parser("compute", ComputeConfig, __doc__)
    cli.add_common(parser, "json")
    ns = parser.parse_args(argv)
    args = cli.config_from_args(ComputeConfig, ns)
    if args.metric not in metrics.keys():
        raise UserError(f"Unknown metric {args.metric!r}.", f"Use one of {', '.join(metrics.keys())}.",
                        code="compute.metric", params={"value": args.metric, "known": ", ".join(metrics.keys())})
    ws = Workspace.resolve(args.workspace)
    models = ws.models()
    entries = paper_table.entries_from_registry(ws.evaluations(), models, data=args.data)
    points, unplaced = compute_points(entries, models, args.metric, reference=args.reference)
    if ns.json:
        print(json.dumps({"points": json.loads(points.to_json(orient="records", force_ascii=False)),
                          "gain_per_hour": json.loads(accuracy_per_hour(points).to_json(orient="records")),
                          "unplaced": unplaced}, ensure_ascii=False, indent=2))
        return
    print(points.drop(columns=["metric"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if unplaced:
        print(f"no training record (not placed): {', '.join(unplaced)}")


if __name__ == "__main__":
    main()
