"""An adapter trained for another base model is refused with a message naming both."""
import pytest

from pipelines.core.errors import UserError
from pipelines.models.references import ModelRef, load_model
from tests.workbench.conftest import make_adapter


def _ref(base, adapter):
    return ModelRef(spec=str(base), kind="local", path=str(base), adapter=str(adapter))


def test_adapter_for_another_architecture_is_refused(tiny_llama_dir, tiny_neox_dir, tmp_path):
    adapter = make_adapter(tiny_llama_dir, tmp_path / "llama-adapter")       # targets q_proj, v_proj
    with pytest.raises(UserError) as exc:
        load_model(_ref(tiny_neox_dir, adapter), device="cpu")
    assert "q_proj" in exc.value.problem and str(tiny_neox_dir) in exc.value.problem
    assert str(tiny_llama_dir) in exc.value.problem          # where it was trained


def test_adapter_for_another_width_is_refused(tiny_llama_dir, tokenizer_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    narrow = tmp_path / "narrow"
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                                 num_hidden_layers=2, num_attention_heads=4,
                                                 num_key_value_heads=2)).save_pretrained(narrow)
    tok.save_pretrained(narrow)
    adapter = make_adapter(tiny_llama_dir, tmp_path / "wide-adapter")
    with pytest.raises(UserError, match="width"):
        load_model(_ref(narrow, adapter), device="cpu")


def _logits(model, ids):
    import torch
    with torch.no_grad():
        return model(input_ids=ids).logits


def _ids():
    import torch
    return torch.tensor([[1, 200, 300, 400, 500]])


def test_matching_adapter_loads_and_changes_the_logits(tiny_llama_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    adapter = make_adapter(tiny_llama_dir, tmp_path / "ok")
    model, _ = load_model(_ref(tiny_llama_dir, adapter), device="cpu")
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    with_adapter, without = _logits(model, _ids()), _logits(base, _ids())
    assert not torch.allclose(with_adapter, without, atol=1e-4)           # the adapter is applied ...
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), adapter).eval()
    torch.testing.assert_close(with_adapter, _logits(reference, _ids()))   # ... and it is this adapter


def test_all_linear_adapter_loads_on_its_own_base(tiny_llama_dir, tmp_path):
    """PEFT saves 'all-linear' as full module paths: those must count as present, not foreign."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    torch.manual_seed(1)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
                                LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    peft_model.save_pretrained(tmp_path / "a")
    cfg = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    plain = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    cfg["target_modules"] = sorted(n for n, m in plain.named_modules()
                                   if type(m).__name__ == "Linear" and "lm_head" not in n)
    (tmp_path / "a" / "adapter_config.json").write_text(json.dumps(cfg))      # as training writes it: full paths
    model, _ = load_model(_ref(tiny_llama_dir, tmp_path / "a"), device="cpu")
    lora_b = [n for n, _ in model.named_parameters() if "lora_B" in n]
    # Every linear layer of every block carries the adapter (2 layers x q,k,v,o,gate,up,down), none skipped.
    assert len(lora_b) == len(cfg["target_modules"]) == 2 * 7, (lora_b, cfg["target_modules"])
