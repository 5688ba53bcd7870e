"""Offline data generation on the embedded model through the built-in server: 4 requests in flight
vs one at a time.

    python bench/bench_datagen_local.py [--docs assets/docs] [--pairs 3] [--max-new-tokens 512] [--concurrency 4]

Runs ``pipelines.data.generate`` twice in this process, back to back, each in a fresh workspace (no
cache) on the sample documents' chunks: ``--concurrency 1`` (one request at a time: each decoded
alone) and ``--concurrency N`` (the server decodes the requests in flight together, continuous
batching: a request joins the running rows at the next step and leaves when it ends). Prints per
run: wall seconds, records, chunks with at least one record, the server's decoding steps and the
most rows one step held; then the wall-time ratio.
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
    init = server_engine.ChatEngine.__init__

    def remembered(self, *a, **kw):         # the engine datagen's built-in server makes
        init(self, *a, **kw)
        engines.append(self)
    server_engine.ChatEngine.__init__ = remembered
    try:
        ws = Workspace.resolve(Path(tempfile.mkdtemp(prefix="bench-datagen-local-")))
        t0 = time.perf_counter()
        summary = datagen.run(datagen.DatagenConfig(
            docs=args.docs, dataset="bench", model=args.model, pairs=args.pairs, max_tokens=args.max_new_tokens,
            concurrency=concurrency, workspace=str(ws.root)), workspace=ws)
        wall = time.perf_counter() - t0
    finally:
        server_engine.ChatEngine.__init__ = init
    chunks = ws.query("SELECT COUNT(DISTINCT chunk_id) AS n FROM dg_records WHERE dataset = 'bench'")[0]["n"]
    engine = engines[-1] if engines else None
    return {"concurrency": concurrency, "wall_s": round(wall, 1), "records": summary["records"],
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
    print(f"wall time, one at a time / {args.concurrency} in flight: {results[0]['wall_s'] / results[1]['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
