"""Progress of a generating evaluation between finished answers (``TokenMeter``): tokens so far,
their rate and an ETA, reported as ``progress`` events (``pipelines/evaluation/evaluator.py`` emits them)."""
from __future__ import annotations

import time


class TokenMeter:
    """Progress between finished answers: tokens generated, their rate and an ETA from it.

    The first step is reported at once; later ones at most every ``every`` seconds. Until an
    answer has finished, the remaining work is taken as max_new_tokens per answer (an upper
    bound); after, as the mean length of the answers so far."""

    def __init__(self, emit, *, todo: int, total: int, max_new_tokens: int, every: float = 1.0):
        self.emit, self.todo, self.total, self.max_new, self.every = emit, todo, total, max_new_tokens, every
        self.t0 = time.perf_counter()
        self.n_tokens = self.finished = self.finished_tokens = 0
        self.last = None

    def answered(self, n_tokens: int) -> None:
        self.finished += 1
        self.finished_tokens += n_tokens

    def tokens(self, n: int) -> None:
        self.n_tokens += n
        now = time.perf_counter()
        if self.last is not None and now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.t0
        rate = self.n_tokens / elapsed if elapsed > 0 else 0.0
        per_answer = self.finished_tokens / self.finished if self.finished else self.max_new
        remaining = max(0.0, self.todo * per_answer - self.n_tokens)
        self.emit({"event": "progress", "done": self.total - self.todo + self.finished, "total": self.total,
                   "tokens": self.n_tokens, "tokens_per_s": round(rate, 2),
                   "eta_s": round(remaining / rate, 1) if rate > 0 else None, "elapsed_s": round(elapsed, 2)})
