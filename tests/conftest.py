"""Shared fixtures: tiny random models (Llama-like and GPT-NeoX-like) built from a config
with the embedded model's real tokenizer, and isolated workspaces.

The embedded default model is converted once per test session into a session workspace;
each test's workspace links to that cache so no test pays the conversion twice.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE_QUESTIONS = REPO / "assets" / "questions" / "sample_ja.jsonl"


@pytest.fixture(scope="session")
def session_workspace(tmp_path_factory):
    from pipelines.core.workspace import Workspace
    return Workspace.resolve(tmp_path_factory.mktemp("session_ws"))


@pytest.fixture(scope="session")
def default_model_dir(session_workspace) -> Path:
    """The real embedded model, converted to safetensors once per session."""
    from pipelines.models.references import ensure_default_model
    return ensure_default_model(session_workspace)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A fresh workspace, also set as the environment default for subprocesses."""
    from pipelines.core.workspace import ENV_VAR, Workspace
    ws = Workspace.resolve(tmp_path / "ws")
    monkeypatch.setenv(ENV_VAR, str(ws.root))
    return ws


@pytest.fixture
def workspace_with_default(workspace, default_model_dir):
    """A fresh workspace whose ``default`` model points at the session's converted cache."""
    target = workspace.root / "models" / "default"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(default_model_dir, target)
    workspace.register_model("default", "base", str(target), step=0)
    return workspace


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """The embedded model's tokenizer alone (fast: no weights are dequantized)."""
    from transformers import AutoTokenizer

    from pipelines.models.references import _gguf_source
    src = _gguf_source()
    out = tmp_path_factory.mktemp("tokenizer")
    AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name).save_pretrained(out)
    return out


def _save_tiny(config, tokenizer_dir: Path, out: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """A 2-layer, width-64 Llama (the Llama2 architecture) with the real tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    return _save_tiny(config, tokenizer_dir, tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def tiny_neox_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """A 2-layer GPT-NeoX (OpenCALM's architecture: attention in ``query_key_value``)."""
    from transformers import AutoTokenizer, GPTNeoXConfig
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = GPTNeoXConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                           num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=2048,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    return _save_tiny(config, tokenizer_dir, tmp_path_factory.mktemp("tiny_neox"))


WRITE_SQL = ("BEGIN", "INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


@pytest.fixture
def sql_writes(monkeypatch):
    """The write statements (and ``BEGIN``s of write transactions) run on any workspace
    connection while the test runs: a list that fills as they happen."""
    from pipelines.core.workspace import Workspace
    writes: list[str] = []
    connect = Workspace.connect

    def traced(self):
        conn = connect(self)

        def record(sql: str) -> None:
            words = sql.lstrip().upper()
            if words.startswith(WRITE_SQL) or (words.startswith("PRAGMA USER_VERSION") and "=" in words):
                writes.append(sql)
        conn.set_trace_callback(record)
        return conn
    monkeypatch.setattr(Workspace, "connect", traced)
    return writes


TINY_VLM_IMAGE, TINY_VLM_PATCH = 32, 8     # 16 patches: 16 image tokens (CLIP's class token is dropped)


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory, tokenizer_dir):
    """A 2-layer CLIP vision tower (32×32 images, 8×8 patches), a projector and a 2-layer Llama, random,
    with the embedded tokenizer plus ``<image>`` and a processor that places the image in a chat turn."""
    import torch
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from pipelines.models.demo_vlm import CHAT_TEMPLATE
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    vision = CLIPVisionConfig(image_size=TINY_VLM_IMAGE, patch_size=TINY_VLM_PATCH, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=2)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny_vlm")
    LlavaForConditionalGeneration(config).save_pretrained(out)
    size = {"height": TINY_VLM_IMAGE, "width": TINY_VLM_IMAGE}
    LlavaProcessor(image_processor=CLIPImageProcessorPil(size={"shortest_edge": TINY_VLM_IMAGE}, crop_size=size),
                   tokenizer=tok, patch_size=TINY_VLM_PATCH, vision_feature_select_strategy="default",
                   num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE).save_pretrained(out)
    return out
