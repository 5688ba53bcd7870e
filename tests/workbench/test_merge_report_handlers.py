"""The Merge tab's image-report merges, handlers called directly (no browser): words complete in
both languages, the form switched to reports and the config it makes, the chart, test table and
verdict of a fake finished report merge, and "open in the Reports view" with its two evaluations."""
from __future__ import annotations

import json
import re
import string

import pytest

from pipelines.core.workspace import Workspace
from pipelines.merging.evolve import MergeConfig
from tests.workbench.fake_report_merge import write_report_merge
from workbench import merge_report, merge_text, tab_merge
from workbench.state import AppState

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
REPORT_FORM = (["demo-vlm", "llm-a"], "llm-base", "jradievo", merge_report.SAMPLE_REPORTS, "", 0.5, "ll_accuracy", 4,
               "report", "loglik", 64)


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_word_is_in_japanese_and_english_with_the_same_placeholders():
    tables = {name: value for name, value in vars(merge_text).items() if name.isupper() and isinstance(value, dict)}
    assert {"L", "REPORT_FIELDS", "TASKS", "OBJECTIVES", "AXIS", "REPORT_COLS", "REPORT_VERDICT", "MSG"} <= set(tables)
    chart = tables.pop("CHART")
    assert set(chart["ja"]) == set(chart["en"])
    tables["CHART"] = {k: {lg: chart[lg][k] for lg in ("ja", "en")} for k in chart["ja"]}
    del tables["METHOD_JA"]                    # Japanese glosses only: the English page shows the bare names
    for name, table in tables.items():
        for key, text in table.items():
            assert set(text) == {"ja", "en"}, f"{name}[{key!r}]"
            assert text["ja"].strip() and text["en"].strip(), f"{name}[{key!r}]"
            assert JAPANESE.search(text["ja"]), f"{name}[{key!r}] ja has no Japanese"
            assert _fields(text["ja"]) == _fields(text["en"]), f"{name}[{key!r}]"
    assert set(merge_text.REPORT_VERDICT) == {"better", "not_better", "no_merge_found"}


def test_the_report_form_makes_a_report_merge_and_the_exam_form_ignores_the_report_fields(workspace):
    state = AppState(workspace=workspace)
    config = tab_merge.config_from_form(state, *REPORT_FORM, out="/tmp/cxr")
    assert (config.task, config.objective, config.max_new_tokens, config.method) == ("report", "loglik", 64, "jradievo")
    assert config.metric == MergeConfig().metric                   # the hidden exam metric is not taken
    line = tab_merge.command_preview(state, *REPORT_FORM, out="/tmp/cxr")
    assert line.startswith("jmedlora merge --inputs demo-vlm llm-a --base llm-base --method jradievo --task report")
    assert "--objective loglik" in line and "--max-new-tokens 64" in line and "--metric" not in line
    exam = list(REPORT_FORM)
    exam[8] = "exam"
    line = tab_merge.command_preview(state, *exam, out="/tmp/m")
    assert "--task" not in line and "--objective" not in line and "--max-new-tokens" not in line
    # The defaults (ROUGE-L, 256 tokens) are not spelled out.
    line = tab_merge.command_preview(state, *REPORT_FORM[:9], "rouge_l", 256, out="/tmp/cxr")
    assert "--task report" in line and "--objective" not in line and "--max-new-tokens" not in line


def test_a_report_merge_refuses_report_files_and_model_paths_outside_the_readable_folders(workspace, tmp_path):
    outside = tmp_path / "elsewhere" / "dev.jsonl"
    outside.parent.mkdir()
    outside.write_text("{}\n")
    form = list(REPORT_FORM)
    form[3] = str(outside)
    html, out, _ = tab_merge.start(AppState(workspace=workspace), "ja", *form)
    assert "この画面から読めるフォルダ" in html and "所見ファイル" in html and out == ""
    form = list(REPORT_FORM)
    form[0] = [str(tmp_path / "elsewhere" / "vlm"), "llm-a"]
    html, out, _ = tab_merge.start(AppState(workspace=workspace), "en", *form)
    assert "outside the folders this page may read" in html and "model weights" in html and out == ""
    assert not list(workspace.subdir("merges").iterdir())


def test_switching_the_form_to_reports_and_back(workspace, tmp_path):
    workspace.register_model("demo-vlm", "vision", str(tmp_path / "vlm"), step=0)
    workspace.register_model("llm-a", "base", str(tmp_path / "a"), step=0)
    workspace.register_model("run@5", "adapter", str(tmp_path / "r"), base_model="llm-a", step=5)
    state = AppState(workspace=workspace)
    inputs, base, dev, test, method, metric, objective, tokens = merge_report.switch_task(
        state, "report", "ja", merge_report.SAMPLE_QUESTIONS, "linear", ["run@5"])
    assert [ref for _, ref in inputs["choices"]] == ["demo-vlm", "default", "llm-a"]   # the VLM first, no adapter
    assert inputs["value"] == [] and "demo-vlm" in inputs["info"] and "画像言語モデル" in inputs["label"]
    assert dev["value"] == merge_report.SAMPLE_REPORTS and "所見レポート" in dev["label"] and "所見レポート" in test["label"]
    assert method["value"] == "jradievo"
    assert (metric["visible"], objective["visible"], tokens["visible"]) == (False, True, True)
    inputs, _, dev, _, method, metric, objective, _ = merge_report.switch_task(
        state, "exam", "en", merge_report.SAMPLE_REPORTS, "jradievo", ["demo-vlm"])
    assert "run@5" in [ref for _, ref in inputs["choices"]] and inputs["info"] == merge_text.INPUTS_HINT["exam"]["en"]
    assert inputs["label"] == merge_text.L["inputs"]["en"] and dev["value"] == merge_report.SAMPLE_QUESTIONS
    assert method["value"] == "linear" and (metric["visible"], objective["visible"]) == (True, False)
    # A file the user typed stays; a method the user chose for exams stays.
    _, _, dev, _, method, *_ = merge_report.switch_task(state, "exam", "en", "/data/mine.jsonl", "ties", [])
    assert "value" not in dev and method["value"] == "ties"


def test_report_table_cells_are_mean_and_interval_and_the_difference_with_its_own():
    report = {"registered_as": "merge-3",
              "table": {"vlm": {"rouge_l": {"mean": 0.25, "ci_low": 0.2, "ci_high": 0.3},
                                "bleu4": {"mean": None, "ci_low": None, "ci_high": None}},
                        "merge": {"rouge_l": {"mean": 0.2, "ci_low": 0.125, "ci_high": 0.275},
                                  "bleu4": {"mean": 0.0625, "ci_low": 0.0, "ci_high": 0.125}}},
              "paired_vs_vlm": {"rouge_l": {"n": 6, "diff": -0.05, "ci_low": -0.1, "ci_high": 0.01,
                                            "p_bootstrap": 0.2},
                                "bleu4": {"n": 6, "diff": None, "ci_low": None, "ci_high": None, "p_bootstrap": None}}}
    frame = merge_report.report_table(report, "demo-vlm", "ja")
    assert list(frame.columns) == ["指標", "画像言語モデル（demo-vlm）", "マージ（merge-3）", "差：マージ − 画像言語モデル"]
    assert frame.values.tolist() == [["BLEU-4", "–", "0.062 [0.000, 0.125]", "–"],
                                     ["ROUGE-L", "0.250 [0.200, 0.300]", "0.200 [0.125, 0.275]",
                                      "-0.050 [-0.100, +0.010] p=0.200"]]
    assert list(merge_report.report_table(report, "demo-vlm", "en").columns)[1:3] == ["VLM (demo-vlm)",
                                                                                     "merge (merge-3)"]


@pytest.mark.parametrize("code, ja, en", [
    ("better", "より良い結果です：ROUGE-L の差 +0.040［95%信頼区間 +0.010〜+0.070］、n=6。", "is better than the VLM"),
    ("not_better", "より良いとは言えません：ROUGE-L の差 +0.040［95%信頼区間 +0.010〜+0.070］、n=6。差は誤差の範囲内です。",
     "is NOT better than the VLM"),
    ("no_merge_found", "上回るマージが見つからず", "The merge is not better."),
])
def test_the_report_verdict_is_said_from_its_code(code, ja, en):
    report = {"registered_as": "merge-3", "metric": "rouge_l", "verdict_code": code, "verdict": "English text",
              "paired_vs_vlm": {"rouge_l": {"n": 6, "diff": 0.04, "ci_low": 0.01, "ci_high": 0.07}}}
    said = merge_report.report_verdict(report, "demo-vlm", "ja")
    assert said.startswith("**merge-3**：") and ja in said and "demo-vlm" in said and "English" not in said
    assert en in merge_report.report_verdict(report, "demo-vlm", "en")
    # A difference against the merge, its interval across zero: noise or against it.
    report["paired_vs_vlm"]["rouge_l"].update(diff=-0.01, ci_low=-0.04, ci_high=0.02)
    if code == "not_better":
        assert merge_report.report_verdict(report, "demo-vlm", "ja").endswith("差は誤差の範囲内か、マージに不利です。")
    report["verdict_code"] = "from-the-future"
    assert merge_report.report_verdict(report, "demo-vlm", "ja").endswith("English text")


def test_poll_of_a_finished_report_merge_draws_its_chart_table_and_verdict(workspace, tmp_path):
    out = tmp_path / "cxr"
    report = write_report_merge(workspace, out, tmp_path / "data")
    assert report["verdict_code"] == "not_better"                  # the merge wrote the weak reports
    status, fig, table, verdict = tab_merge.poll(AppState(workspace=workspace), "ja", str(out))
    assert "完了" in status and "候補 5/5" in status and "0.305" in status
    assert list(fig.data[0].y) == [0.21, 0.18, 0.26, 0.24, 0.305] and list(fig.data[1].y) == [0.21, 0.21, 0.26, 0.26,
                                                                                              0.305]
    assert fig.layout.yaxis.title.text == "開発セットの ROUGE-L（生成した所見）"
    assert list(table["指標"]) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR（完全一致）", "ROUGE-L",
                                  "所見 F1（マイクロ平均）", "所見 F1（マクロ平均）"]
    rouge = table.set_index("指標").loc["ROUGE-L"]
    vlm, merged = report["table"]["vlm"]["rouge_l"], report["table"]["merge"]["rouge_l"]
    assert rouge["画像言語モデル（demo-vlm）"] == f"{vlm['mean']:.3f} [{vlm['ci_low']:.3f}, {vlm['ci_high']:.3f}]"
    assert rouge["マージ（merge-7）"].startswith(f"{merged['mean']:.3f} [")
    assert rouge["差：マージ − 画像言語モデル"].startswith("-") and "p" in rouge["差：マージ − 画像言語モデル"]
    assert "**merge-7**：" in verdict and "良いとは言えません" in verdict
    assert verdict.endswith("95%信頼区間がすべて 0 未満で、マージのほうが悪い結果です。")    # ROUGE-L CI below 0
    _, fig, table, verdict = tab_merge.poll(AppState(workspace=workspace), "en", str(out))
    assert "NOT better than the VLM (demo-vlm)" in verdict and "ROUGE-L" in list(table["metric"])
    # The objective names the axis; the loaded merge decides which open button shows.
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "objective": "loglik"}))
    assert tab_merge.poll(AppState(workspace=workspace), "ja", str(out))[1].layout.yaxis.title.text.startswith(
        "参照所見の対数尤度")
    compare, reports = merge_report.buttons(str(out), "exam")
    assert (compare["visible"], reports["visible"]) == (False, True)
    compare, reports = merge_report.buttons("", "exam")
    assert (compare["visible"], reports["visible"]) == (True, False)


def test_open_in_reports_chooses_the_two_test_evaluations_and_shows_the_tab(workspace, tmp_path):
    out = tmp_path / "cxr"
    state = AppState(workspace=workspace)
    html, shown, tabs = merge_report.open_in_reports(state, "ja", str(out))
    assert "まだ終わっていません" in html and shown == {"__type__": "update"} and tabs == {"__type__": "update"}
    write_report_merge(workspace, out, tmp_path / "data", merge_better=True)
    html, shown, tabs = merge_report.open_in_reports(state, "ja", str(out))
    expected = [str((out / "test" / "vlm").resolve()), str((out / "test" / "merge").resolve())]
    assert shown["value"] == expected and set(expected) <= {d for _, d in shown["choices"]}
    assert tabs["selected"] == "reports" and 'class="notice ok"' in html and "レポート画面" in html
    # The merge's evaluation ran on OUT/model before the merge was registered: listed by its name.
    labels = dict((d, label) for label, d in shown["choices"])
    assert labels[expected[1]].startswith("merge-7 · sample_ja.jsonl · n=6") and labels[expected[0]].startswith("demo")
    # A report merge's VLM is no exam-merge input.
    assert "merge-7" not in {ref for _, ref in merge_report.input_choices(state, "exam")}
    assert "merge-7" in {ref for _, ref in merge_report.input_choices(state, "report")}
    # The Compare tab is for exam merges: a report merge says where it is compared.
    html, _ = tab_merge.open_in_compare(state, "ja", str(out))
    assert "レポート画面で開く" in html
    # A merge run with another workspace: its evaluations are not in this one's list.
    other = AppState(workspace=Workspace.resolve(tmp_path / "other-ws"))
    html, shown, _ = merge_report.open_in_reports(other, "en", str(out))
    assert "not in this workspace&#x27;s list" in html and shown == {"__type__": "update"}


def test_open_in_reports_of_an_exam_merge_points_to_compare(workspace, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"metric": "ll_accuracy", "rows": [], "registered_as": "merge-1"}))
    html, _, _ = merge_report.open_in_reports(AppState(workspace=workspace), "ja", str(out))
    assert "試験問題のマージです" in html


@pytest.mark.slow                 # loads a tiny VLM and two Llamas, generates on two reports
def test_estimate_of_a_report_merge_counts_reports(workspace, tiny_vlm_dir, tiny_llama_dir, tmp_path):
    from tests.pipelines.test_merge import perturbed_copy
    workspace.register_model("tiny-vlm", "vision", str(tiny_vlm_dir), step=0)
    workspace.register_model("tiny-base", "base", str(tiny_llama_dir), step=0)
    workspace.register_model("tiny-med", "base", str(perturbed_copy(tiny_llama_dir, tmp_path / "med", seed=11)), step=0)
    form = (["tiny-vlm", "tiny-med"], "tiny-base", "jradievo", merge_report.SAMPLE_REPORTS, "", 0.5, "ll_accuracy", 3,
            "report", "rouge_l", 8)     # the tiny tower's context (256) is too short for loglik
    html = tab_merge.estimate(AppState(workspace=workspace), "ja", *form)
    assert 'class="notice info"' in html and "見積もり：4 候補 × 開発 3 件のレポート" in html, html
    assert not list(workspace.subdir("merges").iterdir())


def test_a_merged_vlm_is_not_offered_as_an_exam_checkpoint(workspace, tmp_path):
    from workbench.state import AppState
    workspace.register_model("merge-vlm", "merged", str(tmp_path / "vlm"), meta={"task": "report"})
    workspace.register_model("merge-text", "merged", str(tmp_path / "text"), meta={"method": "ties"})
    offered = [ref for _, ref in AppState(workspace).model_choices()]
    assert "merge-text" in offered and "merge-vlm" not in offered
