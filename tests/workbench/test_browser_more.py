"""More of the workbench in headless Chromium, on the tiny models of the fixtures:
a free-form prompt sent to two checkpoints at once, a training run stopped and resumed from
the page, local instruction-data generation with live counts, and the privacy guard refusing
to send a document with a patient identifier to a remote endpoint.

Screenshots land in tests/artifacts/ (look at them)."""
from __future__ import annotations

import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.workbench.test_browser import open_compare_form, open_tab

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def checkpoint(p, name: str):
    return p.locator(f'#compare-checkpoints input[name="{name}"]')


def text_of(p, selector: str) -> str:
    return p.evaluate(f"(document.querySelector({selector!r}) || {{innerText: ''}}).innerText")


def fill_text(p, elem_id: str, value: str) -> None:
    p.locator(f"#{elem_id} textarea, #{elem_id} input").first.fill(value)


def choose(p, elem_id: str, value: str) -> None:
    """Pick a dropdown choice by typing it and taking the matching option."""
    box = p.locator(f"#{elem_id} input").first
    box.click()
    box.fill(value)
    p.get_by_role("option", name=value).first.click()


# -- 1. Compare: one free-form prompt, two checkpoints --------------------------------------

def test_free_form_prompt_is_answered_by_every_chosen_checkpoint(page):
    p = page.page
    open_tab(p, "比較")
    open_compare_form(p)
    checkpoint(p, "default").uncheck()
    checkpoint(p, "tiny-llama").check()
    checkpoint(p, "tiny-run@10").check()
    p.locator("#free-accordion").get_by_text("自由記述プロンプト").first.click()
    # The paper's Table 2 prompt is there by default: treatment for deep vein thrombosis.
    box = p.locator("#free-input textarea")
    assert box.input_value() == "深部静脈血栓症"
    assert "治療" in p.locator("#free-instruction textarea").input_value()
    p.locator("#free-tokens input").fill("8")
    p.locator("#free-send").click()
    p.wait_for_function("document.querySelectorAll('#free-out .ans').length == 2 && "
                        "!document.querySelector('#free-out').innerText.includes('読み込み中')", timeout=60_000)
    cards = p.locator("#free-out .ans")
    labels = [cards.nth(i).locator(".who").inner_text() for i in range(2)]
    assert "tiny-llama" in labels[0] and "tiny-run@10" in labels[1]
    for i in range(2):
        meta = cards.nth(i).inner_text()
        assert " tok · " in meta and "error" not in meta.lower(), meta
    # The adapter changes the model, so the two answers are not one answer shown twice.
    bodies = [cards.nth(i).locator(".resp").inner_text() for i in range(2)]
    assert all(b.strip() for b in bodies)
    page.shot("compare_free_form")
    assert page.errors == [] and page.outbound == []


# -- 2. Train: stop a running run, resume it, one continuous loss curve ---------------------

# plotly.py 6 ships arrays base64-encoded; plotly.js's decoded copy is ``_fullData``.
PLOT_DATA = ("(() => { const g = document.querySelector('#train-curves .js-plotly-plot');"
             " return g && g._fullData && g._fullData.length ? Array.from(g._fullData[0].x) : []; })()")


def curve_steps(p) -> list[float]:
    """The x (step) values of the loss trace, as plotted."""
    return p.evaluate(PLOT_DATA)


def test_train_run_stops_then_resumes_to_the_end_with_one_continuous_loss_curve(page, tiny_llama_dir):
    p = page.page
    open_tab(p, "学習")
    choose(p, "train-model", "tiny-llama")
    p.locator("#train-steps input").fill("8")
    p.locator("#train-batch input").fill("2")
    fill_text(p, "train-save", "8")
    fill_text(p, "train-run-name", "ui-stop-resume")
    p.locator("#train-launch").click()
    p.locator("#train-message .notice.ok").wait_for(timeout=60_000)
    assert "--model tiny-llama" in p.locator("#train-command").inner_text()

    # Stop while the run's process is up. A tiny model takes 0.15-0.8 s a step here, so waiting for
    # logged steps first would race the end of the run; the worker spends seconds loading before its
    # first step, and it checks for a stop request after every step.
    p.wait_for_function("/待機中|実行中/.test(document.querySelector('#train-progress').innerText)",
                        timeout=20_000, polling=200)
    p.locator("#train-stop").click()
    p.locator("#train-message .notice.info").wait_for(timeout=10_000)
    p.wait_for_function("document.querySelector('#train-progress').innerText.includes('停止済み')",
                        timeout=90_000, polling=500)
    page.shot("train_stopped")
    stopped_at = len(curve_steps(p))
    assert 1 <= stopped_at < 8, f"the run was not stopped mid-way ({stopped_at} steps logged)"
    assert "停止済み" in text_of(p, "#train-runs")

    p.locator("#train-resume").click()
    p.locator("#train-message .notice.ok").wait_for(timeout=30_000)
    assert "ui-stop-resume" in p.locator("#train-message").inner_text()
    p.wait_for_function("document.querySelector('#train-progress').innerText.includes('完了')",
                        timeout=180_000, polling=1000)
    # One point per step, 1..8: the resumed run continues where the stopped one left off,
    # with no gap and no step logged twice.
    p.wait_for_function(f"{PLOT_DATA}.length == 8", timeout=20_000)
    assert curve_steps(p) == list(range(1, 9))
    p.wait_for_function("document.querySelector('#train-ckpts').innerText.includes('ui-stop-resume@8')",
                        timeout=20_000)
    page.shot("train_resumed_finished")
    assert page.errors == []


# -- 3. Data: local generation with live counts; privacy guard against a remote endpoint ----

DOCS = {
    "dvt.txt": "深部静脈血栓症は下肢の深部静脈に血栓が生じる疾患である。\n治療の中心は抗凝固療法である。\n"
               "直接経口抗凝固薬やヘパリンが用いられる。\n",
    "hf.md": "# 心不全\n心不全は心臓のポンプ機能が低下した状態である。\n利尿薬で体液量を調整する。\n",
}
PATIENT = "症例：患者ID 0012345、62歳男性。左下肢の腫脹で来院した。\n"


@pytest.fixture
def docs_dir(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    for name, text in DOCS.items():
        (d / name).write_text(text, encoding="utf-8")
    return d


class Trap:
    """An 'OpenAI endpoint' on this machine's network address (not loopback): counts requests."""

    def __init__(self):
        self.hits: list[str] = []
        host = self.outward_address()
        trap = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                trap.hits.append(self.path)
                self.send_response(500)
                self.end_headers()

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler) if host else None
        if self.server:
            threading.Thread(target=self.server.serve_forever, daemon=True).start()
            self.url = f"http://{host}:{self.server.server_address[1]}/v1"
        else:                      # no network address: a name that cannot resolve
            self.url = "https://api.example.invalid/v1"

    @staticmethod
    def outward_address() -> str | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect(("192.0.2.1", 9))   # no packet is sent for a UDP connect
                addr = s.getsockname()[0]
            except OSError:
                return None
        return None if addr.startswith("127.") else addr

    def close(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def start_generation(p, docs, dataset: str, model: str, url: str, max_tokens: int) -> None:
    fill_text(p, "data-docs", str(docs))
    fill_text(p, "data-dataset", dataset)
    fill_text(p, "data-gen-model", model)
    fill_text(p, "data-base-url", url)
    p.locator("#data-pairs input").fill("1")
    p.locator("#data-max-tokens input").fill(str(max_tokens))
    p.locator("#data-generate").click()


def test_local_generation_shows_live_counts_then_final_counts(page, docs_dir):
    p = page.page
    open_tab(p, "データ")
    start_generation(p, docs_dir, "ui-gen", "tiny-llama", "", 12)
    p.locator("#data-gen-msg .runmon.running").wait_for(timeout=10_000)
    page.shot("data_generating")
    p.wait_for_function("document.querySelector('#data-gen-msg .runmon.finished, #data-gen-msg .runmon.failed')",
                        timeout=90_000, polling=500)
    text = text_of(p, "#data-gen-msg")
    assert "完了" in text, text
    # Every chunk answered (garbage from a random model counts as unparseable, not as an error).
    m = re.search(r"(\d+)/(\d+) · [\d:]+ · 追加 (\d+) 件 · 解析不能 (\d+) · キャッシュ (\d+) · エラー (\d+) · トークン (\d+)",
                  text)
    assert m, text
    done, total, added, unparseable, cached, errors, tokens = map(int, m.groups())
    assert done == total >= 2 and errors == 0 and cached == 0 and tokens > 0
    assert added + unparseable >= total
    if added:          # the new dataset is listed in the curation section
        p.locator("#data-ds input").click()
        p.get_by_role("option", name="ui-gen").first.wait_for(timeout=10_000)
        p.keyboard.press("Escape")
    else:              # a random model's output: the page says why nothing was added, and what to do
        assert "解析不能として保存済み" in text and "最大トークン数" in text, text
    page.shot("data_generated")
    assert page.errors == [] and page.outbound == []


def test_privacy_guard_refuses_a_remote_endpoint_and_shows_the_findings(page, docs_dir, app_workspace):
    (docs_dir / "case.txt").write_text(PATIENT, encoding="utf-8")
    trap = Trap()
    try:
        p = page.page
        open_tab(p, "データ")
        start_generation(p, docs_dir, "ui-remote", "gpt-4o-mini", trap.url, 64)
        p.locator("#data-gen-msg .runmon.failed").wait_for(timeout=30_000)
        text = text_of(p, "#data-gen-msg")
        assert "個人情報らしき箇所" in text and trap.url in text and "何も送信していません" in text, text
        p.wait_for_function("document.querySelector('#data-findings').innerText.includes('0012345')",
                            timeout=10_000)
        findings = text_of(p, "#data-findings")
        assert "case.txt" in findings
        page.shot("data_privacy_refused")
        assert trap.hits == [], f"requests reached the remote endpoint: {trap.hits}"
        from pipelines.data import store as datastore
        assert datastore.count_records(app_workspace, "ui-remote") == 0
        assert page.errors == [] and page.outbound == []
    finally:
        trap.close()
