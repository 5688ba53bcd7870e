"""A running workbench for browser tests: ``python launch.py`` in a subprocess on a free
loopback port, over a temp workspace holding the embedded model's cache (linked), a tiny
Llama registered as a base model, and a LoRA adapter on it registered as checkpoint @10."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_adapter(base_dir: Path, out: Path) -> Path:
    """A LoRA adapter with random (non-zero) weights: its answers differ from the base model's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def app_workspace(tmp_path_factory, default_model_dir, tiny_llama_dir):
    from pipelines.core.workspace import Workspace
    ws = Workspace.resolve(tmp_path_factory.mktemp("app_ws"))
    (ws.root / "models").mkdir(exist_ok=True)
    os.symlink(default_model_dir, ws.root / "models" / "default")
    ws.register_model("default", "base", str(ws.root / "models" / "default"), step=0)
    ws.register_model("tiny-llama", "base", str(tiny_llama_dir), step=0)
    adapter = make_adapter(tiny_llama_dir, ws.root / "adapters" / "tiny-run-10")
    ws.register_model("tiny-run@10", "adapter", str(adapter), base_model="tiny-llama", step=10,
                      train_hours=0.01, run_id="tiny-run")
    return ws


@pytest.fixture(scope="session")
def app_url(app_workspace, tmp_path_factory):
    port = free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = open(ARTIFACTS / "app.log", "w")
    # The tests' scratch folders (documents, dev sets) are outside the workspace: allowed as an
    # administrator allows a share (pipelines/core/page_paths.py); everything else stays refused.
    env = {**os.environ, "JMEDLORA_WORKSPACE": str(app_workspace.root),
           "JMEDLORA_READ_DIRS": str(tmp_path_factory.getbasetemp())}
    # --no-auth: these tests drive the pages; login itself is tested in test_launch.py.
    proc = subprocess.Popen([sys.executable, "launch.py", "--port", str(port), "--workspace", str(app_workspace.root),
                             "--no-auth"],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    t0 = time.time()
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.time() - t0 > 60:
                proc.kill()
                raise RuntimeError(f"workbench did not start; see {ARTIFACTS / 'app.log'}")
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        # In CI a missing browser is a failure: a skip would pass the UI untested and look green.
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium is not at {CHROMIUM} in CI. Fix: make install-dev installs it "
                        "(apt-get install -y chromium fonts-noto-cjk).")
        pytest.skip("Chromium not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Watched:
    """A page whose console errors and non-loopback requests are recorded."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []
        self.outbound: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("request", self._request)

    def _request(self, req):
        url = req.url
        if not url.startswith(("http://127.0.0.1", "data:", "blob:", "about:")):
            self.outbound.append(url)

    def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(browser, app_url):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="ja-JP")
    w = Watched(ctx.new_page())
    w.page.goto(app_url)
    w.page.wait_for_selector("#tabs", timeout=30_000)
    yield w
    ctx.close()
