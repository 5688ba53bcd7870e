"""``bench_loglik.py --endpoint``: log-likelihoods in this process vs through a server's ``/v1/completions``.

The same questions and prompts as the local run; the server is ``jmedlora serve`` on the same
model (``--endpoint serve``, started here in its own process and stopped at the end) or any
OpenAI-compatible server given by URL (vLLM, llama.cpp's server, TGI). Through the server it
measures 1, 4 and 8 questions in flight (``--in-flight``): each question is one request of 1 +
choices prompts, and the server batches what arrives together.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(model: str, workspace: str | None, batch_size: int = 8):
    """``jmedlora serve`` on ``model`` in its own process: (base URL, model id)."""
    port = _free_port()
    cmd = [sys.executable, "-m", "pipelines.models.server", "--model", model, "--port", str(port),
           "--batch-size", str(batch_size)] + (["--workspace", workspace] if workspace else [])
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise SystemExit(f"the server exited: {proc.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as resp:
                    yield base, json.loads(resp.read())["data"][0]["id"]
                    return
            except OSError:
                time.sleep(0.5)
        raise SystemExit("the server did not answer within 5 minutes")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _model_id(base: str) -> str:
    key = os.environ.get("OPENAI_API_KEY", "")
    req = urllib.request.Request(f"{base}/models", headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["data"][0]["id"]


def endpoint_mode(args, job: dict, questions, run_local) -> None:
    from pipelines.core.locality import is_local
    from pipelines.models.completions_endpoint import CompletionsEndpoint
    from pipelines.models.generation import Prompt
    from pipelines.tasks.igakuqa import Question

    qs = [Question(**q) for q in job["questions"]]
    prompts = [Prompt(text=t) for t in job["prompts"]]
    local = run_local()
    print(f"in this process: {len(qs)} questions in {local['wall']:.2f} s = {len(qs) / local['wall']:.2f} q/s "
          f"(batch {args.batch_size or 16}, peak RSS {local['peak_rss_mb']:.0f} MB)")
    reference = local["logprobs"]

    def measure(base: str, model_id: str) -> None:
        for n in [int(x) for x in args.in_flight.split(",")]:
            backend = CompletionsEndpoint(base, model_id, concurrency=n, is_local=is_local(base))
            t0 = time.perf_counter()
            got = backend.score_choices(qs, prompts)
            wall = time.perf_counter() - t0
            flat = [sums[letter] for (sums, _), q in zip(got, qs) for letter in q.letters]
            gap = max(abs(a - b) for a, b in zip(flat, reference))
            print(f"through {base}, {n} in flight: {wall:.2f} s = {len(qs) / wall:.2f} q/s "
                  f"({local['wall'] / wall:.2f}x in-process)  max |Δ log-prob| vs in-process {gap:.1e}")

    if args.endpoint == "serve":
        with served(job["model"], args.workspace) as (base, model_id):
            measure(base, model_id)
    else:
        measure(args.endpoint, args.endpoint_model or _model_id(args.endpoint))
