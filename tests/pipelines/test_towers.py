"""A VLM's language tower named as a causal LM (every supported family, checked against a causal LM
built from its text config and against the layout transformers 5 saves), and the pre-load check of a
VLM with text LMs: what passes, what is refused and with which code, the shared vocabulary rows, and
that no weight is read."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from pipelines.core.errors import UserError
from pipelines.merging import towers

TEXT = dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, depth=1,
              embed_dim=32, num_heads=2, out_hidden_size=64)


def tiny_vlm_config(model_type: str):
    """A 2-layer, width-64 text tower and a 1-layer vision tower of the family's default config."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    config = CONFIG_MAPPING[model_type]()
    text = config.get_text_config()
    for k, v in TEXT.items():
        setattr(text, k, v)
    for k, v in VISION.items():
        if hasattr(config.vision_config, k):
            setattr(config.vision_config, k, v)
    if hasattr(config, "projection_dim"):       # PaliGemma projects the image features to the text width
        config.projection_dim = TEXT["hidden_size"]
    return config


def causal_lm_on_meta(lm_type: str, tied: bool):
    from transformers import AutoConfig, AutoModelForCausalLM
    config = AutoConfig.for_model(lm_type, **TEXT, tie_word_embeddings=tied)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("model_type", sorted(towers.FAMILIES))
def test_every_tower_parameter_is_a_parameter_of_the_causal_lm_and_the_saved_layout_is_the_familys(model_type, tmp_path):
    from transformers import AutoModelForImageTextToText
    config = tiny_vlm_config(model_type)
    torch.manual_seed(0)
    vlm = AutoModelForImageTextToText.from_config(config)
    tw = towers.tower_of(vlm)
    assert tw.names == towers.tower_names(vlm)
    lm = causal_lm_on_meta(towers.lm_type_of(model_type, config.get_text_config()), tw.tied)
    lm_params = dict(lm.named_parameters())         # a tied head is not listed twice
    assert set(tw.names) == set(lm_params), model_type
    assert all(tw.shapes[k] == tuple(p.shape) for k, p in lm_params.items())
    vlm_params = dict(vlm.named_parameters(remove_duplicate=False))
    assert all(tuple(vlm_params[v].shape) == tw.shapes[k] for k, v in tw.names.items())
    assert tw.names["model.norm.weight"] == towers.FAMILIES[model_type].tower + ".norm.weight"
    assert tw.tied == ("lm_head.weight" not in tw.names) == bool(config.tie_word_embeddings)
    assert tw.vocab_names == (("model.embed_tokens.weight",) if tw.tied else ("model.embed_tokens.weight", "lm_head.weight"))
    # Saved by transformers 5, the tower is found in the family's first (newest) layout.
    vlm.save_pretrained(tmp_path)
    decoder, head = towers.FAMILIES[model_type].disk[0]
    disk = towers.vlm_disk_names(tmp_path, towers.FAMILIES[model_type], tw)
    assert disk["model.layers.1.mlp.down_proj.weight"] == f"{decoder}.layers.1.mlp.down_proj.weight"
    assert tw.tied or disk["lm_head.weight"] == f"{head}.weight"


def test_an_unknown_family_is_refused_naming_the_supported_ones(tmp_path, tiny_vlm_dir):
    from types import SimpleNamespace
    with pytest.raises(UserError) as exc:
        towers.tower_names(SimpleNamespace(config=SimpleNamespace(model_type="blip")))
    assert exc.value.code == "towers.family" and exc.value.params["model_type"] == "blip"
    assert "llava" in exc.value.params["supported"] and "qwen2_5_vl" in exc.value.params["supported"]
    config = json.loads((tiny_vlm_dir / "config.json").read_text()) | {"model_type": "vipllava"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError) as exc:
        towers.check_compatible(tmp_path, [], None)
    assert exc.value.code == "towers.family" and exc.value.params["model_type"] == "vipllava"


def _tiny_llama(out: Path, tokenizer_dir: Path, **changes) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    settings = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True) | changes
    torch.manual_seed(1)
    LlamaForCausalLM(LlamaConfig(**settings)).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_a_llava_and_llamas_of_its_tower_pass_with_the_plan_a_mixer_needs(tiny_vlm_dir, tiny_llama_dir, tmp_path):
    other = shutil.copytree(tiny_llama_dir, tmp_path / "other")
    plan = towers.check_compatible(tiny_vlm_dir, [tiny_llama_dir, other], tiny_llama_dir)
    assert (plan.family, plan.lm_type, plan.tied, plan.n_layers) == ("llava", "llama", False, 2)
    # embeddings, final norm, head; per layer 4 attention + 3 MLP projections and 2 norms
    assert len(plan.names) == 3 + 2 * 9
    assert plan.names["model.layers.1.self_attn.k_proj.weight"] == "model.language_model.layers.1.self_attn.k_proj.weight"
    assert plan.names["lm_head.weight"] == "lm_head.weight"
    assert plan.vlm_disk_names["model.embed_tokens.weight"] == "language_model.model.embed_tokens.weight"
    assert plan.vlm_disk_names["lm_head.weight"] == "language_model.lm_head.weight"
    # The tiny llama ties its head, so saves none: the VLM's separate head takes the LM's embedding.
    assert plan.sources[str(other)]["lm_head.weight"] == "model.embed_tokens.weight"
    assert plan.sources[str(other)]["model.norm.weight"] == "model.norm.weight"
    assert plan.shapes["model.layers.0.self_attn.k_proj.weight"] == (2 * 16, 64)     # 2 KV heads of 64 / 4
    assert plan.text_config["hidden_size"] == 64 and plan.text_config["num_key_value_heads"] == 2
    assert plan.input_dirs == [str(tiny_llama_dir), str(other), str(tiny_llama_dir)] and plan.ignored == {}
    # 49152 tokens in every tokenizer and every LM; the VLM's 49153rd row (<image>) keeps its own values.
    assert plan.vlm_rows == 49153
    assert torch.equal(plan.shared_ids, torch.arange(49152)) and plan.shared_ids.dtype == torch.long


def test_a_tied_vlm_takes_the_embedding_once_and_an_untied_lms_head_is_left_out(tiny_vlm_dir, tokenizer_dir, tmp_path):
    from transformers import AutoConfig, LlavaForConditionalGeneration
    config = AutoConfig.from_pretrained(tiny_vlm_dir)
    config.tie_word_embeddings = True
    vlm = tmp_path / "tied_vlm"
    LlavaForConditionalGeneration(config).save_pretrained(vlm)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_vlm_dir / f, vlm / f)
    lm = _tiny_llama(tmp_path / "untied", tokenizer_dir, tie_word_embeddings=False)
    plan = towers.check_compatible(vlm, [lm], lm)
    assert plan.tied and "lm_head.weight" not in plan.names and "lm_head.weight" not in plan.vlm_disk_names
    assert plan.vocab_names == ("model.embed_tokens.weight",)
    assert plan.ignored == {str(lm): ["lm_head.weight"]}


def _refused(vlm, lms, base=None) -> UserError:
    with pytest.raises(UserError) as exc:
        towers.check_compatible(vlm, lms, base)
    return exc.value


def test_another_architecture_or_size_is_refused_naming_what_differs(tiny_vlm_dir, tiny_llama_dir, tiny_neox_dir,
                                                                       tokenizer_dir, tmp_path):
    err = _refused(tiny_vlm_dir, [tiny_llama_dir, tiny_neox_dir], tiny_llama_dir)
    assert err.code == "towers.architecture" and err.params == {
        "path": str(tiny_neox_dir), "model_type": "gpt_neox", "expected": "llama"}
    narrow = _tiny_llama(tmp_path / "narrow", tokenizer_dir, hidden_size=32, intermediate_size=128)
    err = _refused(tiny_vlm_dir, [narrow], tiny_llama_dir)
    assert err.code == "towers.config" and err.params["diff"] == "hidden_size: 64 vs 32; head_dim: 16 vs 8"
    deep = _tiny_llama(tmp_path / "deep", tokenizer_dir, num_hidden_layers=3)
    err = _refused(tiny_vlm_dir, [tiny_llama_dir], deep)      # the base is checked like every LM
    assert err.code == "towers.config" and err.params == {"path": str(deep), "diff": "num_hidden_layers: 2 vs 3"}
    err = _refused(tiny_llama_dir, [tiny_llama_dir])
    assert err.code == "towers.not_vlm" and err.params["model_type"] == "llama"


def _rewritten(tiny_llama_dir: Path, out: Path, change) -> Path:
    from safetensors.torch import load_file, save_file
    shutil.copytree(tiny_llama_dir, out)
    tensors = load_file(out / "model.safetensors")
    change(tensors)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    return out


def test_a_missing_or_reshaped_or_extra_tensor_is_refused_by_name(tiny_vlm_dir, tiny_llama_dir, tmp_path):
    missing = _rewritten(tiny_llama_dir, tmp_path / "missing", lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    err = _refused(tiny_vlm_dir, [tiny_llama_dir, missing])
    assert err.code == "towers.missing_tensors" and err.params == {
        "path": str(missing), "names": "model.layers.1.mlp.up_proj.weight"}
    reshaped = _rewritten(tiny_llama_dir, tmp_path / "reshaped",
                          lambda t: t.update({"model.norm.weight": torch.ones(63)}))
    err = _refused(tiny_vlm_dir, [reshaped])
    assert err.code == "towers.tensor_shapes" and err.params["names"] == "model.norm.weight (63,) vs tower (64,)"
    # The vocabulary dimension is the one that may differ: 100 embedding rows are fine (and bound the shared ids).
    fewer_rows = _rewritten(tiny_llama_dir, tmp_path / "rows",
                            lambda t: t.update({"model.embed_tokens.weight": t["model.embed_tokens.weight"][:100]}))
    assert towers.check_compatible(tiny_vlm_dir, [fewer_rows]).shared_ids.tolist() == list(range(100))
    extra = _rewritten(tiny_llama_dir, tmp_path / "extra", lambda t: t.update({"model.layers.0.gate.bias": torch.ones(64)}))
    err = _refused(tiny_vlm_dir, [extra])
    assert err.code == "towers.extra_tensors" and err.params["names"] == "model.layers.0.gate.bias"


def test_a_tokenizer_with_shuffled_ids_is_refused_saying_how_many_agree(tiny_vlm_dir, tiny_llama_dir, tmp_path):
    shuffled = shutil.copytree(tiny_llama_dir, tmp_path / "shuffled")
    tokenizer = json.loads((shuffled / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tokenizer["model"]["vocab"]
    before = dict(vocab)
    special = {t["content"] for t in tokenizer["added_tokens"]}     # kept where they are
    movable = [t for t in vocab if t not in special]
    ids = [vocab[t] for t in movable]
    random.Random(0).shuffle(ids)
    vocab.update(zip(movable, ids))
    (shuffled / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    unmoved = sum(before[t] == vocab[t] for t in vocab) + len(special - set(vocab))
    err = _refused(tiny_vlm_dir, [tiny_llama_dir, shuffled], tiny_llama_dir)
    assert err.code == "towers.tokenizer" and err.params["path"] == str(shuffled)
    assert err.params["total"] == 49152 and err.params["agree"] == unmoved < 100


def test_shared_rows_are_the_ids_every_model_has_with_one_token_string():
    vlm = {0: "<s>", 1: "a", 2: "b", 3: "c", 4: "<image>"}
    lm = {i: t for i, t in vlm.items() if i < 4}
    base = dict(lm)
    assert towers.shared_rows(vlm, {"lm": lm, "base": base}, rows=4).tolist() == [0, 1, 2, 3]
    assert towers.shared_rows(vlm, {"lm": lm}, rows=3).tolist() == [0, 1, 2]       # a model with 3 rows
    many = {i: f"t{i}" for i in range(200)}
    one_off = many | {7: "other"}           # 199 of 200 ids agree: 99.5%, merged without id 7
    assert 7 not in towers.shared_rows(many, {"lm": one_off}, rows=200).tolist()
    two_off = one_off | {8: "other"}        # 198 of 200 = 99%: still one tokenizer
    assert len(towers.shared_rows(many, {"lm": two_off}, rows=200)) == 198
    with pytest.raises(UserError) as exc:
        towers.shared_rows(many, {"lm": two_off | {9: "other"}}, rows=200)      # 197 of 200 = 98.5%
    assert exc.value.code == "towers.tokenizer" and exc.value.params["agree"] == 197
    assert exc.value.params["percent"] == "98.5"


def test_the_check_reads_no_weight(tiny_vlm_dir, tiny_llama_dir, monkeypatch):
    """Headers only: safetensors' tensors, torch.load and every from_pretrained of a model fail here."""
    import safetensors
    import safetensors.torch
    from transformers import PreTrainedModel
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    from pipelines.merging.methods import SafetensorsModel
    real_open = safetensors.safe_open

    def read_weights(*args, **kwargs):
        raise AssertionError("a weight was read")

    class Shape:
        def __init__(self, sl):
            self.get_shape = sl.get_shape

    class HeadersOnly:
        def __init__(self, *args, **kwargs):
            self.fh = real_open(*args, **kwargs)

        def __enter__(self):
            self.fh.__enter__()
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

        def keys(self):
            return self.fh.keys()

        def get_slice(self, name):
            return Shape(self.fh.get_slice(name))

        get_tensor = read_weights

    monkeypatch.setattr(safetensors, "safe_open", HeadersOnly)
    monkeypatch.setattr(safetensors.torch, "load_file", read_weights)
    monkeypatch.setattr(torch, "load", read_weights)
    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(read_weights))
    monkeypatch.setattr(_BaseAutoModelClass, "from_pretrained", classmethod(read_weights))
    with pytest.raises(AssertionError):         # the trap catches a read
        SafetensorsModel(tiny_llama_dir).get("model.norm.weight")
    plan = towers.check_compatible(tiny_vlm_dir, [tiny_llama_dir], tiny_llama_dir)
    assert len(plan.shared_ids) == 49152
