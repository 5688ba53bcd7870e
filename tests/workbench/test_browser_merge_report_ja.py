"""The Merge tab's image-report merge as a Japanese clinician sees it (``locale="ja-JP"``,
``?lang=ja``), on a fake finished report merge written straight into the workspace (no model
runs): the form switched to image reports (the VLM hint, the report sample as dev set, JRadiEvo's
method, the objective in place of the exam metric), the candidate chart, the test table with
intervals, the verdict saying plainly that the merge is not better, and "open in the Reports
view" showing both test evaluations there. The screenshot lands in tests/artifacts/merge_report_ja.png.
"""
from __future__ import annotations

import pytest

from tests.workbench.conftest import ARTIFACTS, Watched
from tests.workbench.fake_report_merge import write_report_merge
from tests.workbench.test_browser import open_tab
from tests.workbench.test_browser_compare_ja import english_words
from tests.workbench.test_browser_more import choose, fill_text, text_of
from tests.workbench.test_browser_reports_ja import REPORT_NAMES

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Names shown as data: the merge's and methods' names, metric names as published, the sample file.
NAMES = REPORT_NAMES | {"merge", "jradievo", "cma", "es", "jsonl"}


@pytest.fixture(scope="module")
def report_merge(app_workspace, tmp_path_factory):
    out = app_workspace.root / "merges" / "cxr-fake"
    # A VLM to choose first (the Merge tab only lists it; nothing loads it here).
    app_workspace.register_model("demo-vlm", "vision", str(app_workspace.root / "models" / "demo-vlm"), step=0)
    report = write_report_merge(app_workspace, out, tmp_path_factory.mktemp("merge_reports"))
    return out, report


def is_visible(p, elem_id: str) -> bool:
    return p.locator(f"#{elem_id}").is_visible()


def test_a_report_merge_in_japanese_from_the_form_to_the_reports_view(browser, app_url, report_merge):
    out, report = report_merge
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="ja-JP")
    w = Watched(ctx.new_page())
    p = w.page
    p.goto(app_url + "?lang=ja")
    p.wait_for_selector("#tabs", timeout=30_000)
    open_tab(p, "マージ")
    assert is_visible(p, "merge-metric") and not is_visible(p, "merge-objective")
    p.locator("#merge-task").get_by_text("画像レポート").click()
    p.wait_for_function("['--task report', '--method jradievo', 'assets/reports/sample_ja.jsonl'].every("
                        "(s) => document.querySelector('#merge-command').innerText.includes(s))", timeout=15_000)
    assert not is_visible(p, "merge-metric") and is_visible(p, "merge-objective") and is_visible(p, "merge-max-tokens")
    inputs = text_of(p, "#merge-inputs")
    assert "画像言語モデル" in inputs and "例：demo-vlm" in inputs
    assert "所見レポート" in text_of(p, "#merge-dev")
    choose(p, "merge-inputs", "demo-vlm · step 0")                  # offered for reports, first
    choose(p, "merge-inputs", "tiny-llama · step 0")
    p.keyboard.press("Escape")
    p.wait_for_function("document.querySelector('#merge-command').innerText.includes('--inputs demo-vlm tiny-llama')",
                        timeout=15_000)

    # The finished merge: the chart, the table with intervals, the verdict.
    fill_text(p, "merge-out", str(out))
    p.keyboard.press("Tab")
    p.wait_for_function("document.querySelector('#merge-verdict').innerText.includes('merge-7')", timeout=30_000)
    p.wait_for_function("document.querySelectorAll('#merge-chart .scatterlayer .point').length == 5", timeout=15_000)
    assert "完了" in text_of(p, "#merge-status") and "候補 5/5" in text_of(p, "#merge-status")
    assert "開発セットの ROUGE-L" in text_of(p, "#merge-chart")
    table = text_of(p, "#merge-table")
    for word in ("画像言語モデル（demo-vlm）", "マージ（merge-7）", "所見 F1（マイクロ平均）", "METEOR（完全一致）", "["):
        assert word in table, word
    verdict = text_of(p, "#merge-verdict")
    assert "良いとは言えません" in verdict and "n=6" in verdict
    assert is_visible(p, "merge-open-reports") and not is_visible(p, "merge-open-compare")
    p.locator("#tab-merge").screenshot(path=str(ARTIFACTS / "merge_report_ja.png"))
    assert {w for w in english_words(p, "#tab-merge") if w.lower() not in NAMES} == set()

    # Open in the Reports view: the tab switches, both test evaluations chosen and drawn.
    p.locator("#merge-open-reports").click()
    p.wait_for_function("document.querySelectorAll('#reports-side .rv-card').length == 3", timeout=30_000)
    assert p.locator("#tab-reports").is_visible() and not p.locator("#tab-merge").is_visible()
    chosen = p.locator("#reports-shown .token").all_inner_texts()
    assert len(chosen) == 2 and chosen[0].startswith("demo-vlm · ") and chosen[1].startswith("merge-7 · ")
    assert "merge-7 − demo-vlm" in text_of(p, "#reports-comparison")
    p.locator("#tab-reports").screenshot(path=str(ARTIFACTS / "merge_report_ja_reports.png"))

    # The language switch relabels the report form's own fields too (they follow the task, not ``t``).
    open_tab(p, "マージ")
    p.get_by_label("English").check()
    p.wait_for_function("document.querySelector('#merge-inputs').innerText.includes('the vision-language model "
                        "first')", timeout=15_000)
    # The verdict is the timer's to redraw (every 2 s, in the language state), not the switch's.
    p.wait_for_function("document.querySelector('#merge-verdict').innerText.includes('NOT better')", timeout=15_000)
    assert "Dev set (report JSONL)" in text_of(p, "#merge-dev")
    p.wait_for_function("document.querySelector('#merge-objective input').value.startsWith('ROUGE-L (JRadiEvo')",
                        timeout=15_000)
    # Back to exams: the hint goes, the exam metric and sample questions come back.
    p.locator("#merge-task").get_by_text("Exam questions").click()
    p.wait_for_function("!document.querySelector('#merge-inputs').innerText.includes('demo-vlm, then')", timeout=15_000)
    p.wait_for_function("document.querySelector('#merge-command').innerText.includes('assets/questions/')",
                        timeout=15_000)
    assert is_visible(p, "merge-metric") and not is_visible(p, "merge-objective")
    assert w.errors == [] and w.outbound == []
    ctx.close()
