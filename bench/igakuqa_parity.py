"""Imported predictions scored by us vs. by IgakuQA's own ``scripts/evaluate_main.py``, per exam file.

    python bench/igakuqa_parity.py IGAKUQA_CHECKOUT [--systems gpt4 chatgpt student-majority gpt3]

For every exam file ``data/YEAR/EXAM.jsonl`` of 2018–2022 and every system whose
``baseline_results/YEAR/EXAM_SYSTEM.jsonl`` exists, runs evaluate_main.py on the pair (a real
subprocess, from the checkout's ``scripts/`` folder, its printed dict read back) and
``jmedlora evaluate --predictions`` (``pipelines.evaluation.evaluator.run`` into a scratch
workspace, so the figures are those Table 1 and the Compare tab read), then prints one line per
pair: exam, system, n, theirs (accuracy, score/total), ours, and whether they are equal, both the
--json figures and the summary's (accuracy mean, points earned). Exit status 1 if any differs.

evaluate_main.py's ``utils/tools.py`` imports ``jsonlines`` (used only to write predictions, never
by evaluate_main.py); where the interpreter lacks it, an empty stand-in module is put on its path
and the output says so. Nothing of IgakuQA is copied into this repository.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.core.workspace import Workspace  # noqa: E402
from pipelines.evaluation.evaluator import EvalConfig, run  # noqa: E402

SYSTEMS = ("gpt4", "chatgpt", "student-majority", "gpt3")
YEARS = range(2018, 2023)


def theirs(checkout: Path, gold: Path, pred: Path, env: dict) -> dict:
    """What evaluate_main.py prints for the pair: {'accuracy': .., 'score': .., 'total': ..}."""
    done = subprocess.run([sys.executable, "evaluate_main.py", "--gold-file", str(gold), "--pred-file", str(pred)],
                          cwd=checkout / "scripts", env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


def ours(gold: Path, pred: Path, scratch: Path, ws: Workspace) -> dict:
    out = scratch / f"{gold.stem}_{pred.stem}"
    summary = run(EvalConfig(predictions=str(pred), data=str(gold), out=str(out)), workspace=ws)
    zero = summary["by_shots"]["0"]
    return {**{k: summary[k] for k in ("n", "accuracy", "score", "total")},
            "table_accuracy": zero["accuracy"]["mean"], "table_points": zero["exam"]["points_earned"],
            "kinki": zero["exam"]["kinki_picked"], "unreadable": summary["imported"]["unreadable_predictions"]["n"]}


def equal(t: dict, o: dict) -> bool:
    return ("error" not in t and t["accuracy"] == o["accuracy"] == o["table_accuracy"]
            and t["score"] == o["score"] == o["table_points"] and t["total"] == o["total"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkout", type=Path, help="an IgakuQA checkout (work tree with data/, baseline_results/, scripts/)")
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), help=f"default: {' '.join(SYSTEMS)}")
    args = ap.parse_args()
    checkout = args.checkout.resolve()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        if importlib.util.find_spec("jsonlines") is None:
            (scratch / "stub").mkdir()
            (scratch / "stub" / "jsonlines.py").write_text("")
            env["PYTHONPATH"] = os.pathsep.join([str(scratch / "stub"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
            print("note: jsonlines is not installed; an empty stand-in satisfies utils/tools.py's import")
        ws = Workspace.resolve(scratch / "ws")
        head = f"{'exam':6s} {'system':17s} {'n':>3s}  {'theirs acc':>18s} {'score':>9s}  " \
               f"{'ours acc':>18s} {'score':>9s} {'禁忌':>4s} {'unread':>6s}  equal"
        print(head)
        print("-" * len(head))
        pairs = differ = 0
        for year in YEARS:
            for gold in sorted((checkout / "data" / str(year)).glob("*.jsonl")):
                if "_" in gold.stem:          # _metadata, _translate sidecars
                    continue
                for system in args.systems:
                    pred = checkout / "baseline_results" / str(year) / f"{gold.stem}_{system}.jsonl"
                    if not pred.exists():
                        continue
                    t, o = theirs(checkout, gold, pred, env), ours(gold, pred, scratch, ws)
                    same = equal(t, o)
                    pairs, differ = pairs + 1, differ + (not same)
                    their = (f"{t['accuracy']:18.16f} {t['score']:>4}/{t['total']:<4}" if "error" not in t
                             else f"{'error: ' + t['error'][:24]:>28s}")
                    print(f"{gold.stem:6s} {system:17s} {o['n']:3d}  {their}  {o['accuracy']:18.16f} "
                          f"{o['score']:>4g}/{o['total']:<4g} {o['kinki']:4g} {o['unreadable']:6d}  "
                          f"{'yes' if same else 'NO'}")
        print(f"\n{pairs - differ} of {pairs} exam × system pairs equal (accuracy, score and total; "
              f"ours both as --json and in the summary Table 1 reads)")
    raise SystemExit(1 if differ or not pairs else 0)


if __name__ == "__main__":
    main()
