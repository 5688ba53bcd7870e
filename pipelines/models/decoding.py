"""What the two local engines (text: ``generation.LocalGenerator``; image + text:
``vision.VisionGenerator``) share to decode a batch: rows batched by prompt length under a token
budget, progress per decoding step, per-row seeded sampling, one ``generate`` call with the
static-cache fallback, chunked prefill on a CPU, and turning token ids back into an answer.

Kept apart from the backends themselves so each engine reads as its own loop over these steps,
and a change to how a batch is decoded is made once for both.
"""
from __future__ import annotations

from typing import Callable, Iterator

from pipelines.core.errors import UserError


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    cut = len(text)
    for s in stops:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut].strip()


def decode_whole_chars(tokenizer, ids: list[int], cut: bool) -> str:
    """Decoded text; when generation stopped at the token limit, without the partial character
    a byte-level tokenizer leaves at the cut (decoded as U+FFFD, shown as "�")."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    return text.rstrip("\ufffd") if cut else text


PREFILL_CHUNK = 512
KV_CACHE_MB = 384       # a batch's key/value cache on a CPU: bounded RSS on an 8 GB hospital PC


def within_context(lengths: list[int], context: int | None,
                   max_new_tokens: int) -> tuple[list[int], dict[int, dict]]:
    """(the rows whose prompt and new tokens fit the model's context, longest first; row → its
    ``context_overflow`` facts for the others). Longest first: the slowest batch runs while memory is
    freshest, and lengths within a batch are close, so little compute goes to padding. A row past the
    context is not generated: a position beyond it crashes or answers garbage."""
    overflow = {i: {"prompt_tokens": n, "context": context, "max_new_tokens": max_new_tokens}
                for i, n in enumerate(lengths) if context and n + max_new_tokens > context}
    order = sorted((i for i in range(len(lengths)) if i not in overflow), key=lambda i: -lengths[i])
    return order, overflow


def length_batches(order: list[int], lengths: list[int], max_new_tokens: int, *, rows: int, first: int,
                   budget: int) -> Iterator[list[int]]:
    """Consecutive runs of the length-sorted ``order``, each within ``rows`` rows (``first`` for the
    first batch, so the first answers come early) and ``budget`` tokens of padded width × rows."""
    batch: list[int] = []
    limit = min(rows, first)
    for i in order:
        # The first (longest) prompt of a batch sets its padded width.
        width = (lengths[batch[0]] if batch else lengths[i]) + max_new_tokens
        if batch and (len(batch) >= limit or (len(batch) + 1) * width > budget):
            yield batch
            batch, limit = [], rows
        batch.append(i)
    if batch:
        yield batch


def token_steps(on_tokens: Callable[[int], None]):
    """A logits processor that reports each decoding step's rows to ``on_tokens`` (progress between answers)."""
    from transformers import LogitsProcessor

    class Steps(LogitsProcessor):
        def __call__(self, ids, scores):
            on_tokens(ids.shape[0])
            return scores

    return Steps()


def generate_once(model, enc: dict, kwargs: dict):
    """``model.generate`` for one batch, shared by the text and image engines: (the output, whether
    the static cache worked). An architecture without static-cache support falls back to the
    dynamic cache (same results; the caller stops asking for it); running out of GPU memory is a
    UserError saying what to lower."""
    import torch

    try:
        with torch.inference_mode():
            try:
                return model.generate(**enc, **kwargs), True
            except ValueError as exc:
                if "static" not in str(exc).lower() or "cache_implementation" not in kwargs:
                    raise
                dynamic = {k: v for k, v in kwargs.items() if k != "cache_implementation"}
                return model.generate(**enc, **dynamic), False
    except torch.OutOfMemoryError as exc:
        raise UserError("Out of GPU memory during generation.",
                        "Lower --batch-size (e.g. 4) or --max-new-tokens, or use a smaller model.",
                        code="gpu.oom") from exc


def prefill_kwargs(model, width: int) -> dict:
    """``generate`` arguments that read a long prompt in chunks of 512 tokens on a CPU.

    The CPU's attention kernel materialises (rows × heads × width²) scores for a padded batch:
    4 prompts of 2,733 tokens with the embedded model peaked at 2.4 GB, chunked at 1.7 GB and in
    half the time (same tokens out, greedy, checked). A GPU's fused kernels do not need it.
    """
    if width <= PREFILL_CHUNK or getattr(model.device, "type", "cpu") != "cpu":
        return {}
    return {"prefill_chunk_size": PREFILL_CHUNK}


def sampling_top_k(model) -> int | None:
    """The top-k to sample with: the model's own generation config's, else none. (transformers
    samples from the top 50 when nothing says otherwise; OpenAI's API and vLLM have no such cut.)"""
    return getattr(getattr(model, "generation_config", None), "top_k", None) or None


class RowSeededSampler:
    """A logits processor that samples each row with its own seeded generator (``sampling.draw``:
    temperature, ``top_k``, then nucleus ``top_p``, as ``generate`` does) and leaves only the drawn
    token, which greedy decoding then takes."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float, device, top_k: int | None = None):
        import torch

        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids, scores):
        import torch

        from pipelines.models.sampling import draw

        out = torch.full_like(scores, float("-inf"))
        for row, gen in enumerate(self.generators):
            out[row, draw(scores[row], self.temperature, self.top_p, self.top_k, gen)] = 0.0
        return out
