"""The Merge tab in headless Chromium: two tiny adapters of the tiny Llama merged on a few
questions from the page; the chart fills as candidates are scored, then the test table and the
verdict appear, and the merge is selected beside its inputs in the Compare tab.

Screenshots land in tests/artifacts/ (look at them)."""
from __future__ import annotations

import pytest

from tests.pipelines.test_merge import make_adapter, small_questions
from tests.workbench.test_browser import open_compare_form, open_tab
from tests.workbench.test_browser_more import checkpoint, choose, fill_text, text_of

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_merge_runs_from_the_page_to_its_test_table(page, app_workspace, tiny_llama_dir, tmp_path):
    second = make_adapter(tiny_llama_dir, app_workspace.root / "adapters" / "tiny-run-20", seed=2)
    app_workspace.register_model("tiny-run@20", "adapter", str(second), base_model="tiny-llama", step=20,
                                 run_id="tiny-run")
    p = page.page
    open_tab(p, "マージ")                                      # opening the tab re-reads the registry
    choose(p, "merge-inputs", "tiny-run@10")
    choose(p, "merge-inputs", "tiny-run@20")
    fill_text(p, "merge-dev", str(small_questions(tmp_path / "dev.jsonl", 4)))
    fill_text(p, "merge-fraction", "0.5")
    fill_text(p, "merge-budget", "2")
    p.keyboard.press("Tab")
    p.locator("#merge-start").click()
    p.wait_for_function("document.querySelector('#merge-command').innerText.includes('--budget 2')", timeout=60_000)
    assert "--inputs tiny-run@10 tiny-run@20" in text_of(p, "#merge-command")

    # Two inputs alone, then two search candidates: the chart has points before the end.
    p.wait_for_function("document.querySelectorAll('#merge-chart .scatterlayer .point').length >= 2",
                        timeout=300_000)
    p.wait_for_function("document.querySelector('#merge-verdict').innerText.includes('merge-')", timeout=300_000)
    page.shot("merge-finished")
    assert "4/4" in text_of(p, "#merge-status")
    table = text_of(p, "#merge-table")
    for role in ("ベース", "入力 1", "入力 2", "マージ"):       # the page is in Japanese
        assert role in table
    assert "良" in text_of(p, "#merge-verdict")      # 良い結果 / 良いとは言えません / 良くなっていません

    p.locator("#merge-open-compare").click()
    p.wait_for_function("document.querySelector('#merge-notice').innerText.includes('tiny-run@20')", timeout=30_000)
    open_tab(p, "比較")
    open_compare_form(p)              # folded while the workspace holds results
    assert checkpoint(p, "tiny-run@10").is_checked() and checkpoint(p, "tiny-run@20").is_checked()
    assert not page.errors, page.errors
    assert not page.outbound, page.outbound
