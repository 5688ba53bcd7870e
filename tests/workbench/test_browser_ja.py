"""The Data, Train and Merge tabs and the header in Japanese, as a clinician sees them: no English
left on the page (names and data excepted), a switch to English and back that re-renders
tables, progress and charts, and a CSV export that downloads to the browser with a BOM.

Screenshots land in tests/artifacts/ja_*.png (look at them)."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from pipelines.core import jobs
from pipelines.merging.evolve import MergeConfig
from pipelines.merging.search import append_candidate
from pipelines.training import runs as train_runs

ARTIFACTS = Path(__file__).resolve().parents[2] / "tests" / "artifacts"
pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Names, not words: products, formats and units a Japanese user reads as they are.
ALLOWED = {"lora", "qlora", "jsonl", "alpaca", "gestalt", "csv", "json", "id", "gpu", "cpu", "tok", "jmedlora",
           "language", "english", "hugging", "face", "cpt", "eos", "adamw", "bf16", "nf4", "llama", "pdf", "url",
           "openai", "chatgpt", "peft", "ram", "opencalm", "medcalm", "gpt", "neox", "mlp", "igakuqa", "cma", "es",
           # Gradio 6's status tracker writes "processing |" and "queue: 1/2 |" as fixed English
           # (statustracker-*.js); they are not keys of its i18n, so neither gr.I18n nor the browser's
           # locale reaches them. Gradio's other words follow the browser's locale (ja-JP here).
           "processing", "queue"}
# Shown as data, not as the interface's words: commands, paths, user and model names, table cells.
DATA = ("code", "pre", ".cm-editor", "#wb-user", "td", "tbody", "[role=gridcell]", "input", "textarea", "select",
        ".js-plotly-plot .xtick", ".js-plotly-plot .ytick")
VISIBLE_TEXT = """(args) => {
  const [sel, skip] = args;
  const root = document.querySelector(sel);
  const out = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!el || skip.some(s => el.closest(s))) continue;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden' || el.closest('[hidden]')) continue;
    if (!el.getClientRects().length) continue;
    out.push(node.textContent);
  }
  return out.join(' ');
}"""


# A translation key shown as it is (``common.complete``): a word Gradio's locale lacks. Its
# namespaces, from Gradio 6's locale files; a key has a dot, so it would pass as a file name below.
RAW_KEY = re.compile(r"\b(?:common|status|dataframe|upload_text|file|chatbot|errors|blocks|image|image_editor|audio|"
                     r"video|login|plot|label|number|radio|slider|textbox|checkbox|dropdown|code|color_picker|"
                     r"annotated_image|highlighted_text|multimodal_textbox)\.[a-z_]+\b")


def english_words(text: str) -> set[str]:
    """Latin-letter words that are not names: identifiers (q_proj), paths, file and model names
    (SmolLM2-135M, ja-demo, demo.csv) and single letters are data, not interface text; a raw
    translation key (``common.complete``) is always reported."""
    words = set(RAW_KEY.findall(text))
    for token in re.findall(r"[A-Za-z0-9_./:@-]*[A-Za-z][A-Za-z0-9_./:@-]*", text):
        if any(c in token for c in "_/.:@-") or re.search(r"\d", token) or len(token) < 2:
            continue
        if token.lower() not in ALLOWED:
            words.add(token)
    return words


def visible(p, selector: str) -> str:
    return p.evaluate(VISIBLE_TEXT, [selector, list(DATA)])


def english_after_switch(p, selector: str, seconds: float = 20.0) -> set[str]:
    """English words left in a tab once a language switch has settled. The switch runs as chained
    events (labels, then each tab's own relabelling on the language state, then the timers' next
    tick), so one element turning Japanese does not mean the others have: poll until none is
    left or the time is up, and return what was left last."""
    leftover = english_words(visible(p, selector))
    for _ in range(int(seconds / 0.25)):
        if not leftover:
            break
        p.wait_for_timeout(250)
        leftover = english_words(visible(p, selector))
    return leftover


def open_tab(p, name: str) -> None:
    p.get_by_role("tab", name=name).click()
    p.wait_for_timeout(800)


def keep(path: Path) -> None:
    """Also copy a screenshot to $JMEDLORA_SCREENSHOTS (a folder outside the repository), when set."""
    folder = os.environ.get("JMEDLORA_SCREENSHOTS")
    if folder and Path(folder).is_dir():
        shutil.copy(path, Path(folder) / path.name)


def shot(page, name: str) -> Path:
    path = page.shot(name)
    keep(path)
    return path


@pytest.fixture
def finished_run(app_workspace):
    """A finished training run on disk, so the runs table, progress and chart have words to show."""
    run_dir = app_workspace.subdir("runs") / "ja-demo"
    run_dir.mkdir(exist_ok=True)
    train_runs.write_json(run_dir / "config.json", {"config": {"run_name": "ja-demo", "max_steps": 4,
                                                               "method": "lora", "model": "tiny-llama"}})
    train_runs.update_status(run_dir, status="finished", step=4, max_steps=4,
                             **jobs.say("train.finished", "finished 4 steps in 0:00:36", steps=4, took="0:00:36"))
    (run_dir / "metrics.jsonl").write_text("".join(
        f'{{"step": {s}, "loss": {3 - s * 0.3}, "lr": 0.0003, "tokens_per_s": 50, "elapsed_s": {s}, "eta_s": 0}}\n'
        for s in range(1, 5)), encoding="utf-8")
    (run_dir / "train.log").write_text("".join(f"step {i}\n" for i in range(1, 61)), encoding="utf-8")
    if not any(r["run_name"] == "ja-demo" for r in train_runs.list_runs(app_workspace)):
        train_runs.register_run(app_workspace, "ja-demo-id", "ja-demo", run_dir)
    return run_dir


def import_sample(p, name: str) -> None:
    p.locator("#data-dataset textarea, #data-dataset input").first.fill(name)
    p.locator("#data-import").click()
    p.wait_for_function("document.querySelector('#data-count').innerText.includes('件')", timeout=30_000)


def test_japanese_page_has_no_english_and_the_switch_rerenders_everything(page, app_url, finished_run):
    p = page.page
    p.goto(app_url + "?lang=ja")
    p.wait_for_selector("#tabs", timeout=30_000)
    page.errors.clear()          # leaving the fixture's first load aborts its open connection
    open_tab(p, "データ")
    import_sample(p, "ja-check")
    p.locator("#data-rid input").fill("1")
    p.wait_for_function("document.querySelector('#data-history').innerText.includes('日時')", timeout=10_000)
    leftover = {"header": english_words(visible(p, "#wb-status") + " " + visible(p, "#lang-switch"))}
    leftover["data"] = english_words(visible(p, "#tab-data"))
    shot(page, "ja_data")
    open_tab(p, "学習")
    box = p.locator("#train-run input").first
    box.click()
    box.fill("ja-demo")
    p.get_by_role("option", name=re.compile("ja-demo")).first.click()
    p.wait_for_function("document.querySelector('#train-progress').innerText.includes('完了')", timeout=20_000)
    p.wait_for_selector("#train-curves .js-plotly-plot", timeout=20_000)
    leftover["train"] = english_words(visible(p, "#tab-train"))
    shot(page, "ja_train")
    p.evaluate("window.scrollTo(0, 0)")
    header = ARTIFACTS / "ja_header.png"
    p.screenshot(path=str(header), clip={"x": 0, "y": 0, "width": 1400, "height": 300})
    keep(header)
    assert leftover == {"header": set(), "data": set(), "train": set()}, {k: sorted(v) for k, v in leftover.items()}
    # Table cells are data to the word check, but a run's status message is the interface's words.
    assert "4 ステップで完了しました（所要 0:00:36）" in p.locator("#train-runs").inner_text()

    # The newest log line is in view: the log box scrolls to its end.
    box = p.locator("#train-log .logbox")
    assert "step 60" in box.inner_text() and box.evaluate("b => b.scrollHeight > b.clientHeight")
    last = p.locator("#train-log .logbox pre").bounding_box()
    view = box.bounding_box()
    assert last["y"] + last["height"] <= view["y"] + view["height"] + 2      # its end is in view
    # Nothing runs: Stop is disabled.
    assert p.locator("#train-stop").is_disabled()

    # To English: labels, the runs table, the progress words and the chart's axes all change.
    p.get_by_label("English").check()
    p.wait_for_function("document.querySelector('#train-progress').innerText.includes('finished')", timeout=20_000)
    runs = p.locator("#train-runs").inner_text()
    assert "status" in runs and "完了" not in runs and "状態" not in runs and "finished 4 steps in 0:00:36" in runs
    p.wait_for_function("document.querySelector('#train-preset-desc').innerText.includes('two minutes')",
                        timeout=20_000)
    assert p.evaluate("document.querySelector('#train-curves .js-plotly-plot').layout.xaxis.title.text") == "step"
    open_tab(p, "Data")
    assert "records" in p.locator("#data-count").inner_text()
    assert "time" in p.locator("#data-history").inner_text()
    # And back: nothing of the English page is left.
    p.get_by_label("日本語").check()
    p.wait_for_function("document.querySelector('#data-count').innerText.includes('件')", timeout=20_000)
    open_tab(p, "学習")
    p.wait_for_function("document.querySelector('#train-progress').innerText.includes('完了')", timeout=20_000)
    assert english_after_switch(p, "#tab-train") == set()
    assert page.errors == [], "\n".join(e[:300] for e in page.errors)


def test_csv_export_downloads_to_the_browser_with_a_bom(page, app_workspace):
    p = page.page
    open_tab(p, "データ")
    import_sample(p, "ja-export")
    # The export's default name follows the dataset selected.
    p.wait_for_function("document.querySelector('#data-out textarea, #data-out input').value == 'ja-export.csv'",
                        timeout=20_000)
    p.locator("#data-export").click()
    p.locator("#data-export-msg .notice.ok").wait_for(timeout=30_000)
    assert "除外・フィルタ該当を除くすべて" in p.locator("#data-export-msg").inner_text()
    with p.expect_download(timeout=30_000) as got:
        p.locator("#data-download a").first.click()
    data = Path(got.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and "心不全" in data.decode("utf-8-sig")
    assert (app_workspace.root / "exports" / "ja-export.csv").read_bytes() == data
    # A second export of the same name is refused until "overwrite" is ticked.
    p.locator("#data-export").click()
    p.locator("#data-export-msg .notice.error").wait_for(timeout=30_000)
    assert "「同名のファイルがあれば上書きする」" in p.locator("#data-export-msg").inner_text()
    shot(page, "ja_data_export")
    assert page.errors == []


@pytest.fixture
def finished_merge(app_workspace):
    """A finished merge folder (config, scored candidates, report), as the Merge tab reads it."""
    out = app_workspace.subdir("merges") / "merge-ja"
    out.mkdir(exist_ok=True)
    config = MergeConfig(inputs=("tiny-run@10", "tiny-run@20"), dev="dev.jsonl", out=str(out))
    train_runs.write_json(out / "config.json", {f: getattr(config, f) for f in config.__dataclass_fields__})
    train_runs.write_json(out / "status.json", {"status": "finished", "kind": "merge", "started_at": 0})
    (out / "candidates.jsonl").unlink(missing_ok=True)
    for i, (gen, score) in enumerate([(0, 0.0), (0, 0.0), (1, 0.0), (1, 0.0)]):   # a flat zero: the axis is 0..1
        append_candidate(out / "candidates.jsonl", {"i": i, "generation": gen, "score": score})
    ci = {"mean": 0.25, "ci_low": 0.0, "ci_high": 0.5}
    train_runs.write_json(out / "report.json", {
        "metric": "ll_accuracy", "registered_as": "merge-ja", "best_input": "tiny-run@10",
        "verdict": "The merge is NOT better than the best input (tiny-run@10) on the test set.",
        "verdict_code": "not_better", "paired_vs_best_input": {"diff": 0.0, "ci_low": -0.25, "ci_high": 0.25, "n": 4},
        "rows": [{"role": "base", "model": "tiny-llama", "dev": None, "test": ci},
                 {"role": "input 1", "model": "tiny-run@10", "dev": 0.0, "test": ci},
                 {"role": "input 2", "model": "tiny-run@20", "dev": 0.0, "test": ci},
                 {"role": "merge", "model": "merge-ja", "dev": 0.0, "test": ci}]})
    return out


def test_merge_tab_in_japanese_and_back(page, app_url, finished_merge):
    """The Merge tab shows a finished search in Japanese: status, chart (title, axes, legend,
    a 0..1 axis for an all-zero series), test table headers and roles, the verdict; English after
    the switch."""
    p = page.page
    p.goto(app_url + "?lang=ja")
    p.wait_for_selector("#tabs", timeout=30_000)
    page.errors.clear()
    open_tab(p, "マージ")
    p.locator("#merge-out textarea, #merge-out input").first.fill(str(finished_merge))
    p.keyboard.press("Tab")
    p.wait_for_function("document.querySelector('#merge-verdict').innerText.includes('良いとは言えません')",
                        timeout=30_000)
    p.wait_for_selector("#merge-chart .js-plotly-plot", timeout=20_000)
    assert p.evaluate("document.documentElement.lang") == "ja"
    layout = p.evaluate("document.querySelector('#merge-chart .js-plotly-plot').layout")
    assert layout["title"]["text"] == "マージ探索" and layout["xaxis"]["title"]["text"].startswith("世代")
    assert layout["yaxis"]["range"] == [0, 1.04]
    table = p.locator("#merge-table").inner_text()
    assert "役割" in table and "入力 1" in table and "マージ" in table and "完了" in visible(p, "#merge-status")
    assert p.locator("#merge-stop").is_disabled()             # nothing runs: no Stop to press
    assert p.locator("#merge-resume").is_disabled()           # finished: nothing to resume
    # The command box shows the loaded merge's own settings, not the form's.
    p.wait_for_function("document.querySelector('#merge-command').innerText.includes('--dev dev.jsonl')",
                        timeout=20_000)
    assert "--inputs tiny-run@10 tiny-run@20" in p.locator("#merge-command").inner_text()
    assert "（" in p.locator("#merge-method input").first.input_value()   # the method's Japanese gloss
    leftover = english_words(visible(p, "#tab-merge"))
    shot(page, "ja_merge")
    assert leftover == set(), sorted(leftover)

    p.get_by_label("English").check()
    p.wait_for_function("document.querySelector('#merge-verdict').innerText.includes('NOT better')", timeout=20_000)
    assert "role" in p.locator("#merge-table").inner_text()
    assert p.evaluate("document.documentElement.lang") == "en"
    assert p.evaluate("document.querySelector('#merge-chart .js-plotly-plot').layout.title.text") == "Merge search"
    p.get_by_label("日本語").check()
    p.wait_for_function("document.querySelector('#merge-verdict').innerText.includes('良いとは言えません')",
                        timeout=20_000)
    assert english_after_switch(p, "#tab-merge") == set()
    assert page.errors == [], "\n".join(e[:300] for e in page.errors)
