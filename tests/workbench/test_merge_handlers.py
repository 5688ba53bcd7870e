"""Merge tab handlers, called directly (no browser): refusals as notices, the chart and table
from a merge folder, the refs handed to the Compare tab."""
from __future__ import annotations

import dataclasses
import json
import re

from pipelines.merging.evolve import MergeConfig
from pipelines.merging.search import append_candidate
from workbench import tab_merge
from workbench.state import AppState

FORM = (["a@1", "a@2"], "", "linear", tab_merge.SAMPLE, "", 0.3, "ll_accuracy", 2)


def test_the_command_shown_is_the_one_started(workspace):
    line = tab_merge.command_preview(AppState(workspace=workspace), *FORM, out="/tmp/m")
    assert line.startswith("jmedlora merge --inputs a@1 a@2 --dev ")
    assert "--budget 2 --out /tmp/m" in line and "--workspace" not in line


def test_a_missing_dev_set_is_a_notice_with_its_fix_and_no_job(workspace):
    form = list(FORM)
    form[3] = ""
    html, out, command = tab_merge.start(AppState(workspace=workspace), "en", *form)
    assert 'class="notice error"' in html and "No dev set" in html and "Fix" in html
    assert out == "" and command == ""
    assert not list(workspace.subdir("merges").iterdir())
    html, _, _ = tab_merge.start(AppState(workspace=workspace), "ja", *form)
    assert "開発セットが指定されていません" in html and "「開発セット（IgakuQA 形式 JSONL）」に" in html and "Fix" not in html


def test_poll_draws_candidates_and_the_final_table(workspace, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    config = MergeConfig(inputs=("a@1", "a@2"), dev="d.jsonl", out=str(out))
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    for i, (gen, score) in enumerate([(0, 0.4), (0, 0.5), (1, 0.45), (1, 0.6)]):
        append_candidate(out / "candidates.jsonl", {"i": i, "generation": gen, "score": score})
    status, fig, table, verdict = tab_merge.poll(AppState(workspace=workspace), "en", str(out))
    assert "candidates 4/4" in status and "0.600" in status
    assert list(fig.data[0].y) == [0.4, 0.5, 0.45, 0.6] and list(fig.data[1].y) == [0.4, 0.5, 0.5, 0.6]
    assert table.empty and verdict == ""

    ci = {"mean": 0.5, "ci_low": 0.3, "ci_high": 0.7}
    report = {"metric": "ll_accuracy", "registered_as": "merge-1", "verdict": "The merge is NOT better than a@2.",
              "rows": [{"role": "input 1", "model": "a@1", "dev": 0.4, "test": ci},
                       {"role": "merge", "model": str(out / "model"), "dev": 0.6, "test": ci}]}
    (out / "report.json").write_text(json.dumps(report))
    _, _, table, verdict = tab_merge.poll(AppState(workspace=workspace), "en", str(out))
    assert list(table["role"]) == ["input 1", "merge"] and list(table["ci_low"]) == [0.3, 0.3]
    assert "NOT better" in verdict and "merge-1" in verdict

    # In Japanese: headers, roles, chart words and the verdict (from its code; the text is English).
    report.update(verdict_code="not_better", best_input="a@1",
                  paired_vs_best_input={"diff": -0.05, "ci_low": -0.2, "ci_high": 0.1, "n": 12})
    (out / "report.json").write_text(json.dumps(report))
    _, fig, table, verdict = tab_merge.poll(AppState(workspace=workspace), "ja", str(out))
    assert list(table.columns)[:2] == ["役割", "モデル"] and list(table["役割"]) == ["入力 1", "マージ"]
    assert "良いとは言えません" in verdict and "n=12" in verdict and "NOT" not in verdict
    assert fig.layout.title.text == "マージ探索" and fig.layout.xaxis.title.text.startswith("世代")
    assert [t.name for t in fig.data] == ["候補", "これまでの最良"] and "世代" in fig.data[0].hovertemplate
    assert tuple(fig.layout.yaxis.range) == (0, 1.04)        # scores in 0..1 on the whole 0..1 scale
    assert tab_merge.stop_button(str(out))["interactive"] is False and tab_merge.stop_button("")["interactive"] is False

    workspace.register_model("a@1", "adapter", str(tmp_path), base_model="b")
    workspace.register_model("merge-1", "adapter", str(out / "model"), base_model="b")
    html, update = tab_merge.open_in_compare(AppState(workspace=workspace), "en", str(out))
    assert update["value"] == ["merge-1", "a@1"]            # a@2 is not in the registry: not offered
    assert "merge-1, a@1" in html


def test_open_in_compare_before_the_merge_finished_says_so(workspace, tmp_path):
    html, _ = tab_merge.open_in_compare(AppState(workspace=workspace, lang="en"), "en", str(tmp_path))
    assert "has not finished" in html


def test_estimate_times_the_real_inputs_and_leaves_no_folder(workspace, tiny_llama_dir, tmp_path):
    from tests.pipelines.test_merge import make_adapter, small_questions
    workspace.register_model("tiny", "base", str(tiny_llama_dir), step=0)
    for seed in (1, 2):
        path = make_adapter(tiny_llama_dir, tmp_path / f"a{seed}", seed=seed)
        workspace.register_model(f"r@{seed}", "adapter", str(path), base_model="tiny", step=seed)
    dev = small_questions(workspace.root / "dev.jsonl", 4)          # a page reads inside the workspace
    html = tab_merge.estimate(AppState(workspace=workspace), "en", ["r@1", "r@2"], "", "linear", str(dev), "",
                              0.5, "ll_accuracy", 3)
    assert 'class="notice info"' in html and "Estimate: 5 candidates × " in html and "s per candidate" in html
    assert not list(workspace.subdir("merges").iterdir())


def test_the_command_box_shows_the_loaded_merge_and_resume_follows_its_state(tmp_path):
    from pipelines.core import jobs
    out = tmp_path / "m"
    assert tab_merge.loaded_command(str(out)) is None and tab_merge.loaded_command("") is None
    assert tab_merge.resume_button(str(out))["interactive"] is False
    out.mkdir()
    config = MergeConfig(inputs=("a@1", "a@2"), dev="d.jsonl", budget=3, out=str(out))
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    # Run from a terminal (no job status): its own settings, not the form's.
    assert tab_merge.loaded_command(str(out)).startswith("jmedlora merge --inputs a@1 a@2 --dev d.jsonl")
    assert "--budget 3" in tab_merge.loaded_command(str(out))
    assert tab_merge.resume_button(str(out))["interactive"] is True          # stopped part-way
    status = {"status": "stopped", "cli": "jmedlora merge --resume " + str(out), "pid": None}
    (out / "status.json").write_text(json.dumps(status))
    assert tab_merge.loaded_command(str(out)) == status["cli"]
    assert tab_merge.resume_button(str(out))["interactive"] is True
    (out / "status.json").write_text(json.dumps({**status, "status": "finished"}))
    assert jobs.status(out)["status"] == "finished" and tab_merge.resume_button(str(out))["interactive"] is False
    (out / "status.json").unlink()
    (out / "report.json").write_text("{}")                                  # finished from a terminal
    assert tab_merge.resume_button(str(out))["interactive"] is False


def test_method_names_carry_a_japanese_gloss_on_the_japanese_page():
    ja, en = dict(tab_merge.method_choices("ja")), dict(tab_merge.method_choices("en"))
    assert set(ja.values()) == set(en.values()) == set(tab_merge.METHODS)
    assert all(label == value for label, value in en.items())
    for label, value in ja.items():
        assert label.startswith(value + "（") and re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", label), label
