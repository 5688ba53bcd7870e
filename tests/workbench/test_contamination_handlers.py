"""The contamination and nearest-record views' handlers, called directly: a five-question exam
(tests/pipelines/test_contamination.py's Q1-Q4 and Q7) and its training file, in which Q1 is
quoted for 50 characters, Q3 rewritten and Q7 copied whole (flagged: Q1, Q3, Q7), and a fake
evaluation that got Q1 and Q7 right and Q2, Q3, Q4 wrong.

By hand: accuracy over all five questions 2/5 = .400; without the flagged three, over Q2 and Q4,
0/2 = .000 (a drop of .400); gestalt (0.5 per right answer) .200 and .000. Q3's card (wrong)
shows the record rewriting it (line 4) first; Q1's card (right) shows no records.
"""
from __future__ import annotations

import re

import pytest

from pipelines.core import audit
from tests.pipelines.test_contamination import QUESTIONS, RECORDS, _jsonl
from tests.workbench.fake_results import record, result_row
from tests.workbench.test_insights_handlers import table_cells
from workbench import charts_contamination, compare_nearest, compare_view, i18n
from workbench.state import AppState

EXAM = [q for q in QUESTIONS if q["problem_id"] in ("Q1", "Q2", "Q3", "Q4", "Q7")]
RIGHT = {"Q1", "Q7"}


@pytest.fixture
def setup(workspace, tmp_path):
    exam = _jsonl(tmp_path / "exam.jsonl", EXAM)
    train = _jsonl(workspace.subdir("exports") / "train.jsonl", RECORDS)
    rows = [result_row(q["problem_id"], 0, ["a"] if q["problem_id"] in RIGHT else ["b"]) for q in EXAM]
    out = record(workspace, tmp_path / "eval", "tiny-run@10", rows, data=str(exam))
    return AppState(workspace), out, str(train)


@pytest.mark.parametrize("module", [charts_contamination, compare_nearest])
def test_every_message_has_japanese_and_english(module):
    for name in ("L", "MSG"):
        for key, text in getattr(module, name).items():
            assert set(text) == set(i18n.LANGS) and all(v for v in text.values()), f"{name}[{key!r}]"


def test_the_planted_questions_are_listed_and_the_score_without_them_drops(setup, workspace):
    state, out, train = setup
    html = charts_contamination.check(state, out, train, "ja")
    assert "⚠ 3 問が学習データと重なっています（学習記録 6 件 × 問題 5 問を確認" in html
    found = table_cells(html, 0)
    assert found[("Q1", "判定")] == "長い一致" and found[("Q1", "重なりの程度")] == "50 文字が連続して一致"
    assert found[("Q1", "学習データの行")] == "2"
    assert found[("Q3", "判定")] == "言い換え（ほぼ同じ文）" and found[("Q3", "学習データの行")] == "4"
    assert found[("Q3", "重なりの程度")] == "類似度 0.69（1＝同一）"             # 92/134, as the pipeline's test
    assert found[("Q7", "判定")] == "長い一致・言い換え（ほぼ同じ文）"              # both rules, one row
    assert re.findall(r'data-problem-id="(\w+)"', html) == ["Q1", "Q3", "Q7"]
    score = table_cells(html, 1)
    assert score[("正答率（0-shot）", "すべての問題")].startswith(".400") and "n=5" in score[("正答率（0-shot）", "すべての問題")]
    assert score[("正答率（0-shot）", "重複した問題を除く")].startswith(".000") and "n=2" in score[("正答率（0-shot）", "重複した問題を除く")]
    assert score[("Gestalt（0-shot）", "すべての問題")].startswith(".200")
    assert "正答率は 0.400 → 0.000（-0.400）" in html
    entry = audit.entries(workspace.root)[-1]
    assert (entry["action"], entry["object"]) == ("view", "contamination")


def test_the_same_in_english(setup):
    state, out, train = setup
    html = charts_contamination.check(state, out, train, "en")
    assert "⚠ 3 question(s) overlap the training data (6 training records × 5 questions checked" in html
    assert "rewrite (near-duplicate)" in html and "accuracy goes 0.400 → 0.000 (-0.400)" in html
    assert ("Accuracy (0-shot)", "without the overlapping ones") in table_cells(html, 1)
    assert not re.search(r"[\u3040-\u30ff]", re.sub(r'<td class="data"[^>]*>.*?</td>', "", html))


def test_a_clean_training_file_says_so_with_the_numbers_checked(setup, workspace):
    state, out, _ = setup
    clean = _jsonl(workspace.subdir("exports") / "clean.jsonl", RECORDS[:1])
    html = charts_contamination.check(state, out, str(clean), "ja")
    assert "✓ 重複は見つかりませんでした：学習記録 1 件 × 問題 5 問を確認しました" in html and "<table" not in html


def test_a_path_outside_the_readable_folders_is_refused_in_both_languages(setup, tmp_path):
    state, out, _ = setup
    outside = _jsonl(tmp_path / "elsewhere.jsonl", RECORDS)
    ja = charts_contamination.check(state, out, str(outside), "ja")
    assert "この画面から読めるフォルダ" in ja and 'class="notice error"' in ja
    assert "outside the folders this page may read" in charts_contamination.check(state, out, str(outside), "en")
    assert "この画面から読めるフォルダ" in compare_nearest.check(state, str(outside), "ja")
    assert compare_nearest.cached_index(state, str(outside)) is None
    assert "評価結果と学習データを選んで" in charts_contamination.check(state, out, "", "ja")


def test_the_run_s_training_file_is_suggested_for_its_evaluation(setup, workspace, tmp_path):
    state, out, train = setup
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"data": "%s"}' % train)
    workspace.register_model("tiny-run@10", "adapter", str(tmp_path / "ckpt"), meta={"run_dir": str(run_dir)})
    assert charts_contamination.train_choices(state, out)[0] == train
    assert charts_contamination.suggest(state, out, None)["value"] == train


def test_a_wrong_answer_s_card_shows_the_planted_record_nearest(setup, workspace):
    state, out, train = setup
    msg = compare_nearest.check(state, train, "ja")
    assert "6 件の学習記録を索引しました" in msg
    cards, *_ = compare_view.render_view(state, [out], False, False, "", 1, "ja", train)
    by_id = dict(re.findall(r'<div class="qcard" data-problem-id="(\w+)">(.*?)(?=<div class="qcard"|$)', cards, re.S))
    assert "qnear" not in by_id["Q1"] and "qnear" not in by_id["Q7"]           # right answers: nothing to explain
    lines = re.findall(r'data-line="(\d+)"', by_id["Q3"])
    assert lines[0] == "4" and len(lines) <= compare_nearest.K
    assert "学習データで問題に最も近い記録 3 件" in by_id["Q3"] and "4 行目" in by_id["Q3"]
    assert re.findall(r'data-line="(\d+)"', by_id["Q2"])[0] == "3"             # the thyroid findings
    assert len(state.nearest_indexes) == 1                                      # built once, kept
    compare_view.render_view(state, [out], False, False, "", 1, "en", train)
    assert len(state.nearest_indexes) == 1
    assert audit.entries(workspace.root)[-1]["detail"]["training_data"].endswith("train.jsonl")


def test_training_text_is_escaped_on_the_card(workspace):
    html = compare_nearest.block([{"line": 2, "score": 3.0, "instruction": "<script>alert(1)</script>", "input": "",
                                   "output": "<b>x</b>", "shared": "<i>"}], "en")
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;i&gt;" in html
