"""The image+text backend on a tiny random LLaVA: references find it, reports are deterministic and
independent of batching, an adapter on the language tower loads, remote code is refused unless
asked for, and text callers and image callers each refuse the other kind of model."""
from __future__ import annotations

import json
import shutil

import pytest

from pipelines.core.errors import UserError
from pipelines.models.backends import Backend, check_loglik, open_backend, open_vision_backend
from pipelines.models.generation import GenerationSettings, Prompt
from pipelines.models.modality import model_kind
from pipelines.models.references import load_model, resolve_model
from pipelines.models.vision import VisionGenerator, load_vision_model, rgb

PROMPT = "この画像の所見を書いてください。"
GREEDY = GenerationSettings(temperature=0, max_new_tokens=6, stop=())
from tests.conftest import TINY_VLM_IMAGE as IMAGE
from tests.conftest import TINY_VLM_PATCH as PATCH


@pytest.fixture(scope="module")
def vlm(tiny_vlm_dir):
    return VisionGenerator(*load_vision_model(resolve_model(str(tiny_vlm_dir)), device="cpu"), label="tiny-vlm")


@pytest.fixture(scope="module")
def images():
    """Three different images of different sizes and modes (the processor resizes them all to 32×32)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)),
            Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)),           # grey ("L")
            Image.fromarray(rng.integers(0, 4096, (48, 36), dtype=np.uint16))]         # 12-bit grey ("I;16")


def _texts(pairs) -> dict[int, str]:
    return {i: c.text for i, c in pairs}


def test_a_vision_model_directory_resolves_as_vision(tiny_vlm_dir, tiny_llama_dir, workspace):
    assert resolve_model(str(tiny_vlm_dir), None, workspace).kind == "vision"
    assert resolve_model(str(tiny_llama_dir), None, workspace).kind == "local"
    workspace.register_model("my-vlm", "vision", str(tiny_vlm_dir), step=0)
    assert resolve_model("my-vlm", None, workspace).kind == "vision"
    gen = open_backend("my-vlm", workspace)
    assert isinstance(gen, VisionGenerator) and isinstance(gen, Backend) and not gen.supports_loglik
    info = gen.describe()
    assert (info.kind, info.label, info.device, info.local) == ("vision", "my-vlm", "cpu", True)
    assert info.remote_code is False


def test_older_llava_style_configs_count_as_vision(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bunny-llama", "mm_vision_tower": "siglip"}))
    assert model_kind(tmp_path) == "vision"
    (tmp_path / "config.json").write_text("{not json")        # the loader will say what is wrong
    assert model_kind(tmp_path) == "local"


def test_the_prompt_holds_the_image_and_the_text_in_a_chat_turn(vlm, images):
    text = vlm.prompt_text(PROMPT)
    assert text == f"<|im_start|>user\n<image>\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    enc = vlm.encode(images[:1], text)
    n_text = len(vlm.tokenizer(text, add_special_tokens=False)["input_ids"])     # <image> counts once there
    assert enc["input_ids"].shape[1] == n_text - 1 + (IMAGE // PATCH) ** 2
    assert enc["pixel_values"].shape == (1, 3, IMAGE, IMAGE)


def test_greedy_reports_match_a_direct_generate_call(vlm, images):
    import torch
    got = _texts(vlm.generate_reports(images, PROMPT, GREEDY))
    for i, image in enumerate(images):
        enc = vlm.processor(images=[rgb(image)], text=[vlm.prompt_text(PROMPT)], return_tensors="pt")
        with torch.inference_mode():
            out = vlm.model.generate(**enc, max_new_tokens=6, do_sample=False, repetition_penalty=1.05)
        want = vlm.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        assert got[i] == want.rstrip("\ufffd").strip()      # a character cut at the token limit is dropped
    assert len(set(got.values())) == 3            # the image reaches the model: three images, three reports


def test_a_batch_of_three_equals_one_at_a_time(vlm, images):
    steps: list[int] = []
    vlm.batch_size, vlm.first_batch = 8, 2
    batched = dict(vlm.generate_reports(images, PROMPT, GREEDY, on_tokens=steps.append))
    # A first batch of 2 rows, then the third alone: one call per decoding step with the rows in it.
    assert steps == [2] * 6 + [1] * 6
    assert all(c.n_tokens == 6 and c.info["cut_at_tokens"] == 6 for c in batched.values())
    vlm.batch_size = 1
    try:
        alone = {i: _texts(vlm.generate_reports([im], PROMPT, GREEDY))[0] for i, im in enumerate(images)}
    finally:
        vlm.batch_size = 8
    assert {i: c.text for i, c in batched.items()} == alone


def test_sampled_reports_depend_on_the_seed_and_the_image_index_only(vlm, images):
    sample = GenerationSettings(temperature=0.8, top_p=0.95, max_new_tokens=4, seed=7, stop=())
    first = _texts(vlm.generate_reports(images, PROMPT, sample))
    assert _texts(vlm.generate_reports(images, PROMPT, sample)) == first
    import dataclasses
    # The third image alone with seed 7 + 2 samples exactly what it sampled as index 2 in the batch.
    assert _texts(vlm.generate_reports(images[2:], PROMPT, dataclasses.replace(sample, seed=9)))[0] == first[2]
    other = _texts(vlm.generate_reports(images, PROMPT, dataclasses.replace(sample, seed=8)))
    assert other != first


def test_a_prompt_past_the_context_is_not_generated(vlm, images):
    text_tokens = len(vlm.tokenizer(vlm.prompt_text(PROMPT), add_special_tokens=False)["input_ids"])
    prompt_tokens = text_tokens - 1 + 16
    out = dict(vlm.generate_reports(images[:1], PROMPT, GenerationSettings(max_new_tokens=256 - prompt_tokens + 1)))
    assert out[0].n_tokens == 0 and out[0].info["context_overflow"]["prompt_tokens"] == prompt_tokens


def test_wide_grey_images_are_stretched_to_8_bits():
    import numpy as np
    from PIL import Image
    image = rgb(Image.fromarray(np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)))
    assert image.mode == "RGB"
    # (v - 0) / 4000 × 255, rounded: 63.75 → 64, 127.5 → 128
    assert np.asarray(image)[..., 0].tolist() == [[0, 64], [128, 255]]


def test_an_adapter_on_the_language_tower_loads(tiny_vlm_dir, vlm, images, tmp_path, workspace):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForImageTextToText
    torch.manual_seed(1)
    base = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    lora = LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                      target_modules=r".*language_model.*\.(q_proj|v_proj)")
    get_peft_model(base, lora).save_pretrained(tmp_path / "lora")
    ref = resolve_model(str(tmp_path / "lora"), None, workspace)       # the base comes from the adapter config
    assert (ref.kind, ref.path, ref.adapter) == ("vision", str(tiny_vlm_dir), str(tmp_path / "lora"))
    gen = open_vision_backend(ref)
    assert isinstance(gen.model, PeftModel)
    adapted = gen.model.base_model.model.model
    assert not any("lora" in name for name, _ in adapted.vision_tower.named_parameters())
    with_adapter = _texts(gen.generate_reports(images, PROMPT, GREEDY))
    assert with_adapter != _texts(vlm.generate_reports(images, PROMPT, GREEDY))
    reference = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir),
                                          tmp_path / "lora").eval()
    assert _texts(VisionGenerator(reference, gen.processor).generate_reports(images, PROMPT, GREEDY)) == with_adapter


def test_remote_code_is_refused_unless_asked_for(tiny_vlm_dir, tmp_path, workspace):
    bunny = tmp_path / "bunny"
    shutil.copytree(tiny_vlm_dir, bunny)
    config = json.loads((bunny / "config.json").read_text())
    config.update(model_type="bunny-llama", auto_map={"AutoModelForCausalLM": "modeling_bunny.BunnyForCausalLM"})
    (bunny / "config.json").write_text(json.dumps(config))
    ref = resolve_model(str(bunny), None, workspace)
    assert ref.kind == "vision"
    with pytest.raises(UserError) as err:
        open_vision_backend(ref)
    assert err.value.code == "vision.remote_code" and "trust_remote_code=True" in err.value.fix
    # A caller that does pass it is recorded as having done so.
    gen = open_vision_backend(str(tiny_vlm_dir), workspace, trust_remote_code=True)
    assert gen.describe().remote_code is True


def test_a_model_with_a_vision_tower_that_generates_nothing_is_refused(tmp_path, workspace):
    from transformers import CLIPConfig
    CLIPConfig(vision_config={"num_hidden_layers": 1}, text_config={"num_hidden_layers": 1}).save_pretrained(tmp_path)
    ref = resolve_model(str(tmp_path), None, workspace)
    assert ref.kind == "vision"                     # CLIP names a vision tower, but it writes no text
    with pytest.raises(UserError) as err:
        open_vision_backend(ref)
    assert err.value.code == "vision.unsupported" and "image-text-to-text" in err.value.problem


def test_a_text_caller_is_refused_a_vision_model(tiny_vlm_dir, vlm, workspace):
    from pipelines.evaluation import evaluator
    from tests.conftest import SAMPLE_QUESTIONS
    ref = resolve_model(str(tiny_vlm_dir), None, workspace)
    for call in (lambda: list(vlm.generate([Prompt(text="心不全とは")], GREEDY)),
                 lambda: vlm.score_choices([], [Prompt(text="x")]), lambda: check_loglik(ref),
                 lambda: load_model(ref, device="cpu")):
        with pytest.raises(UserError, match="image-and-text model") as err:
            call()
        assert err.value.code == "vision.text_caller"
    out = workspace.root / "ev"
    with pytest.raises(UserError, match="image-and-text model"):      # before the evaluation writes anything
        evaluator.run(evaluator.EvalConfig(model=str(tiny_vlm_dir), method="generate", data=str(SAMPLE_QUESTIONS),
                                           out=str(out), workspace=str(workspace.root)))
    assert not out.exists()
    from pipelines.models import server
    with pytest.raises(UserError, match="image-and-text model"):       # the OpenAI-compatible server takes text
        server.load_engine(server.ServeConfig(model=str(tiny_vlm_dir), workspace=str(workspace.root)))


def test_an_image_caller_is_refused_a_text_model(tiny_llama_dir, workspace):
    with pytest.raises(UserError, match="text-only model") as err:
        open_vision_backend(str(tiny_llama_dir), workspace)
    assert err.value.code == "vision.text_model" and "demo-vlm" in err.value.fix
