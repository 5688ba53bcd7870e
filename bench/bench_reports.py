"""Reports from images, in figures: seconds per report and peak memory at batch 1 and 4.

    python bench/bench_reports.py [--shape tiny|demo] [--batches 1 4] [--reports 8] [--max-new-tokens 64]
    python bench/bench_reports.py --device cuda --shape 8b          # on a GPU machine only

Each (shape, batch size) runs in a fresh child process, so its peak RSS (``getrusage``: that
process alone, model included) is its own; on CUDA the child also reports its peak GPU memory. The
model is built in the child from its shapes with random weights (speed and memory depend on the
shapes, not the values) and the embedded model's tokenizer with ``<image>`` added, and goes
through ``pipelines.models.vision.VisionGenerator`` as every caller's does:

  tiny  the tests' model: CLIP-like tower (32 px, 8 px patches: 16 image tokens, 2 layers, width
        32) and a Llama of 2 layers, width 64
  demo  demo-vlm's shapes: SigLIP-like tower (224 px, 32 px patches: 49 image tokens, 4 layers,
        width 192) and a SmolLM2-135M-shaped Llama (30 layers, width 576)
  8b    LLaVA-1.5-shaped, bfloat16: CLIP ViT-L/14 at 336 px (576 image tokens, 24 layers, width
        1024) and a Llama-3-8B-shaped tower (32 layers, width 4096, 14336, 32 heads / 8 KV heads);
        the vocabulary is the embedded tokenizer's 49,153 rather than Llama 3's 128,256 (0.65 B
        fewer embedding parameters, a smaller output layer)

Every report runs to ``--max-new-tokens`` (the random model's end-of-sequence token is switched
off, no stop strings), so seconds per report compare across batch sizes; one short warm-up report
runs first and is not counted, and the timed reports run ``--repeat`` times: the fastest run is
printed with the median beside it (a shared CPU's other work only ever slows a run down). Images
are random 512×512 grey images.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROMPT = "この胸部X線画像の所見を日本語で書いてください。"
SHAPES = {
    "tiny": {"vision_type": "clip",
             "vision": dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                            num_hidden_layers=2, num_attention_heads=2),
             "text": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, max_position_embeddings=2048)},
    "demo": {"vision_type": "siglip", "vision": None,           # demo_vlm.DEMO_VISION
             "text": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                          num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0)},
    "8b": {"vision_type": "clip",
           "vision": dict(image_size=336, patch_size=14, hidden_size=1024, intermediate_size=4096,
                          num_hidden_layers=24, num_attention_heads=16),
           "text": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                        num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
                        tie_word_embeddings=False)},
}


def build(shape: str, device: str, tokenizer_dir: str | None):
    """A VisionGenerator around a random model of ``shape``, on ``device``."""
    import torch

    from pipelines.models import demo_vlm
    from pipelines.models.references import _gguf_source
    from pipelines.models.vision import VisionGenerator

    spec = SHAPES[shape]
    tokenizer = (demo_vlm.tokenizer_with_image_token(Path(tokenizer_dir)) if tokenizer_dir
                 else demo_vlm.tokenizer_with_image_token(None, gguf=_gguf_source()))
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model, processor = demo_vlm.assemble(tokenizer, spec["vision"] or demo_vlm.DEMO_VISION,
                                         demo_vlm.tiny_text_config(tokenizer, **spec["text"]),
                                         dtype=dtype, device=device, vision_type=spec["vision_type"])
    model.generation_config.eos_token_id = None       # every report runs to max_new_tokens
    return VisionGenerator(model, processor, label=f"random {shape}")


def images(n: int) -> list:
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (512, 512), dtype=np.uint8)) for _ in range(n)]


def run_one(args) -> None:
    """The child: build, warm up, time ``--reports`` reports at ``--batch``; one JSON line out."""
    import torch

    from pipelines.models.generation import GenerationSettings

    t0 = time.perf_counter()
    gen = build(args.shape, args.device, args.tokenizer)
    built = time.perf_counter() - t0
    gen.batch_size = gen.first_batch = args.batch
    settings = GenerationSettings(temperature=0, max_new_tokens=args.max_new_tokens, stop=())
    list(gen.generate_reports(images(1), PROMPT, GenerationSettings(temperature=0, max_new_tokens=2, stop=())))
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    pictures, runs = images(args.reports), []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        done = dict(gen.generate_reports(pictures, PROMPT, settings))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        runs.append(time.perf_counter() - t0)
    tokens = sum(c.n_tokens for c in done.values())
    print(json.dumps({"build_s": built, "seconds": min(runs), "median_s": sorted(runs)[len(runs) // 2],
                      "reports": len(done), "new_tokens": tokens,
                      "prompt_tokens": done[0].info.get("prompt_tokens"),
                      "parameters": sum(p.numel() for p in gen.model.parameters()),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2 ** 20
                      if args.device.startswith("cuda") else None}))


def run_case(args, batch: int) -> dict:
    cmd = [sys.executable, __file__, "--one", "--shape", args.shape, "--device", args.device, "--batch", str(batch),
           "--reports", str(args.reports), "--max-new-tokens", str(args.max_new_tokens), "--repeat", str(args.repeat)]
    if args.tokenizer:
        cmd += ["--tokenizer", args.tokenizer]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "batch": batch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="tiny", choices=sorted(SHAPES), help="the random model's shapes (see above)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 4], help="batch sizes, one child process each")
    ap.add_argument("--reports", type=int, default=8, help="reports timed per case")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="tokens per report (every report runs to it)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per case: the fastest is reported")
    ap.add_argument("--tokenizer", help="a model directory whose tokenizer to use (default: the embedded GGUF's)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)     # the child
    ap.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return run_one(args)
    if args.shape == "8b" and not args.device.startswith("cuda"):
        raise SystemExit("--shape 8b needs --device cuda (16 GB of bfloat16 weights)")
    sys.stdout.reconfigure(line_buffering=True)
    print(f"shape={args.shape} device={args.device} reports={args.reports} max_new_tokens={args.max_new_tokens} "
          f"repeat={args.repeat} load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for batch in args.batches:
        r = run_case(args, batch)
        gpu = f"  GPU peak {r['gpu_peak_mb']:7.0f} MB" if r["gpu_peak_mb"] is not None else ""
        print(f"batch {batch:2d}: {r['seconds'] / r['reports']:7.2f} s/report "
              f"(median {r['median_s'] / r['reports']:.2f})  "
              f"{r['new_tokens'] / r['seconds']:7.1f} new tokens/s  ({r['reports']} reports, "
              f"{r['new_tokens']} new tokens, {r['prompt_tokens']} prompt tokens each)  "
              f"peak RSS {r['peak_rss_mb']:6.0f} MB{gpu}  "
              f"[{r['parameters'] / 1e6:,.1f} M parameters, built in {r['build_s']:.1f} s]")


if __name__ == "__main__":
    main()
