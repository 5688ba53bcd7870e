"""Offline data generation on the embedded model through the built-in server: 4 requests in flight
vs one at a time.

    python bench/bench_datagen_local.py [--docs assets/docs] [--pairs 3] [--max-new-tokens 512] [--concurrency 4]

Runs ``pipelines.data.generate`` twice in this process, back to back, each in a fresh workspace (no
cache) on the sample documents' chunks: ``--concurrency 1`` (one request at a time: each decoded
alone) and ``--concurrency N`` (the server decodes the requests in flight together, continuous
batching: a request joins the running rows at the next step and leaves when it ends). The model is
loaded once before either run, so the first does not pay Python's imports alone. Prints per run:
wall seconds, tokens generated (and per second), records, chunks with at least one record, the
server's decoding steps and the most rows one step held, and where the time went (seconds to the
first prompt, seconds reading prompts, decoding steps by how many rows they held and their mean
milliseconds); then the wall-time ratio, the tokens-per-second ratio, and the ratio the run would
have had if a row beside others cost nothing (every step as fast as the one-at-a-time run's).

What bounds the ratio: every prompt is read in both runs at the same cost (a prompt's tokens cost
the same read alone or beside others; the sample chunks' prompts are 700-2,800 tokens, about a
fifth of the one-at-a-time run); a decoding step reads the weights once however many rows it holds,
but each row's own keys and values (on a CPU, about as many bytes per row at 2,000 positions as a
fifth of the weights); and the last answers run with fewer rows.
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
from pipelines.models import continuous, server_engine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


class DecoderClock:
    """Time the server's decoder spends reading prompts and in decoding steps (by rows a step held)."""

    def __init__(self):
        self.admit, self.step = continuous.Decoder.admit, continuous.Decoder.step
        self.first_prompt: float | None = None
        self.prompts = 0.0
        self.steps: dict[int, list[float]] = {}

    def __enter__(self):
        clock, start = self, time.perf_counter()

        def admit(decoder, row):
            t = time.perf_counter()
            if clock.first_prompt is None:
                clock.first_prompt = t - start
            try:
                return clock.admit(decoder, row)
            finally:
                clock.prompts += time.perf_counter() - t

        def step(decoder):
            rows, t = len(decoder.rows), time.perf_counter()
            try:
                return clock.step(decoder)
            finally:
                clock.steps.setdefault(rows, []).append(time.perf_counter() - t)
        continuous.Decoder.admit, continuous.Decoder.step = admit, step
        return self

    def __exit__(self, *exc):
        continuous.Decoder.admit, continuous.Decoder.step = self.admit, self.step

    def summary(self) -> dict:
        return {"to_first_prompt_s": round(self.first_prompt or 0.0, 1), "reading_prompts_s": round(self.prompts, 1),
                "decoding_s": round(sum(map(sum, self.steps.values())), 1),
                "steps_by_rows": {n: len(t) for n, t in sorted(self.steps.items())},
                "ms_per_step_by_rows": {n: round(1000 * sum(t) / len(t), 1) for n, t in sorted(self.steps.items())}}


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
        with DecoderClock() as clock:
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
            "most_rows_in_a_step": getattr(engine, "widest", None), **clock.summary()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", default=str(REPO / "assets" / "docs"))
    p.add_argument("--pairs", type=int, default=datagen.CPU_FIRST_RUN["pairs"])
    p.add_argument("--max-new-tokens", type=int, default=datagen.CPU_FIRST_RUN["max_tokens"])
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--workspace", help="where the embedded model is converted (each run's data goes to a fresh one)")
    args = p.parse_args()
    import os

    from pipelines.models.references import load_model, resolve_model
    # The model converted once, outside the runs' fresh workspaces (a conversion is not what is measured).
    ref = resolve_model("default", None, Workspace.resolve(args.workspace))
    args.model = str(ref.path)
    load_model(ref)     # Python's imports and the weights' pages: paid here, not by the first run alone
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
    # What the same run would take if a row beside others cost nothing: its steps as fast as the
    # one-at-a-time run's (one row each). Prompts, the last answers' few-row steps and the client's
    # work stay as they were: the most that batching rows alone could give this workload here.
    alone = one["decoding_s"] / max(1, sum(one["steps_by_rows"].values()))
    free_rows = many["wall_s"] - many["decoding_s"] + alone * sum(many["steps_by_rows"].values())
    print(f"wall time ratio if a row beside others cost nothing: {one['wall_s'] / free_rows:.2f}x "
          f"({free_rows:.1f} s instead of {many['wall_s']} s)")


if __name__ == "__main__":
    main()
