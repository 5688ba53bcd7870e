"""The server's legacy completions API (``POST /v1/completions``): raw prompts in, ``text_completion`` out.

What lm-evaluation-harness's ``local-completions`` model and vLLM/OpenAI's legacy clients send and
read: ``prompt`` as a string, a list of strings, a list of token ids or a list of such lists (one
choice per prompt, in order); ``max_tokens`` (default 16; 0 with ``echo``: the prompt's
log-probs only), ``temperature``, ``top_p``, ``top_k``, ``stop``, ``seed``, ``echo``, ``logprobs``
(k ≤ 20: each token's log-prob and the k most likely tokens at its position) and ``stream``.
Prompts go to the model as given: no chat template; a string is tokenized with the tokenizer's
default special tokens, as vLLM does.

The prompts become jobs of the chat engine (``pipelines.models.server_engine``): the same queue,
batches, seeded sampling, stop strings and streaming. Log-probs are the model's raw log-softmax
(``pipelines.models.prompt_logprobs``); the prompt's first token has none (null, as OpenAI and vLLM).

``logprobs.tokens`` are each token's text, decoded in context so that their concatenation is the
choice's ``text`` (a token holding half a character has "" and the next one the whole character;
special tokens the tokenizer added to a string prompt, and those generated, have ""), and
``text_offset`` is each token's character offset in ``text``. With ``echo`` the prompt's tokens come
first, so the prompt's are exactly those with an offset below the echoed prompt's length.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

from pipelines.models.server_engine import ApiError, ChatEngine, Job

COMPLETION_ROUTES = ("/v1/completions", "/completions")
DEFAULT_MAX_TOKENS = 16      # OpenAI's default for this API
MAX_LOGPROBS = 20            # vLLM's cap
# Fields that would change the answer and are not implemented: refused, never silently ignored.
UNSUPPORTED = {"best_of": (None, 1), "suffix": (None, ""), "logit_bias": (None, {}),
               "presence_penalty": (None, 0), "frequency_penalty": (None, 0), "repetition_penalty": (None, 1),
               "min_tokens": (None, 0), "prompt_logprobs": (None,), "response_format": (None, {"type": "text"})}
DETOKENIZE_CONTEXT = 4       # tokens decoded before a token's own, so its text reads as in the whole


@dataclass
class Prompt:
    ids: list[int]
    added: set[int]          # positions of special tokens the tokenizer added to a string prompt


@dataclass
class Submitted:
    jobs: list[Job]
    prompts: list[Prompt]
    echo: bool
    logprobs: int | None


# -- the request -----------------------------------------------------------------------------------

def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _options(req: dict) -> tuple[int, bool, int | None]:
    """(max_tokens, echo, logprobs), checked, with every sampling field this API accepts."""
    for name, allowed in UNSUPPORTED.items():
        if name in req and req[name] not in allowed:
            raise ApiError(400, f"'{name}' is not supported by this server; leave it out.", code="unsupported_parameter")
    echo = req.get("echo") or False
    if not isinstance(echo, bool):
        raise ApiError(400, "'echo' must be true or false.")
    logprobs = req.get("logprobs")
    if logprobs is not None and not (_is_int(logprobs) and 0 <= logprobs <= MAX_LOGPROBS):
        raise ApiError(400, f"'logprobs' must be an integer from 0 to {MAX_LOGPROBS}.")
    max_tokens = DEFAULT_MAX_TOKENS if req.get("max_tokens") is None else req["max_tokens"]
    if not _is_int(max_tokens) or max_tokens < (0 if echo else 1):
        raise ApiError(400, "'max_tokens' must be a positive integer (0 is allowed with echo: the prompt's "
                            "log-probs only).")
    for name, valid, what in (("temperature", lambda v: v >= 0, "a number ≥ 0 (0: greedy)"),
                              ("top_p", lambda v: 0 < v <= 1, "a number above 0, at most 1")):
        value = req.get(name)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or not valid(value)):
            raise ApiError(400, f"'{name}' must be {what}.")
    if req.get("top_k") is not None and not (_is_int(req["top_k"]) and req["top_k"] >= -1):
        raise ApiError(400, "'top_k' must be an integer (-1 or 0: no limit).")
    if req.get("seed") is not None and not _is_int(req["seed"]):
        raise ApiError(400, "'seed' must be an integer.")
    stop = req.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise ApiError(400, "'stop' must be a string or a list of strings.")
    return max_tokens, echo, logprobs


def prompts_of(engine: ChatEngine, prompt) -> list[Prompt]:
    """The request's prompts as token ids: a string, a list of strings, token ids, or lists of token ids."""
    if isinstance(prompt, str) or (isinstance(prompt, list) and prompt and all(_is_int(t) for t in prompt)):
        prompt = [prompt]
    if not isinstance(prompt, list) or not prompt:
        raise ApiError(400, "'prompt' must be a string, a list of strings, a list of token ids, or a list of "
                            "lists of token ids.", code="invalid_prompt")
    vocab = engine.model.get_input_embeddings().weight.shape[0]
    out = []
    for i, item in enumerate(prompt):
        if isinstance(item, str):
            ids = engine.tokenizer(item)["input_ids"]
            plain = engine.tokenizer(item, add_special_tokens=False)["input_ids"]
            at = next((a for a in range(len(ids) - len(plain) + 1) if ids[a:a + len(plain)] == plain), 0)
            added = set(range(len(ids))) - set(range(at, at + len(plain))) if ids != plain else set()
        elif isinstance(item, list) and all(_is_int(t) and 0 <= t < vocab for t in item):
            ids, added = list(item), set()
        else:
            raise ApiError(400, f"prompt {i} is neither a string nor a list of token ids below {vocab}.",
                           code="invalid_prompt")
        if not ids:
            raise ApiError(400, f"prompt {i} has no tokens: give the model something to continue.",
                           code="invalid_prompt")
        out.append(Prompt(ids, added))
    return out


def submit(engine: ChatEngine, req: dict) -> Submitted:
    """Every prompt of a completions request queued together (they share batches); errors raised here."""
    max_tokens, echo, logprobs = _options(req)
    prompts = prompts_of(engine, req.get("prompt"))
    jobs = [engine.make_job(p.ids, req, max_tokens, key=str(i), logprobs=logprobs,
                            score_prompt=echo and logprobs is not None, context=p.ids[-DETOKENIZE_CONTEXT:])
            for i, p in enumerate(prompts)]
    return Submitted(engine.enqueue(jobs), prompts, echo, logprobs)


# -- the answer ------------------------------------------------------------------------------------

def token_pieces(tokenizer, ids: list[int], hidden: set[int]) -> list[str]:
    """Each token's text, decoded after a few tokens of context (SentencePiece spaces, byte-level
    characters split over tokens): their concatenation is the sequence's text. Half a character
    waits for its other half (""), and ``hidden`` positions have ""."""
    shown = [i for i in range(len(ids)) if i not in hidden]
    pieces, pending = [""] * len(ids), 0           # pending: the first shown token whose text is not out yet
    for v in range(len(shown)):
        start = max(0, pending - DETOKENIZE_CONTEXT)
        before = tokenizer.decode([ids[i] for i in shown[start:pending]])
        text = tokenizer.decode([ids[i] for i in shown[start:v + 1]])
        if text.endswith("\ufffd") and v < len(shown) - 1:
            continue
        pieces[shown[v]] = text[len(before):] if text.startswith(before) else text
        pending = v + 1
    return pieces


def _cut(text: str, stops: list[str]) -> tuple[str, bool]:
    at = [text.find(s) for s in stops if s in text]
    return (text[:min(at)], True) if at else (text, False)


def choice(engine: ChatEngine, job: Job, prompt: Prompt, index: int, echo: bool, logprobs: int | None) -> dict:
    """One ``text_completion`` choice of a finished job: text, finish reason and log-probs."""
    _, _, _, reason = engine.result(job)
    tok, n = engine.tokenizer, len(job.ids)
    special = set(tok.all_special_ids)
    hidden = prompt.added | {n + i for i, t in enumerate(job.tokens) if t in special}
    pieces = token_pieces(tok, job.ids + job.tokens, hidden)
    prompt_text = "".join(pieces[:n])
    generated, hit = _cut("".join(pieces[n:]), job.stops)
    text = (prompt_text if echo else "") + generated
    if logprobs is None:
        return {"index": index, "text": text, "logprobs": None, "finish_reason": reason}
    # A stop string ends the text: the tokens that begin after it are not reported.
    kept, offset = 0, 0
    for piece in pieces[n:]:
        if hit and offset >= len(generated):
            break
        kept, offset = kept + 1, offset + len(piece)
    first = 0 if echo else n
    scores = ([None] if echo else []) + list(job.scores or [])
    names: dict[int, str] = {}

    def name(t: int) -> str:
        if t not in names:
            names[t] = tok.decode([t])
        return names[t]

    seq = (job.ids + job.tokens)[first:n + kept]
    entries = scores[:len(seq)]
    offsets, at = [], 0
    for piece in pieces[first:n + kept]:
        offsets.append(at)
        at += len(piece)
    return {"index": index, "text": text, "finish_reason": reason, "logprobs": {
        "tokens": pieces[first:n + kept],
        "token_logprobs": [None if e is None else e[0] for e in entries],
        "top_logprobs": [None if e is None else _top_dict(e[1], name) for e in entries],
        "text_offset": offsets}}


def _top_dict(top: list[tuple[int, float]], name) -> dict[str, float]:
    out: dict[str, float] = {}
    for t, lp in top:                # two tokens with the same text: the likelier one's value
        out.setdefault(name(t), lp)
    return out


def usage(submitted: Submitted) -> dict:
    n_prompt = sum(len(j.ids) for j in submitted.jobs)
    n_new = sum(len(j.tokens) for j in submitted.jobs)
    return {"prompt_tokens": n_prompt, "completion_tokens": n_new, "total_tokens": n_prompt + n_new}


def response(engine: ChatEngine, submitted: Submitted) -> dict:
    """The whole ``text_completion`` object (once every prompt's job has finished)."""
    choices = [choice(engine, job, p, i, submitted.echo, submitted.logprobs)
               for i, (job, p) in enumerate(zip(submitted.jobs, submitted.prompts))]
    return {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
            "model": engine.model_id, "choices": choices, "usage": usage(submitted)}


def write_stream(wfile, engine: ChatEngine, req: dict, submitted: Submitted) -> None:
    """Server-sent ``text_completion`` chunks, prompt by prompt (the headers are already sent): the echoed
    prompt, the text as it grows, a last chunk with the finish reason; usage if asked; [DONE]. With
    ``logprobs`` a choice's text comes whole in its last chunk, with its log-probs."""
    cid, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())

    def send(**body):
        chunk = {"id": cid, "object": "text_completion", "created": created, "model": engine.model_id, **body}
        wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode("utf-8"))
        wfile.flush()

    for i, (job, prompt) in enumerate(zip(submitted.jobs, submitted.prompts)):
        if submitted.echo and submitted.logprobs is None:
            send(choices=[{"index": i, "text": "".join(token_pieces(engine.tokenizer, job.ids, prompt.added)),
                           "logprobs": None, "finish_reason": None}])
        for piece in engine.follow(job):
            if piece is None or submitted.logprobs is not None:     # waiting, or holding text for its log-probs
                wfile.write(b": progress\n\n")
                wfile.flush()
            else:
                send(choices=[{"index": i, "text": piece, "logprobs": None, "finish_reason": None}])
        if submitted.logprobs is not None:
            send(choices=[choice(engine, job, prompt, i, submitted.echo, submitted.logprobs)])
        else:
            send(choices=[{"index": i, "text": "", "logprobs": None, "finish_reason": engine.result(job)[3]}])
    if (req.get("stream_options") or {}).get("include_usage"):
        send(choices=[], usage=usage(submitted))
    wfile.write(b"data: [DONE]\n\n")
    wfile.flush()
