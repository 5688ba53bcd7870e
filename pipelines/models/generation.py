"""The first two generation backends: a batched local engine and an API endpoint.

Both implement ``pipelines.models.backends.Backend`` (how one is chosen from a model reference, and
how to add another, is written there): they take ``Prompt`` objects (a plain completion
prompt, or chat messages) and yield ``(index, Completion)`` as each finishes, so callers can
persist results incrementally.

The local engine is where evaluation time goes. What makes it fast on a CPU or a GPU
(``pipelines.models.continuous``; measured in ``bench/bench_eval.py``):
* continuous batching: prompts sorted longest first take the slots of one key/value cache
  allocated once for the run; a row leaves the step it ends and the next prompt takes its slot,
  so no row waits for a batch's longest answer and nothing is padded;
* each prompt read alone, its start copied from a running row that shares it (the template's
  instruction, a 1-shot example), then one position per row and step, each span of rows
  attending only as far as its own longest row;
* stop strings ("###": the Alpaca template's next section) end a row as soon as the answer is
  over instead of running to ``max_new_tokens``.
Models the decoder cannot drive (flash attention, capped attention scores, rows beyond a sliding
window) are decoded by ``generate`` in length-sorted batches under the same kind of budget.
"""
from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator
from urllib.parse import urlparse

from pipelines.core import privacy
from pipelines.core.errors import UserError
from pipelines.models import continuous, loglik
from pipelines.models.continuous import Decoder, Row
from pipelines.models.decoding import (
    KV_CACHE_MB,
    RowSeededSampler,
    cut_at_stop,
    decode_whole_chars,
    generate_once,
    length_batches,
    prefill_kwargs,
    sampling_top_k,
    token_steps,
    within_context,
)
from pipelines.models.device_memory import kv_cache_tokens, torch_inference
from pipelines.tasks.igakuqa import Question


@dataclass(frozen=True)
class GenerationSettings:
    """The paper's decoding defaults (JMedLoRA, section 4)."""
    temperature: float = 0.1
    top_p: float = 0.9
    repetition_penalty: float = 1.05
    max_new_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ("###",)


@dataclass
class Prompt:
    text: str | None = None                     # completion-style prompt
    messages: list[dict] | None = None          # chat-style prompt (role/content dicts)
    seed: int | None = None                     # sampling seed of this prompt alone (None: the settings' seed)


@dataclass
class Completion:
    text: str
    n_tokens: int
    seconds: float
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BackendInfo:
    """What a backend is, for logs and the UI."""
    kind: str           # 'local' (in-process Hugging Face model) | 'endpoint' (OpenAI-compatible API) | …
    label: str          # the model, as the user referred to it
    device: str         # 'cpu', 'cuda:0' …; an endpoint's base URL
    local: bool         # True when nothing leaves this machine
    remote_code: bool = False   # True when it runs Python shipped with the model (trust_remote_code=True)

    @property
    def where(self) -> str:
        """Short: the device, or the endpoint's host and port."""
        return urlparse(self.device).netloc or self.device


def loglik_refused(label: str) -> UserError:
    return UserError(f"Log-likelihood scoring needs the model's token probabilities; {label} is a chat "
                     "endpoint, which gives only text.",
                     "If the server also answers /v1/completions with prompt log-probs (vLLM, llama.cpp's server, "
                     "TGI, jmedlora serve), refer to it as openai-completions:MODEL@URL; otherwise use --method "
                     "generate.", code="loglik.endpoint", params={"label": label})


@contextmanager
def endpoint_errors(model_name: str) -> Iterator[None]:
    """An OpenAI client's errors as the UserErrors a user can act on (the client already retried)."""
    import openai
    try:
        yield
    except openai.AuthenticationError as exc:
        raise UserError(f"The endpoint rejected the API key: {exc.message}",
                        "Check the key in the environment variable.",
                        code="endpoint.bad_key", params={"detail": exc.message}) from exc
    except openai.NotFoundError as exc:
        raise UserError(f"The endpoint does not know model {model_name!r}: {exc.message}",
                        "Check the model name (GET /v1/models lists them).",
                        code="endpoint.unknown_model", params={"model": model_name, "detail": exc.message}) from exc
    except openai.APIConnectionError as exc:
        raise UserError(f"Cannot reach the endpoint: {exc}", "Check the base URL and that the server runs.",
                        code="endpoint.unreachable", params={"detail": str(exc)}) from exc
    except openai.APIError as exc:
        raise UserError(f"The endpoint failed after retries: {exc}", "Try again later or lower the concurrency.",
                        code="endpoint.failed", params={"detail": str(exc)}) from exc


class LocalGenerator:
    """The local Hugging Face engine: a loaded model and tokenizer, in this process."""

    supports_loglik = True

    def __init__(self, model, tokenizer, *, batch_size: int = 16, max_batch_tokens: int = 16384,
                 static_cache: bool = True, label: str | None = None, first_batch: int = 2):
        self.model = model
        self.tokenizer = tokenizer
        self.label = label or getattr(model, "name_or_path", "") or type(model).__name__
        self.batch_size = max(1, batch_size)
        self.max_batch_tokens = max_batch_tokens
        self.static_cache = static_cache
        # The first batch is small so the first answers (and an honest rate) come within seconds.
        self.first_batch = max(1, first_batch)
        self.tokenizer.padding_side = "left"

    def chat_stops(self) -> tuple[str, ...]:
        """The chat template's end of an assistant turn (e.g. ``<|im_end|>``) and the next turn's start."""
        try:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], tokenize=False)
        except Exception:  # a template that needs other roles: the EOS token still ends generation
            return ()
        end = text[text.rfind("A") + 1:].strip()
        return tuple(s for s in (end, self.tokenizer.eos_token) if s)

    def prompt_text(self, prompt: Prompt) -> str:
        if prompt.messages is not None:
            if not getattr(self.tokenizer, "chat_template", None):
                raise UserError("This model has no chat template, so --template chat cannot be used.",
                                "Use --template ja or --template en (the paper's Alpaca formats).",
                                code="template.no_chat")
            return self.tokenizer.apply_chat_template(prompt.messages, tokenize=False, add_generation_prompt=True)
        return prompt.text or ""

    def describe(self) -> BackendInfo:
        return BackendInfo(kind="local", label=self.label, device=str(self.model.device), local=True)

    def score_choices(self, questions: list[Question], prompts: list[Prompt]
                      ) -> list[tuple[dict[str, float], dict[str, float]]]:
        """Per question: (sum log-prob per letter, per character per letter); see pipelines.models.loglik."""
        texts = [self.prompt_text(p) for p in prompts]
        return loglik.score_questions(self.model, self.tokenizer, questions, texts, batch_size=self.batch_size)

    def generate(self, prompts: list[Prompt], settings: GenerationSettings, *,
                 on_tokens: Callable[[int], None] | None = None) -> Iterator[tuple[int, Completion]]:
        """``on_tokens(n)`` is called at every decoding step with the rows generated in it."""
        texts = [self.prompt_text(p) for p in prompts]
        chat = [p.messages is not None for p in prompts]
        if any(chat):
            settings = dataclasses.replace(settings, stop=tuple(dict.fromkeys(settings.stop + self.chat_stops())))
        encoded = [self.tokenizer(t, add_special_tokens=not c)["input_ids"] for t, c in zip(texts, chat)]
        lengths = [len(ids) for ids in encoded]
        order, overflow = within_context(lengths, self.context_length(), settings.max_new_tokens)
        for i, info in overflow.items():
            yield i, Completion(text="", n_tokens=0, seconds=0.0, info={"context_overflow": info})
        if order and continuous.supported(self.model, max(lengths[i] for i in order) + settings.max_new_tokens):
            rows = [Row(ids=encoded[i], max_new=settings.max_new_tokens, temperature=settings.temperature, top_p=settings.top_p,
                        top_k=sampling_top_k(self.model), repetition_penalty=settings.repetition_penalty,
                        seed=settings.seed + i if prompts[i].seed is None else prompts[i].seed,
                        stops=settings.stop, tag=i) for i in order]
            for row, seconds in self._decode(rows, on_tokens):
                yield row.tag, self._completion(row, settings, seconds)
            return
        for b, idx in enumerate(self._batches(order, lengths, settings.max_new_tokens)):
            t0 = time.perf_counter()
            seeds = [prompts[i].seed for i in idx]
            outs = self._generate_batch([texts[i] for i in idx], chat[idx[0]], settings, seed=settings.seed + b,
                                        row_seeds=seeds if None not in seeds else None, on_tokens=on_tokens)
            dt = (time.perf_counter() - t0) / len(idx)
            for i, (text, raw, n) in zip(idx, outs):
                cut = {"cut_at_tokens": n} if n >= settings.max_new_tokens else {}
                yield i, Completion(text=text, n_tokens=n, seconds=dt, info={"raw": raw, **cut})

    def context_length(self) -> int | None:
        """Positions the model can attend to (None: not stated by its config)."""
        cfg = getattr(self.model, "config", None)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(cfg, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def token_budget(self, cpu_mb: int | None = None) -> int:
        """Rows × (prompt + new tokens) per batch: ``max_batch_tokens``, and no more than the
        key/value cache of ``KV_CACHE_MB`` (CPU; on a GPU a quarter of its free memory) holds.

        The cache is allocated whole (static cache): 16,384 tokens of the embedded model are
        755 MB, of a 7B model in float32 16 GB. With 384 MB the embedded model's 1-shot
        evaluation peaked at 1.76 GB instead of 2.23 GB (``bench/bench_first_hour.py``).
        """
        tokens = kv_cache_tokens(getattr(self, "model", None), KV_CACHE_MB if cpu_mb is None else cpu_mb)
        if tokens is None:                  # an unusual config: the fixed bound alone
            return self.max_batch_tokens
        return max(1, min(self.max_batch_tokens, tokens))

    def _decode(self, rows: list[Row], on_tokens: Callable[[int], None] | None
                ) -> Iterator[tuple[Row, float]]:
        """Continuous batching (``pipelines.models.continuous``): ``rows`` in this order, as many at once
        as the key/value budget holds at the longest row's width; each finished row with its share of
        the compute time (its prompt's reading, and each step's time divided by the rows in it)."""
        capacity = max(len(r.ids) + r.max_new for r in rows)
        slots = max(1, min(self.batch_size, len(rows), self.token_budget(continuous.KV_CACHE_MB) // capacity))
        decoder = Decoder(self.model, self.tokenizer, slots=slots, capacity=capacity, on_step=on_tokens)
        cost = {id(r): 0.0 for r in rows}
        pending = list(reversed(rows))
        with torch_inference():
            while pending or decoder.rows:
                while pending and decoder.free:
                    row, t0 = pending.pop(), time.perf_counter()
                    decoder.admit(row)
                    cost[id(row)] += time.perf_counter() - t0
                    if row.done:
                        yield row, cost[id(row)]
                t0, running = time.perf_counter(), list(decoder.rows)
                ended = decoder.step()
                share = (time.perf_counter() - t0) / max(1, len(running))
                for row in running:
                    cost[id(row)] += share
                for row in ended:
                    yield row, cost[id(row)]

    def _completion(self, row: Row, settings: GenerationSettings, seconds: float) -> Completion:
        ids = row.tokens
        raw = self.tokenizer.decode(ids, skip_special_tokens=False)
        text = decode_whole_chars(self.tokenizer, ids, cut=row.finish == "length")
        cut = {"cut_at_tokens": len(ids)} if row.finish == "length" else {}
        return Completion(text=cut_at_stop(text, settings.stop), n_tokens=len(ids), seconds=seconds,
                          info={"raw": raw, **cut})

    def _batches(self, order: list[int], lengths: list[int], max_new_tokens: int) -> Iterator[list[int]]:
        return length_batches(order, lengths, max_new_tokens, rows=self.batch_size, first=self.first_batch,
                              budget=self.token_budget())

    def _generate_batch(self, texts: list[str], chat: bool, settings: GenerationSettings, seed: int,
                        row_seeds: list[int] | None = None, on_tokens: Callable[[int], None] | None = None):
        import torch
        from transformers import LogitsProcessorList

        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not chat)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        sample = settings.temperature > 0
        kwargs = dict(max_new_tokens=settings.max_new_tokens, do_sample=sample, use_cache=True,
                      repetition_penalty=settings.repetition_penalty,
                      pad_token_id=self.tokenizer.pad_token_id)
        processors = LogitsProcessorList([token_steps(on_tokens)] if on_tokens is not None else [])
        if sample and row_seeds is not None:
            # Each row samples from its own generator, so an answer depends on its prompt and
            # seed only, not on which batch it fell in (a resumed run answers as an unbroken one).
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            processors.append(RowSeededSampler(row_seeds, settings.temperature, settings.top_p, self.model.device,
                                               top_k=sampling_top_k(self.model)))
        elif sample:
            kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=sampling_top_k(self.model) or 0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if settings.stop:
            kwargs.update(stop_strings=list(settings.stop), tokenizer=self.tokenizer)
        if self.static_cache:
            kwargs["cache_implementation"] = "static"
        kwargs.update(prefill_kwargs(self.model, enc["input_ids"].shape[1]))
        if processors:
            kwargs["logits_processor"] = processors
        torch.manual_seed(seed)
        out, static_ok = generate_once(self.model, enc, kwargs)
        self.static_cache = self.static_cache and static_ok
        new = out[:, enc["input_ids"].shape[1]:]
        results = []
        for row in new:
            ids = [t for t in row.tolist() if t != self.tokenizer.pad_token_id]
            raw = self.tokenizer.decode(ids, skip_special_tokens=False)
            text = decode_whole_chars(self.tokenizer, ids, cut=len(ids) >= settings.max_new_tokens)
            results.append((cut_at_stop(text, settings.stop), raw, len(ids)))
        return results


def answered(text: str, resp, settings: GenerationSettings, t0: float) -> Completion:
    """An endpoint's answer (chat or completions) as a ``Completion``: cut at the stop strings, the
    raw text and usage kept, and where it ran out of tokens."""
    usage = resp.usage.model_dump() if resp.usage else {}
    n = usage.get("completion_tokens", 0)
    cut = {"cut_at_tokens": n or settings.max_new_tokens} if resp.choices[0].finish_reason == "length" else {}
    return Completion(text=cut_at_stop(text, settings.stop), n_tokens=n,
                      seconds=time.perf_counter() - t0, info={"usage": usage, "raw": text, **cut})


class EndpointGenerator:
    """Any OpenAI-compatible chat endpoint (ChatGPT, the workbench's own server, vLLM …)."""

    supports_loglik = False   # chat completions give text, not the probability of a given choice

    def __init__(self, base_url: str, model_name: str, *, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 4, timeout: float = 120.0, is_local: bool = False,
                 allow_remote_pii: bool = False):
        from openai import OpenAI

        key = os.environ.get(api_key_env)
        if not key and not is_local:
            raise UserError(f"No API key for {base_url}: the environment variable {api_key_env} is empty.",
                            f"export {api_key_env}=... (the key is read from the environment only, never stored).",
                            code="endpoint.no_key", params={"url": base_url, "env": api_key_env})
        self.client = OpenAI(base_url=base_url, api_key=key or "not-needed", timeout=timeout, max_retries=5)
        self.base_url, self.model_name, self.is_local = base_url, model_name, is_local
        self.concurrency = max(1, concurrency)
        self.allow_remote_pii = allow_remote_pii

    def guard_privacy(self, texts: dict[str, str]) -> None:
        """Refuse before anything is sent when text bound off this machine holds personal data
        (``texts``: what is sent, by a name the message shows: a problem id, a prompt number)."""
        if self.is_local or self.allow_remote_pii:
            return
        findings = [{"chunk_id": name, **f.to_dict()} for name, text in texts.items() for f in privacy.scan(text)]
        if findings:
            raise privacy.PrivacyBlocked(self.base_url, findings, prompts=True)

    @property
    def label(self) -> str:
        return f"{self.model_name} @ {self.base_url}"

    def describe(self) -> BackendInfo:
        return BackendInfo(kind="endpoint", label=self.label, device=self.base_url, local=self.is_local)

    def score_choices(self, questions: list[Question], prompts: list[Prompt]) -> list:
        raise loglik_refused(self.describe().label)

    def _one(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        messages = prompt.messages or [{"role": "user", "content": prompt.text or ""}]
        t0 = time.perf_counter()
        with endpoint_errors(self.model_name):
            resp = self.client.chat.completions.create(
                model=self.model_name, messages=messages, temperature=settings.temperature,
                top_p=settings.top_p, max_tokens=settings.max_new_tokens,
                seed=settings.seed if prompt.seed is None else prompt.seed,
                stop=list(settings.stop) or None)
        return answered(resp.choices[0].message.content or "", resp, settings, t0)

    def generate(self, prompts: list[Prompt], settings: GenerationSettings, *,
                 on_tokens: Callable[[int], None] | None = None) -> Iterator[tuple[int, Completion]]:
        """``on_tokens(n)``: an answer of n tokens has come back (an endpoint reports no finer)."""
        self.guard_privacy({f"prompt {i + 1}": p.text or "\n".join(m.get("content") or "" for m in p.messages or [])
                            for i, p in enumerate(prompts)})
        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = {pool.submit(self._one, p, settings): i for i, p in enumerate(prompts)}
            for fut in as_completed(futures):
                comp = fut.result()
                if on_tokens is not None:
                    on_tokens(comp.n_tokens)
                yield futures[fut], comp
