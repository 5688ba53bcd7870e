"""The models ``bench/bench_vlm_merge.py`` merges: a VLM, two text LLMs and their base, built offline.

    models = build_fitted(work, images, references, fit_steps=300)   # tiny, its tower fitted to the reports
    models = build_random(work, "8b", "cuda")                 # random weights of the given shapes

Both write four directories under ``work``: ``vlm`` (a LLaVA with its processor), ``base``,
``lm1`` and ``lm2`` (``LlamaForCausalLM`` with the embedded model's tokenizer; the VLM's tokenizer
is the same plus ``<image>``, which is what ``pipelines/merging/towers.py`` accepts: every LLM
token id is the same token in the VLM).
They are reused when ``work/built.json`` says they were built the same way and completely, so a
busy machine builds once.

``tiny`` (``build_fitted``): the tests' tiny LLaVA (``tests/conftest.py`` ``tiny_vlm_dir``: CLIP-like
tower on 32 px images in 8 px patches, 2-layer width-64 Llama; here through
``pipelines.models.demo_vlm.assemble``, with room for 1024 positions: the report prompt with its
image is 168 tokens, the longest sample reference 138). Its language tower is then fitted to the
sample reports, row for row as the report engine scores them (``VisionGenerator.prompt_text`` and
``encode``, the reference tokens and the closing token of ``models/vision_loglik.answer_ids``), so
candidates differ in what they write. Only the tower learns; the vision tower and projector stay
as built, which is what the merge keeps of the VLM. Random 32 px features barely tell these six
grey radiographs apart, so the fitted VLM writes the right report for some images and a
neighbour's for others (mean ROUGE-L 0.57-0.70 over seeds 0-2, not 1). The softmax of a step
is taken over the references' tokens and 2,048 others drawn afresh each step (the 49,153-row
head over every answer position is nine tenths of a full step on two cores); the scores
afterwards use the whole vocabulary. About 120 steps reach the loss of 0.05 (8 s on 2 cores).
``base`` is the tower before fitting, the VLM's update D is what fitting changed, and the LLMs
carry part of it with noise (``LM_RECIPES``), so their mixes range from the VLM's reports to noise.

``small`` and ``8b`` (``build_random``): random weights, for timing only. ``8b`` is LLaVA-1.5 shaped
with a Llama-3-8B tower (32 layers, width 4096, 14336, 32 heads / 8 KV heads, 128,256 rows + the
image token, untied head) and a CLIP ViT-L/14 at 336 px, bfloat16, built on the GPU (never as
float32 in RAM first). The tokenizer is still the embedded 49,152 tokens, so only those rows of
the embedding and head are merged (Llama 3 merges all 128,256: about 8% fewer merged values in
all). ``small`` is the same builder at tiny sizes, to exercise it on a CPU.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

TINY_VISION = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=2)
TINY_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True)
RANDOM_SHAPES = {
    "small": {"vision": dict(image_size=56, patch_size=14, hidden_size=32, intermediate_size=64,
                             num_hidden_layers=2, num_attention_heads=2),
              "text": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=1024)},
    "8b": {"vision": dict(image_size=336, patch_size=14, hidden_size=1024, intermediate_size=4096,
                          num_hidden_layers=24, num_attention_heads=16),
           "text": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                        num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0)},
}
LLAMA3_ROWS = 128256
# Each LLM as base + a·D + b·std(D)·noise, per tensor (D: the VLM's update): a "medical" LLM that
# learned most of what the VLM did, and one that learned less, with more noise of its own.
LM_RECIPES = {"lm1": (1.0, 0.3), "lm2": (0.5, 1.0)}
NEGATIVES = 2048            # vocabulary rows drawn per fitting step besides the references' tokens
FIT_LR, FIT_LOSS = 1e-2, 0.05


def tokenizers(work: Path):
    """(the embedded model's tokenizer saved in ``work/tokenizer``, the same with ``<image>`` added)."""
    from transformers import AutoTokenizer

    from pipelines.models import demo_vlm
    from pipelines.models.references import _gguf_source

    plain = work / "tokenizer"
    if not (plain / "tokenizer.json").exists():
        src = _gguf_source()
        AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name).save_pretrained(plain)
    return plain, demo_vlm.tokenizer_with_image_token(plain)


def _dirs(work: Path) -> dict:
    return {"vlm": str(work / "vlm"), "base": str(work / "base"), "lms": [str(work / "lm1"), str(work / "lm2")]}


MODEL_DIRS = ("vlm", "base", "lm1", "lm2")


def _start(work: Path, recipe: dict) -> dict | None:
    """What an earlier build in ``work`` recorded, when it finished and was built by ``recipe`` (reuse
    it); else None, with ``work`` emptied of that build's models, ready for a new one. ``built.json``
    says complete only once all four models are saved, so a build cut short is never reused."""
    import json

    work.mkdir(parents=True, exist_ok=True)
    path = work / "built.json"
    facts = json.loads(path.read_text()) if path.exists() else None
    if facts and facts.get("complete") and facts.get("recipe") == json.loads(json.dumps(recipe)):
        return facts
    present = [d for d in MODEL_DIRS if (work / d).exists()]
    if present and facts is None:
        raise SystemExit(f"{work} holds {', '.join(present)}, which this bench did not build: pass another --work.")
    for d in present:                   # an earlier build of ours, cut short or built another way
        shutil.rmtree(work / d)
    path.write_text(json.dumps({"recipe": recipe, "complete": False}))
    return None


def _record(work: Path, recipe: dict, fit: dict | None) -> None:
    import json

    (work / "built.json").write_text(json.dumps({"recipe": recipe, "fit": fit, "complete": True}))


def _lm_config(tokenizer, rows: int, **shape):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=rows, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, **shape)


def training_rows(generator, images: list, references: list[str]) -> dict:
    """The rows ``vision_loglik`` scores, as one right-padded batch: input ids, attention, pixel
    values, ``keep`` (positions that predict an answer token) and the answer tokens in that order."""
    import torch

    from pipelines.merging.report_data import REPORT_PROMPT
    from pipelines.models.vision_loglik import answer_ids, closing_token

    closing = closing_token(generator, REPORT_PROMPT)
    answers = [answer_ids(generator, ref, closing) for ref in references]
    enc = generator.encode(images, generator.prompt_text(REPORT_PROMPT))
    prompts = [row[mask.bool()] for row, mask in zip(enc["input_ids"], enc["attention_mask"])]
    width = max(len(p) + len(a) for p, a in zip(prompts, answers))
    ids = torch.full((len(answers), width), generator.tokenizer.pad_token_id, dtype=torch.long)
    attention, keep = torch.zeros_like(ids), torch.zeros_like(ids, dtype=torch.bool)
    for r, (p, a) in enumerate(zip(prompts, answers)):
        ids[r, :len(p)], ids[r, len(p):len(p) + len(a)] = p, torch.tensor(a)
        attention[r, :len(p) + len(a)] = 1
        keep[r, len(p) - 1:len(p) + len(a) - 1] = True
    return {"input_ids": ids, "attention_mask": attention, "pixel_values": enc["pixel_values"], "keep": keep,
            "targets": torch.cat([torch.tensor(a) for a in answers])}


def fit_tower(model, processor, images: list, references: list[str], *, steps: int, seed: int = 0) -> dict:
    """Fit the language tower (vision tower and projector frozen) until the loss is under ``FIT_LOSS``
    or ``steps`` steps; returns what happened."""
    import torch
    import torch.nn.functional as F

    from pipelines.models.vision import VisionGenerator

    rows = training_rows(VisionGenerator(model, processor), images, references)
    keep, targets = rows.pop("keep"), rows.pop("targets")
    used = torch.unique(targets)
    tower = ("model.language_model.", "lm_head.")
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(tower))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=FIT_LR, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0, loss, step = time.perf_counter(), float("inf"), 0
    for step in range(1, steps + 1):
        hidden = model.model(**rows).last_hidden_state[keep]
        subset = torch.unique(torch.cat([used, torch.randint(0, model.lm_head.weight.shape[0], (NEGATIVES,),
                                                             generator=gen)]))
        logits = hidden @ model.lm_head.weight[subset].T
        value = F.cross_entropy(logits, torch.searchsorted(subset, targets))
        opt.zero_grad()
        value.backward()
        opt.step()
        loss = value.item()
        if loss < FIT_LOSS:
            break
    model.eval().requires_grad_(False)
    return {"steps": step, "loss": round(loss, 4), "seconds": round(time.perf_counter() - t0, 1),
            "answer_tokens": int(keep.sum())}


def _save_lm(tower_state: dict, config, tokenizer_dir: Path, out: Path) -> None:
    from transformers import AutoTokenizer, LlamaForCausalLM

    lm = LlamaForCausalLM(config)
    missing, unexpected = lm.load_state_dict(tower_state, strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:     # a tied head is the embedding: not in the state
        raise RuntimeError(f"tower and causal LM differ: missing {missing}, unexpected {unexpected}")
    lm.save_pretrained(out)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out)


def _tower_state(model, rows: int) -> dict:
    """The VLM's language tower named as a causal LM's tensors (embedding and head cut to ``rows``)."""
    state = {f"model.{k}": v for k, v in model.model.language_model.state_dict().items()}
    if not model.config.get_text_config().tie_word_embeddings:
        state["lm_head.weight"] = model.lm_head.weight
    return {k: (v[:rows] if k in ("model.embed_tokens.weight", "lm_head.weight") else v).detach().clone()
            for k, v in state.items()}


def build_fitted(work: Path, images: list, references: list[str], *, fit_steps: int, seed: int = 0) -> dict:
    """``tiny``: the VLM fitted to the reports, its base and two LLMs (see the module docstring)."""
    import torch

    from pipelines.models import demo_vlm

    recipe = {"text": TINY_TEXT, "vision": TINY_VISION, "lms": LM_RECIPES, "fit_steps": fit_steps, "seed": seed,
              "lr": FIT_LR, "loss": FIT_LOSS, "negatives": NEGATIVES}
    built = _start(work, recipe)
    if built:
        return {**_dirs(work), "fit": built["fit"], "reused": True}
    plain, tok = tokenizers(work)
    model, processor = demo_vlm.assemble(tok, TINY_VISION, demo_vlm.tiny_text_config(tok, **TINY_TEXT), seed=seed,
                                         vision_type="clip")
    rows = len(tok) - 1                                 # the LLMs' vocabulary: no <image>
    lm_config = _lm_config(tok, rows, **TINY_TEXT)
    before = _tower_state(model, rows)
    _save_lm(before, lm_config, plain, work / "base")
    fit = fit_tower(model, processor, images, references, steps=fit_steps, seed=seed)
    model.save_pretrained(work / "vlm")
    processor.save_pretrained(work / "vlm")
    after = _tower_state(model, rows)
    gen = torch.Generator().manual_seed(seed + 1)
    for name, (share, noise) in LM_RECIPES.items():
        state = {}
        for k, b in before.items():
            d = after[k] - b
            state[k] = b + share * d + noise * d.std() * torch.randn(d.shape, generator=gen)
        _save_lm(state, lm_config, plain, work / name)
    _record(work, recipe, fit)
    return {**_dirs(work), "fit": fit, "reused": False}


def _bytes_needed(tok, spec: dict) -> tuple[int, int]:
    """(bytes of the VLM, bytes of one LLM) in bfloat16, counted on the meta device."""
    import torch

    from pipelines.models import demo_vlm

    text = _lm_config(tok, LLAMA3_ROWS + 1, **spec["text"])
    model, _ = demo_vlm.assemble(tok, spec["vision"], text, dtype=torch.bfloat16, device="meta", vision_type="clip")
    vlm = sum(p.numel() for p in model.parameters())
    lm = sum(p.numel() for p in model.model.language_model.parameters()) + model.lm_head.weight.numel()
    return 2 * vlm, 2 * (lm - spec["text"]["hidden_size"] * 2)       # the LLMs lack the <image> rows


def build_random(work: Path, shape: str, device: str, *, link_base: bool = False, seed: int = 0) -> dict:
    """``small`` or ``8b`` with random weights (bfloat16 on a GPU, float32 on a CPU); refuses when
    ``work``'s disk cannot hold them. ``link_base``: the base's weight files are hard links to
    ``lm2``'s (its update is then zero; the same work per candidate, one LLM less on disk)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipelines.models import demo_vlm

    spec = RANDOM_SHAPES[shape]
    recipe = {"shape": shape, "spec": spec, "device": device.split(":")[0], "link_base": link_base, "seed": seed}
    if _start(work, recipe):
        return {**_dirs(work), "fit": None, "reused": True}
    plain, tok = tokenizers(work)
    vlm_bytes, lm_bytes = _bytes_needed(tok, spec)
    need = vlm_bytes + lm_bytes * (2 if link_base else 3)
    free = shutil.disk_usage(work).free
    if need * 1.05 > free:
        hint = "" if link_base else f" (with --link-base: {(vlm_bytes + 2 * lm_bytes) / 1e9:.1f} GB)"
        raise SystemExit(f"--shape {shape} writes {need / 1e9:.1f} GB of weights{hint} but {work} has "
                         f"{free / 1e9:.1f} GB free: pass --work on a larger disk.")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    text = _lm_config(tok, LLAMA3_ROWS + 1, **spec["text"])
    model, processor = demo_vlm.assemble(tok, spec["vision"], text, seed=seed, dtype=dtype, device=device,
                                         vision_type="clip")
    model.save_pretrained(work / "vlm")
    processor.save_pretrained(work / "vlm")
    del model
    for k, name in enumerate(("base", "lm1") if link_base else ("base", "lm1", "lm2")):
        torch.manual_seed(seed + 1 + k)
        with torch.device(device):
            lm = AutoModelForCausalLM.from_config(_lm_config(tok, LLAMA3_ROWS, **spec["text"]), dtype=dtype)
        lm.save_pretrained(work / name)
        AutoTokenizer.from_pretrained(plain).save_pretrained(work / name)
        del lm
    if link_base:
        shutil.copytree(work / "base", work / "lm2", copy_function=_link_or_copy)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    _record(work, recipe, None)
    return {**_dirs(work), "fit": None, "reused": False}


def _link_or_copy(src: str, dst: str) -> None:
    """Weights as hard links (no disk), every other file copied."""
    import os

    if src.endswith(".safetensors"):
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)
