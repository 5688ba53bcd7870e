"""The insights views as a Japanese clinician sees them, on twelve questions with the examinees'
figures (tests/workbench/fake_insights.py ``clinic_exam``: two checkpoints and the examinees'
majority imported): the Charts tab's 「分野別の正答率」 and 「受験者との比較」 sections, the Compare
tab's cards with the embarrassing misses first, and 「チェックポイント間の正誤の入れ替わり」 where
selecting a flipping question shows its answer cards. No English word and no raw key on these
sections; the same in English. Screenshots (PNG) land in tests/artifacts/.
"""
from __future__ import annotations

import re

import pytest

from tests.workbench import fake_insights
from tests.workbench.conftest import ARTIFACTS
from tests.workbench.test_browser import open_tab
from tests.workbench.test_browser_compare_ja import ALLOWED, choose_evaluations
from tests.workbench.test_browser_compare_ja import english_words as words_under

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NAMES = ALLOWED          # the names the Compare test allows (p as in "p = 0.039" among them)
SHOWN = ["medcalm · ja · insights_exam.jsonl", "medcalm-run@200 · ja · insights_exam.jsonl",
         "受験者の多数派 · 取り込んだ予測 · insights_exam.jsonl"]
COMPARE_SECTIONS = ["#compare-count", "#compare-cards", "#flip-title", "#flip-a", "#flip-b", "#flip-counts-area",
                    "#flip-grid", "#flip-cards"]
CHART_SECTIONS = ["#charts-category-title", "#charts-category", "#charts-category-map", "#charts-examinee-title",
                  "#charts-bands", "#charts-bands-chart", "#charts-wrong"]


@pytest.fixture(scope="module")
def clinic(app_workspace, tmp_path_factory):
    return fake_insights.clinic_exam(app_workspace, tmp_path_factory.mktemp("clinic"))


def page_in(browser, app_url, lang: str):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP" if lang == "ja" else "en-US")
    p = ctx.new_page()
    p.goto(f"{app_url}?lang={lang}")
    p.wait_for_selector("#tabs", timeout=30_000)
    return ctx, p


@pytest.fixture
def ja_page(browser, app_url, clinic):
    ctx, p = page_in(browser, app_url, "ja")
    yield p
    ctx.close()


@pytest.fixture
def en_page(browser, app_url, clinic):
    ctx, p = page_in(browser, app_url, "en")
    yield p
    ctx.close()


def not_japanese(p, roots: list[str]) -> set[str]:
    found = set()
    for root in roots:
        found |= {w for w in words_under(p, root) if w.lower() not in NAMES}
    return found


def section_shot(p, first: str, last: str, name: str) -> None:
    """The page from ``first``'s top to ``last``'s bottom, as one PNG."""
    box = p.evaluate("""([a, b]) => { const t = document.querySelector(a).getBoundingClientRect(),
        u = document.querySelector(b).getBoundingClientRect();
        return [t.top + window.scrollY, u.bottom + window.scrollY]; }""", [first, last])
    p.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True,
                 clip={"x": 0, "y": max(0, box[0] - 8), "width": 1280, "height": box[1] - box[0] + 16})


def grid_cell(p, text: str):
    """The visible cell of the flip grid holding ``text`` (Gradio keeps a hidden copy of a row to size columns)."""
    return p.locator("#flip-grid").get_by_text(text, exact=True).filter(visible=True).first


def show_insights_charts(p, data_name: str, any_label: str) -> None:
    open_tab(p, "グラフ" if any_label == "（すべて）" else "Charts")
    p.locator("#charts-data input").first.click()
    p.get_by_role("option", name=data_name).first.click()
    p.wait_for_function("document.querySelector('#charts-category').innerText.includes('medcalm-run · 200')",
                        timeout=30_000)
    for plot in ("#charts-category-map", "#charts-bands-chart"):
        p.locator(f"{plot} .js-plotly-plot").wait_for(timeout=20_000)
    p.wait_for_timeout(800)


def show_flips(p) -> None:
    open_tab(p, "比較" if p.url.endswith("lang=ja") else "Compare")
    choose_evaluations(p, SHOWN)
    p.wait_for_function("document.querySelectorAll('#compare-cards .qcard').length == 10", timeout=30_000)
    p.wait_for_function("document.querySelector('#flip-grid') && "
                        "document.querySelector('#flip-grid').innerText.includes('116A7')", timeout=30_000)


def test_charts_sections_in_japanese(ja_page):
    p = ja_page
    show_insights_charts(p, "insights_exam.jsonl", "（すべて）")
    table = p.locator("#charts-category").inner_text()
    assert "循環器" in table and "n=3" in table and "受験者の多数派（0-shot）" in table
    heat = p.locator("#charts-category-map").inner_text()
    assert "分野別の正答率" in heat and "小児科" in heat
    bands = p.locator("#charts-bands").inner_text()
    assert "受験者の正答率" in bands and "≥ 80%（平均 90%）" in bands
    assert "受験者の正答率の区分ごと" in p.locator("#charts-bands-chart").inner_text()
    wrong = p.locator("#charts-wrong").inner_text()
    assert "受験者の最多誤答と同じ" in wrong and "ひっかけ" in wrong
    section_shot(p, "#charts-category-title", "#charts-wrong", "ja_insights_charts")
    assert not_japanese(p, CHART_SECTIONS) == set()


def test_flips_in_japanese_and_a_selected_question_opens_its_cards(ja_page):
    p = ja_page
    show_flips(p)
    # 116A7 (appendicitis: 95.1% of examinees right, missed by medcalm 0-shot) leads the cards,
    # then 116A10 (Kawasaki disease: 83.7%, missed by medcalm-run@200 0-shot).
    ids = p.evaluate("[...document.querySelectorAll('#compare-cards .qcard')].map(c => c.dataset.problemId)")
    assert ids[:3] == ["116A7", "116A10", "116A1"]
    first = p.locator("#compare-cards .qcard").first
    assert "受験者の 95.1% が正解" in first.locator(".qexam.miss").inner_text()
    assert "2 問を先頭に表示" in p.locator("#compare-count").inner_text()
    section_shot(p, "#compare-count", "#compare-cards .qcard:nth-child(2)", "ja_compare_easy_misses")
    # medcalm 0-shot (A) → medcalm-run@200 0-shot (B): 1 right in A only, 8 in B only; exact McNemar
    # 2 × (1 + 9) / 2⁹ = 0.039.
    counts = p.locator("#flip-counts-area").inner_text()
    assert "マクネマー検定（正確二項検定、入れ替わり 9 問）：p = 0.039" in counts
    assert "対応のあるブートストラップ" in counts and "正答率：A .250 → B .833（共通の問題 n=12）" in counts
    grid_cell(p, "116A7").click()
    p.wait_for_selector('#flip-cards .qcard[data-problem-id="116A7"]', timeout=20_000)
    cards = p.locator("#flip-cards").inner_text()
    assert "急性虫垂炎" in cards and "medcalm-run@200 · 0-shot" in cards and "受験者の 95.1% が正解" in cards
    section_shot(p, "#flip-title", "#flip-cards", "ja_flips")
    assert not_japanese(p, COMPARE_SECTIONS) == set()


def test_the_same_views_in_english(en_page):
    p = en_page
    show_insights_charts(p, "insights_exam.jsonl", "(all)")
    assert "Accuracy per specialty" in p.locator("#charts-category-map").inner_text()
    assert "≥ 80% (mean 90%)" in p.locator("#charts-bands").inner_text()
    assert "same as examinees' top wrong" in p.locator("#charts-wrong").inner_text()
    section_shot(p, "#charts-category-title", "#charts-wrong", "en_insights_charts")
    show_flips(p)
    assert "McNemar's test (exact binomial, 9 flipping questions): p = 0.039" in p.locator("#flip-counts-area").inner_text()
    grid_cell(p, "116A10").click()
    p.wait_for_selector('#flip-cards .qcard[data-problem-id="116A10"]', timeout=20_000)
    assert "83.7% of examinees got this right" in p.locator("#flip-cards").inner_text()
    section_shot(p, "#flip-title", "#flip-cards", "en_flips")
    assert not re.search(r"[\u3040-\u30ff]", p.locator("#flip-counts-area").inner_text())   # no kana left over
