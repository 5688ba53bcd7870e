"""How much working memory a batch may take on the device a model sits on.

One rule for every batcher (generation's key/value cache, log-likelihood activations): a fixed
budget on a CPU, where the same RAM holds everything else and a hospital PC has 8-16 GB, and
a quarter of the free memory on a CUDA device, where a small fixed budget leaves it idle.
"""
from __future__ import annotations


def working_bytes(device, cpu_mb: int, *, gpu_cap: int | None = None) -> int:
    """``cpu_mb`` on a CPU; on a CUDA device a quarter of its free memory, at most ``gpu_cap`` bytes."""
    if getattr(device, "type", "cpu") != "cuda":
        return cpu_mb * 2 ** 20
    import torch
    free = torch.cuda.mem_get_info(device)[0] // 4
    return free if gpu_cap is None else min(free, gpu_cap)


def kv_cache_tokens(model, cpu_mb: int) -> int | None:
    """How many tokens' key/value cache fit in ``working_bytes(model.device, cpu_mb)``: the cache of
    a batch is rows × (prompt + new tokens) of these. None when the model's config does not give the
    shape (an unusual architecture). An image+text model's cache is its language tower's."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        return None
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    try:
        heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        per_token = text.num_hidden_layers * 2 * heads * head_dim * model.dtype.itemsize
    except (AttributeError, TypeError, ZeroDivisionError):
        return None
    return working_bytes(model.device, cpu_mb) // per_token


def torch_inference():
    """``torch.inference_mode()``, imported when called (this module is imported without torch)."""
    import torch
    return torch.inference_mode()
