"""Memory/time estimate: counts match real models; the paper's 70B QLoRA question gets a plain answer."""
from __future__ import annotations

from pipelines.training.config import make_config
from pipelines.training.estimate import estimate, model_shape, named_gpu


def test_70b_qlora_fits_one_80gb_gpu_but_not_a_24gb_one_and_bf16_lora_does_not():
    cfg = make_config("llama2-70b-qlora")
    shape = model_shape(cfg.model)
    assert 68e9 < shape.params < 70e9
    on_a100 = estimate(shape, cfg, named_gpu("A100-80GB", 1))
    assert on_a100.fits and 45 < on_a100.total_gb < 80
    assert 0.8e9 < on_a100.trainable < 0.85e9                 # r=64 on all linear layers of 80 layers
    assert "fits" in on_a100.summary() and "A100-80GB" in on_a100.summary()
    assert not estimate(shape, cfg, named_gpu("RTX4090", 1)).fits
    plain = make_config("llama2-70b-qlora", method="lora")
    assert not estimate(shape, plain, named_gpu("A100-80GB", 1)).fits
    assert "does NOT fit" in estimate(shape, plain, named_gpu("A100-80GB", 1)).summary()


def test_counts_match_the_real_tiny_model_and_peft(tiny_llama_dir, workspace):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    cfg = make_config(None, model=str(tiny_llama_dir), target_modules=["q_proj", "v_proj"], lora_r=4, max_steps=10)
    shape = model_shape(cfg.model, workspace)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    assert shape.params == sum(p.numel() for p in model.parameters())
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    est = estimate(shape, cfg, named_gpu("T4", 1), avg_tokens=100)
    assert est.trainable == sum(p.numel() for p in peft.parameters() if p.requires_grad)
    assert est.step_s > 0 and est.total_h == est.step_s * 10 / 3600
    slower = estimate(shape, cfg, named_gpu("T4", 1), avg_tokens=200)
    assert slower.step_s == 2 * est.step_s
