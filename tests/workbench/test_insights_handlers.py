"""The insights views' handlers, called directly on a workspace with evaluations of a four-question
exam whose numbers are computed by hand (tests/workbench/fake_insights.py has the table):
accuracy per specialty and per band of the examinees' accuracy, the popular-wrong-answer share,
the embarrassing misses first in the Compare tab's cards, the flip counts with McNemar beside
the paired bootstrap, and a selected question's cards; in Japanese and English."""
from __future__ import annotations

import math
import re
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest

from pipelines.core import audit
from pipelines.evaluation.evaluator import EvalConfig
from tests.workbench import fake_insights
from tests.workbench.fake_results import record, result_row
from workbench import charts_insights, compare_flips, compare_view, i18n
from workbench.state import AppState


def table_cells(html: str, table: int = 0) -> dict[tuple[str, str], str]:
    """(row label, column heading) -> the cell's text, of the ``table``-th table in ``html``."""
    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.cell = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.tables.append([])
            elif tag == "tr":
                self.tables[-1].append([])
            elif tag in ("th", "td"):
                self.cell = ""

        def handle_endtag(self, tag):
            if tag in ("th", "td"):
                self.tables[-1][-1].append(self.cell.strip())
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data + " "

    p = Cells()
    p.feed(html)
    head, *rows = p.tables[table]
    return {(r[0], h): " ".join(v.split()) for r in rows for h, v in zip(head[1:], r[1:])}


@pytest.fixture
def exam(workspace, tmp_path):
    return fake_insights.small_exam(workspace, tmp_path / "exam")


@pytest.mark.parametrize("module", [charts_insights, compare_flips])
def test_every_message_has_japanese_and_english(module):
    for name in ("L", "MSG", "HEAD", "WORDS"):
        for key, text in getattr(module, name, {}).items():
            assert set(text) == set(i18n.LANGS) and all(v for v in text.values()), f"{name}[{key!r}]"


def test_accuracy_per_specialty_by_hand_as_a_table_and_a_heat_map(workspace, exam):
    cat_html, cat_fig, *_ = charts_insights.build(AppState(workspace), exam["data"], "*", "ja")
    cells = table_cells(cat_html)
    # 呼吸器 = Q1, Q3 (A: ✓ ✗); 循環器 = Q2 (B, C right); 小児科 = Q4 (nobody right 0-shot; A 1-shot all right).
    assert cells[("呼吸器", "base · 0（0-shot）")] == ".500 [.00, 1.00] n=2"
    assert cells[("循環器", "run · 100（0-shot）")] == "1.000 [1.00, 1.00] n=1"
    assert cells[("小児科", "base · 0（1-shot）")] == "1.000 [1.00, 1.00] n=1"
    assert cells[("循環器", "published-C（0-shot）")].startswith("1.000")         # imported predictions: a model too
    heat = cat_fig["value"].data[0]
    assert cat_fig["visible"] and list(heat.x) == ["呼吸器", "小児科", "循環器"]     # most questions first
    assert list(heat.y) == ["base · 0（0-shot）", "base · 0（1-shot）", "run · 100（0-shot）", "published-C（0-shot）"]
    assert [list(r) for r in heat.z] == [[0.5, 0, 0], [1, 1, 1], [0.5, 0, 1], [0.5, 0, 1]]
    assert "n=2" in heat.hovertext[0][0] and "95%信頼区間 [.000, 1.000]" in heat.hovertext[0][0]
    assert (heat.zmin, heat.zmax) == (0, 1)
    assert "正答率" in cat_fig["value"].layout.title.text
    en_html, en_fig, *_ = charts_insights.build(AppState(workspace), exam["data"], "*", "en")
    assert ("呼吸器", "base · 0 (0-shot)") in table_cells(en_html) and "Each cell: accuracy" in en_html
    assert en_fig["value"].layout.title.text.startswith("Accuracy per specialty")
    assert audit.entries(workspace.root)[-1]["action"] == "view"


def test_accuracy_by_the_examinees_accuracy_by_hand(workspace, exam):
    _, _, band_html, band_fig, _ = charts_insights.build(AppState(workspace), exam["data"], "*", "ja")
    cells = table_cells(band_html)
    # Bands: Q4 30.5% (< 50), Q2 50% (50–80), Q1 90% and Q3 80% (≥ 80, examinees' mean 85%).
    assert cells[("≥ 80%（平均 85%）", "base · 0（0-shot）")] == ".500 [.00, 1.00] n=2"
    assert cells[("50%–80%（平均 50%）", "run · 100（0-shot）")] == "1.000 [1.00, 1.00] n=1"
    assert cells[("< 50%（平均 30%）", "published-C（0-shot）")] == ".000 [.00, .00] n=1"
    fig = band_fig["value"]
    bars = {t.name: list(t.y) for t in fig.data if t.type == "bar"}
    assert bars["base · 0（0-shot）"] == [0, 0, 0.5] and bars["run · 100（0-shot）"] == [0, 1, 0.5]
    examinees = next(t for t in fig.data if t.type == "scatter")
    assert examinees.name == "受験者（平均）" and list(examinees.y) == pytest.approx([0.305, 0.5, 0.85])
    assert list(fig.data[0].error_y.array) == [0, 0, 0.5]                    # ≥ 80: .5 with [0, 1]
    en = charts_insights.build(AppState(workspace), exam["data"], "*", "en")
    assert ("≥ 80% (mean 85%)", "base · 0 (0-shot)") in table_cells(en[2])


def test_the_popular_wrong_answer_share_by_hand(workspace, exam):
    wrong_html = charts_insights.build(AppState(workspace), exam["data"], "*", "ja")[4]
    cells = table_cells(wrong_html)
    same = "受験者の最多誤答と同じ"
    # base: Q2 b and Q3 c are the examinees' favourite wrong options, Q4 c is not (a is): 2 of 3.
    assert [cells[("base · 0（0-shot）", h)] for h in ("誤答", "比べられた誤答", same)] == ["3", "3", "2"]
    assert cells[("base · 0（0-shot）", "割合 [95%信頼区間]")].startswith(".667")
    # run@100: Q3 b (not c), Q4 a (yes): 1 of 2.
    assert cells[("run · 100（0-shot）", same)] == "1" and cells[("run · 100（0-shot）", "割合 [95%信頼区間]")].startswith(".500")
    # published-C: Q1 b (yes); Q4 answered nothing: no wrong letter to compare.
    assert cells[("published-C（0-shot）", "比べられなかった誤答")] == "1（受験者の選択率なし 0・誤りの選択肢を選んでいない 1）"
    assert cells[("base · 0（1-shot）", "割合 [95%信頼区間]")] == "–"              # no wrong answer at all
    assert "ひっかけ" in wrong_html and "25%" in wrong_html
    en = charts_insights.build(AppState(workspace), exam["data"], "*", "en")[4]
    assert "wrong choice most examinees picked" in en and ("base · 0 (0-shot)", "same as examinees' top wrong") in table_cells(en)


def test_a_question_file_without_examinee_data_gets_the_pipelines_message(workspace, tmp_path):
    """The bundled sample has specialties but no examinees' figures: the heat map, then the message."""
    data = EvalConfig().data
    rows = [result_row("JMW-A1", 0, ["c"], correct="c"), result_row("JMW-A3", 0, ["a"], correct="b")]
    record(workspace, tmp_path / "sample", "default", rows, data=data)
    cat_html, cat_fig, band_html, band_fig, wrong_html = charts_insights.build(AppState(workspace), data, "*", "ja")
    assert cat_fig["visible"] and table_cells(cat_html)[("循環器", "default · 0（0-shot）")].startswith("1.000")
    assert band_fig == {"__type__": "update", "value": None, "visible": False}
    assert 'class="notice error"' in band_html and "問題ファイル（sample_ja.jsonl）には受験者のデータ" in band_html
    assert "_metadata.jsonl" in band_html and "--data" not in band_html and "human_accuracy" not in band_html
    en = charts_insights.build(AppState(workspace), data, "*", "en")
    assert "The question file (sample_ja.jsonl) has no examinee data" in en[2] and en[4] == ""   # said once


def test_examinee_data_missing_for_one_file_is_said_for_that_file(workspace, exam, tmp_path):
    data = EvalConfig().data
    record(workspace, tmp_path / "sample", "default", [result_row("JMW-A1", 0, ["a"], correct="c")], data=data)
    wrong_html = charts_insights.build(AppState(workspace), "*", "*", "ja")[4]
    assert table_cells(wrong_html)[("base · 0（0-shot）", "受験者の最多誤答と同じ")] == "2"     # the exam's rows …
    assert "問題ファイル（sample_ja.jsonl）には受験者のデータ" in wrong_html                   # … the sample's notice
    assert "exam.jsonl" not in wrong_html


def test_no_evaluation_under_the_filters_is_said_once(workspace, exam):
    out = charts_insights.build(AppState(workspace), exam["data"], "other-template", "ja")
    assert "完了した評価がありません" in out[0] and out[1]["visible"] is False and out[4] == ""


# -- the Compare tab -------------------------------------------------------------------------

def test_cards_put_the_embarrassing_misses_first_with_a_badge(workspace, exam):
    state, dirs = AppState(workspace), [exam["A"], exam["B"], exam["C"]]
    html, count, _, _ = compare_view.render_view(state, dirs, False, False, "", 1, "ja")
    # Q1 (90% of examinees right, C missed it), then Q3 (80%, A and B missed it), then file order.
    assert re.findall(r'data-problem-id="([^"]+)"', html) == ["Q1", "Q3", "Q2", "Q4"]
    assert html.count('class="qexam miss"') == 2 and "⚠ 受験者の 90% が正解" in html
    assert "受験者正答率 30.5%" in html and "受験者の 35%" in html        # Q4's badge; Q2's choice b
    assert "2 問を先頭に表示" in count
    # The filters still apply, over the new order.
    html, count, _, _ = compare_view.render_view(state, dirs, False, False, "Q3", 1, "en")
    assert re.findall(r'data-problem-id="([^"]+)"', html) == ["Q3"] and "80% of examinees got this right" in html
    html, _, _, _ = compare_view.render_view(state, [exam["B"]], False, True, "", 1, "ja")
    assert re.findall(r'data-problem-id="([^"]+)"', html) == ["Q3", "Q4"]    # B's wrong answers, Q3 first


def test_flip_counts_with_mcnemar_beside_the_bootstrap(workspace, exam):
    state, dirs = AppState(workspace), [exam["A"], exam["B"], exam["C"]]
    a, b = compare_flips.pair_choices(state, dirs, None, None, "ja")
    assert a["value"] == f"0|{exam['A']}" and b["value"] == f"0|{exam['B']}"   # another checkpoint, same shots
    assert [label for label, _ in a["choices"]] == ["base · 0-shot", "base · 1-shot", "run@100 · 0-shot",
                                                    "published-C · 0-shot"]
    html, grid, _ = compare_flips.flip_view(state, dirs, f"0|{exam['A']}", f"0|{exam['C']}", "ja")
    cells = table_cells(html)
    # A right: Q1; C right: Q2, Q3. A only 1, C only 2, both 0, neither 1 (Q4).
    assert [cells[("A 正解", "B 正解")], cells[("A 正解", "B 誤答")], cells[("A 誤答", "B 正解")],
            cells[("A 誤答", "B 誤答")]] == ["0", "1", "2", "1"]
    # Exact McNemar on 1 vs 2: 2 × P(X ≤ 1 | n=3) = 2 × 4/8 = 1.
    assert "マクネマー検定（正確二項検定、入れ替わり 3 問）：p = 1.000" in html
    assert "差 B − A = +.250" in html and "正答率：A .250 → B .500（共通の問題 n=4）" in html
    assert list(grid["問題"]) == ["Q1", "Q2", "Q3"] and list(grid["入れ替わり"]) == ["A のみ正解", "B のみ正解", "B のみ正解"]
    assert list(grid["A：base · 0-shot"]) == ["✓", "✗", "✗"] and list(grid["B：published-C · 0-shot"]) == ["✗", "✓", "✓"]
    assert list(grid["base · 1-shot"]) == ["✓", "✓", "✓"] and list(grid["受験者正答率"]) == ["90%", "50%", "80%"]
    # One checkpoint 0-shot against its 1-shot: Q2, Q3, Q4 flip to right; 2 × 1/8 = 0.25.
    html, grid, _ = compare_flips.flip_view(state, dirs, f"0|{exam['A']}", f"1|{exam['A']}", "en")
    assert "McNemar&#x27;s test (exact binomial, 3 flipping questions): p = 0.250" in html and "+.750" in html
    assert list(grid["question"]) == ["Q2", "Q3", "Q4"]
    assert audit.entries(workspace.root)[-1]["object"] == "compare-flips"


def test_many_flips_use_the_chi_square_with_continuity_correction(workspace, tmp_path):
    a = record(workspace, tmp_path / "a", "a", [result_row(f"q{i}", 0, ["a"] if i < 10 else ["b"]) for i in range(40)])
    b = record(workspace, tmp_path / "b", "b", [result_row(f"q{i}", 0, ["b"] if i < 10 else ["a"]) for i in range(40)])
    html, grid, _ = compare_flips.flip_view(AppState(workspace), [a, b], f"0|{a}", f"0|{b}", "ja")
    # 10 right in A only, 30 in B only: X² = (|10 − 30| − 1)² / 40 = 9.025, p = erfc(√(X²/2)).
    p = math.erfc(math.sqrt(9.025 / 2))
    assert f"カイ二乗検定・連続性補正あり、χ² = 9.03、入れ替わり 40 問）：p = {p:.3f}" in html
    assert len(grid) == 40 and set(grid["分野"]) == {"–"}                    # no metadata: still a grid


def test_a_selected_row_opens_its_answer_cards(workspace, exam):
    state, dirs = AppState(workspace), [exam["A"], exam["B"]]
    _, grid, cards = compare_flips.flip_view(state, dirs, f"0|{exam['A']}", f"0|{exam['B']}", "ja")
    assert cards == "" and list(grid["問題"]) == ["Q2"]
    html = compare_flips.open_question(state, dirs, grid, "ja", SimpleNamespace(index=[0, 4], row_value=None))
    assert re.findall(r'data-problem-id="([^"]+)"', html) == ["Q2"]
    assert html.count('class="ans ') == 3                                    # base 0/1-shot, run@100 0-shot
    by_value = compare_flips.open_question(state, dirs, grid, "en", SimpleNamespace(index=[9, 9], row_value=["Q3"]))
    assert 'data-problem-id="Q3"' in by_value and "80% of examinees got this right" in by_value
    assert "Q9" in compare_flips.open_question(state, dirs, grid, "ja", SimpleNamespace(index=None, row_value=["Q9"]))


def test_the_pair_must_be_two_shown_settings(workspace, exam):
    state = AppState(workspace)
    assert "評価を選ぶと" in compare_flips.flip_view(state, [], None, None, "ja")[0]
    same = f"0|{exam['A']}"
    assert "同じ評価" in compare_flips.flip_view(state, [exam["A"]], same, same, "ja")[0]
    # One evaluation with two shot settings: B is its other setting.
    a, b = compare_flips.pair_choices(state, [exam["A"]], None, None, "ja")
    assert (a["value"], b["value"]) == (f"0|{exam['A']}", f"1|{exam['A']}")
    missing = compare_flips.flip_view(state, [exam["B"]], f"0|{exam['B']}", f"1|{exam['B']}", "ja")[0]
    assert 'class="notice error"' in missing and "1-shot の結果がありません" in missing


def test_the_grid_selection_reaches_the_handler_with_the_event_and_the_user(workspace):
    """Gradio hands ``open_question`` the select event and the request after its three inputs
    (``bind`` exposes the handler's type hints), and the Charts sections are wired to the filters."""
    import functools

    import gradio as gr
    from gradio.helpers import special_args

    from workbench import app
    demo = app.build_app(AppState(workspace=workspace))
    fns = [b for b in demo.fns.values() if isinstance(b.fn, functools.partial)]
    select = next(b for b in fns if b.fn.func is compare_flips.open_question)
    event = gr.SelectData(None, {"index": [0, 0], "value": "Q2", "row_value": ["Q2"]})
    args = special_args(select.fn, [0, 1, 2], request=gr.Request(username="dr-sato"), event_data=event)[0]
    assert args[:3] == [0, 1, 2] and args[3].row_value == ["Q2"] and isinstance(args[4], gr.Request)
    assert sum(1 for b in fns if b.fn.func is charts_insights.build) >= 4      # data, template, language, refresh …


def test_a_pair_follows_the_evaluations_shown(workspace, exam):
    state = AppState(workspace)
    a, b = compare_flips.pair_choices(state, [exam["A"]], None, None, "ja")
    # base 0-shot against its own 1-shot while it is alone; once run@100 is shown too, B is run@100.
    a, b = compare_flips.pair_choices(state, [exam["A"], exam["B"]], a["value"], b["value"], "ja")
    assert (a["value"], b["value"]) == (f"0|{exam['A']}", f"0|{exam['B']}")
    # A pair of two checkpoints chosen by the user stays while both are shown.
    a, b = compare_flips.pair_choices(state, [exam["A"], exam["B"], exam["C"]], f"0|{exam['C']}", f"1|{exam['A']}", "ja")
    assert (a["value"], b["value"]) == (f"0|{exam['C']}", f"1|{exam['A']}")
