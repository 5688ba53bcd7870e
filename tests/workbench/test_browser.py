"""The workbench in headless Chromium: every tab renders cleanly and offline, bad input gets
a clear message, and a full Compare → Charts flow works on two tiny checkpoints.

Screenshots land in tests/artifacts/ (look at them)."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TABS = [("データ", "data"), ("学習", "train"), ("比較", "compare"), ("グラフ", "charts")]


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(600)


def open_compare_form(p) -> None:
    """The evaluation form is folded while the workspace has results: unfold it."""
    if not p.locator("#compare-checkpoints").is_visible():
        p.locator("#compare-form").get_by_text("評価の設定").first.click()
        p.locator("#compare-checkpoints").wait_for(timeout=10_000)


def checkpoint(p, name: str):
    return p.locator(f'#compare-checkpoints input[name="{name}"]')


@pytest.mark.smoke
def test_every_tab_renders_without_console_errors_or_outbound_requests(page):
    p = page.page
    assert "JMedLoRA" in p.title()
    for label, slug in TABS:
        open_tab(p, label)
        page.shot(f"tab_{slug}")
    # The status line names the workspace and the default model's state.
    assert p.locator("#wb-status-inner").get_attribute("data-status") in ("ready", "preparing")
    assert page.errors == []
    assert page.outbound == []


def test_language_switch_relabels_the_tabs(page):
    p = page.page
    p.get_by_label("English").check()
    p.get_by_role("tab", name="Compare").wait_for(timeout=10_000)
    open_tab(p, "Compare")
    assert "Run / load evaluations" in p.locator("#compare-run").inner_text()
    page.shot("lang_en_compare")
    p.get_by_label("日本語").check()
    p.get_by_role("tab", name="比較").wait_for(timeout=10_000)
    assert page.errors == []


def test_bad_input_in_the_compare_form_shows_a_clear_message(page, app_workspace):
    p = page.page
    open_tab(p, "比較")
    open_compare_form(p)
    # No checkpoint chosen.
    checkpoint(p, "default").uncheck()
    p.locator("#compare-run").click()
    alert = p.locator("#compare-status .notice.error")
    alert.wait_for(timeout=10_000)
    assert "チェックポイントを1つ以上選んでください" in alert.inner_text()
    # A question file that does not exist: the engine's own problem and fix, in the page's Japanese.
    checkpoint(p, "default").check()
    missing = str(app_workspace.root / "nonexistent" / "questions.jsonl")
    data = p.locator("#compare-data input")
    data.fill(missing)
    data.press("Enter")
    p.locator("#compare-run").click()
    p.wait_for_function("document.querySelector('#compare-status').innerText.includes('がありません')",
                        timeout=10_000)
    text = p.locator("#compare-status").inner_text()
    assert missing in text and "IgakuQA" in text
    page.shot("compare_bad_input")
    # A file outside what a page may read (pipelines/core/page_paths.py): refused, in Japanese.
    data.fill("/etc/passwd")
    data.press("Enter")
    p.locator("#compare-run").click()
    p.wait_for_function("document.querySelector('#compare-status').innerText.includes('読めるフォルダ')",
                        timeout=10_000)
    assert "/etc/passwd" in p.locator("#compare-status").inner_text()
    page.shot("compare_outside_path")
    assert page.errors == []


def test_evaluate_two_checkpoints_side_by_side_then_charts(page):
    p = page.page
    open_tab(p, "比較")
    open_compare_form(p)
    checkpoint(p, "default").uncheck()
    checkpoint(p, "tiny-llama").check()
    checkpoint(p, "tiny-run@10").check()
    p.locator("#compare-limit input").fill("2")
    p.locator("#compare-max-new input").fill("8")
    p.locator("#compare-run").click()
    p.locator("#compare-status .runmon").first.wait_for(timeout=15_000)
    page.shot("compare_running")
    # Both runs finish and the side-by-side cards appear: 2 questions × 2 checkpoints × 2 shots.
    p.wait_for_function("document.querySelectorAll('#compare-cards .qcard').length == 2", timeout=180_000)
    first = p.locator("#compare-cards .qcard").first
    assert first.locator(".ans").count() == 4
    assert first.locator("li.correct").count() >= 1
    who = first.locator(".ans .who").all_inner_texts()
    assert any("tiny-llama · 0-shot" in w for w in who) and any("tiny-run@10 · 1-shot" in w for w in who)
    assert p.locator("#compare-status .runmon.finished").count() == 2
    p.get_by_text("実行されるコマンド").click()
    p.locator("#compare-command").wait_for(timeout=10_000)
    assert "jmedlora evaluate" in p.locator("#compare-command").inner_text()
    page.shot("compare_side_by_side")

    # Filter: a search that matches nothing, then clears.
    search = p.locator("#compare-search textarea, #compare-search input").first
    search.fill("存在しない語句xyz")
    search.press("Enter")
    p.wait_for_function("document.querySelectorAll('#compare-cards .qcard').length == 0", timeout=10_000)
    search.fill("")
    search.press("Enter")
    p.wait_for_function("document.querySelectorAll('#compare-cards .qcard').length == 2", timeout=10_000)

    # Blind review (the logged-in user, "local" without login): after one rating nothing per
    # checkpoint is visible yet.
    p.locator("#blind-accordion").get_by_text("ブラインド評価").first.click()
    p.locator("#blind-start").click()
    p.locator("#blind-card .qcard").first.wait_for(timeout=10_000)
    card_text = p.locator("#blind-card").inner_text()
    assert "tiny-llama" not in card_text and "tiny-run" not in card_text  # blind
    left = p.locator("#blind-card .blind-left").inner_text()
    p.locator("#blind-harmful").click()
    p.wait_for_function("(b) => document.querySelector('#blind-card').innerText.indexOf(b) < 0", arg=left,
                        timeout=10_000)
    assert not p.locator("#blind-summary").is_visible()
    page.shot("compare_blind_review")

    # Charts: Table 1 has a column per step of the tiny base model, and the step chart plots them.
    open_tab(p, "グラフ")
    p.wait_for_function("document.querySelector('#charts-table').innerText.includes('tiny-run · 10')",
                        timeout=20_000)
    table = p.locator("#charts-table").inner_text()
    assert "tiny-llama · 0" in table and "OpenCALM-7B · 1k" in table and "論文の公表値" in table
    p.locator("#charts-steps .js-plotly-plot").wait_for(timeout=20_000)
    legend = p.locator("#charts-steps").inner_text()
    assert "tiny-llama (0-shot)" in legend and "tiny-run (1-shot)" in legend
    page.shot("charts_after_eval")
    assert page.errors == []
    assert page.outbound == []


def js_count(p, selector: str) -> int:
    return p.evaluate(f"document.querySelectorAll({selector!r}).length")


def test_train_tab_rejects_bad_input_then_launches_a_tiny_run_with_a_moving_loss_curve(page):
    p = page.page
    open_tab(p, "学習")
    steps = p.locator("#train-steps input")
    steps.fill("0")
    p.locator("#train-launch").click()
    p.locator("#train-message .notice.error").wait_for(timeout=20_000)
    assert "「最大ステップ数」" in p.locator("#train-message").inner_text()      # the field, not max_steps

    steps.fill("3")
    p.locator("#train-save textarea, #train-save input").first.fill("3")
    p.locator("#train-run-name textarea, #train-run-name input").first.fill("ui-run")
    p.locator("#train-launch").click()
    p.locator("#train-message .notice.ok").wait_for(timeout=60_000)
    assert "jmedlora train --preset cpu-tiny-lora" in p.locator("#train-command").inner_text()
    # The loss curve gets points as the run logs steps, then the run finishes with checkpoints.
    try:
        p.wait_for_function("document.querySelectorAll('#train-curves .scatterlayer .trace:first-child .point')"
                            ".length >= 2", timeout=240_000, polling=1000)
    finally:
        page.shot("train_running")
    p.wait_for_function("document.querySelector('#train-progress').innerText.includes('完了')",
                        timeout=240_000, polling=1000)
    p.wait_for_function("document.querySelector('#train-ckpts').innerText.includes('ui-run@3')", timeout=20_000)
    assert "ui-run" in p.locator("#train-runs").inner_text()
    page.shot("train_finished")
    assert page.errors == []


def test_data_tab_imports_curates_edits_and_exports(page):
    p = page.page
    open_tab(p, "データ")
    p.locator("#data-scan").click()
    p.locator("#data-gen-msg .notice").wait_for(timeout=30_000)
    page.shot("data_privacy_scan")

    p.locator("#data-dataset textarea, #data-dataset input").first.fill("ui-demo")
    p.locator("#data-import").click()
    p.wait_for_function("document.querySelector('#data-gen-msg').innerText.includes('80')", timeout=20_000)
    # The new dataset is selected and listed.
    p.wait_for_function("document.querySelector('#data-count').innerText.includes('80')", timeout=20_000)
    first_question = "心不全とはどのような病態か説明してください。"
    p.locator("#data-table").get_by_text(first_question).first.wait_for(timeout=20_000)
    p.locator("#data-filters").click()
    p.locator("#data-rec-msg .notice.ok").wait_for(timeout=60_000)

    p.locator("#data-table").get_by_text(first_question).first.click()
    p.wait_for_function("document.querySelector('#data-edit-output textarea').value.length > 0", timeout=10_000)
    out = p.locator("#data-edit-output textarea")
    out.fill(out.input_value() + "（確認済み）")
    p.locator("#data-save").click()
    p.wait_for_function("document.querySelector('#data-history').innerText.includes('確認済み')", timeout=10_000)
    p.locator("#data-accept").click()
    p.wait_for_function("document.querySelector('#data-history').innerText.includes('採用')", timeout=10_000)
    p.locator("#data-export").click()
    p.locator("#data-export-msg .notice.ok").wait_for(timeout=30_000)
    page.shot("data_curated")
    assert page.errors == []
