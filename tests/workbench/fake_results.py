"""Fake evaluation results for handler tests: a results.jsonl and a summary computed by
``results.summarize``, recorded in a workspace as a finished evaluation."""
import json
from pathlib import Path

from pipelines.evaluation import results
from pipelines.evaluation.summary import EvalSummary


def result_row(pid: str, shots: int, predicted: list[str], *, correct: str = "a", response: str = "",
               sims: dict | None = None, **extra) -> dict:
    acc = float(predicted == [correct])
    return {"problem_id": pid, "shots": shots, "predicted": predicted, "accuracy": acc, "exact_match": 0.0,
            "gestalt": 0.5 * acc, "points": 1, "points_earned": acc, "kinki_picked": 0, "kinki": [],
            "answer": [correct], "response": response or f"{predicted[0]}です", "similarities": sims or {},
            **extra}


def record(ws, out_dir: Path, model: str, rows: list[dict], data: str = "q.jsonl", adapter=None) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "results.jsonl", "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    summary = EvalSummary(by_shots=results.summarize(rows)).to_dict()
    ws.record_evaluation(str(out_dir), model=model, adapter=adapter, data=data, config={"template": "ja"},
                         status="finished", summary=summary)
    return str(out_dir)
