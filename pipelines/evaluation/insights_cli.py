"""Where models are right and wrong: per specialty, against the examinees, question by question.

    jmedlora insights EVAL_DIR... [--by category|difficulty|examinees|flips] [--shots 0] [--json]

``--by category``: accuracy (95% interval, n) per specialty for each evaluation; ``difficulty``:
per band of the examinees' accuracy (--bands); ``examinees``: those bands, how often a wrong
answer is the examinees' most popular wrong answer, and the questions most examinees got right
that a model missed (--threshold); ``flips``: the questions that change between the evaluations
(given in checkpoint order) and McNemar's test with the paired bootstrap for each consecutive
pair. Categories and the examinees' figures come from the question file's IgakuQA metadata
(``NAME_metadata.jsonl``); the views themselves are ``pipelines/evaluation/insights.py`` and
``flips.py``. An evaluation of imported predictions (GPT-4, the examinees' majority) is one
like any other.
"""
from __future__ import annotations

import json
import sys
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from pipelines.core import cli
from pipelines.core.errors import cli_guard
from pipelines.evaluation import flips as flip_views
from pipelines.evaluation import insights
from pipelines.evaluation.significance import describe_mcnemar

CHECK = {1: "✓", 0: "✗"}


@dataclass
class InsightsConfig:
    evals: list[str] = field(default_factory=list, metadata=cli.meta(
        cli.required(), cli.positional(), cli.metavar("EVAL_DIR")))  # evaluation folders (--out), in checkpoint order
    by: Literal["category", "difficulty", "examinees", "flips"] = "category"  # which view
    shots: int = field(default=0, metadata=cli.choices(0, 1))  # the shot setting looked at
    data: str | None = field(default=None, metadata=cli.metavar("FILE"))  # question file with IgakuQA metadata (default: each run's own)
    bands: tuple[float, ...] = (0.5, 0.8)  # difficulty band edges, as shares of examinees right
    threshold: float = 0.8              # embarrassing: at least this share of examinees right, the model wrong
    top: int = 20                       # embarrassing questions printed (--json lists all)
    seed: int = 0                       # bootstrap resampling seed
    json: bool = False


# -- text tables (Japanese categories are two columns wide in a terminal) -------------------

def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def format_grid(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(_pad(c, w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows])


def _cell(r: dict, n: int | None = None) -> str:
    if r["accuracy"] is None:
        return "–"
    shown = f"{r['accuracy']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"
    return shown if n is None or r["n"] == n else f"{shown} n={r['n']}"


def format_accuracy_table(rows: list[dict], key: str, heading: str) -> str:
    """Rows of ``by_category``/``by_difficulty`` as one line per ``key`` value, a column per model."""
    columns = list(dict.fromkeys(insights.column_name(r["model"], r["shots"]) for r in rows))
    keys = list(dict.fromkeys(r[key] for r in rows))
    cells = {(insights.column_name(r["model"], r["shots"]), r[key]): r for r in rows}
    body = []
    for k in keys:
        mine = [cells.get((c, k)) for c in columns]
        n = max((r["n"] for r in mine if r), default=0)
        extra = []
        if key == "band":
            shown = [r["examinees"] for r in mine if r and r["examinees"] is not None]
            extra = [f"{shown[0]:.3f}" if shown else "–"]
        body.append([k, str(n), *extra, *[_cell(r, n) if r else "–" for r in mine]])
    header = [heading, "n", *(["examinees"] if key == "band" else []), *columns]
    return format_grid(header, body)


def format_categories(rows: list[dict]) -> str:
    return "Accuracy by category (95% bootstrap interval; n questions)\n" + \
        format_accuracy_table(rows, "category", "category")


def _examinees(evals, cfg: InsightsConfig) -> dict:
    return {"bands": insights.by_difficulty(evals, cfg.bands, cfg.shots, seed=cfg.seed),
            "popular_wrong": [insights.popular_wrong_share(ev, cfg.shots, seed=cfg.seed) for ev in evals],
            "embarrassing": insights.embarrassing(evals, cfg.threshold, cfg.shots)}


def _print_examinees(evals, data: dict, cfg: InsightsConfig) -> None:
    print(f"Accuracy by the examinees' accuracy ({cfg.shots}-shot; 95% bootstrap interval)")
    print(format_accuracy_table(data["bands"], "band", "examinees right"))
    for ev in evals:
        if missing := insights.without_examinee_data(ev, cfg.shots):
            print(f"  {ev.label}: {missing} question(s) without the examinees' accuracy left out")
    print("\nWrong answers that are the examinees' most popular wrong answer")
    for p in data["popular_wrong"]:
        share = "–" if p["share"] is None else f"{p['share']:.3f} [{p['low']:.3f}, {p['high']:.3f}]"
        print(f"  {p['model']}: {p['same']} of {p['comparable']} wrong answers = {share}"
              + (f"  ({p['no_breakdown']} without the examinees' choices)" if p["no_breakdown"] else ""))
    shown = data["embarrassing"][: cfg.top]
    print(f"\nMissed although ≥ {cfg.threshold:.0%} of examinees got them right: {len(data['embarrassing'])}"
          + (f" (first {len(shown)})" if len(shown) < len(data["embarrassing"]) else ""))
    if shown:
        print(format_grid(["question", "examinees", "model", "answer", "model's", "category", "text"], [
            [r["problem_id"], f"{r['examinees']:.1%}", r["model"], ",".join(r["answer"]), ",".join(r["predicted"]) or "–",
             r["category"] or "", r["problem_text"][:30]] for r in shown]))


def _flips(evals, cfg: InsightsConfig) -> dict:
    matrix = flip_views.flip_matrix(evals, cfg.shots)
    pairs = [flip_views.flips(a, b, cfg.shots, seed=cfg.seed) for a, b in zip(evals, evals[1:])]
    return {"matrix": matrix, "flipping": flip_views.flipping(matrix), "pairs": pairs}


def _print_flips(data: dict) -> None:
    matrix, changed = data["matrix"], data["flipping"]
    print(f"{len(changed)} of {len(matrix)} questions flip between the evaluations (✓ right, ✗ wrong)")
    shown = matrix[matrix["problem_id"].isin(changed)]
    if len(shown):
        cells = [[r[0], *("·" if pd.isna(v) else CHECK[int(v)] for v in r[1:])] for r in shown.itertuples(index=False)]
        print(format_grid(list(matrix.columns), cells))
    for p in data["pairs"]:
        b = p["bootstrap"]
        print(f"\n{p['a']} → {p['b']} ({p['shots']}-shot, {p['n']} questions): accuracy {p['accuracy_a']:.3f} → "
              f"{p['accuracy_b']:.3f}, B − A = {b['diff']:+.3f} [95% CI {b['ci_low']:+.3f}, {b['ci_high']:+.3f}]")
        print(f"  right only in {p['a']}: {len(p['right_in_a_only'])} {' '.join(p['right_in_a_only'][:20])}".rstrip())
        print(f"  right only in {p['b']}: {len(p['right_in_b_only'])} {' '.join(p['right_in_b_only'][:20])}".rstrip())
        print(f"  paired bootstrap p = {b['p']:.3g}; {describe_mcnemar(p['mcnemar'])}")


@cli_guard
def main(argv: list[str] | None = None) -> None:
    cfg = cli.config_from_args(InsightsConfig, cli.config_parser("insights", InsightsConfig, __doc__).parse_args(argv))
    evals = insights.load_evaluations(cfg.evals, data=cfg.data)
    for problem in {str(p): p for ev in evals for p in ev.data_problems}.values():
        print(f"warning: ignored {problem}", file=sys.stderr)      # e.g. a breakdown share of 500.3 %
    if cfg.by == "category":
        data = {"rows": insights.by_category(evals, cfg.shots, seed=cfg.seed)}
    elif cfg.by == "difficulty":
        data = {"rows": insights.by_difficulty(evals, cfg.bands, cfg.shots, seed=cfg.seed)}
    elif cfg.by == "examinees":
        data = _examinees(evals, cfg)
    else:
        data = _flips(evals, cfg)
    if cfg.json:
        if "matrix" in data:
            data["matrix"] = json.loads(data["matrix"].to_json(orient="records"))
        print(json.dumps({"by": cfg.by, "shots": cfg.shots, "evaluations": [
            {"label": ev.label, "path": ev.path, "data": ev.data, "imported": ev.imported} for ev in evals], **data},
            ensure_ascii=False, indent=2))
    elif cfg.by == "category":
        print(format_categories(data["rows"]))
    elif cfg.by == "difficulty":
        print(f"Accuracy by the examinees' accuracy ({cfg.shots}-shot; 95% bootstrap interval)")
        print(format_accuracy_table(data["rows"], "band", "examinees right"))
    elif cfg.by == "examinees":
        _print_examinees(evals, data, cfg)
    else:
        _print_flips(data)


if __name__ == "__main__":
    main()
