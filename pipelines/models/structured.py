"""Grammar-constrained decoding for OpenAI's ``response_format`` on a local model.

``constraint(tokenizer, response_format)`` returns a ``prefix_allowed_tokens_fn`` for one
sequence (``None`` for plain text): at every step only tokens that keep the output valid JSON
(of the given schema, for ``json_schema``) are allowed, so even a 135M model answers with
parseable JSON. The library is lm-format-enforcer: pure Python, works with any transformers
``generate`` through ``prefix_allowed_tokens_fn``, and handles minLength/maxItems, which bound
how long a small model can run on. (outlines needs a Rust core plus pillow/jsonschema;
xgrammar pulls triton, hundreds of MB, on Linux.)

The enforcer works on characters; a byte-level tokenizer (SmolLM2, Llama 3, Qwen) writes most
Japanese characters as several tokens that each hold part of a UTF-8 sequence. So each token is
given to the enforcer as its bytes (a non-ASCII byte as one private-use character, see
``_as_text``), and ``_Utf8Guard`` keeps the bytes valid UTF-8 on top of the grammar. A string's
``maxLength`` therefore counts bytes, and a character is never cut by the closing quote.

A document must also end within ``max_tokens``: a small model writing a long string would
otherwise be cut mid-JSON and the whole answer lost. So each constraint knows its token budget and
how many tokens a hurried finish of a document takes (walked once through the grammar, see
``_closing_length``); when the budget left comes down to that, tokens that close what is open
(a quote, a brace, a bracket, the end) are preferred, then anything but blank space.

Building the tokenizer's prefix tree costs seconds, so it is built once per tokenizer.
"""
from __future__ import annotations

import re
import threading
from typing import Callable

from pipelines.core.errors import UserError

_TOKENIZER_DATA: dict[int, object] = {}
_LOCK = threading.Lock()


class FormatError(ValueError):
    """A ``response_format`` this server cannot honour (the client gets a 400)."""


def schema_of(response_format: dict | None) -> tuple[bool, dict | None]:
    """(constrained?, the JSON schema to enforce) from an OpenAI ``response_format``."""
    if not response_format:
        return False, None
    if not isinstance(response_format, dict):
        raise FormatError("response_format must be an object such as {\"type\": \"json_object\"}.")
    kind = response_format.get("type")
    if kind in (None, "text"):
        return False, None
    if kind == "json_object":       # OpenAI's JSON mode: an object, not any JSON value
        return True, {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise FormatError("response_format json_schema needs {\"json_schema\": {\"name\": ..., \"schema\": {...}}}.")
        return True, schema
    raise FormatError(f"Unknown response_format type {kind!r}; use text, json_object or json_schema.")


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet inverted: the printable stand-in character of each byte -> the byte."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    moved = [b for b in range(256) if b not in kept]
    table = {chr(b): b for b in kept}
    table.update({chr(256 + n): b for n, b in enumerate(moved)})
    return table


_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _bytelevel(pieces: list[str]) -> list[bytes]:
    decoder = _byte_decoder()
    return [bytes(decoder[c] for c in p) if all(c in decoder for c in p) else b"" for p in pieces]


def _sentencepiece(pieces: list[str]) -> list[bytes]:
    out = []
    for p in pieces:
        m = _BYTE_FALLBACK.fullmatch(p)
        out.append(bytes([int(m.group(1), 16)]) if m else p.replace("\u2581", " ").encode("utf-8"))
    return out


def token_bytes(tokenizer) -> list[bytes] | None:
    """The bytes each token id stands for (byte-level BPE or SentencePiece with byte fallback).

    Checked by a round trip on Japanese text; None for a tokenizer read neither way.
    """
    pieces = [p or "" for p in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))]
    probe = "2型糖尿病の治療 (HbA1c 7.0%)\nです。"
    ids = tokenizer.encode(probe, add_special_tokens=False)
    for read in (_bytelevel, _sentencepiece):
        table = read(pieces)
        got = b"".join(table[i] for i in ids)
        if got == probe.encode() or got == b" " + probe.encode():
            return table
    return None


# A byte outside ASCII is one private-use character to the enforcer: every token then has a
# text (a partial UTF-8 character included), and token texts concatenate as their bytes do.
# The JSON grammar only cares that such characters are not quotes, backslashes or controls.
_AS_TEXT = {b: 0xE000 + b for b in range(0x80, 0x100)}


def _as_text(data: bytes) -> str:
    return data.decode("latin-1").translate(_AS_TEXT)


def _utf8_length(lead: int) -> int:
    """Bytes of the UTF-8 character that starts with the lead byte ``lead`` (>= 0xC0)."""
    return 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


def _unfinished(tail: bytes) -> bytes:
    """The trailing bytes of a UTF-8 character that is not complete yet (b"" if none)."""
    for back in range(1, min(4, len(tail)) + 1):
        b = tail[-back]
        if b & 0xC0 == 0x80:
            continue
        if b >= 0xC0:
            return tail[-back:] if back < _utf8_length(b) else b""
        return b""
    return b""


def _owed(data: bytes) -> int:
    tail = _unfinished(data)
    if not tail:
        return 0
    return _utf8_length(tail[0]) - len(tail)


def _not_in_string(data: bytes) -> bool:
    return any(c < 0x20 for c in data) or "\ufffd".encode() in data


def _whole_or_unfinished(data: bytes) -> bool:
    """Valid UTF-8, except perhaps a character still unfinished at the end."""
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        return exc.end == len(data) and exc.reason == "unexpected end of data"


class _Utf8Guard:
    """Keeps the generated bytes valid UTF-8: after half a character only its continuations
    are allowed, and no token may start one wrongly. (Without it a small model writes Japanese
    as bytes that never form characters.) Shared by every request on a tokenizer, so it holds
    only per-token arrays."""

    def __init__(self, table: list[bytes]):
        import numpy as np
        self.table = table
        self.length = np.array([len(b) for b in table])
        # Bytes a token still owes to finish the character it ends in (0: it ends whole).
        self.owes = np.array([_owed(b) for b in table])
        # A token without bytes (a special token such as the end of text) passes where a whole character may.
        self.starts_whole = np.array([not b or _whole_or_unfinished(b) for b in table])
        self.starts_continuing = np.array([bool(b) and b[0] & 0xC0 == 0x80 for b in table])
        self.fits_in_string = np.array([not _not_in_string(b.split(b'"', 1)[0]) for b in table])

    def pending(self, generated: list[int]) -> bytes:
        return _unfinished(b"".join(self.table[i] for i in generated[-4:] if i < len(self.table)))

    def filter(self, allowed: list[int], pending: bytes, room: int | None):
        """``allowed`` less tokens that break UTF-8 after ``pending``; inside a string (``room``:
        bytes left before its maxLength) less raw control characters and tokens whose last
        character could not be finished before the limit. Never empty: where nothing is left,
        the grammar's own list wins (a closing quote it demands mid-character).

        A tensor of ids (the logits processor indexes with it): the lists run to ~49k ids at every
        step inside a string, so they are filtered as arrays and nothing is kept between steps.
        """
        import numpy as np
        import torch
        ids = np.fromiter(allowed, dtype=np.int64, count=len(allowed))
        ids = ids[ids < len(self.table)]
        if pending:
            ids = ids[self.starts_continuing[ids]]
            ids = np.array([t for t in ids.tolist() if _whole_or_unfinished(pending + self.table[t])], dtype=np.int64)
        else:
            ids = ids[self.starts_whole[ids]]
        if room is not None and len(ids):
            ids = ids[self.fits_in_string[ids]]
            if room < 16 and len(ids):
                ids = ids[(self.owes[ids] == 0) | (self.length[ids] + self.owes[ids] <= room)]
        return torch.from_numpy(ids) if len(ids) else list(allowed)


class _Closers:
    """Which tokens close JSON and which are blank: what a document running out of tokens is
    steered to. Inside a string that is a token starting with its closing quote (a brace there is
    text); elsewhere quotes, braces and brackets around blank space, and the end. Per-token
    arrays, shared like the guard."""

    def __init__(self, texts: list[bytes], eos: int):
        import numpy as np
        stripped = [t.strip() for t in texts]
        self.closer = np.array([bool(t) and not t.strip(b'"}]') for t in stripped])
        self.quote_led = np.array([t[:1] == b'"' for t in texts])
        self.blank = np.array([not t for t in stripped])
        self.length = np.array([len(t) for t in texts])
        self.eos = eos
        if 0 <= eos < len(texts):
            self.closer[eos], self.blank[eos] = True, False

    def _ids(self, allowed):
        import numpy as np
        ids = allowed.numpy() if hasattr(allowed, "numpy") else np.fromiter(allowed, dtype=np.int64)
        return ids[(ids >= 0) & (ids < len(self.closer))]

    def prefer(self, allowed, in_string: bool):
        """``allowed`` narrowed to closing tokens, else to non-blank ones; never empty."""
        import torch
        ids = self._ids(allowed)
        closing = self.closer[ids] & self.quote_led[ids] if in_string else self.closer[ids]
        for keep in (closing, ~self.blank[ids]):
            if keep.any():
                return torch.from_numpy(ids[keep].copy())
        return allowed

    def likely(self, allowed, in_string: bool) -> int:
        """The token a hurried finish takes next: the end if allowed; else among ``prefer``'s
        choice the shortest inside a string (a minLength filled a byte at a time, the worst case)
        and the longest outside (a key is written in the tokens that spell it, not letter by letter)."""
        ids = self._ids(self.prefer(allowed, in_string))
        if self.eos in ids:
            return self.eos
        lengths = self.length[ids]
        return int(ids[lengths.argmin() if in_string else lengths.argmax()])


def _tokenizer_data(tokenizer):
    """(the enforcer's token table, the UTF-8 guard or None, the closers), built once per tokenizer."""
    # The library's own transformers integration imports transformers.tokenization_utils, gone in
    # transformers 5; its tokenizer table is rebuilt here from the core API.
    from lmformatenforcer.tokenenforcer import TokenEnforcerTokenizerData
    with _LOCK:
        data = _TOKENIZER_DATA.get(id(tokenizer))
        if data is None:
            special = set(tokenizer.all_special_ids)
            table = token_bytes(tokenizer)
            if table is not None:
                regular = [(idx, _as_text(b), True) for idx, b in enumerate(table) if b and idx not in special]
                data = (TokenEnforcerTokenizerData(
                    regular, lambda ids: _as_text(b"".join(table[i] for i in ids if i < len(table))),
                    tokenizer.eos_token_id, False, len(tokenizer)), _Utf8Guard(table))
            else:
                data = (_decoded_tokenizer_data(tokenizer, special), None)
                table = [tokenizer.decode([i]).encode("utf-8") for i in range(len(tokenizer))]
            texts = [b"" if i in special else b for i, b in enumerate(table)]
            data = (*data, _Closers(texts, tokenizer.eos_token_id))
            _TOKENIZER_DATA[id(tokenizer)] = data
        return data


def _decoded_tokenizer_data(tokenizer, special: set[int]):
    """Token texts from ``decode`` (a tokenizer whose bytes cannot be read): partial characters are lost."""
    from lmformatenforcer.tokenenforcer import TokenEnforcerTokenizerData
    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    regular = []
    for idx in range(len(tokenizer)):
        if idx in special:
            continue
        # Decoded after "0" (then dropped) a word-start token keeps its leading space.
        after_zero = tokenizer.decode([zero, idx])[1:]
        regular.append((idx, after_zero, len(after_zero) > len(tokenizer.decode([idx]))))

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids).rstrip("\ufffd")
    return TokenEnforcerTokenizerData(regular, decode, tokenizer.eos_token_id, False, len(tokenizer))


# Tokens kept beyond the shortest finish measured from the empty document: from the middle of
# one, an optional object the model opened may need a few more.
CLOSING_MARGIN = 8


def constraint(tokenizer, response_format: dict | None, max_new_tokens: int | None = None) -> Callable | None:
    """A ``prefix_allowed_tokens_fn(batch_id, ids)`` for one sequence, or None for free text.

    With ``max_new_tokens`` the document is steered to its end before the budget runs out.
    """
    constrained, schema = schema_of(response_format)
    if not constrained:
        return None
    try:
        from lmformatenforcer import CharacterLevelParserConfig, JsonSchemaParser
        from lmformatenforcer.tokenenforcer import TokenEnforcer
    except ImportError as exc:
        raise UserError("Structured output needs the package lm-format-enforcer.",
                        "pip install -r requirements.txt (or `make run`, which installs it).",
                        code="serve.no_lmfe") from exc
    data, guard, closers = _tokenizer_data(tokenizer)
    # Every character a token can start with (Japanese, and bytes of partial characters), not the
    # library's ASCII default: the parser copies the alphabet for strings with a minLength when it
    # is built, and TokenEnforcer replaces the config afterwards (dropping the whitespace limit),
    # so the same config is given before and restored after.
    # One whitespace at a time: a small model otherwise spends its tokens on indentation.
    config = CharacterLevelParserConfig(alphabet=data.tokenizer_alphabet, max_consecutive_whitespaces=1)
    try:
        parser = JsonSchemaParser(schema, config)
    except Exception as exc:  # the library's own schema model rejected it
        raise FormatError(f"This JSON schema cannot be enforced: {exc}") from None
    enforcer = TokenEnforcer(data, parser)
    parser.config = config
    prompt_len: list[int] = []
    reserve: list[int] = []

    def step(ids: list[int]):
        """(the tokens allowed after ``ids``, whether they continue a string)."""
        tokens = enforcer.get_allowed_tokens(ids).allowed_tokens
        room = _room(enforcer, ids)
        if guard is not None:
            tokens = guard.filter(tokens, guard.pending(ids[prompt_len[0]:]), room)
        return tokens, room is not None

    def allowed(batch_id: int, ids):
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)      # generate's tensor, or a list
        if not prompt_len:          # the first call sees the prompt alone
            prompt_len.append(len(ids))
        tokens, in_string = step(ids)
        if max_new_tokens is not None and not reserve:
            reserve.append(_closing_length(step, closers, ids, max_new_tokens) + CLOSING_MARGIN)
        # The enforcer keeps every prefix's state (and its list of up to ~49k ids) for beam search;
        # one sequence needs only the last, else memory grows by megabytes per token.
        states = enforcer.prefix_states
        if len(states) > 1:
            last = states[tuple(ids)]
            states.clear()
            states[tuple(ids)] = last
        if reserve and max_new_tokens - (len(ids) - prompt_len[0]) <= reserve[0]:
            return closers.prefer(tokens, in_string)
        return tokens
    return allowed


def _closing_length(step: Callable, closers: _Closers, ids: list[int], limit: int) -> int:
    """Tokens a hurried finish of the document takes from ``ids`` (at most ``limit``), walked
    through the grammar one likely token at a time (see ``_Closers.likely``)."""
    seq = list(ids)
    for n in range(1, limit + 1):
        token = closers.likely(*step(seq))
        if token == closers.eos:
            return n
        seq.append(token)
    return limit


def _room(enforcer, ids: list[int]) -> int | None:
    """Bytes left before the maxLength of the string being written (None: not in a string).

    Read from the enforcer's state for this prefix (its own free-text shortcut key), because
    maxLength counts bytes here and a character must not be cut by the closing quote.
    """
    state = enforcer.prefix_states.get(tuple(ids))
    key = state.parser.shortcut_key() if state is not None else None
    if isinstance(key, tuple) and len(key) == 4 and key[0] == "json_freetext":
        _, cur_len, _min_len, max_len = key
        return max_len - cur_len
    return None


def per_row(fns: list[Callable | None], vocab_size: int) -> Callable | None:
    """One ``prefix_allowed_tokens_fn`` for a batch whose rows have their own (or no) constraint."""
    if not any(fns):
        return None
    everything = list(range(vocab_size))

    def allowed(batch_id: int, ids) -> list[int]:
        fn = fns[batch_id]
        return fn(batch_id, ids) if fn else everything
    return allowed
