"""Offline data generation on the embedded model: the built-in server gathering concurrent
requests into one batch, vs starting each batch with the first request that arrives.

    python bench/bench_datagen_local.py [--docs assets/docs] [--pairs 3] [--max-new-tokens 512] [--concurrency 4]

Runs ``pipelines.data.generate`` twice in this process, back to back, each in a fresh workspace (no
cache): with ``serve_engine.GATHER_S = 0`` and with the default. Prints per run: wall seconds,
records, chunks with at least one record, ``generate`` calls and mean rows per call; then the
wall-time ratio.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines import datagen, serve_engine  # noqa: E402
from pipelines.core.workspace import Workspace  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def run_once(args, gather_s: float) -> dict:
    serve_engine.GATHER_S = gather_s
    rows: list[int] = []
    generate = serve_engine.ChatEngine._generate

    def counted(self, batch):
        rows.append(len(batch))
        return generate(self, batch)
    serve_engine.ChatEngine._generate = counted
    try:
        ws = Workspace.resolve(Path(tempfile.mkdtemp(prefix="bench-datagen-local-")))
        t0 = time.perf_counter()
        summary = datagen.run(datagen.DatagenConfig(
            docs=args.docs, dataset="bench", model="default", pairs=args.pairs, max_tokens=args.max_new_tokens,
            concurrency=args.concurrency, workspace=str(ws.root)), workspace=ws)
        wall = time.perf_counter() - t0
    finally:
        serve_engine.ChatEngine._generate = generate
    chunks = ws.query("SELECT COUNT(DISTINCT chunk_id) AS n FROM dg_records WHERE dataset = 'bench'")[0]["n"]
    return {"gather_s": gather_s, "wall_s": round(wall, 1), "records": summary["records"],
            "chunks_with_records": f"{chunks}/{summary['total']}", "generate_calls": len(rows),
            "rows_per_call": round(sum(rows) / max(1, len(rows)), 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", default=str(REPO / "assets" / "docs"))
    p.add_argument("--pairs", type=int, default=datagen.CPU_FIRST_RUN["pairs"])
    p.add_argument("--max-new-tokens", type=int, default=datagen.CPU_FIRST_RUN["max_tokens"])
    p.add_argument("--concurrency", type=int, default=4)
    args = p.parse_args()
    default = serve_engine.GATHER_S
    results = [run_once(args, 0.0), run_once(args, default)]
    for r in results:
        print(r, flush=True)
    print(f"wall time, gathering ({default} s) vs not: {results[1]['wall_s'] / results[0]['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
