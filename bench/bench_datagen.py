"""Benchmark of the instruction-data pipeline at the paper's scale (issue 3).

    python bench/bench_datagen.py [--records 100000] [--chunks 48] [--latency 0.25] [--concurrency 8]

1. Curation of 100,000 synthetic Japanese Q&A records (the paper generated 77,422): time of the
   near-duplicate detection (MinHash LSH) and of all filters together. Target: < 60 s.
2. Generation speed-up with N requests in flight against a local OpenAI-compatible server
   with a fixed latency per request, N vs 1, measured side by side. Target: >= 0.8 x N.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines import datagen, datastore  # noqa: E402
from pipelines.data import dataset_export, filters  # noqa: E402
from pipelines.core.workspace import Workspace  # noqa: E402
from tests.pipelines.fake_openai_server import FakeOpenAIServer  # noqa: E402

DISEASES = ["心不全", "糖尿病", "深部静脈血栓症", "肺塞栓症", "高血圧", "心房細動", "慢性腎臓病", "脂質異常症",
            "狭心症", "心筋梗塞", "肺炎", "喘息", "COPD", "肝硬変", "膵炎", "脳梗塞", "貧血", "甲状腺機能亢進症"]
ASPECTS = ["定義", "診断基準", "治療", "予後", "病態生理", "疫学", "合併症", "検査所見", "薬物療法", "生活指導"]
DRUGS = ["利尿薬", "β遮断薬", "ACE阻害薬", "SGLT2阻害薬", "DOAC", "ワルファリン", "スタチン", "インスリン",
         "メトホルミン", "ARNI", "ヘパリン", "カルシウム拮抗薬"]
PHRASES = ["が推奨される", "を考慮する", "が重要である", "に注意が必要である", "が有効である", "を評価する",
           "が第一選択である", "は禁忌である", "で改善する", "の適応となる"]


def synthetic_records(n: int, seed: int = 0) -> list[dict]:
    """Varied records; about 10% near-copies of an earlier one (one word changed or added)."""
    rng = random.Random(seed)
    out: list[dict] = []
    for i in range(n):
        if out and rng.random() < 0.1:
            base = out[rng.randrange(len(out))]
            out.append({"instruction": base["instruction"].replace("？", "を教えてください。"),
                        "output": base["output"] + "ただし個別の判断を要する。"})
            continue
        d, a = rng.choice(DISEASES), rng.choice(ASPECTS)
        sentences = [f"{d}では{rng.choice(DRUGS)}{rng.choice(PHRASES)}。" for _ in range(rng.randint(2, 5))]
        out.append({"instruction": f"{d}の{a}について{rng.choice(DRUGS)}の観点から説明してください（症例{i}）？",
                    "output": f"{d}の{a}は症例{i}において" + "".join(sentences)})
    return out


def bench_curation(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.resolve(tmp)
        t0 = time.perf_counter()
        datastore.add_records(ws, "bench", synthetic_records(n))
        t_insert = time.perf_counter() - t0
        t0 = time.perf_counter()
        near = filters.run(filters.CurateConfig(dataset="bench", filters=["near_duplicate"], workspace=tmp), workspace=ws)
        t_near = time.perf_counter() - t0
        t0 = time.perf_counter()
        every = filters.run(filters.CurateConfig(dataset="bench", workspace=tmp), workspace=ws)
        t_all = time.perf_counter() - t0
        t0 = time.perf_counter()
        dataset_export.export(dataset_export.ExportConfig(dataset="bench", format="alpaca", out=f"{tmp}/out.jsonl",
                                                          workspace=tmp), workspace=ws)
        t_export = time.perf_counter() - t0
    return {"records": n, "insert_s": t_insert, "near_dup_s": t_near, "near_dups": near["near_duplicate"],
            "all_filters_s": t_all, "flagged": every["flagged"], "export_s": t_export}


def bench_concurrency(chunks: int, latency: float, n: int) -> dict:
    def reply(prompt: str) -> str:
        return "\n".join(f"'instruction': 質問{i}？, 'output': 回答{i}。" for i in range(15))

    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        (docs / "doc.txt").write_text("\n".join(f"第{i}行の医学的記述。" for i in range(chunks)), encoding="utf-8")
        times = {}
        with FakeOpenAIServer(reply, latency=latency) as srv:
            for c in (1, n):
                cfg = datagen.DatagenConfig(docs=str(docs), dataset=f"c{c}", model="fake-model", base_url=srv.base_url,
                                            chunk_size=1, chunk_overlap=0, concurrency=c,
                                            workspace=f"{tmp}/ws{c}")     # separate caches: nothing is reused
                t0 = time.perf_counter()
                summary = datagen.run(cfg)
                times[c] = time.perf_counter() - t0
                assert summary["done"] == chunks and summary["errors"] == 0
            peak = srv.max_inflight
    return {"chunks": chunks, "latency_s": latency, "n": n, "t1_s": times[1], "tn_s": times[n],
            "speedup": times[1] / times[n], "peak_inflight": peak}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--chunks", type=int, default=48)
    p.add_argument("--latency", type=float, default=0.25)
    p.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args()

    c = bench_curation(args.records)
    print(f"curation of {c['records']:,} records: insert {c['insert_s']:.1f} s, "
          f"near-duplicate detection {c['near_dup_s']:.1f} s ({c['near_dups']:,} flagged; target < 60 s: "
          f"{'PASS' if c['near_dup_s'] < 60 else 'FAIL'}), all filters {c['all_filters_s']:.1f} s "
          f"({c['flagged']:,} flagged), alpaca export {c['export_s']:.1f} s")
    g = bench_concurrency(args.chunks, args.latency, args.concurrency)
    target = 0.8 * g["n"]
    print(f"generation of {g['chunks']} chunks at {g['latency_s']} s/request: N=1 {g['t1_s']:.2f} s, "
          f"N={g['n']} {g['tn_s']:.2f} s → speed-up {g['speedup']:.2f}x (peak {g['peak_inflight']} in flight; "
          f"target >= {target:.1f}x: {'PASS' if g['speedup'] >= target else 'FAIL'})")


if __name__ == "__main__":
    main()
