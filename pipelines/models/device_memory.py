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
