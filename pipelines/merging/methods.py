"""Tensor merges (linear, task arithmetic, TIES, DARE) and a streaming safetensors merge.

Each method combines the inputs' *task vectors* δ_i = θ_i − θ_base, tensor by tensor, with a
weight w_i per input (and a density d_i for TIES/DARE); only ``linear`` mixes the weights
themselves. The definitions follow the papers and mergekit's defaults, so results read the same:

  ``linear``           θ = Σ w_i θ_i / Σ w_i                              (no base needed)
  ``task_arithmetic``  θ = θ_base + Σ w_i δ_i                              (Ilharco et al. 2023)
  ``ties``             trim each δ_i to its top-d_i fraction by magnitude, elect the sign of
                       Σ w_i δ_i per element, and average the weighted entries that agree:
                       θ = θ_base + Σ_i w_i m_i δ_i / Σ_i w_i m_i          (Yadav et al. 2023)
  ``dare_linear``      drop each δ_i element with probability 1 − d_i, rescale the rest by
                       1/d_i, then task arithmetic                          (Yu et al. 2024)
  ``dare_ties``        DARE's drop-and-rescale, then TIES's sign election and averaging
  ``jradievo``         JRadiEvo's DARE + TIES, as its public code computes it: one DARE drop rate p
                       for every input (δ'_i = drop-and-rescale at density 1 − p), each δ'_i trimmed
                       to its top-d_i fraction, the sign elected from the *unweighted* Σ δ''_i (an
                       exact zero takes the tensor's overall sign), the agreeing entries weighted and
                       divided by how many inputs agree (not by their weights), and the whole scaled
                       by a global λ: θ = θ_base + λ · Σ_i w_i m_i δ''_i / max(1, Σ_i m_i)

``jradievo`` differs from ``dare_ties`` on purpose, and the two are kept apart so that a merge card
naming ``dare_ties`` keeps meaning mergekit's arithmetic. It also trims per tensor, as mergekit does,
where JRadiEvo's code trims over the whole flattened model: per tensor streams (one tensor in memory
at a time) and keeps every layer's update; the search variables are JRadiEvo's (p, d_i, w_i, λ).

DARE's random masks come from a generator seeded by (seed, tensor name), so the same candidate
gives the same tensors in memory during the search and in the streamed output directory.

Why our own code rather than mergekit's library: mergekit 0.1.5 declares torch>=2, transformers 5
and peft>=0.18 (no conflict with our pins), but it pulls four packages we do not have
(immutables, sentencepiece, protobuf, scipy) into a shared environment we may not change, and
its entry point merges a YAML configuration into a directory on disk, while the search mixes
every candidate into one model already in memory. The arithmetic is the few lines below,
checked against hand-computed tensors in tests/pipelines/test_merge_methods.py.
"""
from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Callable, Sequence

import torch

from pipelines.core.errors import UserError

METHODS = ("linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "jradievo")
SPARSE_METHODS = ("ties", "dare_linear", "dare_ties", "jradievo")   # the ones with a density per input
DARE_METHODS = ("dare_linear", "dare_ties", "jradievo")   # the ones that draw random masks
SCALED_METHODS = ("jradievo",)          # with one DARE drop rate for all inputs and a global scale λ
_LAYER = re.compile(r"\.(?:layers|h|blocks)\.(\d+)\.")


def _as_list(value, n: int) -> list[float]:
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)] * n


def trim_magnitude(delta: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the ``density`` fraction of entries with the largest magnitude (TIES's trim step)."""
    if density >= 1.0:
        return delta
    k = int(density * delta.numel())
    if k <= 0:
        return torch.zeros_like(delta)
    threshold = delta.abs().flatten().kthvalue(delta.numel() - k + 1).values
    return delta * (delta.abs() >= threshold)


def dare_drop(delta: torch.Tensor, density: float, generator: torch.Generator | None) -> torch.Tensor:
    """Keep each entry with probability ``density`` and rescale by 1/density (expectation kept)."""
    if density >= 1.0:
        return delta
    if density <= 0.0:
        return torch.zeros_like(delta)
    # Drawn on the CPU (where the seeded generator lives) whatever the tensor's device: the same mask
    # in the search on a GPU and in the saved model.
    keep = (torch.rand(delta.shape, generator=generator) < density).to(delta.device)
    return delta * keep / density


def jradievo_deltas(deltas: Sequence[torch.Tensor], weights: list[float], densities: list[float], *,
                    drop: float, scale: float, generator: torch.Generator | None) -> torch.Tensor:
    """JRadiEvo's merged task vector of one tensor (see the module docstring), λ applied."""
    kept = [trim_magnitude(dare_drop(x, 1.0 - drop, generator), d) for x, d in zip(deltas, densities)]
    total = torch.stack(kept).sum(0)
    overall = 1.0 if total.sum() >= 0 else -1.0
    sign = torch.where(total > 0, 1.0, torch.where(total < 0, -1.0, overall))
    agree = [(x != 0) & (x.sign() == sign) for x in kept]
    merged = sum(w * a * x for w, a, x in zip(weights, agree, kept))
    count = torch.stack(agree).sum(0).clamp(min=1)
    return scale * merged / count


def merge_deltas(method: str, deltas: Sequence[torch.Tensor], weights, densities=1.0, *,
                 generator: torch.Generator | None = None, drop: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """The merged task vector (float32) of one tensor; see the module docstring. ``drop`` and
    ``scale`` (DARE's one drop rate and the global λ) belong to ``jradievo`` only."""
    if method not in METHODS or method == "linear":
        raise ValueError(f"merge_deltas: {method!r} is not a task-vector method")
    n = len(deltas)
    w, d = _as_list(weights, n), _as_list(densities, n)
    deltas = [x.float() for x in deltas]
    if method == "jradievo":
        return jradievo_deltas(deltas, w, d, drop=drop, scale=scale, generator=generator)
    if method == "ties":
        deltas = [trim_magnitude(x, di) for x, di in zip(deltas, d)]
    elif method.startswith("dare"):
        deltas = [dare_drop(x, di, generator) for x, di in zip(deltas, d)]
    if method in ("task_arithmetic", "dare_linear"):
        out = torch.zeros_like(deltas[0])
        for wi, x in zip(w, deltas):
            out += wi * x
        return out
    weighted = torch.stack([wi * x for wi, x in zip(w, deltas)])
    majority = torch.where(weighted.sum(0) >= 0, 1.0, -1.0)
    agree = weighted.sign() == majority            # a zero entry agrees with nobody
    wt = torch.tensor(w, dtype=torch.float32).view(-1, *([1] * deltas[0].dim()))
    divisor = (wt * agree).sum(0)
    divisor[divisor.abs() < 1e-12] = 1.0
    return (weighted * agree).sum(0) / divisor


def merge_tensor(method: str, tensors: Sequence[torch.Tensor], weights, densities=1.0, *,
                 base: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 drop: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """One merged tensor (float32) from the inputs' full tensors (and the base's)."""
    w = _as_list(weights, len(tensors))
    if method == "linear":
        total = sum(w)
        total = total if abs(total) > 1e-12 else 1.0
        out = torch.zeros_like(tensors[0], dtype=torch.float32)
        for wi, t in zip(w, tensors):
            out += (wi / total) * t.float()    # weights (1, 0) give the first input bit for bit
        return out
    if base is None:
        raise ValueError(f"{method} needs the base tensor")
    b = base.float()
    return b + merge_deltas(method, [t.float() - b for t in tensors], w, densities, generator=generator,
                            drop=drop, scale=scale)


def tensor_generator(seed: int, name: str) -> torch.Generator:
    """DARE's drop mask for tensor ``name``: the same in every process (crc32, not Python's hash)."""
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}:{name}".encode()))


def layer_group(name: str, n_layers: int, n_groups: int) -> int:
    """Which of ``n_groups`` contiguous layer groups a tensor belongs to (embeddings: the first,
    final norm and output head: the last)."""
    if n_groups <= 1:
        return 0
    m = _LAYER.search("." + name)
    if m is None:
        return 0 if "emb" in name else n_groups - 1
    return min(n_groups - 1, int(m.group(1)) * n_groups // max(1, n_layers))


# -- safetensors, one tensor at a time ---------------------------------------------------------

class SafetensorsModel:
    """The tensors of a Hugging Face model directory, read one at a time (never the whole model)."""

    def __init__(self, path: str | Path):
        from safetensors import SafetensorError
        self.path = Path(path)
        try:
            self._read_index()
        except SafetensorError as exc:       # a shard cut short (a copy that did not finish) or corrupt
            raise UserError(f"{self.path} holds a safetensors file that cannot be read ({exc}).",
                            "Copy the model again (the file is probably incomplete).", code="merge.bad_safetensors",
                            params={"path": str(self.path), "detail": str(exc)[:200]}) from None

    def _read_index(self) -> None:
        from safetensors import safe_open

        index = self.path / "model.safetensors.index.json"
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
        elif (self.path / "model.safetensors").exists():
            weight_map = None
        else:
            raise UserError(f"{self.path} has no safetensors weights (model.safetensors or its index).",
                            "Re-save the model with save_pretrained(safe_serialization=True).",
                            code="merge.no_safetensors", params={"path": str(self.path)})
        if weight_map is None:
            with safe_open(self.path / "model.safetensors", "pt") as fh:
                weight_map = {k: "model.safetensors" for k in fh.keys()}
        self.weight_map: dict[str, str] = weight_map
        self.shapes: dict[str, tuple] = {}
        for shard in sorted(set(weight_map.values())):
            with safe_open(self.path / shard, "pt") as fh:
                for k in fh.keys():
                    self.shapes[k] = tuple(fh.get_slice(k).get_shape())

    def names(self) -> list[str]:
        return list(self.weight_map)

    def shards(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, shard in self.weight_map.items():
            out.setdefault(shard, []).append(name)
        return out

    def get(self, name: str) -> torch.Tensor:
        from safetensors import safe_open

        # Opened per tensor: the file's pages are unmapped again at once, so reading a 7B
        # model tensor by tensor never holds it all resident.
        with safe_open(self.path / self.weight_map[name], "pt") as fh:
            return fh.get_tensor(name)


def stream_merge(out_dir: str | Path, reference: SafetensorsModel,
                 merged: Callable[[str, torch.Tensor], torch.Tensor], *, shard_bytes: int = 1 << 30,
                 on_tensor: Callable[[str], None] | None = None) -> list[str]:
    """Write ``merged(name, reference tensor)`` for every tensor of ``reference`` into ``out_dir``,
    an output shard at a time (at most ``shard_bytes`` of output held in memory), in the
    reference's dtype. Returns the shard file names."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [n for shard in reference.shards().values() for n in shard]
    shard_files: list[str] = []
    weight_map: dict[str, str] = {}
    current: dict[str, torch.Tensor] = {}
    size = 0

    def flush() -> None:
        nonlocal current, size
        if not current:
            return
        fname = f"model-{len(shard_files) + 1:05d}.safetensors"
        save_file(current, out_dir / fname, metadata={"format": "pt"})
        shard_files.append(fname)
        weight_map.update({k: fname for k in current})
        current, size = {}, 0

    for name in names:
        ref = reference.get(name)
        t = merged(name, ref).to(ref.dtype).contiguous()
        del ref
        nbytes = t.numel() * t.element_size()
        if current and size + nbytes > shard_bytes:
            flush()
        current[name] = t
        size += nbytes
        if on_tensor:
            on_tensor(name)
    flush()
    if len(shard_files) == 1:
        (out_dir / shard_files[0]).rename(out_dir / "model.safetensors")
        return ["model.safetensors"]
    total = sum((out_dir / f).stat().st_size for f in shard_files)
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return shard_files
