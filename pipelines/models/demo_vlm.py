"""``demo-vlm``: a small LLaVA-style image+text model built offline, to try reports from images
end to end where no vision-language weights can be downloaded.

    jmedlora models prepare-demo-vlm [--workspace DIR] [--rebuild]

What it is made of:
* a SigLIP-like vision tower with **random** weights (224×224 images in 32×32 patches: 49 image
  tokens; 4 layers of width 192) and a random two-layer projector: the model does not see the
  image in any meaningful way;
* the embedded SmolLM2-135M-Instruct as the language tower when the workspace holds its converted
  weights (``jmedlora models prepare-default`` makes them), else a tiny random Llama (2 layers,
  width 64); either way the embedded model's tokenizer, with an ``<image>`` token added;
* a LLaVA processor: the SigLIP image processor, that tokenizer and a ChatML chat template in which
  an image part of a message becomes the ``<image>`` placeholder.

Its outputs carry no medical meaning (``NO_MEDICAL_MEANING``, written into its model card, its
registry entry and the command's output). It is saved in bfloat16 (a demo: the upcast to float32
on a CPU is exact) and registered under the kind ``vision``, so every ``--model`` accepts it and
the text-model lists leave it out.

``assemble`` (a LLaVA model and its processor from a tokenizer and two configs) is also what
``bench/bench_reports.py`` builds its random models with.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from pipelines.core import run_lock
from pipelines.core.workspace import Workspace

DEMO_NAME = "demo-vlm"
IMAGE_TOKEN = "<image>"
NO_MEDICAL_MEANING = ("demo-vlm is a demonstration model: its vision tower and projector have random weights, "
                      "so it does not look at the image and its reports carry no medical meaning. Use it only "
                      "to try the reports-from-images pipeline end to end.")

# ChatML (the embedded model's own turns); a message's content may be a string or a list of parts,
# and an image part becomes the placeholder the processor expands into the image's tokens.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '" + IMAGE_TOKEN + "\n' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

DEMO_VISION = dict(image_size=224, patch_size=32, hidden_size=192, intermediate_size=768,
                   num_hidden_layers=4, num_attention_heads=3)
TINY_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True)


def tokenizer_with_image_token(source: Path, gguf: Path | None = None):
    """The tokenizer of ``source`` (a model directory, or the GGUF file ``gguf`` when given) with
    ``<image>`` added as a special token (one id, never split)."""
    from transformers import AutoTokenizer

    tok = (AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name) if gguf is not None
           else AutoTokenizer.from_pretrained(source))
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def assemble(tokenizer, vision: dict, text_config, *, seed: int = 0, dtype=None, device: str = "cpu",
             vision_type: str = "siglip"):
    """(LlavaForConditionalGeneration with random weights, its LlavaProcessor).

    The weights are created on ``device`` in ``dtype`` (default float32): an 8B-shaped model is
    initialised on a GPU in bfloat16, never as 32 GB of float32 in RAM first.
    ``vision``: the vision tower's shape (``DEMO_VISION``'s keys); ``vision_type`` 'siglip' (no
    class token: every patch is an image token) or 'clip' (a class token, dropped as LLaVA does).
    ``text_config``: a text model config whose ``vocab_size`` is ``len(tokenizer)``.
    """
    import torch
    from transformers import (
        AutoModelForImageTextToText,
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaProcessor,
        SiglipImageProcessorPil,
        SiglipVisionConfig,
    )

    clip = vision_type == "clip"
    side, patch = vision["image_size"], vision["patch_size"]
    vision_config = (CLIPVisionConfig if clip else SiglipVisionConfig)(**vision)
    strategy = "default" if clip else "full"      # 'default' drops CLIP's class token
    config = LlavaConfig(vision_config=vision_config, text_config=text_config,
                         image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                         image_seq_length=(side // patch) ** 2, vision_feature_select_strategy=strategy,
                         vision_feature_layer=-1, projector_hidden_act="gelu",
                         tie_word_embeddings=getattr(text_config, "tie_word_embeddings", False))
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype or torch.float32)
    size = {"height": side, "width": side}
    images = (CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size=size) if clip
              else SiglipImageProcessorPil(size=size))
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=patch,
                               vision_feature_select_strategy=strategy, chat_template=CHAT_TEMPLATE,
                               num_additional_image_tokens=1 if clip else 0)
    return model.eval(), processor


def tiny_text_config(tokenizer, **shape):
    """A tiny Llama config for ``tokenizer`` (``TINY_TEXT``, overridden by ``shape``)."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                       **{**TINY_TEXT, **shape})


def build(out: Path, *, language_dir: Path | None, gguf: Path | None, seed: int = 0) -> dict:
    """Write the demo model into ``out``; returns what it is made of (for its card and registry entry)."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = tokenizer_with_image_token(language_dir, None if language_dir else gguf)
    if language_dir is not None:
        language = AutoModelForCausalLM.from_pretrained(language_dir, dtype=torch.float32)
        # The new <image> row is drawn from the old rows' mean and covariance (transformers' mean
        # resizing): seeded, so two builds are the same model. The LLaVA forward pass replaces it with
        # image features anyway.
        torch.manual_seed(seed)
        language.resize_token_embeddings(len(tokenizer))
        language.config.pad_token_id = tokenizer.pad_token_id
        model, processor = assemble(tokenizer, DEMO_VISION, language.config, seed=seed)
        model.model.language_model.load_state_dict(language.model.state_dict())
        model.lm_head.load_state_dict(language.lm_head.state_dict())
        tower = "SmolLM2-135M-Instruct (the embedded model, converted weights)"
    else:
        model, processor = assemble(tokenizer, DEMO_VISION, tiny_text_config(tokenizer), seed=seed)
        tower = "a tiny random Llama (2 layers, width 64): run jmedlora models prepare-default first for SmolLM2"
    model.to(torch.bfloat16)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    facts = {"name": DEMO_NAME, "architecture": "LlavaForConditionalGeneration",
             "vision_tower": "random SigLIP-like, 224x224 images, 32x32 patches (49 image tokens), 4 layers, width 192",
             "projector": "random 2-layer MLP", "language_tower": tower, "dtype": "bfloat16", "seed": seed,
             "parameters": sum(p.numel() for p in model.parameters()), "medical_meaning": False,
             "description": NO_MEDICAL_MEANING}
    (out / "SOURCE.json").write_text(json.dumps(facts, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "README.md").write_text(_card(facts), encoding="utf-8")
    return facts


def _card(facts: dict) -> str:
    lines = [f"# {DEMO_NAME}: a demonstration image+text model", "", f"**{NO_MEDICAL_MEANING}**", ""]
    lines += [f"- {key.replace('_', ' ')}: {facts[key]}" for key in
              ("architecture", "vision_tower", "projector", "language_tower", "parameters", "dtype", "seed")]
    lines += ["", "Built offline by `jmedlora models prepare-demo-vlm`; rebuild with `--rebuild`.", ""]
    return "\n".join(lines)


def _bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def prepare(ws: Workspace, *, language_dir: Path | None, gguf: Path | None, rebuild: bool = False,
            echo=print) -> Path:
    """Build ``demo-vlm`` into ``WORKSPACE/models/demo-vlm`` (once; again with ``rebuild``) and register it."""
    target = ws.root / "models" / DEMO_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    with run_lock.waiting(ws.root / "models" / f".{DEMO_NAME}.lock"):
        if rebuild or not (target / "SOURCE.json").exists():
            t0 = time.perf_counter()
            tmp = target.with_name(target.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            build(tmp, language_dir=language_dir, gguf=gguf)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)     # appears whole: a half-written model is never registered
            echo(f"built in {time.perf_counter() - t0:.0f} s")
        else:
            echo("already built (pass --rebuild to build it again)")
    facts = json.loads((target / "SOURCE.json").read_text(encoding="utf-8"))
    ws.register_model(DEMO_NAME, "vision", str(target), step=0,
                      meta={k: facts[k] for k in ("description", "language_tower", "medical_meaning")})
    echo(f"{DEMO_NAME}: {target} ({_bytes(target) / 1e6:.0f} MB, {facts['parameters'] / 1e6:.1f} M parameters)")
    echo(f"language tower: {facts['language_tower']}")
    echo(f"NOTE: {NO_MEDICAL_MEANING}")
    return target
