"""Offline data generation on the embedded model through the built-in server: 4 requests in flight
vs one at a time.

    python bench/bench_datagen_local.py [--docs assets/docs] [--pairs 3] [--max-new-tokens 512] [--concurrency 4]

Runs ``pipelines.data.generate`` twice in this process, back to back, each in a fresh workspace (no
cache) on the sample documents' chunks: ``--concurrency 1`` (one request at a time: each decoded
alone) and ``--concurrency N`` (the server decodes the requests in flight together, continuous
batching: a request joins the running rows at the next step and leaves when it ends). Prints per
run: wall seconds, tokens generated (and per second), records, chunks with at least one record,
the server's decoding steps and the most rows one step held; then the wall-time ratio and the
tokens-per-second ratio.

What bounds the ratio: every prompt is read in both runs at the same cost (a prompt's tokens cost
the same read alone or beside others; the sample chunks' prompts are 700-2,800 tokens, about a
fifth of the one-at-a-time run), and only the answers' tokens are shared between rows.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.core.workspace import Workspace  # noqa: E402
from pipelines.data import generate as datagen  # noqa: E402
from pipelines.models import server_engine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def run_once(args, concurrency: int) -> dict:
    engines: list = []
    generated = [0]
    init, result = server_engine.ChatEngine.__init__, server_engine.ChatEngine.result

    def remembered(self, *a, **kw):         # the engine datagen's built-in server makes
        init(self, *a, **kw)
        engines.append(self)

    def counted(self, job):                 # tokens generated, answer by answer
        out = result(self, job)
        generated[0] += out[2]
        return out
    server_engine.ChatEngine.__init__, server_engine.ChatEngine.result = remembered, counted
    try:
        ws = Workspace.resolve(Path(tempfile.mkdtemp(prefix="bench-datagen-local-")))
        t0 = time.perf_counter()
        summary = datagen.run(datagen.DatagenConfig(
            docs=args.docs, dataset="bench", model=args.model, pairs=args.pairs, max_tokens=args.max_new_tokens,
            concurrency=concurrency, workspace=str(ws.root)), workspace=ws)
        wall = time.perf_counter() - t0
    finally:
        server_engine.ChatEngine.__init__, server_engine.ChatEngine.result = init, result
    chunks = ws.query("SELECT COUNT(DISTINCT chunk_id) AS n FROM dg_records WHERE dataset = 'bench'")[0]["n"]
    engine = engines[-1] if engines else None
    return {"concurrency": concurrency, "wall_s": round(wall, 1), "generated_tokens": generated[0],
            "tokens_per_s": round(generated[0] / wall, 2), "records": summary["records"],
            "chunks_with_records": f"{chunks}/{summary['total']}", "steps": getattr(engine, "steps", None),
            "most_rows_in_a_step": getattr(engine, "widest", None)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", default=str(REPO / "assets" / "docs"))
    p.add_argument("--pairs", type=int, default=datagen.CPU_FIRST_RUN["pairs"])
    p.add_argument("--max-new-tokens", type=int, default=datagen.CPU_FIRST_RUN["max_tokens"])
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--workspace", help="where the embedded model is converted (each run's data goes to a fresh one)")
    args = p.parse_args()
    import os

    from pipelines.models.references import resolve_model
    # The model converted once, outside the runs' fresh workspaces (a conversion is not what is measured).
    args.model = str(resolve_model("default", None, Workspace.resolve(args.workspace)).path)
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    results = [run_once(args, 1), run_once(args, args.concurrency)]
    for r in results:
        print(r, flush=True)
    one, many = results
    print(f"wall time, one at a time / {args.concurrency} in flight: {one['wall_s'] / many['wall_s']:.2f}x")
    # Sampled answers differ between the runs (rows decoded together round differently from a row
    # alone, and a seeded draw then diverges), and so do their lengths: tokens/s compares equal work.
    print(f"generated tokens per second, {args.concurrency} in flight / one at a time: "
          f"{many['tokens_per_s'] / one['tokens_per_s']:.2f}x")


if __name__ == "__main__":
    main()
