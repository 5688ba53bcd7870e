"""The Reports tab as a Japanese clinician sees it (``locale="ja-JP"``, ``?lang=ja``), on two fake
report evaluations written straight into the workspace (no model runs): the image beside the
reference and both models' reports, chips coloured by agreement (the weak model's missed
fracture in red), the zoom, the tables with intervals, and a blind rating with the harm flag
that names no model. The screenshot lands in tests/artifacts/reports_ja.png.
"""
from __future__ import annotations

import re

import pytest

from tests.workbench.conftest import ARTIFACTS, Watched
from tests.workbench.fake_report_results import record_pair
from tests.workbench.test_browser import open_tab
from tests.workbench.test_browser_compare_ja import english_words

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Names shown as data or as the metrics are published: models, studies, metric names.
REPORT_NAMES = {"demo", "vlm", "cxr", "synthetic", "normal", "cardiomegaly", "effusion", "left", "consolidation",
                "right", "lower", "rib", "fracture", "dicom", "bleu", "meteor", "rouge", "l", "f", "micro", "macro",
                "p", "jpeg", "x"}


@pytest.fixture(scope="module")
def report_evals(app_workspace, tmp_path_factory):
    return record_pair(app_workspace, tmp_path_factory.mktemp("report_evals"))


def test_reports_tab_in_japanese(browser, app_url, report_evals):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="ja-JP")
    w = Watched(ctx.new_page())
    p = w.page
    p.goto(app_url + "?lang=ja")
    p.wait_for_selector("#tabs", timeout=30_000)
    open_tab(p, "レポート")
    p.wait_for_function("document.querySelectorAll('#reports-side .rv-card').length == 3", timeout=30_000)
    assert "参照レポート" in p.locator("#reports-side").inner_text()
    assert p.locator("#reports-image img").evaluate("(i) => i.complete && i.naturalWidth") == 512
    # The rib-fracture study: the weak model missed the fracture and added a pneumothorax.
    p.locator("#reports-study input").click()
    p.get_by_role("option", name=re.compile("synthetic-rib-fracture-right")).first.click()
    p.wait_for_function("document.querySelector('#reports-side').innerText.includes('右気胸を認める')",
                        timeout=15_000)
    weak = p.locator('#reports-side .rv-card[data-key="demo-vlm"]')
    assert weak.locator('.rv-chip.missed[data-finding="骨折"]').count() == 1
    assert weak.locator('.rv-chip.extra[data-finding="気胸"]').count() == 1
    colour = weak.locator(".rv-chip.missed").first.evaluate("(e) => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(255, 235, 233)"                      # the red of a miss, from the page's CSS
    # Zoom: the slider widens the image in the browser.
    p.locator("#reports-zoom input[type=number]").fill("2")
    p.locator("#reports-zoom input[type=number]").press("Enter")
    p.wait_for_function("document.querySelector('#reports-image img').style.width === '200%'", timeout=10_000)
    p.locator("#reports-zoom input[type=number]").fill("1")
    p.locator("#reports-zoom input[type=number]").press("Enter")
    tables = p.locator("#reports-summary").inner_text() + p.locator("#reports-findings").inner_text()
    assert "所見 F1（マイクロ平均）" in tables and "見落とし1" in tables and "[" in tables
    assert "demo-vlm+cxr-lora − demo-vlm" in p.locator("#reports-comparison").inner_text()
    p.locator("#tab-reports").screenshot(path=str(ARTIFACTS / "reports_ja.png"))
    assert {w for w in english_words(p, "#tab-reports") if w.lower() not in REPORT_NAMES} == set()

    # Blind rating: the report shown names no model; a harm flag goes with the rating.
    p.locator("#rblind-accordion").get_by_text("ブラインド評価").first.click()
    p.locator("#rblind-start").click()
    p.locator("#rblind-card .rv-card").first.wait_for(timeout=10_000)
    card = p.locator("#rblind-card").inner_text()
    assert "demo-vlm" not in card and "cxr-lora" not in card and "残り 12 件" in card
    p.locator("#rblind-harm input").check()
    p.locator("#rblind-partly").click()
    p.wait_for_function("document.querySelector('#rblind-card').innerText.includes('残り 11 件')", timeout=10_000)
    assert not p.locator("#rblind-harm input").is_checked()      # the next report starts unflagged
    assert not p.locator("#rblind-summary").is_visible()
    p.locator("#tab-reports").screenshot(path=str(ARTIFACTS / "reports_ja_blind.png"))
    card = p.locator("#rblind-card").inner_text()
    assert "demo-vlm" not in card and "スライダー" not in card               # no slider beside this image
    # Taking an evaluation off the list re-renders the study with the other one alone.
    p.locator("#reports-shown .token", has_text="cxr-lora").locator(".token-remove").click()
    p.wait_for_function("document.querySelectorAll('#reports-side .rv-card').length == 2", timeout=15_000)
    assert "もう1件" in p.locator("#reports-msg").inner_text()
    assert w.errors == [] and w.outbound == []
    ctx.close()
