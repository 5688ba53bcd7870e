"""A model with random weights and a real model's architecture and tokenizer, for timing elsewhere.

    python bench/make_random_model.py --like workspace/models/default --out /tmp/smollm2-random \
        [--hidden 2048 --layers 22 --intermediate 5632 --heads 32 --kv-heads 4] [--dtype bfloat16]

Speed and memory depend on the shapes, not on the weights' values, so a benchmark on a machine
the real weights cannot reach (the GPU machine takes 64 MiB of files; the embedded model is
98 MB) uses this copy: same tokenizer, same prompts, same token counts. Accuracy figures from
it mean nothing; agreement between two scorers of the same random model still does.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--like", required=True, help="a model directory: its config.json and tokenizer are used")
    ap.add_argument("--out", required=True)
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--intermediate", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--kv-heads", type=int)
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(args.like)
    for field, value in (("hidden_size", args.hidden), ("num_hidden_layers", args.layers),
                         ("intermediate_size", args.intermediate), ("num_attention_heads", args.heads),
                         ("num_key_value_heads", args.kv_heads)):
        if value:
            setattr(config, field, value)
    if args.hidden and args.heads:
        config.head_dim = args.hidden // args.heads
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, args.dtype))
    out = Path(args.out)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (Path(args.like) / name).exists():
            shutil.copy(Path(args.like) / name, out / name)
    n = sum(p.numel() for p in model.parameters())
    print(f"{out}: {config.model_type}, {n / 1e6:.0f}M parameters, {args.dtype}, random weights")


if __name__ == "__main__":
    main()
