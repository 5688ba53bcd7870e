"""The contamination check and nearest training records on a small hand-made exam and training file.

Planted in the training file: a 50-character quote of Q1 (flagged), a 49-character quote of Q2
(a near miss: not flagged), a rewrite of Q3 (near-duplicate, Jaccard 92/134), the 41-character
rounding instruction that the calculation questions Q5 and Q6 share (not flagged: shorter than the
rule), and the whole of the short question Q7.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.core.errors import UserError
from pipelines.evaluation import contamination, nearest
from pipelines.tasks import overlap, train_index
from pipelines.tasks.igakuqa import load_questions

ROUNDING = "ただし、小数点以下の数値が得られた場合には、小数点以下第1位を四捨五入すること。"
QUESTIONS = [
    {"problem_id": "Q1", "problem_text": "62歳の男性。3日前からの発熱と湿性咳嗽を主訴に来院した。体温38.6℃。右下肺野でcoarse "
     "cracklesを聴取する。胸部エックス線写真で右下肺野に浸潤影を認める。喀痰のグラム染色でグラム陽性双球菌を認める。"
     "最も考えられる起炎菌はどれか。", "choices": ["肺炎球菌", "インフルエンザ菌", "黄色ブドウ球菌", "緑膿菌", "マイコプラズマ"],
     "answer": ["a"]},
    {"problem_id": "Q2", "problem_text": "45歳の女性。2週間前からの動悸と体重減少を主訴に来院した。脈拍112/分、整。甲状腺の"
     "びまん性腫大を触知し、手指の振戦を認める。血中TSHは測定感度以下である。この患者の治療として適切でないのはどれか。",
     "choices": ["チアマゾール", "β遮断薬", "放射性ヨウ素内用療法", "甲状腺亜全摘術", "レボチロキシン"], "answer": ["e"]},
    {"problem_id": "Q3", "problem_text": "70歳の男性。突然の左片麻痺と構音障害を主訴に救急車で搬入された。発症から1時間が経過"
     "している。心電図で心房細動を認める。頭部CTで出血を認めない。まず行うべき治療はどれか。",
     "choices": ["アルテプラーゼ静注", "ヘパリン持続静注", "アスピリン内服", "降圧薬静注", "開頭血腫除去術"], "answer": ["a"]},
    {"problem_id": "Q4", "problem_text": "ビタミンB1欠乏で生じるのはどれか。",
     "choices": ["ウェルニッケ脳症", "くる病", "壊血病", "夜盲症", "悪性貧血"], "answer": ["a"]},
    {"problem_id": "Q5", "problem_text": "体重60kg、血清クレアチニン1.2mg/dLの70歳男性のクレアチニンクリアランス(mL/分)を求めよ。"
     + ROUNDING, "choices": [], "answer": ["49"]},
    {"problem_id": "Q6", "problem_text": "身長170cm、体重85kgの成人のBMIを求めよ。" + ROUNDING, "choices": [], "answer": ["29"]},
    {"problem_id": "Q7", "problem_text": "アナフィラキシーショックの第一選択薬はどれか。", "choices": ["アドレナリン", "ステロイド"],
     "answer": ["a"]},
]
# Q1's normalised text from 右 to グ: exactly 50 characters; Q2's from 甲 to 適: 49.
Q1_QUOTE = "右下肺野でcoarsecracklesを聴取する胸部エックス線写真で右下肺野に浸潤影を認める喀痰のグ"
Q2_QUOTE = "甲状腺のびまん性腫大を触知し手指の振戦を認める血中tshは測定感度以下であるこの患者の治療として適"
RECORDS = [
    {"instruction": "糖尿病の診断基準を説明してください。", "input": "", "output": "空腹時血糖126mg/dL以上、HbA1c 6.5%以上などを用いる。"},
    {"instruction": "肺炎の症例を要約せよ。", "input": "", "output": "要点：右下肺野でcoarse cracklesを聴取する。胸部エックス線"
     "写真で右下肺野に浸潤影を認める。喀痰のグ。以上が経過である。"},
    {"instruction": "甲状腺疾患の所見をまとめよ。", "input": "", "output": "所見：甲状腺のびまん性腫大を触知し、手指の振戦を認める。"
     "血中TSHは測定感度以下である。この患者の治療として適応を検討する。"},
    {"instruction": "70歳の男性。突然の左片麻痺と構音障害のため救急車で搬送された。発症から1時間が経過している。心電図で心房細動"
     "がみられる。頭部CTで出血はない。まず行うべき治療はどれか。",
     "input": "ヘパリン持続静注、アルテプラーゼ静注、アスピリン内服、降圧薬静注、開頭血腫除去術", "output": "正解はアルテプラーゼ静注である。"},
    {"instruction": "計算問題の注意書きを示せ。", "input": "", "output": "体表面積の値を求めよ。" + ROUNDING},
    {"instruction": "次の問いに答えよ：アナフィラキシーショックの第一選択薬はどれか。", "input": "アドレナリン、ステロイド",
     "output": "アドレナリンの筋注である。"},
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path):
    return _jsonl(tmp_path / "train.jsonl", RECORDS), _jsonl(tmp_path / "exam.jsonl", QUESTIONS)


def _check(files, workspace, **kwargs):
    train, exam = files
    return overlap.check(train_index.load(train, workspace), load_questions(exam).questions, **kwargs)


def test_the_planted_questions_are_flagged_and_the_near_misses_are_not(files, workspace):
    result = _check(files, workspace)
    got = {(f.problem_id, f.kind): f for f in result.findings}
    assert sorted(got) == [("Q1", "ngram"), ("Q3", "near-dup"), ("Q7", "near-dup"), ("Q7", "ngram")]
    assert result.flagged_ids == ["Q1", "Q3", "Q7"]
    q1 = got[("Q1", "ngram")]
    assert (q1.record_line, q1.record_index, q1.overlap, q1.records) == (2, 1, Q1_QUOTE, 1) and len(Q1_QUOTE) == 50
    q3 = got[("Q3", "near-dup")]
    # 3-grams: 92 shared of 134 in either text (counted with sets below, independently of the module).
    a, b = overlap.question_text(load_questions(files[1]).questions[2]), train_index.load(files[0]).prompt_text(3)
    grams = lambda t: {t[i:i + 3] for i in range(len(t) - 2)}  # noqa: E731
    assert (len(grams(a) & grams(b)), len(grams(a) | grams(b))) == (92, 134)
    assert (q3.record_line, q3.similarity) == (4, round(92 / 134, 4))
    assert q3.overlap == "された発症から1時間が経過している心電図で心房細動"       # 25 characters: under the run rule
    q7 = got[("Q7", "ngram")]      # shorter than 50 characters: flagged when all of it is in a record
    assert (q7.record_line, q7.overlap) == (6, "アナフィラキシーショックの第一選択薬はどれかアドレナリンステロイド")


def test_the_thresholds_decide_the_near_misses(files, workspace):
    # Q2's 49-character quote is one short of the rule; Q5 and Q6 share 41 characters with line 5.
    at_49 = {f.problem_id: f for f in _check(files, workspace, ngram_chars=49).findings if f.kind == "ngram"}
    assert at_49["Q2"].overlap == Q2_QUOTE and len(Q2_QUOTE) == 49 and at_49["Q2"].record_line == 3
    assert "Q5" not in at_49 and "Q6" not in at_49
    at_41 = {f.problem_id for f in _check(files, workspace, ngram_chars=41).findings if f.kind == "ngram"}
    assert {"Q5", "Q6"} <= at_41
    strict = {f.problem_id for f in _check(files, workspace, threshold=0.7).findings if f.kind == "near-dup"}
    assert "Q3" not in strict                                     # 0.687 < 0.7


def test_window_hashes_are_the_polynomial_of_each_window():
    codes = np.array([7, 300, 12354, 65, 0x1F600], dtype=np.uint32)
    base, mod = int(overlap._BASE), 2 ** 64
    expected = [sum(int(codes[i + j]) * pow(base, j, mod) for j in range(3)) % mod for i in range(3)]
    assert overlap.window_hashes(codes, 3).tolist() == expected
    assert len(overlap.window_hashes(codes, 6)) == 0


def test_band_rows_keep_a_pair_at_the_threshold_with_99_percent():
    # 1 − (1 − 0.5³)^42 = 0.9963, 1 − (1 − 0.5⁴)^32 = 0.873: three rows at 0.5.
    assert [overlap.band_rows(t) for t in (0.3, 0.5, 0.8)] == [2, 3, 6]


def test_the_index_is_cached_by_content_and_a_tampered_cache_is_rebuilt(files, workspace, monkeypatch):
    train, _ = files
    first = train_index.load(train, workspace)
    assert (first.directory / "meta.json").exists() and first.directory.name == train_index.file_sha256(train)
    real_build = train_index.build
    monkeypatch.setattr(train_index, "build", lambda path: pytest.fail("the cache should have answered"))
    again = train_index.load(train, workspace)
    assert np.array_equal(again.codes, first.codes) and again.text(3) == first.text(3)
    # An object array where the codes were: refused by allow_pickle=False, the index built again.
    np.save(first.directory / "codes.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    monkeypatch.setattr(train_index, "build", real_build)
    rebuilt = train_index.load(train, workspace)
    assert np.array_equal(rebuilt.codes, first.codes)
    train.write_text(train.read_text(encoding="utf-8") + json.dumps(RECORDS[0], ensure_ascii=False) + "\n",
                     encoding="utf-8")
    edited = train_index.load(train, workspace)
    assert edited.directory != first.directory and len(edited) == len(first) + 1


def test_bad_training_files_are_named(tmp_path, workspace):
    with pytest.raises(UserError) as err:
        train_index.load(tmp_path / "none.jsonl", workspace)
    assert err.value.code == "contamination.train_missing"
    with pytest.raises(UserError) as err:
        train_index.load(tmp_path, workspace)
    assert err.value.code == "contamination.train_is_folder"
    bad = _jsonl(tmp_path / "bad.jsonl", [RECORDS[0], {"text": "raw"}])
    with pytest.raises(UserError) as err:
        train_index.load(bad, workspace)
    assert err.value.code == "alpaca.not_a_record" and err.value.params["line"] == 2


def _evaluation(tmp_path, exam, correct: dict[str, int]):
    out = tmp_path / "eval"
    out.mkdir()
    rows = [{"problem_id": pid, "shots": 0, "accuracy": float(ok), "points": 1.0, "points_earned": float(ok),
             "kinki": [], "kinki_picked": 0, "accepted": [["a"]], "answer": ["a"], "predicted": ["a" if ok else "b"]}
            for pid, ok in correct.items()]
    _jsonl(out / "results.jsonl", rows)
    (out / "config.json").write_text(json.dumps({"data": str(exam), "seed": 0}))
    return out


def test_the_score_with_and_without_the_flagged_questions(files, workspace, tmp_path):
    out = _evaluation(tmp_path, files[1], {"Q1": 1, "Q2": 0, "Q3": 1, "Q4": 1})
    config = contamination.ContaminationConfig(train=str(files[0]), eval=str(out))
    report = contamination.run(config, workspace=workspace)
    assert report["flagged"] == ["Q1", "Q3", "Q7"] and report["questions_file"] == str(files[1])
    score = report["score"]
    assert score["flagged_answered"] == 2                       # Q7 was not among the answers
    both = score["by_shots"][0]
    assert (both["all"]["n"], both["all"]["accuracy"]["mean"], both["all"]["exam"]["score_rate"]) == (4, 0.75, 0.75)
    assert (both["without_flagged"]["n"], both["without_flagged"]["accuracy"]["mean"]) == (2, 0.5)   # Q2 0, Q4 1
    low, high = both["without_flagged"]["accuracy"]["ci_low"], both["without_flagged"]["accuracy"]["ci_high"]
    assert 0 <= low <= 0.5 <= high <= 1


def test_the_contamination_command(files, workspace, tmp_path, capsys):
    train, exam = files
    contamination.main(["--train", str(train), "--data", str(exam), "--json", "--workspace", str(workspace.root)])
    report = json.loads(capsys.readouterr().out)
    assert report["flagged"] == ["Q1", "Q3", "Q7"] and report["n_records"] == 6 and report["n_questions"] == 7
    out = _evaluation(tmp_path, exam, {"Q1": 1, "Q2": 0, "Q3": 1, "Q4": 1})
    contamination.main(["--train", str(train), "--eval", str(out), "--workspace", str(workspace.root)])
    text = capsys.readouterr().out
    assert "3 flagged" in text and "Q1             ngram    line       2" in text
    assert "all questions      : n=4  accuracy 0.750" in text and "without the flagged: n=2  accuracy 0.500" in text
    with pytest.raises(SystemExit) as exc:
        contamination.main(["--train", str(train), "--eval", str(tmp_path), "--workspace", str(workspace.root)])
    err = capsys.readouterr().err
    assert exc.value.code not in (0, None) and "holds no evaluation results" in err and "\n  Fix: " in err
    for bad, name in ((["--ngram-chars", "5"], "ngram"), (["--near-dup-threshold", "1.5"], "near-dup-threshold")):
        with pytest.raises(SystemExit):
            contamination.main(["--train", str(train), "--data", str(exam), *bad])
        assert name in capsys.readouterr().err


def test_the_planted_rewrite_is_the_nearest_record_of_the_wrong_answer(files, workspace, tmp_path, capsys):
    out = _evaluation(tmp_path, files[1], {"Q1": 1, "Q2": 0, "Q3": 0, "Q4": 1})
    entries = nearest.nearest_for_evaluation(str(files[0]), out, wrong_only=True, k=2, workspace=workspace)
    assert [(e["problem_id"], e["correct"]) for e in entries] == [("Q2", False), ("Q3", False)]
    q2, q3 = entries
    assert [n["line"] for n in q3["nearest"]][0] == 4 and q3["nearest"][0]["instruction"] == RECORDS[3]["instruction"]
    assert q2["nearest"][0]["line"] == 3 and q2["nearest"][0]["shared"] == Q2_QUOTE
    assert q3["nearest"][0]["score"] > q3["nearest"][1]["score"] > 0
    every = nearest.nearest_for_evaluation(str(files[0]), out, k=1, workspace=workspace)
    assert [e["problem_id"] for e in every] == ["Q1", "Q2", "Q3", "Q4"] and every[0]["nearest"][0]["line"] == 2
    nearest.main(["--train", str(files[0]), "--eval", str(out), "--wrong-only", "--k", "1", "--json",
                  "--workspace", str(workspace.root)])
    assert [e["nearest"][0]["line"] for e in json.loads(capsys.readouterr().out)] == [3, 4]
    nearest.main(["--train", str(files[0]), "--eval", str(out), "--wrong-only", "--k", "1",
                  "--workspace", str(workspace.root)])
    text = capsys.readouterr().out
    assert "Q3 (shots 0): wrong, picked b, answer a" in text and "line       4  BM25" in text
    with pytest.raises(SystemExit):
        nearest.main(["--train", str(files[0]), "--eval", str(out), "--k", "0"])
    assert "--k 0" in capsys.readouterr().err


def test_bm25_scores_by_hand():
    """Two records, "あいう" and "あいあい"; the query "あい": its one bigram is in both (df 2 of 2)."""
    index = train_index.TrainIndex(path=None, sha256="", directory=None,
                                   codes=np.frombuffer("あいうあいあい".encode("utf-32-le"), dtype="<u4").astype(np.uint32),
                                   offsets=np.array([0, 3, 7]), prompt_ends=np.array([3, 7]), lines=np.array([1, 2]),
                                   signatures=np.zeros((2, train_index.SIGNATURE_PERM), dtype=np.uint32))
    bm25 = nearest.Bm25(index)
    # Bigrams: あい いう (2) and あい いあ あい (3, "あい" twice); avgdl 2.5; idf = ln(1 + 0.5/2.5).
    idf = np.log(1 + 0.5 / 2.5)
    expected = [idf * 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 2 / 2.5)),
                idf * 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 3 / 2.5))]
    assert np.allclose(bm25.scores("あい"), expected)
    assert [r for r, _ in bm25.top("あい", 2)] == [1, 0] and bm25.top("ん", 2) == []


def test_the_check_before_training_warns(files, workspace):
    from pipelines.training.config import TrainConfig
    from pipelines.training.launch import contamination_warnings

    train, exam = files
    checks = overlap.check_before_training(train, [exam], workspace=workspace)
    assert [c.flagged_ids for c in checks] == [["Q1", "Q3", "Q7"]]
    lines = contamination_warnings(TrainConfig(data=str(train), eval_data=str(exam)), workspace)
    assert len(lines) == 1 and lines[0].startswith(f"warning: 3 of 7 questions in {exam.resolve()} are in the training")
    assert contamination_warnings(TrainConfig(data=str(exam.parent / "none.jsonl")), workspace) == []


def test_hash_collisions_are_no_findings(files, workspace, monkeypatch):
    """With a hash of 7 values nearly every window collides: the shared text is compared, so the
    findings stay those of the real hash."""
    real = overlap.window_hashes
    monkeypatch.setattr(overlap, "window_hashes", lambda codes, n: real(codes, n) % np.uint64(7))
    weak = {(f.problem_id, f.kind, f.record_line, f.overlap) for f in _check(files, workspace).findings}
    monkeypatch.setattr(overlap, "window_hashes", real)
    assert weak == {(f.problem_id, f.kind, f.record_line, f.overlap) for f in _check(files, workspace).findings}


def test_slices_of_the_index_give_what_the_whole_gives(files, workspace, monkeypatch):
    """The hashing and the BM25 postings go a slice of records at a time; slices of 100 characters
    (records 1, 2–3, 4–5, 6) must find and count exactly what one slice does."""
    index = train_index.load(files[0], workspace)
    assert index.chunks(100) == [(0, 1), (1, 3), (3, 5), (5, 6)]
    whole_findings, whole_bm25 = _check(files, workspace).findings, nearest.build_bm25(index)
    monkeypatch.setattr(overlap, "_CHUNK_CODES", 100)
    monkeypatch.setattr(nearest, "_SLICE_CODES", 100)
    assert _check(files, workspace).findings == whole_findings
    sliced = nearest.build_bm25(index)
    assert all(np.array_equal(sliced[k], whole_bm25[k]) for k in whole_bm25)
