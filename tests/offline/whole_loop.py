"""The whole loop through the CLIs, as a user runs it: serve a local model, generate data
against it, curate, train a tiny run, evaluate two checkpoints, open the workbench.

    python tests/offline/whole_loop.py MODEL_DIR WORK_DIR      # run by tests/test_offline.py

Exits non-zero naming the step that failed."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
model, work = Path(sys.argv[1]), Path(sys.argv[2])
ws = work / "ws"
env = {**os.environ, "JMEDLORA_WORKSPACE": str(ws)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step(name: str, *cmd: str, timeout: float = 600) -> str:
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    proc = subprocess.run([sys.executable, *cmd], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    print(proc.stdout[-3000:], proc.stderr[-3000:], flush=True)
    if proc.returncode != 0:
        sys.exit(f"step {name!r} failed with exit code {proc.returncode}")
    return proc.stdout


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 300) -> bytes:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{url}: the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.read()
        except OSError:
            time.sleep(1)
    sys.exit(f"{url} did not answer in {timeout} s")


def background(*cmd: str, log: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *cmd], cwd=REPO, env=env, stdout=open(work / log, "w"),
                            stderr=subprocess.STDOUT)


docs = work / "docs"
docs.mkdir(parents=True)
(docs / "hf.md").write_text("\n".join(f"心不全の第{i}の知見。" for i in range(1, 7)), encoding="utf-8")
data = work / "train.jsonl"
PAIRS = [("心不全の定義を説明してください。", "心臓のポンプ機能が低下し、息切れやむくみが出る臨床症候群です。"),
         ("糖尿病の診断基準を述べてください。", "空腹時血糖126以上やHbA1c6.5%以上などで診断します。"),
         ("深部静脈血栓症の治療は何ですか。", "抗凝固療法を行い、肺塞栓症の予防に努めます。"),
         ("高血圧の生活指導を挙げてください。", "減塩、適度な運動、節酒、体重管理を勧めます。"),
         ("肺炎の主な起炎菌は何ですか。", "市中肺炎では肺炎球菌が最も多くみられます。"),
         ("貧血の鑑別で最初に見る指標は？", "平均赤血球容積により小球性、正球性、大球性に分けます。")]
data.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}, ensure_ascii=False) + "\n"
                        for q, a in PAIRS), encoding="utf-8")

port = free_port()
server = background("-m", "pipelines.models.server", "--model", str(model), "--port", str(port), "--model-id", "tiny",
                    log="serve.log")
try:
    models = json.loads(wait_http(f"http://127.0.0.1:{port}/v1/models", server))
    assert models["data"][0]["id"] == "tiny", models
    step("datagen", "-m", "pipelines.data.generate", "--docs", str(docs), "--dataset", "demo", "--model", "tiny",
         "--base-url", f"http://127.0.0.1:{port}/v1", "--pairs", "2", "--chunk-size", "3", "--max-tokens", "24")
finally:
    server.terminate()
    server.wait(30)
# A random tiny model writes no parseable pairs: the records to curate come in as an import.
step("import", "-m", "pipelines.data.curate", "import", "--jsonl", str(data), "--dataset", "demo")
step("curate", "-m", "pipelines.data.curate", "filter", "--dataset", "demo", "--min-answer-chars", "1")
step("export", "-m", "pipelines.data.curate", "export", "--dataset", "demo", "--format", "alpaca", "--out", "demo.jsonl")
exported = ws / "exports" / "demo.jsonl"
step("train", "-m", "pipelines.training.launch", "--model", str(model), "--data", str(exported), "--out", str(work / "run"),
     "--run-name", "offline", "--max-steps", "2", "--save-steps", "1", "--batch-size", "2",
     "--max-prompt-length", "32", "--max-target-length", "32")
for ckpt in ("offline@1", "offline@2"):
    step(f"evaluate {ckpt}", "-m", "pipelines.evaluation.evaluator", "--model", ckpt, "--out", str(work / f"ev-{ckpt}"),
         "--data", str(REPO / "assets/questions/sample_ja.jsonl"), "--limit", "1", "--max-new-tokens", "4")
    assert json.loads((work / f"ev-{ckpt}" / "summary.json").read_text())["by_shots"]["0"]["n"] == 1

port = free_port()
ui = background(str(REPO / "launch.py"), "--no-auth", "--port", str(port), "--workspace", str(ws), log="ui.log")
try:
    page = wait_http(f"http://127.0.0.1:{port}/", ui)
    assert b"<html" in page.lower() or b"gradio" in page.lower(), page[:500]
    time.sleep(3)              # anything the page or server does right after start-up happens now
finally:
    ui.terminate()
    ui.wait(30)
print("whole loop finished offline", flush=True)
