"""The Compare and Charts tabs as a Japanese clinician sees them (``locale="ja-JP"``,
``?lang=ja``), on evaluation results written straight into the workspace (no model runs):
a nonsense answer carries a weak-match badge, Table 1 shows n and intervals, the blind review
shows no summary until the batch is rated through, the CSV starts with a BOM, and no English
word is visible outside a short allow-list of names. Screenshots (PNG) land in tests/artifacts/.
"""
from __future__ import annotations

import re

import pytest

from pipelines.evaluation.evaluator import EvalConfig
from pipelines.tasks.igakuqa import load_questions
from tests.workbench.conftest import ARTIFACTS
from tests.workbench.fake_results import record, result_row
from tests.workbench.test_browser import open_tab
from tests.workbench.test_browser_ja import RAW_KEY

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Names, not words of the interface: methods and formats, and the data shown (model, run and file names).
ALLOWED = {"lora", "qlora", "jsonl", "gestalt", "csv", "id", "shot", "igakuqa", "png", "ll", "tok", "pt",
           "default", "tiny", "llama", "run", "ja", "sample", "jmw", "paper", "opencalm", "medcalm", "chatgpt",
           "table", "step", "k", "n", "b", "a", "c", "d", "e", "s", "utf", "bom", "excel",
           "p",            # a p-value, as Japanese papers write it (the flip section's McNemar line)
           "gpt", "api"}   # GPT-4 and "API キー" in the import section's title: names, written so in Japanese


@pytest.fixture(scope="module")
def ja_results(app_workspace, tmp_path_factory):
    """Two evaluations of the sample questions: one answering nonsense, one answering well."""
    data = EvalConfig().data
    qs = load_questions(data, limit=2).questions
    out = tmp_path_factory.mktemp("ja_evals")
    nonsense = [result_row(q.problem_id, 0, [q.answer[0]], correct=q.answer[0], response="あいうえお、かきくけこ",
                           sims={letter: 0.03 for letter in "abcde"} | {q.answer[0]: 0.05}) for q in qs]
    good = [result_row(q.problem_id, 0, [q.answer[0]], correct=q.answer[0], response=q.choices[0],
                       sims={letter: 0.1 for letter in "abcde"} | {q.answer[0]: 0.95}) for q in qs]
    return [record(app_workspace, out / "babble", "tiny-llama", nonsense, data=data),
            record(app_workspace, out / "good", "tiny-run@10", good, data=data)]


@pytest.fixture
def ja_page(browser, app_url, ja_results):
    ctx = browser.new_context(viewport={"width": 1024, "height": 768}, locale="ja-JP", accept_downloads=True)
    p = ctx.new_page()
    p.goto(app_url + "?lang=ja")
    p.wait_for_selector("#tabs", timeout=30_000)
    yield p
    ctx.close()


def english_words(p, root: str) -> set[str]:
    """Words of Latin letters visible under ``root``, less the data shown (answers, questions)."""
    text = p.evaluate("""(root) => {
        const el = document.querySelector(root);
        const skip = el.querySelectorAll('.resp, .qtext, ol.choices, code, pre, .cm-editor, .js-plotly-plot .legend');
        skip.forEach(e => e.setAttribute('data-skip-text', e.style.visibility || ''));
        skip.forEach(e => e.style.visibility = 'hidden');
        const t = el.innerText;
        skip.forEach(e => e.style.visibility = e.getAttribute('data-skip-text'));
        return t; }""", root)
    keys = set(RAW_KEY.findall(text))                              # a word Gradio's locale lacks
    text = re.sub(r"\S+\.(jsonl|csv|png)\b", " ", text)          # file names shown as data
    return keys | {w for w in re.findall(r"[A-Za-z]+", text) if w.lower() not in ALLOWED}


def choose_evaluations(p, labels: list[str]) -> None:
    box = p.locator("#compare-shown input").first
    for label in labels:
        box.click()
        p.get_by_role("option", name=re.compile(re.escape(label))).first.click()
    p.keyboard.press("Escape")


def test_compare_in_japanese_weak_match_csv_and_blind_review(ja_page):
    p = ja_page
    open_tab(p, "比較")
    choose_evaluations(p, ["tiny-llama · ja · sample_ja.jsonl", "tiny-run@10 · ja · sample_ja.jsonl"])
    p.wait_for_function("document.querySelectorAll('#compare-cards .qcard').length == 2", timeout=30_000)
    weak = p.locator("#compare-cards .badge.weak")
    assert weak.count() == 2 and "弱い一致" in weak.first.inner_text()    # the nonsense answers, not the good ones
    assert "類似度 0.05" in p.locator("#compare-cards").inner_text()
    assert p.locator("#compare-stop").is_disabled()           # no evaluation runs: Stop is not offered
    # At 1024×768 the results start on the first screen: the form is folded while there are results.
    top = p.evaluate("document.querySelector('#compare-summary').getBoundingClientRect().top + window.scrollY")
    p.screenshot(path=str(ARTIFACTS / "ja_compare_1024.png"))
    assert top < 768, f"the results start {top}px down"
    # The CSV of what is shown downloads in the browser and opens in Excel (UTF-8 with BOM).
    with p.expect_download() as dl:
        p.locator("#compare-download").click()
    assert open(dl.value.path(), "rb").read(3) == b"\xef\xbb\xbf"
    assert dl.value.suggested_filename == "side_by_side_sample_ja.csv"

    # Blind review: nothing per checkpoint is visible until every answer is rated.
    p.locator("#blind-accordion").get_by_text("ブラインド評価").first.click()
    p.locator("#blind-start").click()
    p.locator("#blind-card .qcard").first.wait_for(timeout=10_000)
    rated = 0
    while "すべて評価しました" not in p.locator("#blind-card").inner_text():
        assert not p.locator("#blind-summary").is_visible(), f"summary visible after {rated} ratings"
        card = p.locator("#blind-card").inner_text()
        assert "tiny-llama" not in card and "tiny-run" not in card       # blind
        before = p.locator("#blind-card .blind-left").inner_text()
        p.locator("#blind-partly").click()
        p.wait_for_function("(b) => { const e = document.querySelector('#blind-card .blind-left');"
                            " return !e || e.innerText !== b; }", arg=before, timeout=10_000)
        rated += 1
        assert rated <= 4
    assert rated == 4
    p.locator("#blind-summary").wait_for(state="visible", timeout=10_000)
    assert "一部正しい %" in p.locator("#blind-summary").inner_text()
    p.locator("#tab-compare").screenshot(path=str(ARTIFACTS / "ja_compare_tab.png"))
    assert english_words(p, "#tab-compare") == set()


def test_charts_in_japanese_with_n_and_intervals(ja_page):
    p = ja_page
    open_tab(p, "グラフ")
    p.wait_for_function("document.querySelector('#charts-table').innerText.includes('n=2')", timeout=30_000)
    table = p.locator("#charts-table").inner_text()
    assert "tiny-run · 10" in table and "[" in table and "論文の公表値" in table
    p.locator("#charts-steps .js-plotly-plot").wait_for(timeout=20_000)
    assert "学習ステップ" in p.locator("#charts-steps").inner_text()
    with p.expect_download() as dl:
        p.locator("#charts-csv").click()
    assert open(dl.value.path(), "rb").read(3) == b"\xef\xbb\xbf"
    p.locator("#tab-charts").screenshot(path=str(ARTIFACTS / "ja_charts_tab.png"))
    assert english_words(p, "#tab-charts") == set()


def test_no_tab_shows_a_raw_translation_key_while_its_timers_poll(ja_page):
    """Gradio announces each finished event (``common.complete``), which its ja locale lacked: the
    Compare and Merge tabs, polled every second, showed the key itself. Sampled on every tab."""
    p, seen = ja_page, {}
    for tab in ("データ", "学習", "比較", "グラフ", "マージ", "レポート"):
        open_tab(p, tab)
        for _ in range(6):
            for key in RAW_KEY.findall(p.evaluate("document.body.innerText")):
                seen.setdefault(key, tab)
            p.wait_for_timeout(500)
    assert seen == {}
