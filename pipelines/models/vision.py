"""The image+text generation backend: images in, text (e.g. a radiology report) out.

    gen = open_vision_backend("demo-vlm", workspace)         # pipelines.models.backends
    for i, completion in gen.generate_reports(images, "この画像の所見を書いてください。", GenerationSettings()):
        ...                                                   # as each report finishes, in any order
    gen.describe()   # BackendInfo(kind='vision', label='demo-vlm', device='cpu', local=True, remote_code=False)

Any image-text-to-text model that transformers 5 loads natively (``AutoModelForImageTextToText``:
LLaVA, LLaVA-NeXT, Idefics3/SmolVLM, Qwen2-VL/Qwen2.5-VL, PaliGemma …) with its own processor and
chat template: each image becomes one user message of an image part and a text part, rendered by
the processor's template, and the processor expands the image placeholder into the image's tokens.
A PEFT adapter (e.g. LoRA on the language tower) loads as on a text model
(``pipelines.models.references.apply_adapter``).

Batching follows the text engine (``pipelines.models.generation.LocalGenerator``): rows sorted by
length (images of one size give equal lengths; dynamic-resolution models such as Qwen2-VL do not),
left padding, a token budget bounded by the key/value cache (``device_memory``), a static cache, a
small first batch so the first report comes early. Decoding takes ``GenerationSettings``: greedy at
temperature 0; otherwise each image samples with its own generator seeded ``seed + its index``,
so a report does not depend on which batch it fell in. Long prompts are not prefilled in chunks
(the text engine does on a CPU): the image's features are merged into the first forward pass.

A model whose code is not part of transformers (``auto_map`` in its config and a ``model_type``
transformers does not know, e.g. Bunny) would run Python shipped in its folder: it is refused
unless the caller passes ``trust_remote_code=True``, and ``describe().remote_code`` records it.
Even then the model must load as an image-text-to-text model with a processor (Bunny's code
registers a causal-LM class and ships no processor, so it is refused as ``vision.unsupported``).
Text-only prompts and log-likelihoods are refused with ``vision.text_caller``.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator

from pipelines.core import safe_load
from pipelines.core.errors import UserError
from pipelines.models.decoding import (
    KV_CACHE_MB,
    RowSeededSampler,
    cut_at_stop,
    decode_whole_chars,
    generate_once,
    length_batches,
    sampling_top_k,
    token_steps,
    within_context,
)
from pipelines.models.device_memory import kv_cache_tokens
from pipelines.models.generation import BackendInfo, Completion, GenerationSettings, Prompt
from pipelines.models.modality import VISION, read_config, vision_model_refused
from pipelines.models.references import ModelRef, apply_adapter, pick_device


def needs_remote_code(cfg: dict) -> bool:
    """True when loading the model would run code from its folder rather than transformers' own."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return cfg.get("model_type") not in CONFIG_MAPPING_NAMES and bool(cfg.get("auto_map"))


def load_vision_model(ref: ModelRef, *, device: str | None = None, dtype=None, trust_remote_code: bool = False):
    """(model, processor) for a vision reference: adapter applied, eval mode, on ``device``."""
    from safetensors import SafetensorError
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if needs_remote_code(read_config(ref.path)) and not trust_remote_code:
        raise UserError(f"{ref.path} holds a model whose code is not part of transformers: loading it would run "
                        "Python files shipped in that folder.",
                        "Use a model transformers supports natively (LLaVA, LLaVA-NeXT, Idefics3/SmolVLM, Qwen2-VL, "
                        "PaliGemma), or, if you have read and trust that code, pass --trust-remote-code "
                        "(trust_remote_code=True from Python).",
                        code="vision.remote_code", params={"path": str(ref.path)})
    import torch

    device = device or pick_device()
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        with safe_load.refusing_pickles(ref.path, "model weights"):
            model = AutoModelForImageTextToText.from_pretrained(ref.path, dtype=dtype,
                                                                trust_remote_code=trust_remote_code)
    except (OSError, SafetensorError) as exc:
        raise UserError(f"Could not load model from {ref.path}: {exc}",
                        "Check that the directory holds config.json and weights (safetensors or bin).",
                        code="model.load_failed", params={"path": str(ref.path), "detail": str(exc)[:300]}) from exc
    except ValueError as exc:       # an architecture transformers has no image-text-to-text class for
        raise UserError(f"{ref.path} cannot be loaded as an image-text-to-text model: {str(exc)[:300]}",
                        "Use a model transformers loads as one (LLaVA, LLaVA-NeXT, Idefics3/SmolVLM, Qwen2-VL, "
                        "PaliGemma); a model that only comes with its own code (e.g. Bunny) is not supported.",
                        code="vision.unsupported", params={"path": str(ref.path), "detail": str(exc)[:300]}) from exc
    try:
        processor = AutoProcessor.from_pretrained(ref.path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as exc:
        processor, problem = None, str(exc)[:300]
    else:
        problem = "" if hasattr(processor, "image_processor") else f"{type(processor).__name__} reads no images"
    if processor is None or problem:
        raise UserError(f"{ref.path} has no usable image processor: {problem}",
                        "Copy the model's processor files (processor_config.json or preprocessor_config.json, "
                        "the tokenizer files, chat_template.jinja) into that folder.",
                        code="vision.no_processor", params={"path": str(ref.path), "detail": problem})
    model.to(device)
    if ref.adapter:
        model = apply_adapter(model, ref.adapter, ref.path)
    return model.eval(), processor


class VisionGenerator:
    """A loaded image-text-to-text model and its processor, in this process."""

    supports_loglik = False

    def __init__(self, model, processor, *, label: str | None = None, batch_size: int = 8,
                 max_batch_tokens: int = 16384, static_cache: bool = True, first_batch: int = 2,
                 trust_remote_code: bool = False):
        self.model, self.processor = model, processor
        self.tokenizer = processor.tokenizer
        self.label = label or getattr(model, "name_or_path", "") or type(model).__name__
        self.batch_size, self.first_batch = max(1, batch_size), max(1, first_batch)
        self.max_batch_tokens, self.static_cache = max_batch_tokens, static_cache
        self.trust_remote_code = trust_remote_code
        self.tokenizer.padding_side = "left"    # decoder-only: every row continues from its right end
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not getattr(processor, "chat_template", None):
            raise UserError(f"{self.label} has no chat template, so the image cannot be placed in the prompt.",
                            "Copy the model's chat_template.jinja (or chat_template.json) into its folder.",
                            code="vision.no_chat_template", params={"label": self.label})

    @classmethod
    def load(cls, ref: ModelRef, *, device: str | None = None, trust_remote_code: bool = False,
             **kwargs) -> VisionGenerator:
        model, processor = load_vision_model(ref, device=device, trust_remote_code=trust_remote_code)
        return cls(model, processor, label=ref.label, trust_remote_code=trust_remote_code, **kwargs)

    def describe(self) -> BackendInfo:
        return BackendInfo(kind=VISION, label=self.label, device=str(self.model.device), local=True,
                           remote_code=self.trust_remote_code)

    # -- what a text-only caller gets ------------------------------------------------
    def generate(self, prompts: list[Prompt], settings: GenerationSettings, *,
                 on_tokens: Callable[[int], None] | None = None) -> Iterator[tuple[int, Completion]]:
        raise vision_model_refused(self.label)

    def score_choices(self, questions, prompts) -> list:
        raise vision_model_refused(self.label)

    # -- images in, text out ------------------------------------------------------------
    def prompt_text(self, prompt: str) -> str:
        """The chat-formatted prompt for one image and ``prompt``, ready for the model's answer."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def encode(self, images: list, text: str, *, to_model: bool = True) -> dict:
        """The processor's tensors for ``images`` (one row each, left-padded), on the model's device
        and, for pixel values, in its dtype (``to_model``; else as the processor made them)."""
        enc = self.processor(images=[rgb(im) for im in images], text=[text] * len(images),
                             return_tensors="pt", padding=True)
        if not to_model:
            return dict(enc)
        device, dtype = self.model.device, self.model.dtype
        return {k: v.to(device, dtype=dtype) if v.is_floating_point() else v.to(device) for k, v in enc.items()}

    def context_length(self) -> int | None:
        cfg = self.model.config
        value = getattr(cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg,
                        "max_position_embeddings", None)
        return value if isinstance(value, int) and value > 0 else None

    def token_budget(self) -> int:
        tokens = kv_cache_tokens(self.model, KV_CACHE_MB)
        return self.max_batch_tokens if tokens is None else max(1, min(self.max_batch_tokens, tokens))

    def generate_reports(self, images: list, prompt: str, settings: GenerationSettings, *,
                         on_tokens: Callable[[int], None] | None = None) -> Iterator[tuple[int, Completion]]:
        """One text per image, for the same ``prompt``; yields (image index, Completion) as each batch
        finishes. ``on_tokens(n)`` is called at every decoding step with the rows generated in it."""
        text = self.prompt_text(prompt)
        # Prompt tokens per image (the image's tokens included): one processor pass each, which is
        # cheap next to generation and exact for processors whose token count depends on the image.
        lengths = [int(self.encode([im], text, to_model=False)["attention_mask"].sum()) for im in images]
        order, overflow = within_context(lengths, self.context_length(), settings.max_new_tokens)
        for i, info in overflow.items():
            yield i, Completion(text="", n_tokens=0, seconds=0.0, info={"context_overflow": info})
        for idx in self._batches(order, lengths, settings.max_new_tokens):
            t0 = time.perf_counter()
            outs = self._generate_batch([images[i] for i in idx], text, settings,
                                        row_seeds=[settings.seed + i for i in idx], on_tokens=on_tokens)
            dt = (time.perf_counter() - t0) / len(idx)
            for i, (report, raw, n) in zip(idx, outs):
                cut = {"cut_at_tokens": n} if n >= settings.max_new_tokens else {}
                yield i, Completion(text=report, n_tokens=n, seconds=dt,
                                    info={"raw": raw, "prompt_tokens": lengths[i], **cut})

    def _batches(self, order: list[int], lengths: list[int], max_new_tokens: int) -> Iterator[list[int]]:
        return length_batches(order, lengths, max_new_tokens, rows=self.batch_size, first=self.first_batch,
                              budget=self.token_budget())

    def _generate_kwargs(self, settings: GenerationSettings, row_seeds: list[int],
                         on_tokens: Callable[[int], None] | None) -> dict:
        from transformers import LogitsProcessorList

        # Greedy decoding throughout; sampling is a processor that leaves each row its drawn token.
        kwargs = dict(max_new_tokens=settings.max_new_tokens, do_sample=False, use_cache=True,
                      temperature=None, top_p=None, top_k=None, repetition_penalty=settings.repetition_penalty,
                      pad_token_id=self.tokenizer.pad_token_id)
        processors = LogitsProcessorList([token_steps(on_tokens)] if on_tokens is not None else [])
        if settings.temperature > 0:
            processors.append(RowSeededSampler(row_seeds, settings.temperature, settings.top_p, self.model.device,
                                               top_k=sampling_top_k(self.model)))
        if processors:
            kwargs["logits_processor"] = processors
        if settings.stop:
            kwargs.update(stop_strings=list(settings.stop), tokenizer=self.tokenizer)
        if self.static_cache:
            kwargs["cache_implementation"] = "static"
        return kwargs

    def _generate_batch(self, images: list, text: str, settings: GenerationSettings, row_seeds: list[int],
                        on_tokens: Callable[[int], None] | None = None) -> list[tuple[str, str, int]]:

        enc = self.encode(images, text)
        kwargs = self._generate_kwargs(settings, row_seeds, on_tokens)
        out, static_ok = generate_once(self.model, enc, kwargs)
        self.static_cache = self.static_cache and static_ok
        results = []
        for row in out[:, enc["input_ids"].shape[1]:]:
            ids = [t for t in row.tolist() if t != self.tokenizer.pad_token_id]
            raw = self.tokenizer.decode(ids, skip_special_tokens=False)
            report = decode_whole_chars(self.tokenizer, ids, cut=len(ids) >= settings.max_new_tokens)
            results.append((cut_at_stop(report, settings.stop), raw, len(ids)))
        return results


def rgb(image):
    """``image`` as 8-bit RGB, which every image processor takes. A 16-bit or float grey image (a
    radiograph read without windowing) is stretched from its darkest to its brightest pixel;
    windowing a DICOM image properly is for its reader to do before this."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        import numpy as np
        from PIL import Image

        pixels = np.asarray(image, dtype=np.float64)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) / (high - low) * 255 if high > low else np.zeros_like(pixels)
        image = Image.fromarray(scaled.round().astype(np.uint8))     # 2-D uint8: mode "L"
    return image.convert("RGB")
