"""The key/value cache of continuous batching (``pipelines.models.continuous``) and the attention
its decoding steps run: rows in slots of one allocation, each attending only as far as it reaches.
"""
from __future__ import annotations


def _text_config(model):
    cfg = model.config
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


def _core(model):
    """The transformers model under a PEFT wrapper (whose forward passes keyword arguments on)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _shape(model) -> tuple[int, int, int] | None:
    """(layers, key/value heads, head size), or None when the config does not say."""
    cfg = _text_config(_core(model))
    try:
        heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        return int(cfg.num_hidden_layers), int(heads), int(head_dim)
    except (AttributeError, TypeError, ZeroDivisionError):
        return None


DECODE_ATTENTION = "jmedlora_decode"
SPAN_ROWS = 4       # rows per span of ``decode_attention`` (slots hold rows longest first, as admitted)


def _register_decode_attention() -> None:
    from transformers import AttentionInterface
    AttentionInterface.register(DECODE_ATTENTION, decode_attention)


def decode_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """SDPA for a decoding step: each span of rows against its own positions only, and grouped
    query heads without copying the cache.

    Reading the cache is most of attention's time (at 16 rows × 975 positions, 2.8 ms a layer,
    40% of a step here), and a batch's width is its longest row's: ``decode_spans`` (start row,
    end row, width) lets runs of rows of similar lengths read only as far as their longest.
    transformers also repeats each key/value head for its query heads before SDPA whenever there
    is a mask on a CPU (``repeat_kv``): a copy of the cache at every layer. With one new token per
    row, a key/value head's query heads stand in the query-length place instead (their mask is the
    same), so each head's cache is read once: [rows, kv heads, query heads per kv head, head size]
    against [rows, kv heads, positions, head size].
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    spans = kwargs.pop("decode_spans", None)
    rows, heads, length, size = query.shape
    kv_heads = key.shape[1]
    if length != 1 or heads % kv_heads or spans is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    grouped = query.reshape(rows, kv_heads, heads // kv_heads, size)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    out = torch.cat([sdpa(grouped[a:b], key[a:b, :, :width], value[a:b, :, :width],
                          attn_mask=attention_mask[a:b, ..., :width], scale=scaling) for a, b, width in spans])
    return out.reshape(rows, heads, 1, size).transpose(1, 2).contiguous(), None


class SlotCache:
    """Keys and values of ``slots`` rows × ``capacity`` positions per layer (see the module's notes).

    transformers' attention layers call ``update`` with the new keys and values and attend over
    what it returns; ``prefill`` and ``decode`` say, before a forward pass, where those go.
    """

    is_compileable = False

    def __init__(self, model, slots: int, capacity: int):
        import torch

        layers, heads, head_dim = _shape(model)
        shape = (slots, heads, capacity, head_dim)
        kw = dict(dtype=model.dtype, device=model.device)
        self.keys = [torch.zeros(shape, **kw) for _ in range(layers)]
        self.values = [torch.zeros(shape, **kw) for _ in range(layers)]
        self.slots, self.capacity = slots, capacity
        self._prefill: tuple[int, int] | None = None
        self._decode: tuple[int, object, int] | None = None

    def prefill(self, slot: int, start: int) -> None:
        """The next forward pass reads one row's prompt tokens from position ``start`` into ``slot``."""
        self._prefill, self._decode = (slot, start), None

    def decode(self, rows: int, positions, width: int) -> None:
        """The next forward pass adds one token to each of slots 0 … rows − 1, at ``positions``; it
        attends over the first ``width`` positions (the longest row)."""
        import torch
        self._decode, self._prefill = (rows, positions, width), None
        self._index = torch.arange(rows, device=positions.device)

    def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        if self._prefill is not None:
            slot, start = self._prefill
            end = start + key_states.shape[2]
            keys[slot, :, start:end] = key_states[0]
            values[slot, :, start:end] = value_states[0]
            return keys[slot:slot + 1, :, :end], values[slot:slot + 1, :, :end]
        rows, positions, width = self._decode
        keys[self._index, :, positions] = key_states[:, :, 0]
        values[self._index, :, positions] = value_states[:, :, 0]
        return keys[:rows, :, :width], values[:rows, :, :width]

    def reshape(self, slots: int, capacity: int, rows: int, length: int) -> None:
        """Hold ``slots`` × ``capacity`` from now on, keeping the first ``length`` positions of slots
        0 … rows − 1. One layer at a time, so the memory in use grows by one layer's, not a cache's."""
        import torch
        for cache in (self.keys, self.values):
            for i, old in enumerate(cache):
                new = torch.zeros((slots, old.shape[1], capacity, old.shape[3]), dtype=old.dtype, device=old.device)
                new[:rows, :, :length] = old[:rows, :, :length]
                cache[i] = new
                del old
        self.slots, self.capacity = slots, capacity

    def move(self, src: int, dst: int, length: int) -> None:
        for layer in (*self.keys, *self.values):
            layer[dst, :, :length] = layer[src, :, :length]

    def get_seq_length(self, layer_idx: int = 0) -> int:  # positions come with every call; asked only without
        return 0
