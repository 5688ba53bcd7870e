"""The local server's model engine: concurrent requests share forward passes (continuous batching).

Each request becomes a ``Job``; one worker thread decodes the jobs' rows together in one key/value
cache (``pipelines.models.continuous``, as the evaluation engine does): a request arriving while
others run takes a free slot and joins them at the next step, and a row that ends leaves at once,
so nobody waits for the longest answer of a batch. Rows keep their own settings (greedy or sampled
with their own seed, stop strings, a JSON schema), so requests with different settings share steps
and a seeded request answers the same whatever runs beside it. Every row's tokens grow in place,
so a streaming client sees its own text as it grows and a waiting one sees that the engine is
moving (``steps``, or its own prompt being read, which takes minutes for long prompts on a loaded
CPU): timeouts on a loopback server can follow progress instead of a wall clock.

A request identical to one still running (a client that timed out and retried) is attached
to the running job instead of being generated a second time.

Jobs of the legacy completions API (``pipelines.models.server_completions``) share the same queue
and decoding; those asking for log-probabilities are scored afterwards by one teacher-forced
pass over prompt + completion (``prompt_logprobs``: the model's raw log-softmax, as vLLM reports it).
One asking for a single token with log-probabilities (lm-evaluation-harness's ``echo`` request) takes
that token from the scoring pass's last position instead of a decoding step: one pass, not two.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Iterator

from pipelines.core.errors import UserError
from pipelines.models import continuous, structured
from pipelines.models.decoding import RowSeededSampler, sampling_top_k
from pipelines.models.device_memory import kv_cache_tokens, torch_inference
from pipelines.models.prompt_logprobs import ScoreRow, score_rows, top_tokens

PROMPT_FORMATS = ("auto", "chat", "ja", "en")
# A decoder's least width (prompt + answer positions), so requests after the first fit beside it; longer
# ones widen the slots (``_take``). Datagen on the sample chunks: prompts 700-2,800, answers up to 512.
SERVE_WIDTH = 2048


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
    # The completions API: the k most likely tokens per position to report (None: no log-probs),
    # whether the prompt's tokens are scored too (echo), prompt tokens its text is decoded after,
    # and (filled by the worker) per scored token: (log-prob, [(token, log-prob)] of the k most likely).
    logprobs: int | None = None
    score_prompt: bool = False
    context: list[int] = field(default_factory=list)
    scores: list[tuple[float, list[tuple[int, float]]]] | None = None


def _cut(text: str, stops: list[str]) -> tuple[str, bool]:
    idx = [text.find(s) for s in stops if s in text]
    return (text[:min(idx)], True) if idx else (text, False)


class ChatEngine:
    """A loaded model that turns chat messages into completions, several sequences per forward pass."""

    def __init__(self, model, tokenizer, *, model_id: str, prompt_format: str = "auto", max_tokens: int = 512,
                 batch_size: int = 8):
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
        self.context = getattr(model.config, "max_position_embeddings", None) or 2048
        # Rows are decoded in one key/value cache (``continuous``); a sliding-window model's rows stay
        # within its window, where the window changes nothing.
        self.width_limit = self.context = min(self.context, continuous.sliding_window(model) or self.context)
        if not continuous.supported(model, self.width_limit):
            raise UserError("This model's attention cannot be batched by the server (flash or flex attention, "
                            "or capped attention scores).",
                            "Load it with attn_implementation='sdpa' or 'eager', or serve it with vLLM or llama.cpp.",
                            code="serve.unsupported_attention")
        self.kv_tokens = kv_cache_tokens(model, continuous.KV_CACHE_MB) or 16384
        self.widest = 0                 # most rows in one decoding step so far
        self._decoder = None
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
        """Continuous batching: waiting jobs join the running rows at the next step, as slots free."""
        while True:
            with self._cond:
                while not self._queue and (self._decoder is None or not self._decoder.rows):
                    if not self._cond.wait(timeout=30):
                        self._worker, self._decoder = None, None     # idle: the cache's memory goes back
                        return
                taken, shape = self._take()
            with torch_inference():        # no autograd records in the worker thread
                self._shape(*shape)
                for job in taken:
                    self._start(job)
                if self._decoder is not None and self._decoder.rows:
                    self._step()

    @staticmethod
    def _scored_only(job: Job) -> bool:
        return job.max_new < 1 or (job.logprobs is not None and job.max_new == 1)

    def _take(self) -> tuple[list[Job], tuple[int, int]]:
        """Queued jobs to start now, in order (with the lock held): those the scoring pass answers, and
        as many others as the decoder has slots for. A job longer than the slots widens them (fewer,
        wider slots in the same memory) if the running rows still fit; else it waits for some to end.
        Returns them and the (slots, positions) the decoder is to have for them."""
        decoder = self._decoder
        shape = (decoder.cache.slots, decoder.cache.capacity) if decoder is not None else (0, 0)
        taken, rows = [], len(decoder.rows) if decoder is not None else 0
        for job in list(self._queue):
            if self._scored_only(job):
                taken.append(job)
                continue
            need = len(job.ids) + job.max_new
            fitting = self._shape_for(need)
            if rows == 0:       # idle: as many slots as the budget holds at this width (a wide job's few may remain)
                shape = fitting if need > shape[1] or shape[0] < fitting[0] else shape
                self.generate_calls += 1       # a new run of batched steps begins
            elif need > shape[1] and fitting[0] > rows:
                shape = fitting
            elif need > shape[1] or rows >= shape[0]:
                break
            taken.append(job)
            rows += 1
        self._queue = [j for j in self._queue if j not in taken]
        return taken, shape

    def _shape_for(self, need: int) -> tuple[int, int]:
        """(slots, positions) of a cache at least ``need`` positions wide (``SERVE_WIDTH`` if more, so
        the requests that follow fit too), with as many slots as the key/value budget holds."""
        capacity = max(need, min(self.width_limit, -(-max(need, SERVE_WIDTH) // 256) * 256))
        return max(1, min(self.batch_size, self.kv_tokens // capacity)), capacity

    def _shape(self, slots: int, capacity: int) -> None:
        """Make or reshape the decoder as ``_take`` planned (outside the lock: this copies the cache)."""
        if not slots:
            return
        if self._decoder is None:
            self._decoder = continuous.Decoder(self.model, self.tokenizer, slots=slots, capacity=capacity)
        elif (slots, capacity) != (self._decoder.cache.slots, self._decoder.cache.capacity):
            self._decoder.reshape(slots, capacity)

    def _start(self, job: Job) -> None:
        try:
            if self._scored_only(job):
                self._run([job])
                self._finish(job)
                return
            kw = job.kwargs
            row = continuous.Row(ids=job.ids, max_new=job.max_new, temperature=kw.get("temperature") or 0.0,
                      top_p=kw.get("top_p") or 1.0, top_k=kw.get("top_k"), seed=job.seed,
                      stops=tuple(job.stops), allowed=job.allowed, tag=job)
            job.tokens = row.tokens          # the same list: streaming clients see it grow
            job.prefilling = True
            try:
                self._decoder.admit(row)
            finally:
                job.prefilling = False
            self.steps += 1
            if row.done:
                self._end(row)
        except BaseException as exc:        # this client gets the error; the others run on
            self._fail([job], exc)

    def _step(self) -> None:
        rows = list(self._decoder.rows)
        self.widest = max(self.widest, len(rows))
        try:
            ended = self._decoder.step()
        except BaseException as exc:        # a failed step fails its rows (their cache is suspect)
            self._decoder = None
            self._fail([r.tag for r in rows], exc)
            return
        self.steps += 1
        for row in ended:
            self._end(row)

    def _end(self, row) -> None:
        job = row.tag
        try:
            if job.logprobs is not None:
                self._score([job], [])
        except BaseException as exc:
            self._fail([job], exc)
            return
        self._finish(job)

    def _fail(self, jobs: list[Job], exc: BaseException) -> None:
        for job in jobs:
            job.error = exc
            self._finish(job)

    def _finish(self, job: Job) -> None:
        with self._cond:
            if self._running.get(job.digest) is job:
                del self._running[job.digest]
        job.done.set()

    def _run(self, batch: list[Job]) -> None:
        """Jobs answered by the scoring pass alone: echo with max_tokens 0, and a single token with
        log-probs (lm-evaluation-harness's request), read off the pass's last position."""
        self._score(batch, [j for j in batch if j.max_new == 1])

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
