"""Grammar-constrained decoding for OpenAI's ``response_format`` on a local model.

``constraint(tokenizer, response_format)`` returns a ``prefix_allowed_tokens_fn`` for one
sequence (``None`` for plain text): at every step only tokens that keep the output valid JSON
(of the given schema, for ``json_schema``) are allowed, so even a 135M model answers with
parseable JSON. The library is lm-format-enforcer: pure Python, works with any transformers
``generate`` through ``prefix_allowed_tokens_fn``, and handles minLength/maxItems, which bound
how long a small model can run on. (outlines needs a Rust core plus pillow/jsonschema;
xgrammar pulls triton, hundreds of MB, on Linux.)

Building the tokenizer's prefix tree costs seconds, so it is built once per tokenizer.
"""
from __future__ import annotations

import threading
from typing import Callable

from pipelines.errors import UserError

_TOKENIZER_DATA: dict[int, object] = {}
_LOCK = threading.Lock()


class FormatError(ValueError):
    """A ``response_format`` this server cannot honour (the client gets a 400)."""


def schema_of(response_format: dict | None) -> tuple[bool, dict | None]:
    """(constrained?, JSON schema or None for any JSON object) from an OpenAI ``response_format``."""
    if not response_format:
        return False, None
    if not isinstance(response_format, dict):
        raise FormatError("response_format must be an object such as {\"type\": \"json_object\"}.")
    kind = response_format.get("type")
    if kind in (None, "text"):
        return False, None
    if kind == "json_object":
        return True, None
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise FormatError("response_format json_schema needs {\"json_schema\": {\"name\": ..., \"schema\": {...}}}.")
        return True, schema
    raise FormatError(f"Unknown response_format type {kind!r}; use text, json_object or json_schema.")


def _tokenizer_data(tokenizer):
    # The library's own transformers integration imports transformers.tokenization_utils, gone in
    # transformers 5; its tokenizer table is rebuilt here from the core API (same steps).
    from lmformatenforcer.tokenenforcer import TokenEnforcerTokenizerData
    with _LOCK:
        data = _TOKENIZER_DATA.get(id(tokenizer))
        if data is None:
            zero = tokenizer.encode("0", add_special_tokens=False)[-1]
            special = set(tokenizer.all_special_ids)
            regular = []
            for idx in range(len(tokenizer)):
                if idx in special:
                    continue
                # Decoded after "0" (then dropped) a word-start token keeps its leading space.
                after_zero = tokenizer.decode([zero, idx])[1:]
                regular.append((idx, after_zero, len(after_zero) > len(tokenizer.decode([idx]))))

            def decode(ids: list[int]) -> str:
                return tokenizer.decode(ids).rstrip("\ufffd")
            data = _TOKENIZER_DATA[id(tokenizer)] = TokenEnforcerTokenizerData(
                regular, decode, tokenizer.eos_token_id, False, len(tokenizer))
        return data


def constraint(tokenizer, response_format: dict | None) -> Callable | None:
    """A ``prefix_allowed_tokens_fn(batch_id, ids)`` for one sequence, or None for free text."""
    constrained, schema = schema_of(response_format)
    if not constrained:
        return None
    try:
        from lmformatenforcer import CharacterLevelParserConfig, JsonSchemaParser
        from lmformatenforcer.tokenenforcer import TokenEnforcer
    except ImportError as exc:
        raise UserError("Structured output needs the package lm-format-enforcer.",
                        "pip install -r requirements.txt (or `make run`, which installs it).") from exc
    try:
        # One whitespace at a time: a small model otherwise spends its tokens on indentation.
        parser = JsonSchemaParser(schema, CharacterLevelParserConfig(max_consecutive_whitespaces=1))
    except Exception as exc:  # the library's own schema model rejected it
        raise FormatError(f"This JSON schema cannot be enforced: {exc}") from None
    enforcer = TokenEnforcer(_tokenizer_data(tokenizer), parser)

    def allowed(batch_id: int, ids) -> list[int]:
        return enforcer.get_allowed_tokens(ids.tolist()).allowed_tokens
    return allowed


def per_row(fns: list[Callable | None], vocab_size: int) -> Callable | None:
    """One ``prefix_allowed_tokens_fn`` for a batch whose rows have their own (or no) constraint."""
    if not any(fns):
        return None
    everything = list(range(vocab_size))

    def allowed(batch_id: int, ids) -> list[int]:
        fn = fns[batch_id]
        return fn(batch_id, ids) if fn else everything
    return allowed
