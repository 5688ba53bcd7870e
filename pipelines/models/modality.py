"""Text-only or images-and-text: what a model directory holds, and the refusal when a caller asks
for the other kind.

Decided from ``config.json`` alone (no weights read, no transformers import), so a reference
resolves instantly and a command refuses the wrong kind of model before anything loads:

* an image-text-to-text model names its vision tower in its config: ``vision_config`` (every
  native one: LLaVA, LLaVA-NeXT, Idefics3/SmolVLM, Qwen2-VL/Qwen2.5-VL, PaliGemma, Gemma 3 …),
  or ``mm_vision_tower`` / ``vision_tower`` (the original LLaVA code and its remote-code heirs,
  e.g. Bunny, which JRadiEvo used);
* anything else with a ``config.json`` is a text model (``ModelRef.kind == "local"``).

A directory whose config cannot be read is treated as a text model: the loader then says what is
wrong with the folder, as it always did.
"""
from __future__ import annotations

import json
from pathlib import Path

from pipelines.core.errors import UserError

TEXT = "local"          # ModelRef.kind of a text model in this process
VISION = "vision"       # ModelRef.kind of an image-text-to-text model in this process

VISION_KEYS = ("vision_config", "mm_vision_tower", "vision_tower")


def read_config(model_dir: str | Path) -> dict:
    """The model's ``config.json`` as a dict; empty when it is missing or not a JSON object."""
    try:
        cfg = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def is_vision_config(cfg: dict) -> bool:
    return any(cfg.get(key) for key in VISION_KEYS)


def model_kind(model_dir: str | Path) -> str:
    """``VISION`` for an image-text-to-text model directory, else ``TEXT``."""
    return VISION if is_vision_config(read_config(model_dir)) else TEXT


def vision_model_refused(label: str) -> UserError:
    """A text-only caller (exam evaluation, free-form prompts, log-likelihoods, the server) was given a
    vision model."""
    return UserError(f"{label} is an image-and-text model (a vision-language model): it writes text from "
                     "images and cannot answer text-only prompts or score answer choices.",
                     "Use a text model here (default, a registered checkpoint or a model directory); use the "
                     "vision model where images are the input (reports from images).",
                     code="vision.text_caller", params={"label": label})


def text_model_refused(label: str) -> UserError:
    """A caller that sends images was given a text-only model."""
    return UserError(f"{label} is a text-only model: it cannot read images.",
                     "Pass an image-text-to-text model: demo-vlm (made by jmedlora models prepare-demo-vlm) or a "
                     "directory holding one (LLaVA, LLaVA-NeXT, Idefics3/SmolVLM, Qwen2-VL, PaliGemma).",
                     code="vision.text_model", params={"label": label})
