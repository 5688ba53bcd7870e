"""Log-likelihood scoring of choices (lm-eval-harness style): no text extraction at all.

For each choice, the log-probability the model gives to the choice text right after the
prompt. The model "answers" with the most likely choice(s). This measures knowledge even
for small or base models that cannot follow the answer format, which free-text metrics
(the paper's) confound with instruction following. Called by ``pipelines.evaluation.evaluator`` for
``--method loglik|both``; ``bench/bench_loglik.py`` measures it against the harness.

How (all choices of a question share one prompt):
1. one row per question holds the prompt once, then every choice's continuation tokens
   (all but the last, which predicts nothing) one after another: ``[prompt][c1][c2]...``;
2. a 4D attention mask lets the prompt attend causally to itself and each choice to the
   prompt and causally to itself only; each choice's position ids restart where the prompt
   ends. So every choice sees exactly what it would see after the prompt alone, and the
   prompt's keys/values are computed once and shared by all 5-8 choices in the same pass
   (a KV cache repeated per choice gives the same numbers but copies the prompt's cache
   per choice: on a CPU those copies cost more than the prompt itself);
3. the decoder returns hidden states; ``lm_head`` runs only on the rows that predict a
   continuation token (the prompt's last token predicts every choice's first token, so that
   row is shared), and ``log_softmax`` on those rows only: never vocabulary × sequence.
Batches are sized by ``LoglikConfig.memory_mb`` (activations, attention scores and logit
rows estimated from the model config; no KV cache is kept), so peak memory does not grow
with the number or length of questions. On a CUDA device an unset budget is a quarter of the
free GPU memory (at most 8 GB) and a batch holds at least 64 rows: with the CPU's 384 MB and
16 rows an H200 idled between small passes (1.3× the harness instead of 4.8–5.8×, measured by
``bench/bench_loglik.py`` on the GPU machine). Architectures not known to honour custom 4D masks
and position ids this way (sliding-window attention, ALiBi, flash-attention kernels, ...)
take the full-sequence path instead: prompt + one continuation per row, the same
gather-only head; the same numbers, about 5× the prompt compute.

Semantics kept from lm-evaluation-harness 0.4 (``multiple_choice`` output type, hf model):
- request = (prompt, target_delimiter + choice), target_delimiter " " by default;
- ``encode_pair`` is ``HFLM._encode_pair``: trailing whitespace of the context moves into
  the continuation, the whole string is encoded once and the continuation is the tokens
  after the context's own encoding (the tokenizer's default special tokens, as the harness);
- acc = argmax of the summed continuation log-probs; acc_norm divides by the choice's
  character length (the harness's ``completion_len``, delimiter excluded).
Deliberate differences: no left truncation to the model's maximum length (a prompt that
long is reported by the model instead of being silently cut), and no ``is_greedy`` flag.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from pipelines.core.errors import UserError
from pipelines.models.device_memory import working_bytes
from pipelines.tasks.igakuqa import Question

CPU_MEMORY_MB = 384     # a pass's tensors on a CPU: bounded RSS on an 8 GB hospital PC
GPU_MIN_ROWS = 64       # enough rows per pass to keep a GPU busy


@dataclass(frozen=True)
class LoglikConfig:
    batch_size: int = 16          # most rows in one forward pass (a row: a question, or one choice)
    memory_mb: int | None = None  # estimated tensors per forward pass (weights not counted); None: by device
    target_delimiter: str = " "   # the harness's default for multiple-choice tasks


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) exactly as lm-eval-harness's ``HFLM._encode_pair``."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    bos = tokenizer.bos_token
    special = {"add_special_tokens": False} if bos and context.startswith(bos) else {}
    whole = tokenizer.encode(context + continuation, **special)
    ctx = tokenizer.encode(context, **special)
    return ctx, whole[len(ctx):]


def build_requests(questions: list[Question], prompts: list[str], delimiter: str = " "
                   ) -> list[list[tuple[str, str]]]:
    """Per question, one (context, continuation) pair per choice, in letter order."""
    return [[(prompt, delimiter + text) for text in q.choices] for q, prompt in zip(questions, prompts)]


def score_questions(model, tokenizer, questions: list[Question], prompts: list[str], *,
                    batch_size: int = 16, config: LoglikConfig | None = None
                    ) -> list[tuple[dict[str, float], dict[str, float]]]:
    """For each question: (sum log-prob per letter, log-prob per character per letter)."""
    cfg = config or LoglikConfig(batch_size=batch_size)
    per_q = build_requests(questions, prompts, cfg.target_delimiter)
    flat = choice_logprobs(model, tokenizer, [r for reqs in per_q for r in reqs], config=cfg)
    out: list[tuple[dict, dict]] = []
    pos = 0
    for q in questions:
        lps = flat[pos:pos + len(q.choices)]
        pos += len(q.choices)
        out.append(({l: lp for l, lp in zip(q.letters, lps)},
                    {l: lp / max(1, len(t)) for l, lp, t in zip(q.letters, lps, q.choices)}))
    return out


def choice_logprobs(model, tokenizer, requests: list[tuple[str, str]], *, batch_size: int = 16,
                    config: LoglikConfig | None = None) -> list[float]:
    """Sum of log-probabilities of each ``continuation`` given its ``context``.

    Requests with the same context share its forward pass, whatever their order.
    """
    import torch

    cfg = config or LoglikConfig(batch_size=batch_size)
    groups: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
    for i, (context, continuation) in enumerate(requests):
        ctx, cont = encode_pair(tokenizer, context, continuation)
        if not ctx:  # the harness conditions an empty context on a prefix token
            ctx = [tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id]
        groups.setdefault(tuple(ctx), []).append((i, cont))
    scores = [0.0] * len(requests)
    with torch.inference_mode():
        _Scorer(model, cfg).run(list(groups.items()), scores)
    return scores


# decoder-only families whose decoder takes position_ids for RoPE/learned positions and passes a
# 4D mask through unchanged (transformers 5 masking_utils); others score row by row
_PACKABLE = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gpt_neox", "phi3", "olmo", "olmo2", "stablelm"}


class _Scorer:
    """Packs groups of (context ids, [(request index, continuation ids)]) into rows and scores them."""

    def __init__(self, model, cfg: LoglikConfig):
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT: LoRA layers stay in place
        self.decoder = inner.get_decoder()
        self.head = inner.get_output_embeddings()
        if self.head is None or self.decoder is inner:
            raise UserError(f"{type(inner).__name__} has no separate language-model head, so choices cannot be "
                            "scored by log-likelihood.", "Use --method generate for this model.",
                            code="loglik.no_head", params={"model": type(inner).__name__})
        c = inner.config.get_text_config() if hasattr(inner.config, "get_text_config") else inner.config
        layer_types = getattr(c, "layer_types", None) or []
        self.packed = (c.model_type in _PACKABLE and getattr(c, "_attn_implementation", "eager") in ("sdpa", "eager")
                       and not getattr(c, "sliding_window", None) and "sliding_attention" not in layer_types)
        if not self.packed:
            logging.getLogger(__name__).info("%s: scoring one choice per row (no shared prompt)", c.model_type)
        param = next(inner.parameters())
        self.device, self.dtype = param.device, self.head.weight.dtype
        self.cfg = cfg
        el = self.dtype.itemsize
        heads = c.num_attention_heads
        inter = getattr(c, "intermediate_size", None) or 4 * c.hidden_size
        self.tok_bytes = (6 * c.hidden_size + 3 * inter) * el + 2 * c.hidden_size * el  # one layer's activations
        self.pair_bytes = heads * 4 * 2 + el                                           # scores, probs; the mask
        self.row_bytes = c.vocab_size * 4 * 3                                          # logits, float, log_softmax

    def _cost(self, rows: int, width: int, predicted: int) -> int:
        return rows * width * (self.tok_bytes + self.pair_bytes * width) + predicted * self.row_bytes

    def _budget(self) -> tuple[int, int]:
        """(bytes per forward pass, most rows in one)."""
        mb = self.cfg.memory_mb
        budget = mb * 2 ** 20 if mb is not None else working_bytes(self.device, CPU_MEMORY_MB, gpu_cap=8 * 2 ** 30)
        rows = self.cfg.batch_size if self.device.type != "cuda" else max(self.cfg.batch_size, GPU_MIN_ROWS)
        return budget, rows

    def run(self, groups, scores: list[float]) -> None:
        if self.packed:
            rows = [(ctx, conts) for ctx, conts in groups]
        else:
            rows = [(ctx, [c]) for ctx, conts in groups for c in conts]
        width_of = [len(ctx) + sum(max(0, len(c) - 1) for _, c in conts) for ctx, conts in rows]
        preds_of = [sum(len(c) for _, c in conts) for _, conts in rows]
        order = sorted(range(len(rows)), key=lambda r: -width_of[r])  # longest first: close widths, little padding
        budget, most = self._budget()
        start = 0
        while start < len(order):
            n, width, preds = 1, width_of[order[start]], preds_of[order[start]]
            while (start + n < len(order) and n < most
                   and self._cost(n + 1, width, preds + preds_of[order[start + n]]) <= budget):
                preds += preds_of[order[start + n]]
                n += 1
            self._batch([rows[r] for r in order[start:start + n]], width, scores)
            start += n

    def _batch(self, rows, width: int, scores: list[float]) -> None:
        import torch
        n = len(rows)
        ids = torch.zeros((n, width), dtype=torch.long)
        positions = torch.zeros((n, width), dtype=torch.long)
        segment = torch.full((n, width), -1, dtype=torch.long)  # 0 prompt, k choice k, -1 padding
        where, targets, owners = [], [], []  # (row, position) predicting each target token, its request
        for r, (ctx, conts) in enumerate(rows):
            L = len(ctx)
            ids[r, :L] = torch.tensor(ctx)
            positions[r, :L] = torch.arange(L)
            segment[r, :L] = 0
            o = L
            for k, (i, cont) in enumerate(conts, start=1):
                m = max(0, len(cont) - 1)
                ids[r, o:o + m] = torch.tensor(cont[:-1], dtype=torch.long)
                positions[r, o:o + m] = torch.arange(L, L + m)
                segment[r, o:o + m] = k
                for j, tok in enumerate(cont):  # token j is predicted by the prompt's end (j = 0) or by c[j-1]
                    where.append((r, L - 1 if j == 0 else o + j - 1))
                    targets.append(tok)
                    owners.append(i)
                o += m
        real = segment >= 0
        if self.packed:
            q, k = segment[:, :, None], segment[:, None, :]
            causal = torch.ones((width, width), dtype=torch.bool).tril()
            allowed = causal & (k == 0) | causal & (q == k) & real[:, :, None] | torch.eye(width, dtype=torch.bool)
            mask = torch.zeros((n, 1, width, width), dtype=self.dtype)
            mask.masked_fill_(~allowed[:, None], torch.finfo(self.dtype).min)
            out = self.decoder(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                               position_ids=positions.to(self.device), use_cache=False)
        else:  # right padding: default positions are right, the model builds its own causal mask
            out = self.decoder(input_ids=ids.to(self.device), attention_mask=real.long().to(self.device),
                               use_cache=False)
        if not where:
            return
        at = torch.tensor(where, device=self.device)
        # a prompt's last row predicts every choice's first token: the head runs on unique rows only
        uniq, inverse = torch.unique(at[:, 0] * width + at[:, 1], return_inverse=True)
        hidden = out.last_hidden_state.reshape(n * width, -1)[uniq]
        logp = torch.log_softmax(self.head(hidden).float(), dim=-1)
        lp = logp[inverse, torch.tensor(targets, device=self.device)].cpu()
        for i in set(owners):
            scores[i] = 0.0
        for i, v in zip(owners, lp.tolist()):
            scores[i] += v
