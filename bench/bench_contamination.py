"""Benchmark of the contamination check and of nearest training records (issue 22, items 5 and 6).

    python bench/bench_contamination.py [--records 100000] [--questions 2000] [--planted 20]

Synthetic, deterministic data at the scale the issue asks for: 100,000 Japanese instruction
records (``bench_datagen.synthetic_records``, with one record in fifty a clinical vignette written
by the question generator's templates, so the distractors look like the questions) and 2,000
vignette questions in IgakuQA format. Planted: ``--planted`` questions copied into a training
record's output (a 60-character span: the long n-gram rule's case) and ``--planted`` questions
paraphrased into a record's instruction (synonyms swapped, the temperature changed, the choices
reordered: the near-duplicate rule's case, and the record ``nearest`` should rank first).

Prints seconds to index the training file (cold, then from the cache), seconds to check, peak
memory, recall of the planted questions and the false flags; then where ``nearest`` (BM25) ranks
each planted record for its question, and milliseconds a question; and the same for MinHash
Jaccard, the alternative BM25 was chosen over (``--no-compare`` skips it).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_datagen import DISEASES, DRUGS, synthetic_records  # noqa: E402

SYMPTOMS = ["発熱", "咳嗽", "呼吸困難", "胸痛", "腹痛", "頭痛", "嘔吐", "下痢", "浮腫", "倦怠感", "動悸", "めまい",
            "背部痛", "関節痛", "意識障害", "血痰", "体重減少", "黄疸", "血尿", "しびれ", "食欲不振", "視力低下"]
# Sentences with a slot or two (filled by ``_fill``): real cases differ in their details, and a
# sentence fixed word for word would have two unrelated synthetic cases share long runs of text.
HISTORY = ["高血圧症で{n}年前から治療中である", "2型糖尿病で{n}年前から内服治療中である", "喫煙は{n}本/日を{m}年間",
           "飲酒はビール{n}00mL/日", "{n}年前に{surgery}を受けた", "母親が{m}歳時に{cancer}で死去している",
           "職業は{job}である", "{n}か月前に{country}から帰国した", "{n}か月前から不眠があり{drug}を服用している",
           "父親が{m}歳で{disease}を発症している", "{disease}で{drug}を内服している", "{pet}を{n}匹飼育している"]
FINDINGS = ["{side}下肺野でcoarse cracklesを聴取する", "{side}季肋部に{deg}の圧痛を認める", "下腿に{deg}の圧痕性浮腫を認める",
            "心尖部にLevine {n}/6の収縮期雑音を聴取する", "{side}頸部に{n}cm大のリンパ節を触知する",
            "肝を右肋骨弓下に{n}cm触知する", "{side}下腹部に{deg}の反跳痛を認める", "甲状腺は{deg}に腫大している",
            "腱反射は{side}で{deg}に亢進している", "{side}の手指{n}関節に腫脹を認める", "皮膚に{n}mm大の点状出血を認める",
            "{side}眼の視力は0.{n}である"]
SLOTS = {"surgery": ["虫垂切除術", "胆嚢摘出術", "胃全摘術", "子宮全摘術", "人工股関節置換術", "冠動脈バイパス術"],
         "cancer": ["乳癌", "胃癌", "大腸癌", "肺癌", "膵癌", "肝細胞癌"],
         "job": ["建設業", "看護師", "教員", "農業", "飲食店経営", "トラック運転手", "事務職", "漁業"],
         "country": ["タイ", "インド", "ケニア", "ブラジル", "ベトナム", "エジプト"],
         "pet": ["インコ", "ネコ", "イヌ", "ハト", "カメ"], "side": ["右", "左", "両側"],
         "deg": ["軽度", "中等度", "高度"]}


def _fill(template: str, rng: random.Random) -> str:
    return template.format(n=rng.randint(1, 9), m=rng.randint(40, 89), drug=rng.choice(DRUGS),
                           disease=rng.choice(DISEASES), **{k: rng.choice(v) for k, v in SLOTS.items()})


LABS = ["赤血球", "Hb", "白血球", "血小板", "AST", "ALT", "LD", "CK", "尿素窒素", "クレアチニン", "Na", "K", "CRP",
        "総ビリルビン", "アルブミン", "血糖", "HbA1c", "BNP"]
ASKS = ["最も考えられるのはどれか。", "まず行うべき検査はどれか。", "適切な治療薬はどれか。",
        "この患者で誤っているのはどれか。", "次に行うべき対応として適切なのはどれか。"]
# The paraphrases' word swaps: what a person rewriting a question changes first.
SYNONYMS = [("を主訴に来院した", "のため受診した"), ("前からの", "前より続く"), ("を認める", "がみられる"),
            ("を聴取する", "が聴かれる"), ("歳の男性", "歳男性"), ("歳の女性", "歳女性"),
            ("最も考えられるのはどれか", "最も可能性が高い疾患を一つ選べ"), ("である", "だ")]


def vignette(rng: random.Random) -> dict:
    """One exam-like case: age, complaint, history, vitals, findings and laboratory values, a
    question and five choices. Worded sentences alternate with vital signs, so two cases share
    no long run of text by chance (as two real questions do not)."""
    s1, s2 = rng.sample(SYMPTOMS, 2)
    vitals = [f"体温{rng.randint(360, 399) / 10}℃", f"脈拍{rng.randint(50, 130)}/分、整",
              f"血圧{rng.randint(90, 190)}/{rng.randint(50, 110)}mmHg", f"呼吸数{rng.randint(12, 32)}/分"]
    labs = [f"{lab}{rng.randint(1, 400) / rng.choice([1, 10])}" for lab in rng.sample(LABS, 4)]
    worded = [_fill(t, rng) for t in rng.sample(HISTORY, 2) + rng.sample(FINDINGS, 2)]
    numbered = rng.sample(vitals, 4)
    middle = "。".join(x for pair in zip(worded, numbered) for x in pair)
    text = (f"{rng.randint(18, 89)}歳の{rng.choice(['男性', '女性'])}。{rng.randint(2, 14)}日前からの{s1}と{s2}を主訴に"
            f"来院した。{middle}。血液所見：{'、'.join(labs)}。{rng.choice(ASKS)}")
    return {"problem_text": text, "choices": rng.sample(DISEASES + DRUGS, 5), "answer": [rng.choice("abcde")]}


def paraphrase(q: dict, rng: random.Random) -> dict:
    """A training record that rewrites ``q``: synonyms, another temperature, the choices reordered."""
    text = q["problem_text"]
    for old, new in SYNONYMS:
        text = text.replace(old, new)
    head, _, tail = text.partition("体温")
    text = f"{head}体温{rng.randint(360, 399) / 10}℃{tail.partition('℃')[2]}" if tail else text
    choices = rng.sample(q["choices"], len(q["choices"]))
    answer = q["choices"]["abcde".index(q["answer"][0])]
    return {"instruction": text, "input": "、".join(choices),
            "output": f"正解は{answer}である。{answer}では症状と所見が典型的である。"}


def verbatim(q: dict) -> dict:
    """A training record whose output quotes 60 characters of ``q`` (a past question pasted into notes)."""
    return {"instruction": "次の症例の要点をまとめてください。", "input": "",
            "output": f"参考症例：{q['problem_text'][8:68]}……以上の経過から鑑別を進める。"}


def make_data(n_records: int, n_questions: int, n_planted: int, seed: int = 0) -> tuple[list, list, dict]:
    """(training records, questions, planted) where planted maps question id → (kind, record index)."""
    rng = random.Random(seed)
    questions = [{"problem_id": f"Q{i:05d}", **vignette(rng), "text_only": True, "points": 1}
                 for i in range(n_questions)]
    n_vignettes = n_records // 50
    records = synthetic_records(n_records - n_vignettes, seed=seed)
    for _ in range(n_vignettes):            # look-alike distractors: same templates, other cases
        v = vignette(rng)
        records.insert(rng.randrange(len(records) + 1),
                       {"instruction": v["problem_text"], "input": "、".join(v["choices"]),
                        "output": f"正解は{v['choices'][0]}である。"})
    planted: dict[str, tuple[str, int]] = {}
    chosen = rng.sample(range(n_questions), 2 * n_planted)
    slots = rng.sample(range(n_records), 2 * n_planted)
    for k, (qi, slot) in enumerate(zip(chosen, slots)):
        kind = "ngram" if k < n_planted else "near-dup"
        q = questions[qi]
        records[slot] = verbatim(q) if kind == "ngram" else paraphrase(q, rng)
        planted[q["problem_id"]] = (kind, slot)
    return records, questions, planted


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


# -- measuring ------------------------------------------------------------------------------------

def peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024     # kilobytes on Linux


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def rank_of(scores, target: int) -> int:
    """1 + how many records score above the planted one (ties counted in its favour)."""
    import numpy as np
    return int(np.count_nonzero(scores > scores[target])) + 1


def measure(folder: Path, compare: bool) -> None:
    """Index, check and nearest over the files ``generate`` wrote, in this (fresh) process."""
    import numpy as np

    from pipelines.core.shingles import minhash
    from pipelines.core.workspace import Workspace
    from pipelines.evaluation.nearest import Bm25
    from pipelines.tasks import overlap, train_index
    from pipelines.tasks.igakuqa import load_questions

    planted = json.loads((folder / "planted.json").read_text())
    ws = Workspace.resolve(folder / "ws")
    print(f"{datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"memory at the start: {peak_rss_mb():.0f} MB (interpreter, numpy, pipelines)")
    index, t_cold = timed(train_index.load, folder / "train.jsonl", ws)
    index, t_warm = timed(train_index.load, folder / "train.jsonl", ws)
    questions = load_questions(folder / "exam.jsonl").questions
    print(f"index of {len(index):,} training records: {t_cold:.1f} s cold, {t_warm:.2f} s from the cache; "
          f"peak memory {peak_rss_mb():.0f} MB")
    result, t_check = timed(overlap.check, index, questions)
    print(f"check of {len(questions):,} questions: {t_check:.1f} s (index cached: {t_warm + t_check:.1f} s in all); "
          f"peak memory {peak_rss_mb():.0f} MB")
    found = {(f.problem_id, f.kind) for f in result.findings}
    for kind in overlap.KINDS:
        want = [pid for pid, (k, _) in planted.items() if k == kind]
        by_rule = sum((pid, kind) in found for pid in want)
        by_any = sum(pid in result.flagged_ids for pid in want)
        print(f"  planted {kind:<8}: {by_any}/{len(want)} flagged ({by_rule} by the {kind} rule)")
    sims = sorted(f.similarity for f in result.findings if f.kind == "near-dup" and planted.get(f.problem_id, ("",))[0]
                  == "near-dup")
    if sims:
        print(f"  Jaccard of the rewritten questions with their record: {sims[0]:.2f}–{sims[-1]:.2f}")
    false = [pid for pid in result.flagged_ids if pid not in planted]
    print(f"  false flags: {len(false)} of {len(questions) - len(planted):,} questions not planted")
    for f in result.findings:
        if f.problem_id in false[:5]:
            print(f"    {f.problem_id} {f.kind} line {f.record_line}: 「{f.overlap}」")
    texts = {q.problem_id: overlap.question_text(q) for q in questions}
    bm25, t_build = timed(Bm25, index)
    t0 = time.perf_counter()
    ranks = {pid: rank_of(bm25.scores(texts[pid]), slot) for pid, (_, slot) in planted.items()}
    t_query = (time.perf_counter() - t0) / len(planted)
    print(f"nearest (BM25, character bigrams): index {t_build:.1f} s, {t_query * 1000:.0f} ms a question; "
          f"peak memory {peak_rss_mb():.0f} MB; {_by_kind(planted, ranks)}")
    if compare:
        t0 = time.perf_counter()
        sigs = np.stack([minhash(index.text(i)).hashvalues for i in range(len(index))])
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        ranks = {pid: rank_of((sigs == minhash(texts[pid]).hashvalues).sum(axis=1), slot)
                 for pid, (_, slot) in planted.items()}
        t_query = (time.perf_counter() - t0) / len(planted)
        print(f"  compared: MinHash Jaccard (character 3-grams, whole record): index {t_build:.1f} s, "
              f"{t_query * 1000:.0f} ms a question; {_by_kind(planted, ranks)}")


def _by_kind(planted: dict, ranks: dict) -> str:
    """Where the planted record ranked, for the rewritten questions and for the quoted ones."""
    out = []
    for kind, label in (("near-dup", "rewritten"), ("ngram", "quoted")):
        r = sorted(ranks[pid] for pid, (k, _) in planted.items() if k == kind)
        out.append(f"{label}: first for {r.count(1)}/{len(r)}, median rank {r[len(r) // 2]}, worst {r[-1]}")
    return "; ".join(out)


def generate(folder: Path, records: int, questions: int, planted: int) -> None:
    train, exam, where = make_data(records, questions, planted)
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "exam.jsonl", exam)
    (folder / "planted.json").write_text(json.dumps(where))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--questions", type=int, default=2_000)
    p.add_argument("--planted", type=int, default=20, help="questions planted per rule")
    p.add_argument("--no-compare", action="store_true", help="skip ranking by MinHash for comparison")
    p.add_argument("--stage", choices=["generate", "measure"], help=argparse.SUPPRESS)   # the child processes
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.stage == "generate":
        t0 = time.perf_counter()
        generate(Path(args.folder), args.records, args.questions, args.planted)
        print(f"generated {args.records:,} training records and {args.questions:,} questions "
              f"({args.planted} planted per rule) in {time.perf_counter() - t0:.1f} s")
    elif args.stage == "measure":
        measure(Path(args.folder), not args.no_compare)
    else:
        import subprocess
        # Each stage in a process of its own: the peak memory printed is the check's, not the generator's.
        with tempfile.TemporaryDirectory() as tmp:
            for stage in ("generate", "measure"):
                subprocess.run([sys.executable, __file__, "--stage", stage, "--folder", tmp, *sys.argv[1:]], check=True)


if __name__ == "__main__":
    main()
