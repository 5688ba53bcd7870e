"""Sending a generation run's chunks and storing their answers (``ChunkDispatch``).

``concurrency`` requests are in flight (``chunk_requests.send`` asks, retries and streams),
within the run's request and token budget. Each answer is parsed (``qa_parse``) and stored with
its cache row in one transaction (``store.ingest``), and the counters and progress events move
with it; answers in flight are followed as they stream in. Chunks answered by an earlier run are
read back from the cache (``replay``), never re-sent. On a crash or Ctrl-C the answers that have
arrived are cached before leaving, so the next run resumes without paying for them again.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

from pipelines.core.workspace import Workspace
from pipelines.data import store as datastore
from pipelines.data.chunk_prompts import ChunkRequest
from pipelines.data.chunk_requests import Fatal, request_seed, send
from pipelines.data.qa_parse import parse_pairs

# The least time between two "still writing" progress events: a chunk on a CPU takes minutes,
# and its counts move only when it ends.
RECEIVING_EVERY_S = 2.0


class Emitter:
    """``on_event`` called under one lock: events come from the request threads too, and the
    counters they carry change under the same lock."""

    def __init__(self, on_event: Callable[[dict], None] | None):
        self.on_event = on_event
        self.lock = threading.RLock()

    def __call__(self, event: dict) -> None:
        if self.on_event:
            with self.lock:
                self.on_event(event)


class _Pool(ThreadPoolExecutor):
    """On Ctrl-C, leaves without waiting for the requests in flight (their answers are not awaited)."""

    def __exit__(self, exc_type, exc, tb):
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        self.shutdown(wait=not interrupted, cancel_futures=interrupted)
        return False


@dataclass
class Counters:
    total: int = 0
    done: int = 0
    cached: int = 0
    requests: int = 0
    retries: int = 0
    records: int = 0
    added: int = 0
    unparseable: int = 0
    empty_responses: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    error_messages: list = field(default_factory=list)

    def snapshot(self) -> dict:
        d = asdict(self)
        d.pop("error_messages")
        return d


class ChunkDispatch:
    """One run's chunks: sent, answered, stored and counted. ``config`` is the run's ``DatagenConfig``;
    after ``send_all``, ``fatal`` or ``stopped_by`` say what ended it early, if anything did."""

    def __init__(self, ws: Workspace, config, model: str, prompt_version: str, emit: Emitter, *,
                 total: int, cached: int):
        self.ws, self.config, self.model, self.prompt_version, self.emit = ws, config, model, prompt_version, emit
        self.n = Counters(total=total, cached=cached)
        self.t_start = time.perf_counter()
        self.fatal: str | None = None           # a refusal every further request would hit too
        self.stopped_by: str | None = None      # the budget that ran out
        self._receiving: dict[str, int] = {}   # chunk id -> characters of its answer arrived so far
        self._noted = self.t_start
        self._inflight: dict[Future, ChunkRequest] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    # -- progress and storing -----------------------------------------------------

    def _receiving_counts(self) -> dict:
        return {"receiving": len(self._receiving), "receiving_chars": sum(self._receiving.values())}

    def writing(self, chunk_id: str, chars: int) -> None:
        """Progress while answers stream in (called from the request threads)."""
        with self.emit.lock:
            self._receiving[chunk_id] = self._receiving.get(chunk_id, 0) + chars
            now = time.perf_counter()
            if now - self._noted >= RECEIVING_EVERY_S:
                self._noted = now
                self.emit({"event": "progress", "elapsed_s": round(now - self.t_start, 3), "eta_s": None,
                           **self.n.snapshot(), **self._receiving_counts()})

    def store(self, item: ChunkRequest, text: str, usage: dict | None = None, cache: dict | None = None) -> None:
        """Parse one answer and store its records (and, for a fresh answer, its ``cache`` row)."""
        c, n = item.chunk, self.n
        parsed = parse_pairs(text)
        prov = {"source_doc": c.doc, "chunk_id": c.id, "model": self.model, "prompt_version": self.prompt_version}
        n.added += datastore.ingest(self.ws, dataset=self.config.dataset, key=item.key, provenance=prov,
                                    pairs=parsed.pairs, response=text, leftovers=parsed.leftovers, cache=cache)
        n.done += 1
        n.records += len(parsed.pairs)
        n.unparseable += len(parsed.leftovers)
        n.empty_responses += not text.strip()
        if usage:
            for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
                setattr(n, k, getattr(n, k) + int(usage.get(k) or 0))
        elapsed = self.elapsed()
        answered = n.done - n.cached          # ETA from the chunks answered by this run, not the cache
        eta = round(elapsed / answered * (n.total - n.done), 1) if usage is not None and answered > 0 else None
        with self.emit.lock:
            self._receiving.pop(c.id, None)
            self.emit({"event": "progress", "chunk_id": c.id, "source_doc": c.doc, "new_records": len(parsed.pairs),
                       "elapsed_s": round(elapsed, 3), "eta_s": eta, **n.snapshot(), **self._receiving_counts()})

    def replay(self, items: list[ChunkRequest]) -> None:
        """Work done by an earlier (perhaps interrupted) run: read back from the cache, nothing sent."""
        for item in items:
            self.store(item, datastore.cached_response(self.ws, item.key)["response"])

    # -- sending --------------------------------------------------------------------

    def budget_left(self) -> str | None:
        """Why no further request may be sent, or None."""
        config, n = self.config, self.n
        if config.max_requests is not None and n.requests >= config.max_requests:
            return f"request budget of {config.max_requests} reached"
        if config.max_tokens_budget is not None and n.total_tokens >= config.max_tokens_budget:
            return f"token budget of {config.max_tokens_budget} reached"
        return None

    def _emit_retry(self, event: dict) -> None:
        with self.emit.lock:               # called from worker threads
            self.n.retries += 1
            self._receiving.pop(event.get("chunk_id"), None)      # the answer starts again
            self.emit(event)

    def send_all(self, client, items: list[ChunkRequest], stop: threading.Event, local: bool) -> None:
        """Send ``items``, ``concurrency`` at a time, storing each answer as it arrives, until all are
        answered, ``stop`` is set, the budget runs out or the endpoint refuses (``fatal``)."""
        json_refused = threading.Event()     # once refused, every later request gets the free-text prompt
        queue = iter(items)
        with _Pool(self.config.concurrency) as pool:
            def submit(item: ChunkRequest) -> Future:
                return pool.submit(send, client, self.config, self.model, item.prompts, self._emit_retry,
                                   item.chunk.id, stop, json_refused, local, request_seed(self.config.seed, item.key),
                                   lambda chars, cid=item.chunk.id: self.writing(cid, chars))

            self._fill(queue, submit, stop)
            while self._inflight:
                try:
                    finished, _ = wait(self._inflight, return_when=FIRST_COMPLETED)
                except BaseException as exc:
                    self._cache_inflight(stop, wait_for_all=not isinstance(exc, KeyboardInterrupt))
                    raise
                for fut in finished:
                    self._answered(fut, stop)
                self._fill(queue, submit, stop)

    def _fill(self, queue: Iterator[ChunkRequest], submit: Callable[[ChunkRequest], Future],
              stop: threading.Event) -> None:
        while len(self._inflight) < self.config.concurrency and not stop.is_set() and self.fatal is None:
            reason = self.budget_left()
            if reason:
                self.stopped_by = self.stopped_by or reason
                return
            item = next(queue, None)
            if item is None:
                return
            self.n.requests += 1
            self._inflight[submit(item)] = item

    def _answered(self, fut: Future, stop: threading.Event) -> None:
        """One finished request: its answer stored, or its error counted (a refusal ends the run)."""
        item = self._inflight.pop(fut)
        c = item.chunk
        try:
            text, usage, seconds, attempts = fut.result()
        except Fatal as exc:
            self.fatal = self.fatal or str(exc)
            stop.set()
            return
        except Exception as exc:  # retries exhausted or a request the server refused
            self.n.errors += 1
            msg = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
            self.n.error_messages.append({"chunk_id": c.id, "message": msg})
            with self.emit.lock:
                self._receiving.pop(c.id, None)
            self.emit({"event": "request_error", "chunk_id": c.id, "message": msg, **self.n.snapshot()})
            return
        try:
            self.store(item, text, usage, cache=dict(chunk_id=c.id, prompt_hash=item.prompt_hash, model=self.model,
                                                     usage=usage, seconds=seconds, attempts=attempts))
        except BaseException as exc:
            self._cache_inflight(stop, wait_for_all=not isinstance(exc, KeyboardInterrupt))
            raise

    def _cache_inflight(self, stop: threading.Event, wait_for_all: bool = True) -> None:
        # Interrupted (a crash in on_event): answers already on their way are still cached, so
        # the next run does not pay for them again. Ctrl-C (wait_for_all=False) keeps only those that
        # arrived: the user asked to stop now, not after the slowest request.
        stop.set()
        for fut, item in self._inflight.items():
            if not wait_for_all and not fut.done():
                continue
            try:
                text, usage, seconds, attempts = fut.result()
            except Exception:
                continue
            datastore.save_response(self.ws, key=item.key, chunk_id=item.chunk.id, prompt_hash=item.prompt_hash,
                                    model=self.model, response=text, usage=usage, seconds=seconds, attempts=attempts)
