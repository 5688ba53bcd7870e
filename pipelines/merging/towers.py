"""A vision-language model's language tower seen as a causal LM, so it can be merged with text LMs.

JRadiEvo merges the text decoder of a LLaVA-style model (image-text-to-text) with Japanese (medical)
causal LMs: task vectors of the text LMs relative to their text base, added to the VLM's tower. This
module is the one place that knows, per VLM family, how the tower's tensors correspond to a causal
LM's, and refuses an incompatible set of models before anything is loaded in full:

    plan = check_compatible(vlm_dir, [lm_a, lm_b], base_dir)      # or a UserError saying what differs
    plan.names["model.layers.0.mlp.up_proj.weight"]   # -> 'model.language_model.layers.0.mlp.up_proj.weight'
    plan.sources[lm_a]["lm_head.weight"]              # -> where lm_a keeps that tensor on disk
    merged[plan.shared_ids] = mix(t[plan.shared_ids] for t in inputs)   # embeddings and head: shared rows only

Names. Every tensor is named as in a causal LM of the tower's text architecture (``LlamaForCausalLM``
for a Llama tower): ``model.*`` for embeddings, layers and final norm, ``lm_head.weight`` for the
output head; a causal LM uses these names on disk and in memory. The VLM uses others, and different
ones on disk and in memory (``FAMILIES``): transformers 5 builds a LLaVA with its decoder at
``model.language_model`` and the head at ``lm_head`` but still *saves* it as ``language_model.model.*``
and ``language_model.lm_head.weight``; Qwen2-VL is saved as ``model.*`` (the causal names);
Idefics3/SmolVLM keep ``model.text_model`` in both. Each layout was checked by saving a tiny model of
every family (tests/pipelines/test_towers.py does so at every run). A VLM file is read in whichever
of its family's layouts holds every tower tensor.

Tied embeddings. With ``tie_word_embeddings`` the output head *is* the input embedding matrix. A tied
VLM's head maps once, as ``model.embed_tokens.weight`` (``plan.tied``; ``lm_head.weight`` is not in
``plan.names``): an LM's separate head has no place there and is listed in ``plan.ignored``. A tied LM
saves no ``lm_head.weight``: its head is read from its ``model.embed_tokens.weight`` (``plan.sources``),
which is exactly the matrix it predicts with.

Vocabulary. The VLM's embedding and head may have more rows than an LM's (``<image>`` and other added
tokens, padding to a multiple). ``plan.shared_ids`` (a sorted LongTensor; index any model's
embedding or head with it) are the ids that are rows of every model and the same token string in
every tokenizer; the VLM keeps its own values in every other row. Tokenizers that agree on fewer
than 99% of an LM's ids are different tokenizers, refused (``towers.tokenizer``).

Nothing here reads a weight: configs, tokenizers and safetensors *headers* only; the VLM is built on
the ``meta`` device to learn its parameter names and shapes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from pipelines.core import safe_load
from pipelines.core.errors import UserError
from pipelines.merging.methods import SafetensorsModel
from pipelines.models.modality import is_vision_config

MIN_AGREEMENT = 0.99        # below this share of an LM's ids with the VLM's token strings: another tokenizer
# The text config's settings that fix the tower's shape; a difference in any is another model size.
SHAPE_SETTINGS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                  "intermediate_size", "head_dim")
# Tensors a causal LM may save that are no parameter (old checkpoints saved RoPE's inverse frequencies).
_HARMLESS_EXTRA = ("rotary_emb.inv_freq",)

LLAVA_DISK = (("language_model.model", "language_model.lm_head"), ("model.language_model", "lm_head"))
QWEN_VL_DISK = (("model", "lm_head"), ("model.language_model", "lm_head"))


@dataclass(frozen=True)
class Family:
    """Where one VLM family keeps its language tower: ``tower`` (the decoder without its head) and
    ``head`` in the loaded model; ``disk``: the (decoder, head) prefixes of saved checkpoints, first
    the layout transformers 5 writes; ``lm_type``: a causal LM's ``model_type`` when the text config's own
    names a class with no causal-LM counterpart."""
    tower: str
    disk: tuple[tuple[str, str], ...]
    head: str = "lm_head"
    lm_type: str | None = None


FAMILIES: dict[str, Family] = {
    "llava": Family("model.language_model", LLAVA_DISK),
    "llava_next": Family("model.language_model", LLAVA_DISK),
    "llava_onevision": Family("model.language_model", LLAVA_DISK),
    "mistral3": Family("model.language_model", LLAVA_DISK),
    "paligemma": Family("model.language_model", LLAVA_DISK),
    "gemma3": Family("model.language_model", LLAVA_DISK),          # MedGemma is one
    "idefics3": Family("model.text_model", (("model.text_model", "lm_head"),)),
    "smolvlm": Family("model.text_model", (("model.text_model", "lm_head"),)),
    "qwen2_vl": Family("model.language_model", QWEN_VL_DISK, lm_type="qwen2"),      # saved as a causal LM
    "qwen2_5_vl": Family("model.language_model", QWEN_VL_DISK, lm_type="qwen2"),
}


class Tower(NamedTuple):
    names: dict[str, str]           # causal-LM name -> the VLM's in-memory name (a tied head: once, as the embedding)
    shapes: dict[str, tuple]        # causal-LM name -> shape in the VLM
    tied: bool
    vocab_names: tuple[str, ...]    # causal-LM names whose first dimension is the vocabulary


@dataclass
class TowerPlan:
    """What a mixer needs to merge LMs into a VLM's language tower (see the module docstring)."""
    vlm_dir: str
    lm_dirs: list[str]
    base_dir: str | None            # None: no base (a linear merge of full weights)
    family: str                     # the VLM's model_type
    lm_type: str                    # the causal LMs' model_type (``llama`` for a LLaVA-1.5 tower)
    names: dict[str, str]           # causal-LM name -> the VLM's in-memory parameter name
    vlm_disk_names: dict[str, str]  # causal-LM name -> its name in the VLM's safetensors
    sources: dict[str, dict[str, str]]   # LM or base dir -> causal-LM name -> its name in that dir's safetensors
    shapes: dict[str, tuple]        # causal-LM name -> shape in the VLM
    vocab_names: tuple[str, ...]    # embedding and head: merge only the rows ``shared_ids``
    shared_ids: torch.Tensor        # sorted int64 token ids, all below every model's row count
    vlm_rows: int                   # the VLM's vocabulary rows
    text_config: dict               # the tower's SHAPE_SETTINGS and vocab_size
    n_layers: int
    tied: bool                      # the VLM's head is its embedding matrix
    ignored: dict[str, list[str]] = field(default_factory=dict)   # dir -> tensors it holds that nothing takes

    @property
    def input_dirs(self) -> list[str]:
        return self.lm_dirs + ([self.base_dir] if self.base_dir else [])


def family_of(model_type: str) -> Family:
    if model_type not in FAMILIES:
        supported = ", ".join(sorted(FAMILIES))
        raise UserError(f"The language tower of a {model_type!r} model cannot be merged: it is not a family "
                        f"whose tower layout is known (supported: {supported}).",
                        "Use a vision-language model of a supported family, or add its layout to "
                        "pipelines/merging/towers.py FAMILIES (checked by saving a tiny model).",
                        code="towers.family", params={"model_type": model_type, "supported": supported})
    return FAMILIES[model_type]


def _module_path(model, dotted: str):
    module = model
    for part in dotted.split("."):
        module = getattr(module, part, None)
        if module is None:      # transformers moved it: FAMILIES is out of date, a bug rather than the user's doing
            raise RuntimeError(f"{type(model).__name__} has no {dotted}: update FAMILIES in towers.py")
    return module


def tower_of(vlm_model) -> Tower:
    """The tower of a loaded VLM (real or on ``meta``), named as a causal LM."""
    fam = family_of(vlm_model.config.model_type)
    embed = vlm_model.get_input_embeddings().weight
    head = vlm_model.get_output_embeddings().weight
    tied = head is embed
    names, shapes, vocab, seen = {}, {}, [], set()
    for prefix, causal in ((fam.tower, "model"), (fam.head, "lm_head")):
        for name, param in _module_path(vlm_model, prefix).named_parameters(remove_duplicate=False):
            if id(param) in seen:       # the tied head: already mapped as the embedding
                continue
            seen.add(id(param))
            key = f"{causal}.{name}"
            names[key], shapes[key] = f"{prefix}.{name}", tuple(param.shape)
            if param is embed or param is head:
                vocab.append(key)
    return Tower(names, shapes, tied, tuple(vocab))


def tower_names(vlm_model) -> dict[str, str]:
    """Causal-LM parameter name -> the VLM's in-memory name, for every tower parameter (embeddings,
    layers, final norm, head). A tied head is the embedding: it maps once, as ``model.embed_tokens.weight``."""
    return tower_of(vlm_model).names


def lm_type_of(model_type: str, text_config) -> str:
    return family_of(model_type).lm_type or text_config.model_type


# -- the pre-load check -----------------------------------------------------------------------------

def _vlm_config(vlm_dir: Path):
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    raw = safe_load.json_file(vlm_dir / "config.json", "model configuration")
    model_type = str(raw.get("model_type"))
    vlm_like = is_vision_config(raw) or model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    if model_type not in FAMILIES and vlm_like:
        family_of(model_type)       # a vision-language model of a family we cannot map: say which are
    if model_type not in FAMILIES:
        raise UserError(f"{vlm_dir} is not an image-text-to-text (vision-language) model: its config.json says "
                        f"model_type {model_type!r} and names no vision tower.",
                        "Pass the vision-language model as the VLM and the text models as the LMs.",
                        code="towers.not_vlm", params={"path": str(vlm_dir), "model_type": model_type})
    return AutoConfig.from_pretrained(vlm_dir)


def meta_tower(config) -> Tower:
    """The tower of the VLM ``config`` describes, built on the meta device (no memory, no weights)."""
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    return tower_of(model)


def _setting(config, key: str):
    value = getattr(config, key, None)
    if key == "num_key_value_heads" and value is None:
        return getattr(config, "num_attention_heads", None)     # no grouped-query attention: one per head
    if key == "head_dim" and value is None and getattr(config, "num_attention_heads", None):
        return config.hidden_size // config.num_attention_heads
    return value


def _check_lm_config(path: Path, lm_type: str, text_config) -> bool:
    """Refuse an LM of another architecture or size; returns whether its head is tied."""
    from transformers import AutoConfig

    raw = safe_load.json_file(path / "config.json", "model configuration")
    archs = raw.get("architectures") or []
    if raw.get("model_type") != lm_type or (archs and not any(str(a).endswith("ForCausalLM") for a in archs)):
        found = f"{raw.get('model_type')} ({', '.join(map(str, archs)) or 'no architectures'})"
        raise UserError(f"{path} is a {found} model, but the vision-language model's language tower is a "
                        f"{lm_type} causal LM: their tensors do not correspond.",
                        f"Merge {lm_type} causal LMs (fine-tuned from the same text model as the tower).",
                        code="towers.architecture",
                        params={"path": str(path), "model_type": str(raw.get("model_type")), "expected": lm_type})
    config = AutoConfig.from_pretrained(path)
    diff = [f"{k}: {_setting(text_config, k)} vs {_setting(config, k)}" for k in SHAPE_SETTINGS
            if _setting(text_config, k) != _setting(config, k)]
    if diff:
        raise UserError(f"{path} is another size than the vision-language model's language tower "
                        f"(tower vs this model: {'; '.join(diff)}).",
                        "Merge models of the tower's size: fine-tunes of the text model the VLM was built on.",
                        code="towers.config", params={"path": str(path), "diff": "; ".join(diff)})
    return bool(getattr(config, "tie_word_embeddings", False))


def _shown(names: list[str]) -> str:
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


_TENSORS_FIX = "Merge models of the tower's exact architecture and size; copy or re-save a damaged model."


def vlm_disk_names(vlm_dir: Path, fam: Family, tw: Tower) -> dict[str, str]:
    """Causal-LM name -> name in the VLM's safetensors, in the first of the family's layouts that
    holds every tower tensor (with the tower's shapes)."""
    header = SafetensorsModel(vlm_dir).shapes
    for decoder, head in fam.disk:
        disk = {k: (decoder if k.startswith("model.") else head) + k[k.index("."):] for k in tw.names}
        if all(v in header for v in disk.values()):
            odd = [v for k, v in disk.items() if tuple(header[v]) != tw.shapes[k]]
            if odd:
                raise UserError(f"{vlm_dir} holds tower tensors of other shapes than its config.json describes: "
                                f"{_shown(odd)}.", _TENSORS_FIX, code="towers.vlm_tensors",
                                params={"path": str(vlm_dir), "names": _shown(odd)})
            return disk
    decoder, head = fam.disk[0]
    missing = [v for v in ((decoder if k.startswith("model.") else head) + k[k.index("."):] for k in tw.names)
               if v not in header]
    raise UserError(f"{vlm_dir} lacks language-tower tensors its config.json describes: {_shown(missing)}.",
                    _TENSORS_FIX, code="towers.vlm_tensors", params={"path": str(vlm_dir), "names": _shown(missing)})


def lm_sources(path: Path, tw: Tower, lm_tied: bool) -> tuple[dict[str, str], list[str], int]:
    """Causal-LM name -> the name to read in this LM's safetensors; the tensors nothing takes; its
    vocabulary rows. Refuses missing tensors and shapes other than the tower's (vocabulary rows aside)."""
    header = SafetensorsModel(path).shapes
    sources = {k: k for k in tw.names}
    if "lm_head.weight" in sources and "lm_head.weight" not in header and lm_tied:
        sources["lm_head.weight"] = "model.embed_tokens.weight"     # a tied LM's head is its embedding
    missing = [k for k, v in sources.items() if v not in header]
    if missing:
        raise UserError(f"{path} lacks tensors of the language tower: {_shown(missing)}.", _TENSORS_FIX,
                        code="towers.missing_tensors", params={"path": str(path), "names": _shown(missing)})
    odd = [f"{k} {tuple(header[v])} vs tower {tw.shapes[k]}" for k, v in sources.items()
           if (tuple(header[v])[1:] if k in tw.vocab_names else tuple(header[v]))
           != (tw.shapes[k][1:] if k in tw.vocab_names else tw.shapes[k])]
    if odd:
        raise UserError(f"{path} holds tensors of other shapes than the language tower: {_shown(odd)}.", _TENSORS_FIX,
                        code="towers.tensor_shapes", params={"path": str(path), "names": _shown(odd)})
    extra = [k for k in header if k not in sources.values()]
    ignored = [k for k in extra if k == "lm_head.weight" and tw.tied or k.endswith(_HARMLESS_EXTRA)]
    unknown = [k for k in extra if k not in ignored]
    if unknown:
        raise UserError(f"{path} holds tensors the language tower lacks: {_shown(unknown)}.", _TENSORS_FIX,
                        code="towers.extra_tensors", params={"path": str(path), "names": _shown(unknown)})
    rows = min(int(header[sources[k]][0]) for k in tw.vocab_names)
    return sources, ignored, rows


def _vocab(path: Path) -> dict[int, str]:
    from transformers import AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"{path} has no tokenizer that can be read ({str(exc)[:200]}).",
                        "Copy the model folder with its tokenizer files (tokenizer.json, tokenizer_config.json).",
                        code="towers.no_tokenizer", params={"path": str(path), "detail": str(exc)[:200]}) from None
    return {i: t for t, i in tok.get_vocab().items()}


def shared_rows(vlm_vocab: dict[int, str], lm_vocabs: dict[str, dict[int, str]], rows: int) -> torch.Tensor:
    """The token ids whose embedding and head rows may be merged, sorted (int64): below ``rows`` (every
    model's row count) and the same token string in the VLM's and every other tokenizer
    (``lm_vocabs``: dir -> id -> token). Refuses a tokenizer that agrees with the VLM's on fewer than
    ``MIN_AGREEMENT`` of its ids."""
    shared = {i for i, t in vlm_vocab.items() if i < rows}
    for path, vocab in lm_vocabs.items():
        agree = {i for i, t in vocab.items() if vlm_vocab.get(i) == t}
        if len(agree) < MIN_AGREEMENT * len(vocab):
            percent = f"{100 * len(agree) / max(1, len(vocab)):.1f}"
            raise UserError(f"{path} uses another tokenizer than the vision-language model: only {len(agree)} of its "
                            f"{len(vocab)} token ids ({percent}%) stand for the same token in both.",
                            "Merge models that share the VLM's tokenizer (fine-tunes of the text model the VLM was "
                            "built on); a row of the embedding means nothing for another tokenizer's token.",
                            code="towers.tokenizer", params={"path": path, "agree": len(agree), "total": len(vocab),
                                                             "percent": percent})
        shared &= agree
    return torch.tensor(sorted(shared), dtype=torch.long)


def check_compatible(vlm_dir, lm_dirs: list, base_dir=None) -> TowerPlan:
    """Check that the text LMs ``lm_dirs`` (and ``base_dir``, the text model they were fine-tuned from)
    can be merged into the language tower of the VLM ``vlm_dir``; a ``TowerPlan`` or a UserError naming
    what differs (``towers.*``). Reads configs, tokenizers and safetensors headers only."""
    vlm_dir = Path(vlm_dir)
    dirs = [Path(d) for d in lm_dirs] + ([Path(base_dir)] if base_dir else [])
    config = _vlm_config(vlm_dir)
    fam = family_of(config.model_type)
    text = config.get_text_config()
    lm_type = lm_type_of(config.model_type, text)
    tw = meta_tower(config)
    disk = vlm_disk_names(vlm_dir, fam, tw)
    sources, ignored, rows = {}, {}, [tw.shapes[k][0] for k in tw.vocab_names]
    for path in dirs:
        lm_tied = _check_lm_config(path, lm_type, text)
        src, extra, n = lm_sources(path, tw, lm_tied)
        sources[str(path)], rows = src, rows + [n]
        if extra:
            ignored[str(path)] = extra
    vocabs = {str(path): _vocab(path) for path in dirs}
    shared = shared_rows(_vocab(vlm_dir), vocabs, min(rows))
    facts = {k: _setting(text, k) for k in SHAPE_SETTINGS} | {"vocab_size": getattr(text, "vocab_size", None)}
    return TowerPlan(vlm_dir=str(vlm_dir), lm_dirs=[str(Path(d)) for d in lm_dirs],
                     base_dir=str(Path(base_dir)) if base_dir else None,
                     family=config.model_type, lm_type=lm_type, names=tw.names, vlm_disk_names=disk, sources=sources,
                     shapes=tw.shapes, vocab_names=tw.vocab_names, shared_ids=shared,
                     vlm_rows=tw.shapes[tw.vocab_names[0]][0], text_config=facts,
                     n_layers=int(_setting(text, "num_hidden_layers")), tied=tw.tied, ignored=ignored)
