"""Log-likelihood scoring of choices (lm-eval-harness style): no text extraction at all.

For each choice, the log-probability the model gives to the choice text right after the
prompt. The model "answers" with the most likely choice(s). This measures knowledge even
for small or base models that cannot follow the answer format, which free-text metrics
(the paper's) confound with instruction following.
"""
from __future__ import annotations

from pipelines.igakuqa import Question


def choice_logprobs(model, tokenizer, requests: list[tuple[str, str]], *, batch_size: int = 16
                    ) -> list[float]:
    """Sum of log-probabilities of each ``continuation`` given its ``context``.

    Context and continuation are tokenized separately and concatenated, so the boundary
    token never merges the two (the lm-eval-harness convention).
    """
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    seqs = []
    for context, continuation in requests:
        ctx = tokenizer(context, add_special_tokens=True)["input_ids"]
        cont = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        seqs.append((ctx + cont, len(cont)))
    scores = [0.0] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i][0]))
    device = model.device
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(seqs[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):  # right padding: positions stay as in a single sequence
            toks = seqs[i][0]
            ids[row, :len(toks)] = torch.tensor(toks)
            mask[row, :len(toks)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        for row, i in enumerate(idx):
            toks, n_cont = seqs[i]
            L = len(toks)
            # token t is predicted by position t-1
            targets = torch.tensor(toks[L - n_cont:], device=logp.device)
            preds = logp[row, L - n_cont - 1:L - 1]
            scores[i] = float(preds.gather(1, targets[:, None]).sum())
    return scores


def score_questions(model, tokenizer, questions: list[Question], prompts: list[str], *,
                    batch_size: int = 16) -> list[tuple[dict[str, float], dict[str, float]]]:
    """For each question: (sum log-prob per letter, log-prob per character per letter)."""
    requests, owners = [], []
    for qi, (q, prompt) in enumerate(zip(questions, prompts)):
        for letter, text in zip(q.letters, q.choices):
            requests.append((prompt, text))
            owners.append((qi, letter, max(1, len(text))))
    flat = choice_logprobs(model, tokenizer, requests, batch_size=batch_size)
    out: list[tuple[dict, dict]] = [({}, {}) for _ in questions]
    for (qi, letter, n_chars), lp in zip(owners, flat):
        out[qi][0][letter] = lp
        out[qi][1][letter] = lp / n_chars
    return out
