"""A free-form prompt (no choices, no scoring: the paper's Table 2 kind) answered by any backend.

    from pipelines.models.backends import open_backend
    from pipelines.evaluation.freeform import answer
    answer(open_backend("default"), "以下の疾患を持つ患者に行うべき治療について詳細に説明してください。",
           "深部静脈血栓症", "ja", 256).text

Formats: a prompt template name (``ja``, ``en``: the paper's Alpaca formats, as in evaluation
and training), ``chat`` (one user message, formatted by the model's chat template or sent as is
to an endpoint) or ``raw`` (the text exactly as typed).
"""
from __future__ import annotations

from pipelines.core.errors import UserError
from pipelines.models.backends import Backend
from pipelines.models.generation import Completion, GenerationSettings, Prompt
from pipelines.tasks.prompts import CHAT, load_template

RAW = "raw"
FORMATS = ("ja", "en", CHAT, RAW)


def build_prompt(instruction: str, input: str = "", fmt: str = "ja") -> Prompt:
    if not (instruction or "").strip():
        raise UserError("The instruction is empty.", "Type what the model should answer.",
                        code="freeform.empty")
    plain = instruction + ("\n" + input if input else "")
    if fmt == RAW:
        return Prompt(text=plain)
    if fmt == CHAT:
        return Prompt(messages=[{"role": "user", "content": plain}])
    return Prompt(text=load_template(fmt).render(instruction, input))


def answer(backend: Backend, instruction: str, input: str = "", template_name: str = "ja",
           max_new_tokens: int = GenerationSettings.max_new_tokens) -> Completion:
    """The backend's answer, decoded with the paper's settings (only the length is the caller's)."""
    if max_new_tokens < 1:
        raise UserError(f"max_new_tokens must be at least 1 (got {max_new_tokens}).",
                        code="config.at_least_one", params={"field": "max_new_tokens", "value": max_new_tokens})
    prompt = build_prompt(instruction, input, template_name)
    (_, completion), = backend.generate([prompt], GenerationSettings(max_new_tokens=max_new_tokens))
    return completion
