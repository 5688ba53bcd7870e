"""Question files with IgakuQA metadata (specialty, the examinees' accuracy and choices) and
evaluations of them recorded in a workspace, for the insights views' handler and browser tests.

``small_exam``: four questions and three checkpoints with every number computed by hand (the
same table as tests/pipelines/test_insights.py):

    question  answer  category  examinees  breakdown (a b c d e, %)   A      B      C
    Q1        a       呼吸器     90.0       90  6  2  1  1             a ✓    a ✓    b ✗
    Q2        c       循環器     50.0       5  35 50  5  5             b ✗    c ✓    c ✓
    Q3        a,e     呼吸器     80         85 10 30  5 70  (2つ選べ)   a,c ✗  b,e ✗  a,e ✓
    Q4        b       小児科     30.5       40 30 10 10 10             c ✗    a ✗    – ✗

A is 'base' (unregistered: Table 1 column 'base · 0'), also answered 1-shot, all right; B is the
adapter 'run@100' (column 'run · 100'); C is imported predictions labelled 'published-C'.

``clinic_exam``: twelve questions in four specialties for the browser, with two checkpoints and
the examinees' majority answer imported beside them.
"""
from __future__ import annotations

import json
from pathlib import Path

from pipelines.evaluation import results
from pipelines.evaluation.summary import EvalSummary

CHOICES = ["一", "二", "三", "四", "五"]
SMALL = [("Q1", ["a"], "呼吸器", "90.0", ["90", "6", "2", "1", "1"]),
         ("Q2", ["c"], "循環器", "50.0", ["5", "35", "50", "5", "5"]),
         ("Q3", ["a", "e"], "呼吸器", "80", ["85", "10", "30", "5", "70"]),
         ("Q4", ["b"], "小児科", "30.5", ["40", "30", "10", "10", "10"])]
SMALL_ANSWERS = {"A": [["a"], ["b"], ["a", "c"], ["c"]], "B": [["a"], ["c"], ["b", "e"], ["a"]],
                 "C": [["b"], ["c"], ["a", "e"], []]}


def write_jsonl(path: Path, objs) -> str:
    path.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs), encoding="utf-8")
    return str(path)


def write_exam(folder: Path, name: str, questions, texts: dict[str, str] | None = None,
               choices: dict[str, list[str]] | None = None) -> str:
    """NAME.jsonl and NAME_metadata.jsonl as IgakuQA publishes them (percent strings)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = write_jsonl(folder / f"{name}.jsonl", [
        {"problem_id": pid, "problem_text": (texts or {}).get(pid, f"{pid} の問題文。") + ("2つ選べ。" if len(ans) > 1 else ""),
         "choices": (choices or {}).get(pid, CHOICES), "answer": ans, "text_only": True, "points": "1"}
        for pid, ans, *_ in questions])
    write_jsonl(folder / f"{name}_metadata.jsonl", [
        {"problem_id": pid, "category": cat, "kinki": [], "reason": "", "human_accuracy": acc, "breakdown": bd}
        for pid, _, cat, acc, bd in questions])
    return data


def answer_row(pid: str, answer: list[str], shots: int, predicted: list[str], **extra) -> dict:
    right = float(sorted(predicted) == sorted(answer))
    return {"problem_id": pid, "shots": shots, "predicted": predicted, "answer": answer, "accepted": [sorted(answer)],
            "accuracy": right, "exact_match": 0.0, "gestalt": right, "points": 1, "points_earned": right,
            "kinki_picked": 0, "kinki": [], "response": (",".join(predicted) or "わかりません") + " です",
            "similarities": {}, **extra}


def record(ws, out_dir: Path, model: str, rows: list[dict], data: str, *, imported: bool = False) -> str:
    """A finished evaluation in the registry (and config.json as an evaluation run writes one)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "results.jsonl", rows)
    config = {"model": model, "adapter": None, "data": data, "template": "ja", "task": "exam"}
    if imported:
        config = {**config, "label": model, "imported": {"source": "predictions.jsonl"}}
        del config["template"]
    (out_dir / "config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    summary = EvalSummary(by_shots=results.summarize(rows)).to_dict()
    ws.record_evaluation(str(out_dir), model=model, adapter=None, data=data, config=config, status="finished",
                         summary=summary)
    return str(out_dir)


def small_exam(ws, folder: Path) -> dict[str, str]:
    """The hand-computed fixture: {'A': out_dir, 'B': …, 'C': …, 'data': question file}."""
    data = write_exam(folder, "exam", SMALL)
    ws.register_model("run@100", "adapter", "/adapters/run-100", base_model="base", step=100)
    out = {"data": data}
    for key, model in (("A", "base"), ("B", "run@100"), ("C", "published-C")):
        rows = [answer_row(pid, ans, 0, pred) for (pid, ans, *_), pred in zip(SMALL, SMALL_ANSWERS[key])]
        if key == "A":
            rows += [answer_row(pid, ans, 1, ans) for pid, ans, *_ in SMALL]
        out[key] = record(ws, folder / key, model, rows, data, imported=key == "C")
    return out


# -- the browser's exam: twelve questions a clinician would recognise ---------------------------------

CLINIC = [   # id (as IgakuQA numbers them), answer, category, examinees %, breakdown %, question, choices
    ("116A1", ["c"], "循環器", "92.4", ["2", "3", "92", "2", "1"], "心房細動で脳梗塞の予防に用いるのはどれか。",
     ["アスピリン単独", "ジギタリス", "抗凝固薬", "β遮断薬", "利尿薬"]),
    ("116A2", ["a"], "循環器", "61.0", ["61", "30", "4", "3", "2"], "急性心筋梗塞で最初に上昇する心筋マーカーはどれか。",
     ["ミオグロビン", "CK-MB", "LDH", "AST", "ALP"]),
    ("116A3", ["d"], "循環器", "38.5", ["10", "45", "5", "38", "2"], "大動脈弁狭窄症の身体所見として正しいのはどれか。",
     ["拡張期雑音", "脈圧の増大", "速脈", "遅脈", "奇脈"]),
    ("116A4", ["b"], "呼吸器", "88.0", ["5", "88", "4", "2", "1"], "COPD の診断に必須の検査はどれか。",
     ["胸部CT", "スパイロメトリー", "喀痰培養", "血液ガス分析", "気管支鏡"]),
    ("116A5", ["e"], "呼吸器", "71.2", ["8", "10", "6", "5", "71"], "緊張性気胸でまず行う処置はどれか。",
     ["胸部CT", "気管挿管", "酸素投与のみ", "経過観察", "胸腔穿刺"]),
    ("116A6", ["a"], "呼吸器", "44.0", ["44", "40", "8", "5", "3"], "サルコイドーシスで上昇するのはどれか。",
     ["ACE", "CEA", "KL-6 の低下", "IgE", "好中球"]),
    ("116A7", ["c"], "消化器", "95.1", ["1", "2", "95", "1", "1"], "急性虫垂炎の圧痛点はどれか。",
     ["Murphy 徴候", "Courvoisier 徴候", "McBurney 点", "Cullen 徴候", "Grey-Turner 徴候"]),
    ("116A8", ["b"], "消化器", "66.3", ["20", "66", "7", "4", "3"], "潰瘍性大腸炎で正しいのはどれか。",
     ["全層性炎症", "直腸から連続する病変", "敷石像", "縦走潰瘍", "非乾酪性肉芽腫"]),
    ("116A9", ["d"], "消化器", "35.0", ["30", "20", "10", "35", "5"], "肝性脳症の治療に用いるのはどれか。",
     ["高蛋白食", "利尿薬", "鎮静薬", "ラクツロース", "輸血"]),
    ("116A10", ["a"], "小児科", "83.7", ["84", "8", "4", "2", "2"], "川崎病の急性期に用いる治療はどれか。",
     ["免疫グロブリン大量療法", "ステロイド単独", "抗菌薬", "抗ウイルス薬", "経過観察"]),
    ("116A11", ["c"], "小児科", "55.0", ["25", "10", "55", "5", "5"], "生後6か月の乳児で正常なのはどれか。",
     ["独歩", "二語文", "寝返り", "階段昇降", "片足立ち"]),
    ("116A12", ["e"], "小児科", "28.9", ["40", "15", "10", "6", "29"], "先天性肥厚性幽門狭窄症の所見はどれか。",
     ["胆汁性嘔吐", "代謝性アシドーシス", "高カリウム血症", "女児に多い", "低クロール性アルカローシス"]),
]
# predicted letters per question, in CLINIC's order
CLINIC_ANSWERS = {
    "medcalm": {0: ["c", "b", "b", "b", "a", "b", "a", "a", "a", "a", "a", "a"],
                1: ["c", "a", "b", "b", "e", "b", "c", "a", "a", "a", "c", "a"]},
    "medcalm-run@200": {0: ["c", "a", "d", "b", "e", "a", "c", "b", "a", "b", "c", "e"],
                        1: ["c", "a", "d", "b", "e", "a", "c", "b", "d", "a", "c", "e"]},
}


def clinic_exam(ws, folder: Path) -> dict[str, str]:
    """Two checkpoints (0/1-shot) and the examinees' majority (imported, 0-shot) on CLINIC."""
    questions = [(pid, ans, cat, acc, bd) for pid, ans, cat, acc, bd, *_ in CLINIC]
    data = write_exam(folder, "insights_exam", questions, texts={c[0]: c[5] for c in CLINIC},
                      choices={c[0]: c[6] for c in CLINIC})
    ws.register_model("medcalm", "base", "/models/medcalm", step=0)
    ws.register_model("medcalm-run@200", "adapter", "/adapters/medcalm-run-200", base_model="medcalm", step=200,
                      run_id="medcalm-run")
    out = {"data": data}
    for model, by_shots in CLINIC_ANSWERS.items():
        rows = [answer_row(c[0], c[1], s, [p]) for s, preds in by_shots.items() for c, p in zip(CLINIC, preds)]
        out[model] = record(ws, folder / model.replace("@", "-"), model, rows, data)
    majority = [answer_row(c[0], c[1], 0, ["abcde"[max(range(5), key=lambda i: float(c[4][i]))]], imported=True)
                for c in CLINIC]
    out["majority"] = record(ws, folder / "majority", "受験者の多数派", majority, data, imported=True)
    return out
