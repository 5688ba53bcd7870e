"""Parse a model's list of question/answer pairs, robustly, keeping whatever it cannot parse.

The paper's prompt asks for lines of ``'instruction': question, 'output': answer``. Models
answer with variations of that: JSON objects (one per line, or one JSON array), double,
curly or Japanese quotes (「」『』), full-width colons (：), numbering (``1.``, ``１．``,
``(1)``, ``Q1:``), bullets, Japanese keys (質問/回答), the pair split over two lines, and
stray text ("以下が15個のデータです"). ``parse_pairs`` returns the pairs it found and the
non-empty lines it could not use, so the caller can keep and count them.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

# Key words, by the role they play. ``input`` is kept when a model adds one (Alpaca style).
_ROLES = {
    "instruction": "instruction", "question": "instruction", "質問": "instruction", "指示": "instruction",
    "問題": "instruction", "問い": "instruction", "q": "instruction",
    "input": "input", "入力": "input",
    "output": "output", "answer": "output", "回答": "output", "答え": "output", "解答": "output",
    "出力": "output", "応答": "output", "a": "output",
}
_OPEN = "\"'‘’“”「『`"
_CLOSE = "\"'’‘”“」』`"
# A key counts only at the start of the line or after a separator/quote, so that "答え：" inside
# an answer's prose is not taken for a new field.
_KEY = re.compile(
    r"(?:(?<=^)|(?<=[\s,、，;；{\"'’”」』]))"
    r"[\"'‘’“”「『]?\s*(?P<key>instruction|question|input|output|answer|質問|指示|問題|問い|入力|回答|答え|解答|出力|応答"
    r"|[QqAaＱＡ](?:[0-9０-９]{1,3})?)\s*[\"'’”」』]?\s*[:：]",
    re.IGNORECASE)
_NUMBERING = re.compile(
    r"^\s*(?:[-*・•●◦]\s*)?(?:[0-9０-９]{1,3}\s*[.．、)）:：]|[(（]\s*[0-9０-９]{1,3}\s*[)）]|[①-⑳])?\s*")
_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*$")
_FULLWIDTH = str.maketrans({"Ｑ": "Q", "Ａ": "A", **{chr(0xFF10 + i): str(i) for i in range(10)}})


@dataclass
class ParseResult:
    pairs: list[dict] = field(default_factory=list)       # {"instruction", "input", "output"}
    leftovers: list[str] = field(default_factory=list)    # non-empty lines not used in any pair


def _empty() -> dict:
    return {"instruction": "", "input": "", "output": ""}


def _role(key: str) -> str:
    key = key.translate(_FULLWIDTH).lower()
    return _ROLES.get(key.rstrip("0123456789"), "") if key[0] in "qa" else _ROLES.get(key, "")


def _clean_value(value: str) -> str:
    value = value.strip().rstrip(",、，;；").strip()
    if value.endswith("}"):
        value = value[:-1].rstrip().rstrip(",").strip()
    # Strip one pair of matching quotes (or a lone quote the model left at either end).
    if len(value) >= 2 and value[0] in _OPEN and value[-1] in _CLOSE:
        value = value[1:-1]
    else:
        value = value.lstrip(_OPEN) if value[:1] in _OPEN and value[-1:] not in _CLOSE else value
        value = value.rstrip(_CLOSE) if value[-1:] in _CLOSE and value[:1] not in _OPEN else value
    return value.replace('\\"', '"').strip()


def _fields(line: str) -> list[tuple[str, str]]:
    """(role, value) for each key found in a line, in order."""
    matches = [m for m in _KEY.finditer(line) if _role(m.group("key"))]
    out = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
        out.append((_role(m.group("key")), _clean_value(line[m.end():end])))
    return out


def _from_json(obj) -> dict | None:
    if not isinstance(obj, dict):
        return None
    lowered = {str(k).lower(): v for k, v in obj.items()}
    pair = {"instruction": "", "input": "", "output": ""}
    for k, v in lowered.items():
        role = _ROLES.get(k)
        if role and isinstance(v, (str, int, float)):
            pair[role] = str(v).strip()
    return pair if pair["instruction"] and pair["output"] else None


def _try_json(text: str):
    text = text.strip().rstrip(",")
    if not text[:1] in "[{":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def parse_json_pairs(text: str) -> list[dict]:
    """Pairs from a structured (JSON-mode) answer: ``{"pairs": [...]}``, a bare list, or the
    complete objects of one cut off by max_tokens (every decodable ``{...}`` is tried)."""
    whole = _try_json(text)
    if isinstance(whole, dict):
        whole = next((v for v in whole.values() if isinstance(v, list)), [whole])
    if isinstance(whole, list):
        return [p for p in map(_from_json, whole) if p]
    pairs, decoder, i = [], json.JSONDecoder(), text.find("{")
    while i != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i = text.find("{", i + 1)
            continue
        pair = _from_json(obj)
        if pair:
            pairs.append(pair)
        i = text.find("{", end if pair else i + 1)
    return pairs


def parse_pairs(text: str) -> ParseResult:
    result = ParseResult()
    structured = parse_json_pairs(text) if text.lstrip()[:1] == "{" else []
    if structured:
        result.pairs = structured
        return result
    whole = _try_json("\n".join(l for l in text.splitlines() if not _FENCE.match(l)))
    if isinstance(whole, list):
        pairs = [_from_json(o) for o in whole]
        if pairs and all(pairs):
            result.pairs = pairs
            return result

    pending: dict | None = None        # an instruction waiting for its output on a later line
    pending_line = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or _FENCE.match(line) or line in "[]{}":
            continue
        obj = _try_json(_NUMBERING.sub("", line, count=1))
        if obj is not None:
            pair = _from_json(obj)
            if pair:
                result.pairs.append(pair)
                continue
        body = _NUMBERING.sub("", line, count=1)
        fields = _fields(body)
        if not fields:
            if pending is not None:      # prose continuing the pending question
                pending["instruction"] += " " + line
                pending_line += "\n" + raw
            else:
                result.leftovers.append(raw)
            continue
        if pending is not None and fields[0][0] != "output":
            result.leftovers.append(pending_line)     # a question whose answer never came
            pending = None
        current = pending or _empty()
        pending = None
        for role, value in fields:
            if role == "instruction":
                if current["instruction"] and current["output"]:
                    result.pairs.append(current)      # several pairs on one line
                    current = _empty()
                if value:                             # an empty value is a "Q1:" label before the key
                    current["instruction"] = value
            elif value:
                current[role] = value
        if current["instruction"] and current["output"]:
            result.pairs.append(current)
        elif current["instruction"]:
            pending, pending_line = current, raw
        else:
            result.leftovers.append(raw)
    if pending is not None:
        result.leftovers.append(pending_line)
    return result
