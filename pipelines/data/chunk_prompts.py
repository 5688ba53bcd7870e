"""What a generation run asks per chunk: the chunks themselves, the prompt templates
(``assets/prompts/datagen``), the rendered prompts (the JSON-mode one and the paper's free text),
and the request key the cache knows each chunk's work by (chunk id + prompt hash + model).
"""
from __future__ import annotations

import hashlib
from typing import NamedTuple

from pipelines.core.errors import UserError
from pipelines.core.repo import ASSETS
from pipelines.data.documents import Chunk, chunk_documents, hf_token_spans, load_documents
from pipelines.tasks import prompts

TEMPLATE_DIR = ASSETS / "prompts" / "datagen"
JSON_ASK = ('\nAnswer with JSON only: {"pairs": [{"instruction": "...", "output": "..."}, ...]}, '
            'with at most {pairs} pairs.')


def available_templates() -> list[str]:
    return prompts.available_templates(TEMPLATE_DIR)


def load_prompt_template(name_or_path: str) -> tuple[str, str]:
    """(text, version): version = name + hash of the text, stored with every record."""
    path = prompts.find_template_file(name_or_path, TEMPLATE_DIR, "Generation template")
    text = path.read_text(encoding="utf-8")
    if "{input_text}" not in text:
        raise UserError(f"Template {path} has no {{input_text}} placeholder.",
                        "Add {input_text} where the document chunk goes.",
                        code="template.no_input_text", params={"path": str(path)})
    return text, f"{path.stem}:{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def render_prompt(template: str, chunk_text: str, pairs: int) -> str:
    # Plain replacement, {pairs} first: braces in medical text must stay as they are.
    return template.replace("{pairs}", str(pairs)).replace("{input_text}", chunk_text).rstrip("\n")


def request_key(chunk_id: str, prompt: str, model: str) -> tuple[str, str]:
    prompt_hash = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    key = hashlib.sha256(f"{chunk_id}\0{prompt_hash}\0{model}".encode("utf-8")).hexdigest()
    return key, prompt_hash


def prepare_chunks(config) -> list[Chunk]:
    """The documents of a ``DatagenConfig`` (docs, chunk_by, chunk_size, chunk_overlap, tokenizer), chunked."""
    spans = None
    if config.chunk_by == "tokens" and config.tokenizer:
        from pipelines.models.references import load_tokenizer
        spans = hf_token_spans(load_tokenizer(config.tokenizer))
    return chunk_documents(load_documents(config.docs), by=config.chunk_by, size=config.chunk_size,
                           overlap=config.chunk_overlap, token_spans=spans)


class ChunkRequest(NamedTuple):
    """One chunk's work: its prompts (JSON mode, free text) and the key its answer is cached under."""
    chunk: Chunk
    prompts: tuple[str, str]
    key: str
    prompt_hash: str


def plan_requests(chunks: list[Chunk], template: str, pairs: int, free_text: bool, model: str) -> list[ChunkRequest]:
    work = []
    for c in chunks:
        prompt = render_prompt(template, c.text, pairs)
        json_prompt = prompt + JSON_ASK.replace("{pairs}", str(pairs))
        # The JSON-mode prompt names the answer: a cached free-text answer is not reused for it.
        key, phash = request_key(c.id, prompt if free_text else json_prompt, model)
        work.append(ChunkRequest(c, (json_prompt, prompt), key, phash))
    return work
