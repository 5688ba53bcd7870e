"""Per-token log-probabilities of whole sequences: what the server's completions API reports
(``logprobs``, ``echo``), the prompt's tokens included.

The model's raw log-softmax at each position (before temperature or top-p, as vLLM reports it),
computed teacher-forced in one pass over prompt + completion. The same memory rule as
``pipelines.models.loglik`` (whose decoder/head split and estimate this reuses): the decoder
returns hidden states, and the language-model head and ``log_softmax`` run on a bounded chunk of
positions at a time, so a long prompt never makes a sequence × vocabulary float tensor; rows are
batched under the same memory budget, longest first.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.models.loglik import LoglikConfig, _Scorer

MAX_HEAD_CHUNK = 1024     # positions through the head at once, at most (fewer when the budget says so)


@dataclass(frozen=True)
class ScoreRow:
    ids: list[int]              # the whole sequence: prompt, then any generated tokens
    first: int                  # the first token scored (≥ 1: the first token has nothing before it)
    top: int = 0                # how many most likely tokens to report per position
    want_next: bool = False     # also the log-probs of the position after the last token


@dataclass
class RowScores:
    # per scored token: (its log-prob, the ``top`` most likely [(token, log-prob)] and the token itself)
    scores: list[tuple[float, list[tuple[int, float]]]] = field(default_factory=list)
    next_logprobs: object = None    # a vocabulary-long tensor on the model's device, when asked for


def top_tokens(ids: list[int], values: list[float], k: int, token: int, logprob: float) -> list[tuple[int, float]]:
    """The k most likely tokens (from descending ``ids``/``values``), with ``token`` added when it is not
    among them (as vLLM does, so a client can compare the token with the best alternative)."""
    top = list(zip(ids[:k], values[:k]))
    return top if token in ids[:k] else top + [(token, logprob)]


class _RowScorer(_Scorer):
    """``loglik``'s decoder, head and memory estimate, scoring every position of plain causal rows."""

    def __init__(self, model, memory_mb: int | None):
        super().__init__(model, LoglikConfig(memory_mb=memory_mb))
        budget, self.most_rows = self._budget()
        self.budget = budget
        self.head_chunk = max(1, min(MAX_HEAD_CHUNK, budget // (2 * self.row_bytes)))

    def run(self, rows: list[ScoreRow]) -> list[RowScores]:
        out = [RowScores() for _ in rows]
        order = sorted(range(len(rows)), key=lambda r: -len(rows[r].ids))
        start = 0
        while start < len(order):
            width, n = len(rows[order[start]].ids), 1
            while (start + n < len(order) and n < self.most_rows
                   and self._cost(n + 1, width, self.head_chunk) <= self.budget):
                n += 1
            self._batch([rows[r] for r in order[start:start + n]], [out[r] for r in order[start:start + n]], width)
            start += n
        return out

    def _batch(self, rows: list[ScoreRow], out: list[RowScores], width: int) -> None:
        import torch

        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):      # right padding: default positions are right for the real tokens
            ids[r, :len(row.ids)] = torch.tensor(row.ids, dtype=torch.long)
            mask[r, :len(row.ids)] = 1
        hidden = self.decoder(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                              use_cache=False).last_hidden_state.reshape(len(rows) * width, -1)
        # (row, flat position, target token or -1 for the position after the last token)
        wanted = [(r, r * width + p, row.ids[p + 1]) for r, row in enumerate(rows)
                  for p in range(max(0, row.first - 1), len(row.ids) - 1)]
        wanted += [(r, r * width + len(row.ids) - 1, -1) for r, row in enumerate(rows) if row.want_next]
        for s in range(0, len(wanted), self.head_chunk):
            chunk = wanted[s:s + self.head_chunk]
            at = torch.tensor([p for _, p, _ in chunk], device=self.device)
            logp = torch.log_softmax(self.head(hidden[at]).float(), dim=-1)
            targets = torch.tensor([max(t, 0) for _, _, t in chunk], device=self.device)
            lps = logp.gather(1, targets[:, None])[:, 0].tolist()
            k = max(rows[r].top for r, _, _ in chunk)
            top_v, top_i = logp.topk(k, dim=-1) if k else (None, None)
            top_v, top_i = (top_v.tolist(), top_i.tolist()) if k else ([[]] * len(chunk), [[]] * len(chunk))
            for j, (r, _, target) in enumerate(chunk):
                if target < 0:
                    out[r].next_logprobs = logp[j].clone()
                else:
                    out[r].scores.append((lps[j], top_tokens(top_i[j], top_v[j], rows[r].top, target, lps[j])))


def score_rows(model, rows: list[ScoreRow], *, memory_mb: int | None = None) -> list[RowScores]:
    """Each row's scored tokens, in order (and the next position's log-probs where asked)."""
    import torch

    with torch.inference_mode():
        return _RowScorer(model, memory_mb).run(rows)
