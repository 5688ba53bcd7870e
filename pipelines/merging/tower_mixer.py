"""Merge candidates written into a vision-language model's language tower, in memory, and saved.

JRadiEvo's recipe: the inputs are the VLM's own language tower and text causal LMs of the same
architecture, all relative to one text base (task vectors); a candidate's merged tower is written
into the loaded VLM by name (``pipelines/merging/towers.py`` knows the names per family), and the
vision tower and projector are never touched. The VLM is input 0.

- The VLM is loaded once (``VisionGenerator``: the report engine scores candidates with it). Its
  tower's original tensors are kept on the CPU: the VLM is an input, and its tensors are overwritten
  by every candidate. The LMs' and the base's tensors are read from their safetensors one at a time,
  as the text merge does: memory holds the VLM, one copy of its tower, and one tensor per input,
  mixed on the VLM's device.
- Vocabulary rows: only the rows the plan marks shared (the same token in every tokenizer) are
  merged; the others (image tokens, padding rows) keep the VLM's values.
- A candidate that is input 0 alone (weight 1 for it, 0 for the others; with ``jradievo`` also the
  others trimmed away, no drop, λ = 1) restores the VLM's tensors exactly rather than computing
  θ_base + (θ_vlm − θ_base), which differs in the last bit: the VLM scored first *is* the VLM.
- ``save`` streams the VLM's own files: tower tensors replaced by the candidate's (in the file's
  dtype), every other tensor copied as read, so vision tower and projector are identical byte for byte.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

from pipelines.merging.methods import (
    DARE_METHODS,
    SafetensorsModel,
    layer_group,
    merge_tensor,
    stream_merge,
    tensor_generator,
)
from pipelines.merging.towers import TowerPlan
from pipelines.models.references import ModelRef
from pipelines.models.vision import VisionGenerator


class TowerMixer:
    """``apply(params)`` writes a candidate into ``self.generator.model``'s tower; ``save`` writes the VLM."""

    def __init__(self, plan: TowerPlan, method: str, *, seed: int = 0, layer_groups: int = 1,
                 device: str | None = None, batch_size: int = 8):
        self.plan, self.method, self.seed, self.layer_groups = plan, method, seed, layer_groups
        self.generator = VisionGenerator.load(ModelRef(spec="merge candidate", kind="vision", path=str(plan.vlm_dir)),
                                              device=device, batch_size=batch_size)
        params = dict(self.generator.model.named_parameters(remove_duplicate=False))
        self.targets = {lm: params[vlm] for lm, vlm in plan.names.items()}
        self.originals = {lm: t.detach().to("cpu", copy=True) for lm, t in self.targets.items()}
        self.sources = [SafetensorsModel(d) for d in plan.lm_dirs]
        self.base = SafetensorsModel(plan.base_dir) if plan.base_dir else None
        self.shared = torch.as_tensor(plan.shared_ids, dtype=torch.long)

    def read(self, source: SafetensorsModel, name: str) -> torch.Tensor:
        """A causal LM's tensor by its causal-LM name (a tied LM's head is its embedding: the plan says
        which name each folder holds it under)."""
        return source.get(self.plan.sources[str(source.path)][name])

    def alone(self, params: dict) -> int | None:
        """The input this candidate is exactly (see the module docstring), or None."""
        weights = params["weights"]
        if any(w != weights[0] for w in weights) or sorted(weights[0]) != [0.0] * (len(weights[0]) - 1) + [1.0]:
            return None
        k = weights[0].index(1.0)
        if self.method == "jradievo":           # the others trimmed away, nothing dropped, λ = 1
            exact = params.get("drop", 0.0) == 0.0 and params.get("scale", 1.0) == 1.0 and \
                all(d == weights[0] for d in params["densities"])
        else:                                   # its own update neither trimmed nor dropped
            exact = all(d[k] == 1.0 for d in params["densities"])
        return k if exact else None

    def tensor(self, name: str, params: dict) -> torch.Tensor:
        """The candidate's value of the causal-LM tensor ``name`` (float32, the VLM's shape)."""
        g = layer_group(name, self.plan.n_layers, self.layer_groups)
        w, d = params["weights"][g], params["densities"][g]
        gen = tensor_generator(self.seed, name) if self.method in DARE_METHODS else None
        # Merged where the VLM runs: on a GPU an 8B tower's 14336×4096 tensors take minutes per
        # candidate in float32 on a CPU (bench/bench_vlm_merge.py) and a fraction of a second there.
        device = self.targets[name].device
        original = self.originals[name].to(device, torch.float32)
        inputs = [original] + [self.read(s, name).to(device, torch.float32) for s in self.sources]
        base = self.read(self.base, name).to(device, torch.float32) if self.base is not None else None
        extra = {"drop": params.get("drop", 0.0), "scale": params.get("scale", 1.0), "generator": gen}
        if name not in self.plan.vocab_names:
            return merge_tensor(self.method, inputs, w, d, base=base, **extra)
        rows = self.shared.to(device)
        merged = merge_tensor(self.method, [x[rows] for x in inputs], w, d,
                              base=None if base is None else base[rows], **extra)
        out = original.clone()
        out[rows] = merged
        return out

    @torch.no_grad()
    def apply(self, params: dict) -> None:
        k = self.alone(params)
        for name, target in self.targets.items():
            if k == 0:
                target.copy_(self.originals[name])
            else:
                target.copy_(self.tensor(name, params).to(target.dtype))

    def save(self, out: str | Path, params: dict, *, shard_bytes: int = 1 << 30) -> str:
        """The candidate as a VLM directory (weights streamed from the VLM's files, every other file
        copied); returns 'merged'."""
        out = Path(out)
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            self._write(tmp, params, shard_bytes)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)      # a full disk: give back what the partial copy took
            raise
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        return "merged"

    @torch.no_grad()
    def _write(self, tmp: Path, params: dict, shard_bytes: int) -> None:
        self.apply(params)
        vlm = SafetensorsModel(self.plan.vlm_dir)
        on_disk = {disk: lm for lm, disk in self.plan.vlm_disk_names.items()}   # the VLM's file name → causal LM's

        def merged(disk_name: str, as_read: torch.Tensor) -> torch.Tensor:
            lm = on_disk.get(disk_name)
            return as_read if lm is None else self.targets[lm].detach().to("cpu", as_read.dtype)

        stream_merge(tmp, vlm, merged, shard_bytes=shard_bytes)
        for f in Path(self.plan.vlm_dir).iterdir():
            if f.is_file() and not f.name.endswith(".safetensors") and f.name != "model.safetensors.index.json":
                shutil.copy2(f, tmp / f.name)
