"""The contamination check and the nearest training records as a Japanese clinician sees them:
the Charts tab's 「学習データとの重複（汚染）の確認」 on an evaluation of five questions whose training
file quotes Q1, rewrites Q3 and copies Q7 (tests/workbench/test_contamination_handlers.py has the
numbers by hand), and in the Compare tab, with the training file given, Q3's wrong answer's card
opening its nearest records (the rewrite, line 4, first). No English word and no raw key in these
sections (the training data's own text aside); the same in English. Screenshots in tests/artifacts/.
"""
from __future__ import annotations

import re

import pytest

from tests.pipelines.test_contamination import RECORDS, _jsonl
from tests.workbench.conftest import ARTIFACTS
from tests.workbench.fake_results import record, result_row
from tests.workbench.test_browser import open_tab
from tests.workbench.test_browser_compare_ja import choose_evaluations, english_words
from tests.workbench.test_browser_insights_ja import page_in, section_shot
from tests.workbench.test_contamination_handlers import EXAM, RIGHT

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LABEL = "medcalm-run@100 · ja · contam_exam.jsonl"
DATA = "td.data, .qnear .ntext, .qnear mark"       # the training data's and the questions' own words


@pytest.fixture(scope="module")
def contaminated(app_workspace, tmp_path_factory):
    folder = tmp_path_factory.mktemp("contam")
    exam = _jsonl(folder / "contam_exam.jsonl", EXAM)
    train = _jsonl(app_workspace.subdir("exports") / "contam_train.jsonl", RECORDS)
    rows = [result_row(q["problem_id"], 0, ["a"] if q["problem_id"] in RIGHT else ["b"]) for q in EXAM]
    record(app_workspace, folder / "eval", "medcalm-run@100", rows, data=str(exam))
    return str(train)


@pytest.fixture
def ja_page(browser, app_url, contaminated):
    ctx, p = page_in(browser, app_url, "ja")
    yield p
    ctx.close()


@pytest.fixture
def en_page(browser, app_url, contaminated):
    ctx, p = page_in(browser, app_url, "en")
    yield p
    ctx.close()


def words_outside_data(p, roots: list[str]) -> set[str]:
    p.evaluate("(s) => document.querySelectorAll(s).forEach(e => e.style.visibility = 'hidden')", DATA)
    found = set().union(*(english_words(p, r) for r in roots))
    p.evaluate("(s) => document.querySelectorAll(s).forEach(e => e.style.visibility = '')", DATA)
    return found


def run_check(p, tab: str, train: str, done: str) -> None:
    open_tab(p, tab)
    p.locator("#charts-contamination-eval input").first.click()
    p.get_by_role("option", name=re.compile(re.escape(LABEL))).first.click()
    box = p.locator("#charts-contamination-train input").first
    box.fill(train)
    box.press("Enter")
    p.locator("#charts-contamination-run").click()
    p.wait_for_function(f"document.querySelector('#charts-contamination').innerText.includes({done!r})",
                        timeout=60_000)
    p.locator("#charts-contamination-title").scroll_into_view_if_needed()


def open_nearest(p, tab: str, train: str) -> None:
    open_tab(p, tab)
    choose_evaluations(p, [LABEL])
    p.wait_for_function("document.querySelectorAll('#compare-cards .qcard').length == 5", timeout=30_000)
    p.locator("#compare-train textarea").first.fill(train)
    p.locator("#compare-train-show").click()
    p.wait_for_selector('#compare-cards .qcard[data-problem-id="Q3"] details.qnear', timeout=60_000)
    near = p.locator('#compare-cards .qcard[data-problem-id="Q3"] details.qnear')
    near.locator("summary").click()
    near.locator("li").first.wait_for(timeout=10_000)


def test_the_check_and_the_nearest_records_in_japanese(ja_page, contaminated):
    p = ja_page
    run_check(p, "グラフ", contaminated, "問が学習データと重なっています")
    out = p.locator("#charts-contamination").inner_text()
    assert "3 問が学習データと重なっています" in out and "言い換え（ほぼ同じ文）" in out
    assert "正答率は 0.400 → 0.000（-0.400）" in out
    section_shot(p, "#charts-contamination-title", "#charts-contamination", "ja_contamination")
    assert words_outside_data(p, ["#charts-contamination-title", "#charts-contamination"]) == set()

    open_nearest(p, "比較", contaminated)
    card = p.locator('#compare-cards .qcard[data-problem-id="Q3"]')
    assert card.locator(".qnear li").first.get_attribute("data-line") == "4"
    assert "4 行目" in card.locator(".qnear").inner_text()
    assert p.locator('#compare-cards .qcard[data-problem-id="Q1"] .qnear').count() == 0    # answered right
    assert "6 件の学習記録を索引しました" in p.locator("#compare-train-msg").inner_text()
    card.scroll_into_view_if_needed()
    section_shot(p, "#compare-train", '#compare-cards .qcard[data-problem-id="Q3"]', "ja_nearest")
    assert words_outside_data(p, ["#compare-train-msg", '#compare-cards .qcard[data-problem-id="Q3"] .qnear']) == set()


def test_the_same_in_english(en_page, contaminated):
    p = en_page
    run_check(p, "Charts", contaminated, "overlap the training data")
    assert "accuracy goes 0.400 → 0.000 (-0.400)" in p.locator("#charts-contamination").inner_text()
    section_shot(p, "#charts-contamination-title", "#charts-contamination", "en_contamination")
    open_nearest(p, "Compare", contaminated)
    assert "line 4" in p.locator('#compare-cards .qcard[data-problem-id="Q3"] .qnear').inner_text()
    section_shot(p, "#compare-train", '#compare-cards .qcard[data-problem-id="Q3"]', "en_nearest")
