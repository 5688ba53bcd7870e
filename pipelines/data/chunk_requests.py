"""One chunk's request to an OpenAI-compatible endpoint, sent by ``pipelines.data.chunk_dispatch``.

Pairs are asked for as JSON with a schema (``pairs_format``); an endpoint that refuses
``response_format`` gets the paper's free-text prompt from then on. Rate limits, 5xx and
timeouts are retried with exponential backoff and jitter (honouring ``retry-after``); a bad key
or an unknown model is ``Fatal`` (every further request would fail the same way). This
machine's server is streamed, so its timeout counts the time without a token, not the answer.
"""
from __future__ import annotations

import hashlib
import random
import threading
import time
from typing import Callable


def pairs_format(pairs: int) -> dict:
    """OpenAI ``response_format`` for a list of ``{instruction, output}``: the local server
    enforces it token by token (and closes the document before max_tokens runs out); ChatGPT
    takes it as a (non-strict) schema. The length bounds keep a small model from filling a
    chunk's budget with one run-on pair."""
    pair = {"type": "object", "additionalProperties": False, "required": ["instruction", "output"],
            "properties": {"instruction": {"type": "string", "minLength": 5, "maxLength": 200},
                           "output": {"type": "string", "minLength": 1, "maxLength": 400}}}
    schema = {"type": "object", "additionalProperties": False, "required": ["pairs"],
              "properties": {"pairs": {"type": "array", "items": pair, "minItems": 1, "maxItems": pairs}}}
    return {"type": "json_schema", "json_schema": {"name": "qa_pairs", "schema": schema, "strict": False}}


def _refuses_format(exc) -> bool:
    """A 400 that names response_format / JSON mode: the endpoint cannot do structured output."""
    text = str(getattr(exc, "message", exc)).lower()
    return any(w in text for w in ("response_format", "json_schema", "json mode", "json_object"))


class Fatal(Exception):
    """An error every further request would also hit (bad key, unknown model)."""


def request_seed(seed: int, key: str) -> int:
    """The sampling seed of one chunk's request: the run's seed and the request (chunk, prompt,
    model), so a chunk answers the same in a rerun whatever else shares its batch, and a retry is
    the same request (this machine's server joins it to the one still running)."""
    return int(hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF    # int32 servers


def send(client, config, model: str, prompts: tuple[str, str], emit, chunk_id: str,
         stop: threading.Event, json_refused: threading.Event, local: bool, seed: int | None = None,
         on_text: Callable[[int], None] | None = None):
    """(text, usage, seconds, attempts). ``config`` is the run's ``DatagenConfig`` (temperature,
    max_tokens, pairs, free_text and the retry settings); ``prompts`` = (JSON-mode prompt,
    free-text prompt); ``on_text(chars)`` follows a streamed answer as it arrives."""
    import openai

    retryable = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                 openai.APIConnectionError, openai.ConflictError)
    t0 = time.perf_counter()
    for attempt in range(1, config.max_retries + 2):
        use_json = not config.free_text and not json_refused.is_set()
        extra = {"response_format": pairs_format(config.pairs)} if use_json else {}
        if seed is not None:
            extra["seed"] = seed
        messages = [{"role": "user", "content": prompts[0] if use_json else prompts[1]}]
        try:
            if local:
                # This machine's server streams: the read timeout is the time without a token
                # (or a progress note), so a long queue is never mistaken for a dead server.
                text, usage = _stream(client, model, messages, config, extra, on_text)
            else:
                resp = client.chat.completions.create(model=model, messages=messages,
                                                      temperature=config.temperature,
                                                      max_tokens=config.max_tokens, **extra)
                usage = resp.usage.model_dump() if resp.usage else {}
                text = (resp.choices[0].message.content or "") if resp.choices else ""
            return text, usage, time.perf_counter() - t0, attempt
        except openai.BadRequestError as exc:
            if not (use_json and _refuses_format(exc)):
                raise
            json_refused.set()        # this and every later request: the paper's free-text prompt
            emit({"event": "retry", "chunk_id": chunk_id, "attempt": attempt, "wait_s": 0,
                  "reason": "the endpoint refused response_format; using the free-text prompt"})
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
            raise Fatal(f"{type(exc).__name__}: {exc.message}") from exc
        except retryable as exc:
            if attempt > config.max_retries or stop.is_set():
                raise
            wait_s = min(config.retry_max_wait, config.retry_base * 2 ** (attempt - 1))
            wait_s *= 0.5 + random.random()          # full jitter would starve; half keeps a floor
            retry_after = getattr(getattr(exc, "response", None), "headers", {}).get("retry-after")
            if retry_after:
                try:
                    wait_s = max(wait_s, min(config.retry_max_wait, float(retry_after)))
                except ValueError:
                    pass
            emit({"event": "retry", "chunk_id": chunk_id, "attempt": attempt, "wait_s": round(wait_s, 3),
                  "reason": f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"})
            stop.wait(wait_s)


def _stream(client, model: str, messages: list[dict], config, extra: dict,
            on_text: Callable[[int], None] | None = None) -> tuple[str, dict]:
    pieces, usage = [], {}
    for chunk in client.chat.completions.create(model=model, messages=messages, temperature=config.temperature,
                                                max_tokens=config.max_tokens, stream=True,
                                                stream_options={"include_usage": True}, **extra):
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            if on_text and pieces[-1]:
                on_text(len(pieces[-1]))
        if getattr(chunk, "usage", None):
            usage = chunk.usage.model_dump()
    return "".join(pieces), usage
