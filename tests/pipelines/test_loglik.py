"""Log-likelihood scoring: the shared-prompt path against a plain full-sequence forward pass."""
from __future__ import annotations

import pytest

from pipelines.models import loglik
from pipelines.models.references import load_model, resolve_model
from pipelines.tasks.igakuqa import Question

# prompts of different lengths in one batch; 5, 6 and 8 choices; one-token continuations
QUESTIONS = [
    Question("q1", "心房細動について正しいのはどれか。",
             ["心電図で明瞭なP波を認める", "RR間隔は規則的である", "脳梗塞の危険因子である",
              "洞調律への復帰にはジギタリスが第一選択である", "CHADS2スコアは出血リスクの評価に用いる"], ["c"]),
    Question("q2", "誤っているのはどれか。", ["a", "b", "甘草", "インスリンとβ刺激薬", "ACE阻害薬", "x"], ["b"]),
    Question("q3", "66歳の男性。突然の背部痛を主訴に救急車で搬入された。2時間前、自宅で安静にしていたところ"
             "引き裂かれるような激しい背部痛が出現し、痛みは腰部へ移動している。初期治療として適切なのはどれか。"
             "2つ選べ。", ["β遮断薬の静注", "血栓溶解療法", "PCI", "強心薬", "鎮痛薬", "経過観察", "手術", "輸血"],
             ["a", "g"]),
]
PROMPTS = ["### 指示:\n心房細動について正しいのはどれか。\n### 応答:\n", "答え:",
           "以下は、タスクを説明する指示です。\n### 指示:\n" + QUESTIONS[2].problem_text + "\n### 応答:\n"]


def reference(model, tokenizer, requests):
    """One request at a time, the whole vocabulary at every position: obviously right, slow."""
    import torch
    out = []
    for context, continuation in requests:
        ctx, cont = loglik.encode_pair(tokenizer, context, continuation)
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([ctx + cont])).logits[0].float(), dim=-1)
        out.append(float(logp[len(ctx) - 1:-1].gather(1, torch.tensor(cont)[:, None]).sum()))
    return out


def flat_requests():
    return [r for reqs in loglik.build_requests(QUESTIONS, PROMPTS) for r in reqs]


def predictions(scores):
    return [max(s, key=s.get) for s, _ in scores]


@pytest.mark.parametrize("arch", ["tiny_llama_dir", "tiny_neox_dir"])
@pytest.mark.parametrize("memory_mb", [512, 0])  # 0: one question per prompt pass, one choice per continuation pass
def test_shared_prompt_equals_full_sequence(request, workspace, arch, memory_mb):
    model, tok = load_model(resolve_model(str(request.getfixturevalue(arch)), None, workspace))
    expected = reference(model, tok, flat_requests())
    got = loglik.score_questions(model, tok, QUESTIONS, PROMPTS, config=loglik.LoglikConfig(memory_mb=memory_mb))
    flat = [lp for (sums, _), q in zip(got, QUESTIONS) for lp in (sums[l] for l in q.letters)]
    assert flat == pytest.approx(expected, rel=1e-4)
    by_q, pos = [], 0
    for q in QUESTIONS:
        by_q.append(dict(zip(q.letters, expected[pos:pos + len(q.choices)])))
        pos += len(q.choices)
    assert predictions(got) == [max(s, key=s.get) for s in by_q]
    for (sums, norm), q in zip(got, QUESTIONS):  # acc_norm: per character of the choice text, as the harness
        assert norm == pytest.approx({l: sums[l] / len(t) for l, t in zip(q.letters, q.choices)})


def test_head_sees_only_continuation_rows(workspace, tiny_llama_dir):
    """Gather only: the vocabulary projection runs on the rows that predict a choice token."""
    model, tok = load_model(resolve_model(str(tiny_llama_dir), None, workspace))
    assert loglik._Scorer(model, loglik.LoglikConfig()).packed  # the shared-prompt path, not the fallback
    rows = []
    model.get_output_embeddings().register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[0]))
    loglik.choice_logprobs(model, tok, flat_requests())
    n_tokens = sum(len(loglik.encode_pair(tok, *r)[1]) for r in flat_requests())
    prompt_tokens = sum(len(tok.encode(p)) for p in PROMPTS)
    assert 0 < sum(rows) <= n_tokens - sum(len(q.choices) - 1 for q in QUESTIONS) < prompt_tokens


def test_peft_adapter_is_applied(workspace, tiny_llama_dir):
    from peft import LoraConfig, get_peft_model
    base, tok = load_model(resolve_model(str(tiny_llama_dir), None, workspace))
    before = loglik.choice_logprobs(base, tok, flat_requests())
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"],
                                            init_lora_weights=False)).eval()
    got = loglik.choice_logprobs(model, tok, flat_requests())
    assert got == pytest.approx(reference(model, tok, flat_requests()), rel=1e-4)
    assert got != pytest.approx(before, rel=1e-3)


def test_sliding_window_model_takes_full_sequence_path(workspace, tokenizer_dir):
    """A sliding-window cache cannot hold padding gaps: the fallback must give the same scores."""
    import torch
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    model = MistralForCausalLM(MistralConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                             sliding_window=8)).eval()
    assert not loglik._Scorer(model, loglik.LoglikConfig()).packed
    got = loglik.choice_logprobs(model, tok, flat_requests())
    assert got == pytest.approx(reference(model, tok, flat_requests()), rel=1e-4)


def test_encode_pair_moves_trailing_space_like_the_harness(tokenizer_dir):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    ctx, cont = loglik.encode_pair(tok, "### 応答:\n", " 甘草")
    assert ctx == tok.encode("### 応答:")
    assert ctx + cont == tok.encode("### 応答:\n 甘草")
    assert loglik.build_requests(QUESTIONS[:1], PROMPTS[:1])[0][2] == (PROMPTS[0], " 脳梗塞の危険因子である")
