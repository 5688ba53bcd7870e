"""Per-token log-probs of whole sequences against a plain forward pass over the whole vocabulary."""
from __future__ import annotations

import pytest

from pipelines.models.prompt_logprobs import ScoreRow, _RowScorer, score_rows, top_tokens


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    return AutoModelForCausalLM.from_pretrained(tiny_llama_dir), AutoTokenizer.from_pretrained(tiny_llama_dir)


def full_logprobs(model, ids):
    """Every position's log-softmax for one sequence alone: obviously right."""
    import torch
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)


def test_top_tokens_adds_the_token_when_it_is_not_among_the_k_best():
    assert top_tokens([5, 7, 9], [-0.1, -0.5, -2.0], 2, 7, -0.5) == [(5, -0.1), (7, -0.5)]
    assert top_tokens([5, 7, 9], [-0.1, -0.5, -2.0], 2, 42, -6.0) == [(5, -0.1), (7, -0.5), (42, -6.0)]
    assert top_tokens([], [], 0, 42, -6.0) == [(42, -6.0)]


def test_rows_of_different_lengths_match_each_sequence_alone(model_and_tokenizer):
    model, tok = model_and_tokenizer
    long = tok("心不全の治療には利尿薬とACE阻害薬を用いる。")["input_ids"]
    short = tok("答え:")["input_ids"]
    rows = [ScoreRow(short, 1, top=3), ScoreRow(long, 4, top=0, want_next=True)]
    got = score_rows(model, rows)
    for row, result in zip(rows, got):
        ref = full_logprobs(model, row.ids)
        assert len(result.scores) == len(row.ids) - row.first
        for j, (lp, top) in enumerate(result.scores):
            pos, token = row.first - 1 + j, row.ids[row.first + j]
            assert lp == pytest.approx(float(ref[pos, token]), abs=1e-4)
            values, ids = ref[pos].topk(row.top)
            assert [t for t, _ in top[:row.top]] == ids.tolist()
            assert dict(top)[token] == pytest.approx(lp)         # the token itself is always there
            assert len(top) in (row.top, row.top + 1)
    assert got[0].next_logprobs is None
    assert got[1].next_logprobs.tolist() == pytest.approx(full_logprobs(model, long)[-1].tolist(), abs=1e-4)


def test_a_small_budget_runs_the_head_one_position_at_a_time_with_the_same_numbers(model_and_tokenizer):
    model, tok = model_and_tokenizer
    ids = tok("以下の文章を読んで答えよ。" * 4)["input_ids"]
    rows = [ScoreRow(ids, 1, top=2)]
    roomy = score_rows(model, rows)[0].scores
    scorer = _RowScorer(model, memory_mb=1)     # 1 MB: less than two vocabulary-wide float rows
    seen = []
    head = scorer.head
    scorer.head = lambda hidden: seen.append(hidden.shape[0]) or head(hidden)
    import torch
    with torch.inference_mode():
        tight = scorer.run(rows)[0].scores
    assert scorer.head_chunk == 1 and set(seen) == {1} and len(seen) == len(ids) - 1
    assert [lp for lp, _ in tight] == pytest.approx([lp for lp, _ in roomy], abs=1e-5)
