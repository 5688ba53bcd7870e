"""Merge inputs: checked for compatibility, mixed into one preloaded model, saved as a directory.

Three ways a merge is carried out, chosen from the inputs and the method (``plan_merge``):

``full``     full models (same architecture and tokenizer): every tensor is mixed by
             ``pipelines.merging.methods``; candidates are written into one loaded model copy,
             the result is streamed to disk shard by shard.
``cat``      LoRA adapters of one base with ``linear``/``task_arithmetic`` and one weight per
             input: PEFT's ``add_weighted_adapter(..., combination_type="cat")``. It stacks the
             inputs' A (scaled by w_i·s_i) and B matrices, so B_cat·A_cat = Σ w_i s_i B_i A_i:
             exactly the weighted sum of the weight deltas; the result is an adapter (rank Σ r_i).
``folded``   adapters with TIES/DARE, per-layer weights, or rsLoRA: each adapter's exact delta
             s_i·B_i·A_i (PEFT's ``get_delta_weight``) is a task vector on the base, merged like a
             full model; the result is a full model.

What PEFT offers and why it is not used beyond ``cat``: its ``linear``/``ties``/``dare_*``
combinations mix the A matrices and the B matrices separately, and (Σ a_i B_i)(Σ b_i A_i) is not
Σ w_i B_i A_i (cross terms B_i A_j); its ``svd`` variants form the true weighted delta but then
truncate it to a rank, an approximation. ``cat`` copies the first input's config, so with
rsLoRA (scaling α/√r) the merged adapter is scaled by √(Σ r_i) instead of 1: not exact, so
rsLoRA adapters are folded instead. DoRA rescales each column by a learned magnitude after
adding B·A, so the update is not linear in B·A at all: DoRA inputs are refused (fold each into
its base first, then merge the full models).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from pipelines.core import safe_load
from pipelines.core.errors import UserError
from pipelines.core.workspace import Workspace
from pipelines.merging.methods import (
    DARE_METHODS,
    SafetensorsModel,
    layer_group,
    merge_deltas,
    merge_tensor,
    stream_merge,
    tensor_generator,
)
from pipelines.models.references import ModelRef, load_model, load_tokenizer, resolve_model

_MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt", "chat_template.jinja")


@dataclass
class MergePlan:
    mode: str                       # 'full' | 'cat' | 'folded'
    method: str
    inputs: list[ModelRef]
    base: ModelRef | None           # the base the task vectors are relative to (None: linear on full models)
    n_layers: int
    layer_groups: int
    seed: int

    @property
    def reference_dir(self) -> str:
        return (self.base or self.inputs[0]).path

    def weights_densities(self, params: dict, name: str) -> tuple[list[float], list[float]]:
        g = layer_group(name, self.n_layers, self.layer_groups)
        return params["weights"][g], params["densities"][g]


def _adapter_config(ref: ModelRef) -> dict:
    return safe_load.json_file(Path(ref.adapter) / "adapter_config.json", "adapter configuration")


def _model_config(path: str) -> dict:
    return safe_load.json_file(Path(path) / "config.json", "model configuration")


def _vocab(path: str) -> dict:
    tok = load_tokenizer(path)
    return {"vocab": tok.get_vocab(), "special": [tok.bos_token, tok.eos_token, tok.unk_token]}


def plan_merge(specs, base_spec: str | None, method: str, *, layer_groups: int = 1, seed: int = 0,
               workspace: Workspace | None = None) -> MergePlan:
    """Resolve and check the inputs; refuse (UserError) whatever cannot be merged meaningfully."""
    if len(specs) < 2:
        raise UserError(f"A merge needs at least two inputs; got {len(specs)}.",
                        "Pass two or more --inputs (checkpoints, adapters or full models of one architecture).",
                        code="merge.too_few_inputs", params={"n": len(specs), "field": "inputs"})
    refs = [resolve_model(s, None, workspace) for s in specs]
    base = resolve_model(base_spec, None, workspace) if base_spec else None
    for r in refs + ([base] if base else []):
        if r.kind != "local":
            raise UserError(f"{r.spec} is an API endpoint; only local weights can be merged.",
                            "Pass local model directories, adapters or registered checkpoints.",
                            code="merge.endpoint", params={"spec": r.spec})
    adapters = [r for r in refs if r.adapter]
    if adapters and len(adapters) != len(refs):
        raise UserError("The inputs mix adapters and full models: "
                        + ", ".join(f"{r.spec} ({'adapter' if r.adapter else 'full model'})" for r in refs) + ".",
                        "Merge adapters with adapters; for full models, fold each adapter into its base first.",
                        code="merge.mixed",
                        params={"adapters": ", ".join(r.spec for r in refs if r.adapter),
                                "models": ", ".join(r.spec for r in refs if not r.adapter)})
    if base and base.adapter:
        raise UserError(f"--base {base.spec} is an adapter.", "Pass the full model the inputs were derived from.",
                        code="merge.base_is_adapter", params={"spec": base.spec, "field": "base"})
    if adapters:
        return _plan_adapters(refs, base, method, layer_groups, seed)
    return _plan_full(refs, base, method, layer_groups, seed)


def _plan_adapters(refs, base, method, layer_groups, seed) -> MergePlan:
    bases = {str(Path(r.path).resolve()) for r in refs}
    if len(bases) > 1:
        raise UserError("The adapters were trained on different base models: "
                        + ", ".join(f"{r.spec} → {r.path}" for r in refs) + ".",
                        "Merge only adapters of one base model (e.g. checkpoints of runs on the same model).",
                        code="merge.different_bases", params={"pairs": ", ".join(f"{r.spec} → {r.path}" for r in refs)})
    if base and str(Path(base.path).resolve()) not in bases:
        raise UserError(f"--base {base.spec} is not the adapters' base ({refs[0].path}).",
                        "Leave --base out for adapters: their own base is used.",
                        code="merge.base_mismatch",
                        params={"spec": base.spec, "base": str(refs[0].path), "field": "base"})
    configs = [_adapter_config(r) for r in refs]
    for r, c in zip(refs, configs):
        if c.get("peft_type", "LORA") != "LORA":
            raise UserError(f"{r.spec} is a {c.get('peft_type')} adapter; only LoRA adapters can be merged.",
                            code="merge.not_lora", params={"spec": r.spec, "kind": str(c.get("peft_type"))})
        if c.get("use_dora"):
            raise UserError(f"{r.spec} is a DoRA adapter: its update rescales columns after adding B·A, so no "
                            "weighted sum of adapters is the weighted sum of DoRA updates.",
                            "Fold each DoRA adapter into its base (merge_and_unload, save) and merge the full models.",
                            code="merge.dora", params={"spec": r.spec})
    targets = [sorted(c["target_modules"]) if isinstance(c.get("target_modules"), list)
               else c.get("target_modules") for c in configs]
    if any(t != targets[0] for t in targets):
        raise UserError("The adapters adapt different modules: "
                        + "; ".join(f"{r.spec}: {t}" for r, t in zip(refs, targets)) + ".",
                        "Merge adapters trained with the same target modules.",
                        code="merge.different_targets",
                        params={"targets": "; ".join(f"{r.spec}: {t}" for r, t in zip(refs, targets))})
    exact_cat = (method in ("linear", "task_arithmetic") and layer_groups == 1
                 and not any(c.get("use_rslora") for c in configs))
    base_ref = ModelRef(spec=refs[0].path, kind="local", path=refs[0].path)
    return MergePlan("cat" if exact_cat else "folded", method, refs, base_ref,
                     int(_model_config(refs[0].path).get("num_hidden_layers", 1)), layer_groups, seed)


def _plan_full(refs, base, method, layer_groups, seed) -> MergePlan:
    if method != "linear" and base is None:
        raise UserError(f"{method} merges task vectors relative to a base model, and no --base was given.",
                        "Pass --base (the model the inputs were fine-tuned from), or use --method linear.",
                        code="merge.needs_base", params={"method": method, "field": "base"})
    models = refs + ([base] if base else [])
    cfgs = [_model_config(r.path) for r in models]
    keys = ("model_type", "architectures", "hidden_size", "num_hidden_layers", "vocab_size")
    for r, c in zip(models[1:], cfgs[1:]):
        diff = [k for k in keys if c.get(k) != cfgs[0].get(k)]
        if diff:
            raise UserError(f"{r.spec} differs in architecture from {models[0].spec} "
                            f"({', '.join(f'{k}: {cfgs[0].get(k)} vs {c.get(k)}' for k in diff)}).",
                            "Merge only models of one architecture and size.",
                            code="merge.architecture",
                            params={"spec": r.spec, "other": models[0].spec,
                                    "diff": ", ".join(f"{k}: {cfgs[0].get(k)} vs {c.get(k)}" for k in diff)})
    shapes = [SafetensorsModel(r.path).shapes for r in models]
    for r, s in zip(models[1:], shapes[1:]):
        if s != shapes[0]:
            odd = sorted(set(s) ^ set(shapes[0])) or [k for k in s if s[k] != shapes[0][k]]
            raise UserError(f"{r.spec} holds different tensors from {models[0].spec} (e.g. {odd[:3]}).",
                            "Merge only models of one architecture and size.",
                            code="merge.tensors",
                            params={"spec": r.spec, "other": models[0].spec, "names": ", ".join(odd[:3])})
    vocab0 = _vocab(models[0].path)
    for r in models[1:]:
        if _vocab(r.path) != vocab0:
            raise UserError(f"{r.spec} uses a different tokenizer from {models[0].spec}.",
                            "Merged weights only mean something when token ids mean the same in every input.",
                            code="merge.tokenizer", params={"spec": r.spec, "other": models[0].spec})
    return MergePlan("full", method, refs, base, int(cfgs[0].get("num_hidden_layers", 1)), layer_groups, seed)


# -- the one preloaded model that every candidate is mixed into ---------------------------------

class Mixer:
    """``apply(params)`` writes a candidate into ``self.model``; ``save(out, params)`` writes it to disk."""

    def __init__(self, plan: MergePlan, device: str | None = None):
        self.plan = plan
        base = ModelRef(spec=plan.reference_dir, kind="local", path=plan.reference_dir)
        model, self.tokenizer = load_model(base, device=device)
        self.deltas: dict[str, list[torch.Tensor]] = {}
        if plan.mode == "full":
            self.sources = [SafetensorsModel(r.path) for r in plan.inputs]
            self.base_src = SafetensorsModel(plan.base.path) if plan.base else None
            self.model = model
        else:
            from peft import PeftModel

            with safe_load.refusing_pickles(plan.inputs[0].adapter, "adapter weights"):
                model = PeftModel.from_pretrained(model, plan.inputs[0].adapter, adapter_name="in0")
            for i, r in enumerate(plan.inputs[1:], start=1):
                with safe_load.refusing_pickles(r.adapter, "adapter weights"):
                    model.load_adapter(r.adapter, adapter_name=f"in{i}")
            model.eval()
            if plan.mode == "cat":
                self.model = model
            else:
                self.deltas = adapter_deltas(model, len(plan.inputs))
                self.model = model.unload()     # the plain base model again (LoRA layers removed)
        self.state = self.model.state_dict()
        self.originals = {n: self.state[n].detach().clone() for n in self.deltas}

    def tensor(self, name: str, params: dict, reference: torch.Tensor | None = None) -> torch.Tensor:
        w, d = self.plan.weights_densities(params, name)
        gen = tensor_generator(self.plan.seed, name) if self.plan.method in DARE_METHODS else None
        extra = {"drop": params.get("drop", 0.0), "scale": params.get("scale", 1.0)}
        if self.plan.mode == "full":
            inputs = [s.get(name) for s in self.sources]
            base = self.base_src.get(name) if self.base_src else None
            return merge_tensor(self.plan.method, inputs, w, d, base=base, generator=gen, **extra)
        if name not in self.deltas:
            return reference
        base = self.originals[name] if reference is None else reference
        method, weights = self.plan.method, w
        if method == "linear":      # θ_base + Σ w_i δ_i / Σ w_i: linear in weight space, same base
            method, weights = "task_arithmetic", [x / (sum(w) or 1.0) for x in w]
        return base.float() + merge_deltas(method, self.deltas[name], weights, d, generator=gen, **extra)

    @torch.no_grad()
    def apply(self, params: dict) -> None:
        if self.plan.mode == "cat":
            w = params["weights"][0]
            if self.plan.method == "linear":
                w = [x / (sum(w) or 1.0) for x in w]
            if "merged" in self.model.peft_config:
                self.model.set_adapter("in0")       # deleting the active adapter makes PEFT warn
                self.model.delete_adapter("merged")
            self.model.add_weighted_adapter([f"in{i}" for i in range(len(w))], w, "merged", combination_type="cat")
            self.model.set_adapter("merged")
            return
        names = self.sources[0].names() if self.plan.mode == "full" else list(self.deltas)
        for name in names:
            target = self.state[name]
            target.copy_(self.tensor(name, params).to(target.dtype))

    def save(self, out: str | Path, params: dict, *, shard_bytes: int = 1 << 30) -> str:
        """Write the candidate as a model (or adapter) directory; returns 'merged' or 'adapter'."""
        out = Path(out)
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            kind = self._write(tmp, params, shard_bytes)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)      # a full disk: give back what the partial copy took
            raise
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        return kind

    def _write(self, tmp: Path, params: dict, shard_bytes: int) -> str:
        if self.plan.mode == "cat":
            self.apply(params)
            self.model.save_pretrained(tmp, selected_adapters=["merged"])
            produced = tmp / "merged"
            for f in produced.iterdir():
                f.rename(tmp / f.name)
            produced.rmdir()
            return "adapter"
        reference = SafetensorsModel(self.plan.reference_dir)
        stream_merge(tmp, reference, lambda name, ref: self.tensor(name, params, ref), shard_bytes=shard_bytes)
        for f in _MODEL_FILES:
            if (Path(self.plan.reference_dir) / f).exists():
                shutil.copy2(Path(self.plan.reference_dir) / f, tmp / f)
        return "merged"


def adapter_deltas(peft_model, n: int) -> dict[str, list[torch.Tensor]]:
    """Per adapted weight (state-dict name of the plain model): each input's exact delta s·B·A."""
    from peft.tuners.lora import LoraLayer

    prefix = "base_model.model."
    out: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for module_name, module in peft_model.named_modules():
            if not isinstance(module, LoraLayer):
                continue
            weight = module.get_base_layer().weight
            deltas = [module.get_delta_weight(f"in{i}").detach().float() if f"in{i}" in module.lora_A
                      else torch.zeros_like(weight, dtype=torch.float32) for i in range(n)]
            out[module_name.removeprefix(prefix) + ".weight"] = deltas
    return out
