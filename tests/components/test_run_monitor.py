"""The progress box: one ETA, status words in the page's language."""
from components import run_monitor


def test_eta_appears_once_from_the_callers_estimate_when_it_has_one():
    html = run_monitor.progress_html("train", 5, 20, elapsed=10.0, eta_s=90.0, detail="· loss 1.0")
    assert html.count("ETA") == 1 and "1:30" in html          # the caller's 90 s, not 30 s from the rate
    assert run_monitor.progress_html("eval", 5, 20, elapsed=10.0).count("ETA") == 1
    assert "ETA" not in run_monitor.progress_html("eval", 5, 20, status="stopped", elapsed=10.0, eta_s=5.0)


def test_status_and_eta_in_japanese():
    html = run_monitor.progress_html("学習", 5, 20, elapsed=10.0, lang="ja")
    assert "実行中" in html and "残り約 0:30" in html and "running" not in html.split('class="runmon running"')[1]
    assert run_monitor.status_word("stopped", "ja") == "停止済み" and run_monitor.status_word("odd", "ja") == "odd"
