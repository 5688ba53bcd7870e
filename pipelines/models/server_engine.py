"""The local server's model engine: concurrent requests share forward passes.

Each request becomes a ``Job``; one worker thread takes every queued job with the same
decoding settings (up to ``batch_size``) and runs them as one left-padded ``generate``, as the
evaluation engine (``pipelines.models.generation.LocalGenerator``) batches questions. A logits
processor records every row's tokens at every step, so a streaming client sees its own text
as it grows and a waiting one sees that the engine is moving (``steps``, or its own batch in the
prompt's forward pass, which takes minutes for long prompts on a loaded CPU): timeouts on a
loopback server can follow progress instead of a wall clock.

A request identical to one still running (a client that timed out and retried) is attached
to the running job instead of being generated a second time.

Jobs of the legacy completions API (``pipelines.models.server_completions``) share the same queue,
batches and decoding; those asking for log-probabilities are scored afterwards by one teacher-forced
pass over prompt + completion (``prompt_logprobs``: the model's raw log-softmax, as vLLM reports it).
One asking for a single token with log-probabilities (lm-evaluation-harness's ``echo`` request) takes
that token from the scoring pass's last position instead of a ``generate`` call: one pass, not two.

The worker waits up to ``gather_s`` after the first request of a batch for others: clients that
send together (datagen's requests in flight, each sending its next chunk as its answer arrives)
then share forward passes instead of queuing behind a batch of one.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from pipelines.core.errors import UserError
from pipelines.models import structured
from pipelines.models.decoding import RowSeededSampler, prefill_kwargs, sampling_top_k
from pipelines.models.prompt_logprobs import ScoreRow, score_rows, top_tokens

PROMPT_FORMATS = ("auto", "chat", "ja", "en")
# How long the worker waits after a batch's first request for others (seconds): a batch of
# seconds-long generations can afford a quarter second.
GATHER_S = 0.25


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type_, code


@dataclass(eq=False)
class Job:
    ids: list[int]
    kwargs: dict                        # generate() sampling arguments, shared by a batch
    max_new: int
    stops: list[str]
    allowed: object                     # prefix_allowed_tokens_fn for this row, or None
    digest: str
    seed: int | None = None
    tokens: list[int] = field(default_factory=list)   # generated so far (updated every step)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    prefilling: bool = False            # its batch is in the prompt's forward pass (long prompts: minutes on a CPU)
    queued_at: float = field(default_factory=time.monotonic)
    # The completions API: the k most likely tokens per position to report (None: no log-probs),
    # whether the prompt's tokens are scored too (echo), prompt tokens its text is decoded after,
    # and (filled by the worker) per scored token: (log-prob, [(token, log-prob)] of the k most likely).
    logprobs: int | None = None
    score_prompt: bool = False
    context: list[int] = field(default_factory=list)
    scores: list[tuple[float, list[tuple[int, float]]]] | None = None

    @property
    def batch_key(self) -> str:
        # Not the seed: each sampled row draws from its own generator (``RowSeededSampler``).
        return json.dumps([sorted(self.kwargs.items()), self.stops], default=str)


def _cut(text: str, stops: list[str]) -> tuple[str, bool]:
    idx = [text.find(s) for s in stops if s in text]
    return (text[:min(idx)], True) if idx else (text, False)


class ChatEngine:
    """A loaded model that turns chat messages into completions, several sequences per forward pass."""

    def __init__(self, model, tokenizer, *, model_id: str, prompt_format: str = "auto", max_tokens: int = 512,
                 batch_size: int = 8, gather_s: float | None = None):
        if prompt_format not in PROMPT_FORMATS:
            raise UserError(f"Unknown prompt format {prompt_format!r}.", f"Use one of {', '.join(PROMPT_FORMATS)}.",
                            code="serve.prompt_format",
                            params={"value": str(prompt_format), "known": ", ".join(PROMPT_FORMATS)})
        if prompt_format == "auto":
            prompt_format = "chat" if getattr(tokenizer, "chat_template", None) else "ja"
        if prompt_format == "chat" and not getattr(tokenizer, "chat_template", None):
            raise UserError("This model's tokenizer has no chat template.", "Serve it with --prompt-format ja or en.",
                            code="serve.no_chat")
        self.model, self.tokenizer = model, tokenizer
        self.model_id, self.prompt_format, self.default_max_tokens = model_id, prompt_format, max_tokens
        self.batch_size = max(1, batch_size)
        self.gather_s = GATHER_S if gather_s is None else gather_s
        self.context = getattr(model.config, "max_position_embeddings", None) or 2048
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.steps = 0                  # forward passes so far: the progress a waiting client can see
        self.generate_calls = 0
        self._queue: list[Job] = []
        self._running: dict[str, Job] = {}
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None

    # -- requests -> jobs ------------------------------------------------------------

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        if self.prompt_format == "chat":
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        from pipelines.tasks.prompts import load_template
        user = [m["content"] for m in messages if m["role"] == "user"]
        text = load_template(self.prompt_format).render(user[-1] if user else "", "")
        return self.tokenizer(text)["input_ids"]

    def _job(self, req: dict) -> Job:
        ids = self.prompt_ids(_messages(req))
        max_new = req.get("max_completion_tokens") or req.get("max_tokens") or self.default_max_tokens
        if not isinstance(max_new, int) or max_new < 1:
            raise ApiError(400, "max_tokens must be a positive integer.")
        max_new = min(max_new, self.context - len(ids))      # a chat answer is cut at the context, not refused
        if max_new < 1:
            raise ApiError(400, f"The prompt has {len(ids)} tokens; this model's context is {self.context}.",
                           code="context_length_exceeded")
        try:
            allowed = structured.constraint(self.tokenizer, req.get("response_format"), max_new)
        except structured.FormatError as exc:
            raise ApiError(400, str(exc), code="invalid_response_format") from None
        return self.make_job(ids, req, max_new, allowed=allowed)

    def make_job(self, ids: list[int], req: dict, max_new: int, *, allowed=None, key: str = "", **extra) -> Job:
        """A job for prompt ``ids`` with ``req``'s sampling settings (``temperature``, ``top_p``, ``top_k``,
        ``stop``, ``seed``); ``key`` tells apart prompts of one request in the retry digest."""
        if len(ids) + max_new > self.context:
            raise ApiError(400, f"The prompt has {len(ids)} tokens and asks for {max_new} more; this model's "
                                f"context is {self.context}.", code="context_length_exceeded")
        temperature = float(req["temperature"]) if req.get("temperature") is not None else 1.0
        top_p = float(req["top_p"]) if req.get("top_p") is not None else 1.0
        # top_k: vLLM's extension of the API; by default the model's own (none: OpenAI samples the whole vocabulary).
        top_k = int(req["top_k"]) if req.get("top_k") not in (None, -1, 0) else sampling_top_k(self.model)
        kwargs = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k) if temperature > 0 else \
            dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        stop = req.get("stop") or []
        stops = [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str) and s]
        body = {k: v for k, v in req.items() if k not in ("stream", "stream_options")}
        digest = hashlib.sha256(json.dumps([body, key], sort_keys=True, default=str).encode()).hexdigest()
        seed = int(req["seed"]) if req.get("seed") is not None else None
        return Job(ids=ids, kwargs=kwargs, max_new=max_new, stops=sorted(stops), allowed=allowed, digest=digest,
                   seed=seed, **extra)

    def submit(self, req: dict) -> Job:
        """Queue a request (or join the identical one still running); errors in it are raised here."""
        return self.enqueue([self._job(req)])[0]

    def enqueue(self, jobs: list[Job]) -> list[Job]:
        """Queue jobs together (a request's prompts share a batch); each one identical to a job still
        running is that job instead."""
        out = []
        with self._cond:
            for job in jobs:
                running = self._running.get(job.digest)
                if running is not None and not running.done.is_set():
                    out.append(running)
                    continue
                self._running[job.digest] = job
                self._queue.append(job)
                out.append(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="jmedlora-serve-engine", daemon=True)
                self._worker.start()
            self._cond.notify()
        return out

    def text(self, job: Job, tokens: list[int]) -> str:
        """The text of a job's generated tokens, decoded after its ``context`` (a SentencePiece word's
        leading space survives only after a preceding token)."""
        text = self.tokenizer.decode(job.context + tokens, skip_special_tokens=True)
        return text[len(self.tokenizer.decode(job.context, skip_special_tokens=True)):] if job.context else text

    def result(self, job: Job) -> tuple[str, int, int, str]:
        """(text, prompt tokens, completion tokens, finish reason) once the job has finished."""
        job.done.wait()
        if job.error is not None:
            raise job.error
        text, hit = _cut(self.text(job, job.tokens), job.stops)
        ended = bool(job.tokens) and job.tokens[-1] == self.tokenizer.eos_token_id
        reason = "stop" if hit or ended or len(job.tokens) < job.max_new else "length"
        return text, len(job.ids), len(job.tokens), reason

    def complete(self, req: dict) -> tuple[str, int, int, str]:
        return self.result(self.submit(req))

    def follow(self, job: Job, poll: float = 0.5) -> Iterator[str | None]:
        """The job's text in pieces as it grows; ``None`` while it waits but the engine is moving.

        A stop string ends the text and is never half sent: as many characters as the
        longest stop are held back until the job ends.
        """
        hold = max((len(s) for s in job.stops), default=0)
        sent, seen_steps = 0, self.steps
        while True:
            finished = job.done.wait(poll)
            if finished and job.error is not None:
                raise job.error
            text, hit = _cut(self.text(job, list(job.tokens)), job.stops)
            if not finished:        # half a multi-byte character: wait for the rest (at the end, send it as it is)
                text = text.rstrip("\ufffd")
            upto = len(text) if (finished or hit) else max(sent, len(text) - hold)
            if upto > sent:
                yield text[sent:upto]
                sent = upto
            elif self.steps != seen_steps or job.prefilling:
                yield None
            seen_steps = self.steps
            if finished or hit:
                return

    def stream(self, req: dict) -> Iterator[str]:
        return (piece for piece in self.follow(self.submit(req)) if piece)

    # -- the worker ------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    if not self._cond.wait(timeout=30):
                        self._worker = None
                        return
                deadline = self._queue[0].queued_at + self.gather_s
                while len(self._queue) < self.batch_size and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                key = self._queue[0].batch_key
                batch = [j for j in self._queue if j.batch_key == key][:self.batch_size]
                self._queue = [j for j in self._queue if j not in batch]
            try:
                self._run(batch)
            except BaseException as exc:  # each waiting client gets the error; the worker lives on
                for job in batch:
                    job.error = exc
            finally:
                with self._cond:
                    for job in batch:
                        if self._running.get(job.digest) is job:
                            del self._running[job.digest]
                for job in batch:
                    job.done.set()

    def _run(self, batch: list[Job]) -> None:
        # A single token with log-probs is read off the scoring pass; nothing to do for max_tokens=0.
        quick = [j for j in batch if j.logprobs is not None and j.max_new == 1]
        generated = [j for j in batch if j.max_new >= 1 and j not in quick]
        if generated:
            self._generate(generated)
        if any(j.logprobs is not None for j in batch):
            self._score([j for j in batch if j.logprobs is not None], quick)

    def _score(self, jobs: list[Job], quick: list[Job]) -> None:
        """Every log-prob job's (prompt and) generated tokens scored in one pass; a ``quick`` job's one
        token drawn from the distribution after its prompt, as ``generate`` would draw it."""
        for job in jobs:
            job.prefilling = True
        rows = [ScoreRow(job.ids + job.tokens, 1 if job.score_prompt else len(job.ids), job.logprobs,
                         want_next=job in quick) for job in jobs]
        try:
            scored = score_rows(self.model, rows)
        finally:
            self.steps += 1
            for job in jobs:
                job.prefilling = False
        for job, row in zip(jobs, scored):
            if job in quick:
                last = row.next_logprobs
                token = self._draw(job, last)
                values, ids = last.topk(job.logprobs)
                lp = float(last[token])
                row.scores.append((lp, top_tokens(ids.tolist(), values.tolist(), job.logprobs, token, lp)))
                job.tokens = [token]
            job.scores = row.scores

    def _draw(self, job: Job, logprobs) -> int:
        """The next token from one position's log-probs: greedy, or sampled with the job's own seeded generator."""
        if job.kwargs.get("do_sample"):
            seed = job.seed if job.seed is not None else secrets.randbits(63)
            kw = job.kwargs
            logprobs = RowSeededSampler([seed], kw["temperature"], kw["top_p"], logprobs.device,
                                        top_k=kw["top_k"])(None, logprobs[None])[0]
        return int(logprobs.argmax())

    def _generate(self, batch: list[Job]) -> None:
        import torch
        from transformers import LogitsProcessor, LogitsProcessorList

        width = max(len(j.ids) for j in batch)
        input_ids = torch.tensor([[self.pad_id] * (width - len(j.ids)) + j.ids for j in batch],
                                 device=self.model.device)
        mask = torch.tensor([[0] * (width - len(j.ids)) + [1] * len(j.ids) for j in batch], device=self.model.device)
        engine = self

        class Progress(LogitsProcessor):
            def __call__(self, ids, scores):
                engine.steps += 1
                for row, job in enumerate(batch):
                    job.tokens = ids[row, width:].tolist()
                    job.prefilling = False
                return scores

        for job in batch:
            job.prefilling = True

        first = batch[0]
        kwargs = dict(first.kwargs, max_new_tokens=max(j.max_new for j in batch), pad_token_id=self.pad_id,
                      logits_processor=LogitsProcessorList([Progress()]))
        allowed = structured.per_row([j.allowed for j in batch], len(self.tokenizer))
        if allowed:
            kwargs["prefix_allowed_tokens_fn"] = allowed
        if first.stops:
            kwargs.update(stop_strings=first.stops, tokenizer=self.tokenizer)
        kwargs.update(prefill_kwargs(self.model, width))
        if first.kwargs.get("do_sample"):
            # A seeded request answers the same whatever else shares its batch: every row samples
            # from its own generator (an unseeded one from a fresh random seed).
            seeds = [j.seed if j.seed is not None else secrets.randbits(63) for j in batch]
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            kwargs["logits_processor"].append(RowSeededSampler(seeds, first.kwargs["temperature"], first.kwargs["top_p"],
                                                               self.model.device, top_k=first.kwargs["top_k"]))
        self.generate_calls += 1
        try:
            with torch.inference_mode():
                out = self.model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        finally:
            for job in batch:
                job.prefilling = False
        eos = self.tokenizer.eos_token_id
        for row, job in enumerate(batch):
            new = out[row, width:].tolist()[:job.max_new]
            if eos in new:          # what follows a row's end is padding
                new = new[:new.index(eos) + 1]
            while new and new[-1] == self.pad_id != eos:   # a row ended by a stop string
                new.pop()
            job.tokens = new


def _messages(req: dict) -> list[dict]:
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content} objects.", code="invalid_messages")
    out = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "developer", "tool"):
            raise ApiError(400, "Each message needs a role (system, user, assistant) and content.")
        content = m.get("content") or ""
        if isinstance(content, list):   # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        out.append({"role": "system" if m["role"] == "developer" else m["role"], "content": str(content)})
    return out
