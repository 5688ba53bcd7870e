"""How likely an image+text model finds a reference report for an image: a cheap score with no generation.

    pairs = reference_logliks(generator, images, REPORT_PROMPT_JA, references)
    # [(sum of the reference tokens' log-probabilities, number of scored tokens), ...] one per image

What a merge search scores a candidate with when it cannot afford to generate 50 reports per
candidate: one forward pass per batch instead of up to ``max_new_tokens`` decoding steps.

**What is scored.** Each row is the prompt exactly as ``VisionGenerator.generate_reports`` feeds it
(``prompt_text``: the chat template with the generation prompt added, then the same processor
call through ``encode``, which expands the image placeholder into the image's tokens), followed by
the reference's tokens as the assistant's answer, followed by the token the chat template closes
the assistant's turn with when that is one special token (ChatML's ``<|im_end|>``, Gemma's
``<end_of_turn>``, Llama 3's ``<|eot_id|>``, a Llama 2 ``</s>``…). That closing token is scored
too, and counted: it is what a model that has said all of the findings generates next, so a
candidate that would run on past the reference's end scores lower. A template that closes the
turn with plain text (or not at all) adds nothing. Only these answer tokens are scored; the
prompt and the image's tokens are context.

**Tokens.** The reference is tokenized on its own (no special tokens added, and special-token
text such as ``<image>`` inside it read as plain text) and its ids appended to the prompt's ids,
rather than the whole text tokenized again: that way the prompt's tokens are exactly the ones
generation continues from, whatever a BPE merge across the boundary would have done.

**Batches.** Rows are sorted by length, batched within the generator's ``batch_size`` rows and
its token budget, and **right**-padded: every row's real tokens then sit at positions 0…n-1, the
positions they have alone, so a row scores the same in any batch (the prompt's own left padding,
from the processor, is removed first). Logits are computed only at the positions that predict
an answer token (``logits_to_keep`` with a boolean mask), never vocabulary × whole sequence.
"""
from __future__ import annotations

from typing import Iterator

from pipelines.core.errors import UserError
from pipelines.models.decoding import length_batches

# A stand-in answer to find where the template closes the assistant's turn.
_PROBE = "所見"
# Rows of logits turned into log-probabilities at a time (float32): bounded memory on a large vocabulary.
_SOFTMAX_ROWS = 256


def closing_token(generator, prompt: str) -> int | None:
    """The special token the chat template writes right after the assistant's answer (leading
    whitespace skipped), or None when the template closes the turn otherwise or cannot render one."""
    from jinja2 import TemplateError

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
                {"role": "assistant", "content": [{"type": "text", "text": _PROBE}]}]
    try:
        whole = generator.processor.apply_chat_template(messages, tokenize=False)
    except (TemplateError, ValueError, TypeError, KeyError):
        return None
    end = whole.rfind(_PROBE)
    if end < 0:
        return None
    after = whole[end + len(_PROBE):].lstrip()
    ids = generator.tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    return ids[0] if ids and ids[0] in set(generator.tokenizer.all_special_ids) else None


def answer_ids(generator, reference: str, closing: int | None) -> list[int]:
    """The reference's token ids as the assistant's answer, then the closing token (if any)."""
    ids = generator.tokenizer(reference, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return [*ids, *([closing] if closing is not None else [])]


def reference_logliks(generator, images: list, prompt: str, references: list[str], *,
                      batch_size: int | None = None) -> list[tuple[float, int]]:
    """Per image: (sum of the log-probabilities of its reference's answer tokens, how many there are),
    in the order given. ``generator`` is a ``VisionGenerator``; see the module docstring for what
    the answer tokens are."""
    import torch

    if len(images) != len(references):
        raise ValueError(f"{len(images)} images but {len(references)} references")
    text = generator.prompt_text(prompt)
    closing = closing_token(generator, prompt)
    answers = [answer_ids(generator, ref, closing) for ref in references]
    # The prompt's tokens per image, as generate_reports counts them (one processor pass each).
    lengths = [int(generator.encode([im], text, to_model=False)["attention_mask"].sum()) for im in images]
    _check_context(generator, lengths, answers)
    out: list[tuple[float, int]] = [(0.0, 0)] * len(images)
    with torch.inference_mode():
        for idx in _batches(generator, lengths, answers, batch_size):
            enc = generator.encode([images[i] for i in idx], text)
            sums = _score_batch(generator.model, enc, [answers[i] for i in idx], generator.tokenizer.pad_token_id)
            for i, total in zip(idx, sums):
                out[i] = (total, len(answers[i]))
    return out


def _check_context(generator, lengths: list[int], answers: list[list[int]]) -> None:
    context = generator.context_length()
    for i, (n, answer) in enumerate(zip(lengths, answers)):
        if context and n + len(answer) > context:
            raise UserError(f"Report {i + 1}'s prompt ({n} tokens, the image's included) and reference "
                            f"({len(answer)} tokens) are longer than {generator.label}'s context of {context} tokens.",
                            "Shorten that reference, use a smaller --image-size for models whose image tokens "
                            "grow with it, or score by generation (ROUGE-L) instead.",
                            code="vision.reference_too_long",
                            params={"index": i + 1, "prompt_tokens": n, "reference_tokens": len(answer),
                                    "context": context, "label": generator.label})


def _batches(generator, lengths: list[int], answers: list[list[int]], batch_size: int | None
             ) -> Iterator[list[int]]:
    totals = [n + len(a) for n, a in zip(lengths, answers)]
    order = sorted(range(len(totals)), key=lambda i: -totals[i])
    rows = max(1, batch_size or generator.batch_size)
    return length_batches(order, totals, 0, rows=rows, first=rows, budget=generator.token_budget())


def _score_batch(model, enc: dict, answers: list[list[int]], pad_id: int) -> list[float]:
    """One forward pass: each row's prompt (its left padding removed), its answer, right padding;
    the summed log-probabilities of each row's answer tokens."""
    import torch

    prompt_ids, mask = enc["input_ids"], enc["attention_mask"].bool()
    # Other per-token inputs the processor made (e.g. token type ids that mark image tokens):
    # laid out like input_ids, answer tokens being ordinary text (0).
    per_token = [k for k, v in enc.items() if k not in ("input_ids", "attention_mask")
                 and hasattr(v, "shape") and tuple(v.shape) == tuple(prompt_ids.shape)]
    rows = [(prompt_ids[r][mask[r]], torch.tensor(a, dtype=prompt_ids.dtype, device=prompt_ids.device))
            for r, a in enumerate(answers)]
    width = max(len(p) + len(a) for p, a in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=prompt_ids.dtype, device=prompt_ids.device)
    attention = torch.zeros_like(ids)
    # keep[r, t]: position t predicts an answer token (the token at t + 1).
    keep = torch.zeros((len(rows), width), dtype=torch.bool, device=ids.device)
    extra = {k: torch.zeros((len(rows), width), dtype=enc[k].dtype, device=ids.device) for k in per_token}
    for r, (p, a) in enumerate(rows):
        ids[r, :len(p)], ids[r, len(p):len(p) + len(a)] = p, a
        attention[r, :len(p) + len(a)] = 1
        keep[r, len(p) - 1:len(p) + len(a) - 1] = True
        for k in per_token:
            extra[k][r, :len(p)] = enc[k][r][mask[r]]
    inputs = {**{k: v for k, v in enc.items() if k not in per_token and k not in ("input_ids", "attention_mask")},
              **extra, "input_ids": ids, "attention_mask": attention}
    logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits
    if logits.dim() == 3:           # a model that computed every position anyway
        logits = logits[keep]
    targets = torch.cat([a for _, a in rows])          # row by row, in position order: as keep flattens
    return _row_sums(_target_logprobs(logits, targets), [len(a) for _, a in rows])


def _target_logprobs(logits, targets):
    """log_softmax(logits)[i, targets[i]] per row, in float32, a block of rows at a time."""
    import torch

    parts = []
    for start in range(0, logits.shape[0], _SOFTMAX_ROWS):
        block = logits[start:start + _SOFTMAX_ROWS].float()
        picked = block.gather(1, targets[start:start + _SOFTMAX_ROWS, None].to(block.device))[:, 0]
        parts.append(picked - torch.logsumexp(block, dim=-1))
    return torch.cat(parts)


def _row_sums(values, counts: list[int]) -> list[float]:
    sums, start = [], 0
    for n in counts:
        sums.append(float(values[start:start + n].sum()))
        start += n
    return sums
