"""Continuous batching: many sequences decoded together, each leaving the batch the step it ends and
a waiting one taking its place at the next step.

Why not ``model.generate`` on a padded batch (what the engines did before, issue 25): on this CPU
its batch runs until its longest row ends, every row is padded to the longest prompt, the dynamic
cache is copied at every step (a quarter of the step time at 4 rows) and the static one is
allocated per batch; and rows that share a batch must share their decoding settings. Here:

* ``SlotCache`` holds the keys and values of ``slots`` rows × ``capacity`` positions per layer,
  allocated once. Row r's tokens sit at positions 0 … length[r] − 1 of its slot (no padding in
  front), and the running rows are the slots 0 … n − 1, so a decoding step's cache is a view.
  Each step writes one position per row (at its own length) and attends over the longest row
  with a mask; a row that ends is replaced by the last running one (one slot copied).
* A new row's prompt is read alone (in chunks of ``PREFILL_CHUNK`` on a CPU): no padding, and
  the per-token cost of a prompt is the same at one row as at sixteen here (2 ms/token).
* Every row carries its own decoding: greedy or sampled (temperature, top-k, top-p) with its own
  seeded generator, repetition penalty, stop strings, a token constraint (structured output) and
  its token limit. So a row's answer depends on its prompt and seed alone, not on its neighbours.

The model is called with a 4-D mask and explicit positions, which transformers passes through
unchanged; ``supported`` says which models that holds for (others keep ``generate``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

from pipelines.models.sampling import draw_rows
from pipelines.models.slot_cache import (
    DECODE_ATTENTION,
    SPAN_ROWS,
    SlotCache,
    _core,
    _register_decode_attention,
    _shape,
    _text_config,
)

PREFILL_CHUNK = 512
MIN_SHARED = 16     # prompt tokens a new row must share with a running one for its cache to be copied
# The key/value cache on a CPU. Allocated once per run and nothing else grows with the batch, so it
# can be larger than a padded ``generate`` batch's (384 MB, allocated per batch): 768 MB holds 16
# rows of the embedded model at 975 positions (the sample exam's longest 0-shot prompt + 256), where
# a step costs 10 ms per row instead of 17 at 8 rows. Peak RSS stays under 2 GB (bench_first_hour).
KV_CACHE_MB = 768
# Decoding steps of this many rows compute every linear layer as W·xᵀ on a CPU: MKL runs ``linear``
# for 2-4 rows on one thread, the transposed product on both, and a step of the embedded model at 4
# rows × 2,000 positions took 132 ms instead of 166 (2 rows: 105 instead of 137; 1 and 8+: no gain).
SMALL_ROWS = (2, 4)


def supported(model, width: int | None = None) -> bool:
    """Whether ``model`` can be decoded here, rows reaching ``width`` positions: a decoder-only
    transformers model with SDPA or eager attention (both take a prepared 4-D mask), a cache that
    attention layers ``update``, no capped attention scores, and sliding-window layers only where
    rows stay within the window (there the window changes nothing)."""
    core = _core(model)
    cfg = _text_config(core)
    if getattr(cfg, "is_encoder_decoder", False) or getattr(cfg, "attn_logit_softcapping", None):
        return False
    if getattr(core.config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    kinds = set(getattr(cfg, "layer_types", None) or [])
    if kinds - {"full_attention", "sliding_attention"}:
        return False
    if sliding_window(model) is not None and (width is None or width > sliding_window(model)):
        return False
    return _cache_kwarg(core) is not None and _shape(model) is not None


def sliding_window(model) -> int | None:
    """The attention window of a model with sliding-window layers (None: every layer sees everything)."""
    cfg = _text_config(_core(model))
    window = getattr(cfg, "sliding_window", None)
    kinds = set(getattr(cfg, "layer_types", None) or [])
    sliding = "sliding_attention" in kinds if kinds else bool(window) and getattr(cfg, "use_sliding_window", True)
    return window if sliding and window else None


def _cache_kwarg(core) -> str | None:
    params = inspect.signature(core.forward).parameters
    for name in ("past_key_values", "cache"):
        if name in params:
            return "past_key_values" if "past_key_values" in params else name
    return None


@dataclass(eq=False)
class Row:
    """One sequence to continue, with its own decoding settings; ``tokens`` grows as it is decoded."""
    ids: list[int]
    max_new: int
    temperature: float = 0.0                # 0: greedy
    top_p: float = 1.0
    top_k: int | None = None
    repetition_penalty: float = 1.0
    seed: int | None = None                 # sampled rows: their generator's seed (None: a random one)
    stops: tuple[str, ...] = ()
    allowed: Callable | None = None         # (0, ids so far) -> allowed next token ids (structured output)
    tokens: list[int] = field(default_factory=list)
    finish: str | None = None               # 'eos' | 'stop' (a stop string) | 'length'
    tag: object = None                      # the caller's (an index, a job)
    generator: object = None

    @property
    def done(self) -> bool:
        return self.finish is not None


class Decoder:
    """Rows decoded together on one model (see the module's notes). ``admit`` a row while
    ``free`` > 0; ``step`` advances every running row by one token and returns those that ended."""

    def __init__(self, model, tokenizer, *, slots: int, capacity: int, on_step: Callable[[int], None] | None = None):
        import torch

        self.model, self.tokenizer = model, tokenizer
        self.cache = SlotCache(model, slots, capacity)
        self.rows: list[Row] = []
        self.lengths = torch.zeros(slots, dtype=torch.long, device=model.device)   # positions in the cache per slot
        self.on_step = on_step
        self.cache_kwarg = _cache_kwarg(_core(model))
        self.boolean_mask = getattr(_core(model).config, "_attn_implementation", "sdpa") == "sdpa"
        self.spans = self.boolean_mask      # decode steps through ``decode_attention``
        if self.spans:
            _register_decode_attention()
        self.chunk = PREFILL_CHUNK if model.device.type == "cpu" else 1 << 30
        head = model.get_output_embeddings()
        self.vocab = head.weight.shape[0]
        plain = type(head) is torch.nn.Linear and head.bias is None
        # The output layer as W·hᵀ on a CPU at every step: for a few rows against a wide weight (49,152 × 576
        # here) the BLAS kernel behind ``linear`` took 27 ms at 8 rows, the transposed product 10 ms.
        self.head = (head, _transposed(head)) if plain and model.device.type == "cpu" else None
        self.linears = [(m, _transposed(m)) for m in model.modules() if type(m) is torch.nn.Linear and m is not head
                        ] if model.device.type == "cpu" else []
        # Each slot's tokens (prompt, then generated; after its end, its first token again): what the
        # repetition penalty looks up, as transformers' penalty looks up input_ids.
        self.sequence = torch.zeros(slots, capacity, dtype=torch.long, device=model.device)
        gen = getattr(model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None)
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos]) - {None}

    @property
    def free(self) -> int:
        return self.cache.slots - len(self.rows)

    def reshape(self, slots: int, capacity: int) -> None:
        """``slots`` rows of ``capacity`` positions from now on, the running rows kept as they are:
        a server whose next request is longer than its rows widens the cache (fewer, wider slots
        under the same memory) instead of waiting until every running row has ended."""
        import torch

        n = len(self.rows)
        need = max((len(r.ids) + r.max_new for r in self.rows), default=0)
        if slots < n or capacity < need:
            raise ValueError(f"{n} running rows reaching {need} positions do not fit {slots} × {capacity}")
        length = int(self.lengths[:n].max()) if n else 0
        self.cache.reshape(slots, capacity, n, length)
        lengths = torch.zeros(slots, dtype=self.lengths.dtype, device=self.lengths.device)
        lengths[:n] = self.lengths[:n]
        # Past a row's end its sequence repeats its first token (as ``admit`` leaves it).
        sequence = self.sequence.new_zeros(slots, capacity)
        keep = min(capacity, self.sequence.shape[1])
        sequence[:n] = self.sequence[:n, :1]
        sequence[:n, :keep] = self.sequence[:n, :keep]
        self.lengths, self.sequence = lengths, sequence

    # -- a forward pass ----------------------------------------------------------------

    def _forward(self, input_ids, positions, mask, spans=None):
        import torch
        if not self.boolean_mask:       # eager attention adds the mask to the scores
            mask = torch.zeros(mask.shape, dtype=self.model.dtype, device=mask.device).masked_fill(
                ~mask, torch.finfo(self.model.dtype).min)
        config = _core(self.model).config
        extra = {self.cache_kwarg: self.cache}
        if spans is not None:
            config._attn_implementation = DECODE_ATTENTION
            extra["decode_spans"] = spans
        if self.head is not None:
            self.head[0].forward = self.head[1]
        few = SMALL_ROWS[0] <= input_ids.shape[0] <= SMALL_ROWS[1]         # a decoding step (prompts: one row)
        for layer, transposed in self.linears if few else ():
            layer.forward = transposed
        try:
            out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                             logits_to_keep=1, **extra)
        finally:
            if self.head is not None:
                del self.head[0].forward
            for layer, _ in self.linears if few else ():
                del layer.forward
            if spans is not None:
                config._attn_implementation = "sdpa"
        return out.logits[:, -1]

    def admit(self, row: Row) -> None:
        """Read ``row``'s prompt into the next free slot and choose its first token."""
        import torch

        slot = len(self.rows)
        ids = torch.tensor([row.ids], device=self.model.device)
        n = ids.shape[1]
        shared = self._share_prefix(slot, ids[0])
        for start in range(shared, n, self.chunk):
            part = ids[:, start:start + self.chunk]
            size = part.shape[1]
            mask = torch.ones(size, start + size, dtype=torch.bool, device=ids.device).tril(start)
            self.cache.prefill(slot, start)
            logits = self._forward(part, torch.arange(start, start + size, device=ids.device)[None], mask[None, None])
        self.lengths[slot] = n
        if row.temperature > 0:
            row.generator = torch.Generator(device=self.model.device)
            row.generator.manual_seed(int(row.seed) if row.seed is not None else int(torch.seed()))
        self.sequence[slot] = ids[0, 0]
        self.sequence[slot, :n] = ids[0]
        self.rows.append(row)
        self._advance(logits)      # the first token: the last prompt position's choice
        if row.done:
            self._retire([row])

    def _share_prefix(self, slot: int, ids) -> int:
        """Copy into ``slot`` the cache of the longest start ``ids`` shares with a running row (a
        prompt template's instruction, a 1-shot example); returns how many positions were copied.
        A position's keys and values depend on the tokens up to it alone, so the copy is what
        reading them again would give. At least one token is left to read (its logits are needed)."""
        import torch

        if not self.rows:
            return 0
        n = min(len(ids) - 1, self.cache.capacity)
        same = (self.sequence[:len(self.rows), :n] == ids[:n]).long().cumprod(-1).sum(-1)
        same = torch.minimum(same, self.lengths[:len(self.rows)])      # positions actually in the cache
        best = int(same.argmax())
        shared = int(same[best])
        if shared < MIN_SHARED:
            return 0
        for layer in (*self.cache.keys, *self.cache.values):
            layer[slot, :, :shared] = layer[best, :, :shared]
        return shared

    def step(self) -> list[Row]:
        """One token for every running row; returns the rows that ended (their slots are free again)."""
        import torch

        if not self.rows:
            return []
        n = len(self.rows)
        positions = self.lengths[:n]
        ends = (positions + 1).tolist()
        width = max(ends)
        spans = [(a, min(a + SPAN_ROWS, n), max(ends[a:a + SPAN_ROWS])) for a in range(0, n, SPAN_ROWS)]
        last = torch.tensor([[r.tokens[-1]] for r in self.rows], device=self.model.device)
        mask = torch.arange(width, device=positions.device)[None] <= positions[:, None]
        self.cache.decode(n, positions, width)
        logits = self._forward(last, positions[:, None], mask[:, None, None], spans if self.spans else None)
        self.lengths[:n] += 1
        before = list(self.rows)
        self._advance(logits)
        ended = [r for r in before if r.done]
        self._retire(ended)
        return ended

    # -- choosing tokens -----------------------------------------------------------------

    def _advance(self, logits) -> None:
        """Choose the next token of the last ``len(logits)`` running rows (all of them in a step)."""
        import torch

        rows = self.rows[len(self.rows) - logits.shape[0]:]
        first = len(self.rows) - len(rows)
        scores = logits.float()
        penalties = [r.repetition_penalty for r in rows]
        if any(p != 1.0 for p in penalties):
            seen = self.sequence[first:first + len(rows), :int(self.lengths[first:first + len(rows)].max())]
            p = torch.tensor(penalties, device=scores.device)[:, None]
            hit = scores.gather(1, seen)
            scores = scores.scatter(1, seen, torch.where(hit < 0, hit * p, hit / p))
        constrained = [i for i, r in enumerate(rows) if r.allowed is not None]
        if constrained:         # tokens a row's constraint does not allow score −inf
            keep = torch.full((len(constrained), scores.shape[1]), float("-inf"), device=scores.device)
            for j, i in enumerate(constrained):
                allowed = rows[i].allowed(0, rows[i].ids + rows[i].tokens)
                keep[j, torch.as_tensor(allowed, dtype=torch.long, device=scores.device)] = 0.0
            scores = scores.index_add(0, torch.tensor(constrained, device=scores.device), keep)
        picks = scores.argmax(-1).tolist()
        sampled = [i for i, r in enumerate(rows) if r.temperature > 0]
        if sampled:
            for i, token in zip(sampled, draw_rows(scores[sampled], [rows[i] for i in sampled])):
                picks[i] = token
        for i, (row, token) in enumerate(zip(rows, picks)):
            row.tokens.append(token)
            self.sequence[first + i, int(self.lengths[first + i])] = token
            row.finish = self._finish(row)
        if self.on_step is not None:
            self.on_step(len(rows))

    def _finish(self, row: Row) -> str | None:
        token = row.tokens[-1]
        if token in self.eos:
            return "eos"
        if row.stops:
            # A stop string is at most this many tokens long (a token holds at least one byte).
            window = max(len(s.encode("utf-8")) for s in row.stops) + 1
            tail = self.tokenizer.decode(row.tokens[-window:], skip_special_tokens=False)
            if any(s in tail for s in row.stops):
                return "stop"
        if len(row.tokens) >= row.max_new:
            return "length"
        return None

    def _retire(self, ended: list[Row]) -> None:
        """Free the slots of ``ended``: the last running row moves into each freed slot."""
        for row in ended:
            slot = self.rows.index(row)
            last = len(self.rows) - 1
            if slot != last:
                length = int(self.lengths[last])
                self.cache.move(last, slot, length)
                self.lengths[slot] = length
                self.sequence[slot] = self.sequence[last]
                self.rows[slot] = self.rows[last]
            self.rows.pop()


def _transposed(layer):
    """``layer``'s forward as W·xᵀ (see ``SMALL_ROWS`` and the output layer in ``Decoder``), contiguous
    as ``linear``'s output is."""
    import torch

    def forward(hidden):
        flat = hidden.reshape(-1, hidden.shape[-1]).to(layer.weight.dtype)
        out = torch.mm(layer.weight, flat.T).T.contiguous()
        if layer.bias is not None:
            out += layer.bias
        return out.reshape(*hidden.shape[:-1], layer.weight.shape[0])
    return forward
