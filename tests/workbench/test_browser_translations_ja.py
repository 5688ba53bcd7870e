"""The Data tab's translation review as a Japanese radiologist sees it (``?lang=ja``): a machine-
translated report file in the workspace's reports/ folder is offered when the tab opens; its lines
sit beside their English with the glossary's flags; a line opens with the missing term's required
rendering, is corrected and saved, and the table shows who corrected it. The screenshot lands in
tests/artifacts/translations_ja.png."""
from __future__ import annotations

import pytest

from pipelines.tasks import reports
from tests.pipelines.translated_reports import write_translated
from tests.workbench.conftest import ARTIFACTS, Watched
from tests.workbench.test_browser import open_tab

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_translation_review_in_japanese(browser, app_url, app_workspace):
    path = write_translated(app_workspace.subdir("reports") / "cxr-translated")
    ctx = browser.new_context(viewport={"width": 1400, "height": 1200}, locale="ja-JP")
    w = Watched(ctx.new_page())
    p = w.page
    p.goto(app_url + "?lang=ja")
    p.wait_for_selector("#tabs", timeout=30_000)
    open_tab(p, "データ")
    p.locator("#data-translations").get_by_text("4. 読影所見の翻訳確認").first.click()
    p.locator("#tr-open").click()
    p.wait_for_function("document.querySelector('#tr-count').innerText.includes('機械訳 3 行')", timeout=20_000)
    table = p.locator("#tr-table")
    assert "pleural effusion" in table.inner_text() and "fake-model" in table.inner_text()
    table.get_by_text("軽度の心拡大を認める。", exact=True).filter(visible=True).first.click()
    p.wait_for_function("document.querySelector('#tr-en textarea').value.includes('Mild cardiomegaly')",
                        timeout=15_000)
    assert "pleural effusion → 胸水" in p.locator("#tr-notes").inner_text()
    p.locator("#tr-ja textarea").fill("軽度の心拡大を認める。胸水なし。")
    p.locator("#tr-save").click()
    p.wait_for_function("document.querySelector('#tr-msg').innerText.includes('r1 の修正を保存しました')",
                        timeout=15_000)
    p.wait_for_function("document.querySelector('#tr-count').innerText.includes('修正済み 1 行')", timeout=15_000)
    assert "用語集の指摘はありません" in p.locator("#tr-notes").inner_text()
    assert {s.id: s for s in reports.load_reports(path)}["r1"].findings_ja == "軽度の心拡大を認める。胸水なし。"
    p.locator("#data-translations").screenshot(path=str(ARTIFACTS / "translations_ja.png"))
    assert w.errors == [] and w.outbound == []
    ctx.close()
