"""``jmedlora models prepare-demo-vlm``: a LLaVA-style model around a given language tower, registered
as ``demo-vlm`` (kind vision) with a card that says its outputs mean nothing medically."""
from __future__ import annotations

import json

import pytest

from pipelines.models import demo_vlm
from pipelines.models.backends import open_vision_backend
from pipelines.models.generation import GenerationSettings
from pipelines.models.references import resolve_model


BUILD_OUTPUT: list[str] = []          # what the module's build printed


def _image():
    import numpy as np
    from PIL import Image
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 260), dtype=np.uint8))


@pytest.fixture(scope="module")
def demo_ws(tmp_path_factory, tiny_llama_dir):
    """A workspace whose demo-vlm is built around the tiny Llama (the path SmolLM2 takes, 2 layers deep)."""
    from pipelines.core.workspace import Workspace
    ws = Workspace.resolve(tmp_path_factory.mktemp("demo_ws"))
    demo_vlm.prepare(ws, language_dir=tiny_llama_dir, gguf=None, echo=BUILD_OUTPUT.append)
    return ws


def test_demo_vlm_is_registered_as_a_vision_model_that_means_nothing(demo_ws):
    entry = demo_ws.model("demo-vlm")
    assert entry["kind"] == "vision"
    meta = json.loads(entry["meta"])
    assert meta["medical_meaning"] is False and "no medical meaning" in meta["description"]
    target = demo_ws.root / "models" / "demo-vlm"
    assert "no medical meaning" in (target / "README.md").read_text(encoding="utf-8")
    assert BUILD_OUTPUT[0].startswith("built in ") and BUILD_OUTPUT[-1] == f"NOTE: {demo_vlm.NO_MEDICAL_MEANING}"
    assert resolve_model("demo-vlm", None, demo_ws).kind == "vision"


def test_demo_vlm_keeps_the_language_tower_and_adds_one_image_token(demo_ws, tiny_llama_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer
    target = demo_ws.root / "models" / "demo-vlm"
    processor = AutoProcessor.from_pretrained(target)
    base_vocab = len(AutoTokenizer.from_pretrained(tiny_llama_dir))
    assert len(processor.tokenizer) == base_vocab + 1
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == base_vocab       # the one new id
    model = AutoModelForImageTextToText.from_pretrained(target, dtype=torch.float32)
    source = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    assert model.config.image_token_id == base_vocab and model.config.image_seq_length == (224 // 32) ** 2
    # Saved in bfloat16: the tower is the source's weights rounded to bfloat16, the old rows unchanged.
    got = model.model.language_model.layers[1].mlp.down_proj.weight
    torch.testing.assert_close(got, source.model.layers[1].mlp.down_proj.weight.to(torch.bfloat16).float())
    emb = model.model.language_model.embed_tokens.weight
    torch.testing.assert_close(emb[:base_vocab], source.model.embed_tokens.weight.to(torch.bfloat16).float())
    assert emb.shape[0] == base_vocab + 1


def test_demo_vlm_writes_a_report_through_the_vision_backend(demo_ws):
    gen = open_vision_backend("demo-vlm", demo_ws)
    out = dict(gen.generate_reports([_image()], "所見を書いてください。",
                                    GenerationSettings(temperature=0, max_new_tokens=3, stop=())))
    assert out[0].n_tokens == 3 and isinstance(out[0].text, str)
    # 49 image tokens stand where the one <image> was.
    n_text = len(gen.tokenizer(gen.prompt_text("所見を書いてください。"), add_special_tokens=False)["input_ids"])
    assert out[0].info["prompt_tokens"] == n_text - 1 + 49


def test_a_second_prepare_keeps_the_built_model(demo_ws, tiny_llama_dir):
    weights = demo_ws.root / "models" / "demo-vlm" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    said: list[str] = []
    demo_vlm.prepare(demo_ws, language_dir=tiny_llama_dir, gguf=None, echo=said.append)
    assert said[0].startswith("already built") and weights.stat().st_mtime_ns == before


@pytest.mark.slow
def test_prepare_demo_vlm_command_builds_around_the_embedded_model(workspace_with_default, capsys):
    """The real command: SmolLM2-135M as the language tower, under 1 GB on disk."""
    from pipelines.models import references
    references.main(["prepare-demo-vlm", "--workspace", str(workspace_with_default.root)])
    printed = capsys.readouterr().out
    assert "SmolLM2-135M-Instruct" in printed and "no medical meaning" in printed
    target = workspace_with_default.root / "models" / "demo-vlm"
    size = sum(f.stat().st_size for f in target.iterdir())
    assert 250e6 < size < 1e9            # 135 M parameters in bfloat16 ≈ 270 MB
    gen = open_vision_backend("demo-vlm", workspace_with_default)
    out = dict(gen.generate_reports([_image()], "所見", GenerationSettings(temperature=0, max_new_tokens=2, stop=())))
    assert out[0].n_tokens == 2


@pytest.mark.slow
def test_prepare_demo_vlm_without_the_converted_model_uses_a_tiny_random_llama(workspace, capsys):
    from pipelines.models import references
    references.main(["prepare-demo-vlm", "--workspace", str(workspace.root)])
    assert "tiny random Llama" in capsys.readouterr().out
    assert not (workspace.root / "models" / "default").exists()       # nothing was converted on the way
    assert resolve_model("demo-vlm", None, workspace).kind == "vision"
