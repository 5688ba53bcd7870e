"""Continuous batching (pipelines/models/continuous.py) answers as ``generate`` does, row by row."""
import pytest

torch = pytest.importorskip("torch")

from pipelines.models import continuous  # noqa: E402
from pipelines.models.continuous import Decoder, Row  # noqa: E402
from pipelines.models.sampling import draw, draw_rows  # noqa: E402

PROMPTS = ["### 指示:\n心房細動について正しいのはどれか。\n### 応答:\n",
           "Hello",
           "### 指示:\n心房細動について正しいのはどれか。a. 心電図で明瞭なP波を認める\n### 応答:\n",
           "a b c d e f g h i j k l m n o p q r s t u v w x y z " * 3,
           "### 指示:\n心房細動",
           "短い"]


def _load(path, attn="sdpa"):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attn).eval()
    return model, AutoTokenizer.from_pretrained(path)


def _generate_alone(model, tok, text, max_new, penalty=1.0):
    ids = tok(text, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=max_new, do_sample=False, repetition_penalty=penalty,
                             pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None)
    return out[0, ids["input_ids"].shape[1]:].tolist()


def _decode_all(model, tok, rows, slots, capacity=None):
    capacity = capacity or max(len(r.ids) + r.max_new for r in rows)
    decoder = Decoder(model, tok, slots=slots, capacity=capacity)
    pending, done = list(reversed(rows)), []
    with torch.inference_mode():
        while pending or decoder.rows:
            while pending and decoder.free:
                row = pending.pop()
                decoder.admit(row)
                if row.done:
                    done.append(row)
            done += decoder.step()
    assert len(done) == len(rows) and all(r.done for r in rows)
    return rows


def _trim(tokens, eos):
    return tokens[:tokens.index(eos) + 1] if eos in tokens else tokens


@pytest.mark.parametrize("fixture,attn", [("tiny_llama_dir", "sdpa"), ("tiny_llama_dir", "eager"),
                                          ("tiny_neox_dir", "sdpa")])
@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_greedy_rows_match_generate_one_at_a_time(request, fixture, attn, penalty):
    """More rows than slots (rows leave and others take their slots), prompts of different lengths
    sharing starts (the copied prefix), grouped-query (Llama) and plain heads (GPT-NeoX), SDPA and
    eager attention, with and without the repetition penalty: every row's tokens are generate's."""
    model, tok = _load(request.getfixturevalue(fixture), attn)
    assert continuous.supported(model)
    eos = model.generation_config.eos_token_id or tok.eos_token_id
    rows = [Row(ids=tok(p)["input_ids"], max_new=6 + 5 * i, repetition_penalty=penalty)
            for i, p in enumerate(PROMPTS)]
    _decode_all(model, tok, rows, slots=3)
    for row, text in zip(rows, PROMPTS):
        assert row.tokens == _trim(_generate_alone(model, tok, text, row.max_new, penalty), eos), text


def test_the_shared_prefix_is_copied_and_changes_nothing(tiny_llama_dir, monkeypatch):
    model, tok = _load(tiny_llama_dir)
    long = "### 指示:\n" + "心房細動について正しいのはどれか。" * 4
    texts = [long + "a", long + "b. 心電図", long + "c"]
    copied = []
    original = Decoder._share_prefix
    monkeypatch.setattr(Decoder, "_share_prefix", lambda self, slot, ids: copied.append(original(self, slot, ids))
                        or copied[-1])
    shared = _decode_all(model, tok, [Row(ids=tok(t)["input_ids"], max_new=8) for t in texts], slots=3)
    assert copied[0] == 0 and min(copied[1:]) >= continuous.MIN_SHARED
    monkeypatch.setattr(continuous, "MIN_SHARED", 10 ** 9)
    alone = _decode_all(model, tok, [Row(ids=tok(t)["input_ids"], max_new=8) for t in texts], slots=3)
    assert [r.tokens for r in shared] == [r.tokens for r in alone]


def test_a_cache_reshaped_under_running_rows_changes_nothing(tiny_llama_dir):
    """Rows decoding while the cache is widened to fewer, wider slots (and narrowed back) end with
    the tokens they get without it; a shape the running rows do not fit is refused."""
    model, tok = _load(tiny_llama_dir)

    def rows():
        return [Row(ids=tok(p)["input_ids"], max_new=10, repetition_penalty=1.3) for p in PROMPTS[:2]]
    plain = _decode_all(model, tok, rows(), slots=2)
    width = max(len(r.ids) + r.max_new for r in plain)
    decoder = Decoder(model, tok, slots=3, capacity=width)
    moved = rows()
    with torch.inference_mode():
        for row in moved:
            decoder.admit(row)
        for _ in range(3):
            decoder.step()
        decoder.reshape(2, width + 64)
        assert decoder.cache.keys[0].shape[:3] == (2, decoder.cache.keys[0].shape[1], width + 64)
        with pytest.raises(ValueError):
            decoder.reshape(1, width + 64)          # two rows run: one slot cannot hold them
        with pytest.raises(ValueError):
            decoder.reshape(2, width - 1)           # narrower than a running row reaches
        decoder.step()
        decoder.reshape(4, width)
        while decoder.rows:
            decoder.step()
    assert [r.tokens for r in moved] == [r.tokens for r in plain]


def test_a_seeded_row_samples_the_same_whatever_shares_its_batch(tiny_llama_dir):
    model, tok = _load(tiny_llama_dir)

    def row(text, seed):
        return Row(ids=tok(text)["input_ids"], max_new=12, temperature=1.0, top_p=0.95, seed=seed)

    alone = _decode_all(model, tok, [row(PROMPTS[0], 7)], slots=1)[0].tokens
    crowd = _decode_all(model, tok, [row(p, 100 + i) for i, p in enumerate(PROMPTS[1:4])] + [row(PROMPTS[0], 7)],
                        slots=3)
    assert crowd[-1].tokens == alone
    other_seed = _decode_all(model, tok, [row(PROMPTS[0], 8)], slots=1)[0].tokens
    assert other_seed != alone          # the seed matters (12 tokens at temperature 1 on random weights)


def test_stop_strings_and_the_token_limit_end_a_row(tiny_llama_dir):
    model, tok = _load(tiny_llama_dir)
    free = _decode_all(model, tok, [Row(ids=tok(PROMPTS[0])["input_ids"], max_new=20)], slots=1)[0]
    text = tok.decode(free.tokens)
    assert free.finish in ("length", "eos")
    stop = text[len(text) // 2:len(text) // 2 + 1].strip() or text[-1]
    stopped = _decode_all(model, tok, [Row(ids=tok(PROMPTS[0])["input_ids"], max_new=20, stops=(stop,))],
                          slots=1)[0]
    assert stopped.finish == "stop" and stop in tok.decode(stopped.tokens)
    assert stopped.tokens == free.tokens[:len(stopped.tokens)] and len(stopped.tokens) < len(free.tokens)


@pytest.mark.parametrize("top_k", [None, 5, 200])
@pytest.mark.parametrize("temperature", [0.1, 1.0, 30.0])
def test_rows_drawn_together_are_drawn_as_one_at_a_time(temperature, top_k):
    """``draw_rows`` (one batched pass) picks what ``draw`` picks for each row from the same
    generator; a flat distribution (temperature 30) takes the whole-vocabulary path."""
    scores = torch.randn(6, 1000, generator=torch.Generator().manual_seed(0)) * 5

    def rows():         # the last two: top-p 1 (with no top-k: the whole distribution, nothing sorted)
        return [Row(ids=[1], max_new=1, temperature=temperature, top_p=0.9 if i < 4 else 1.0, top_k=top_k,
                    generator=torch.Generator().manual_seed(i)) for i in range(6)]

    together = draw_rows(scores, rows())
    apart = [draw(scores[i], r.temperature, r.top_p, r.top_k, r.generator) for i, r in enumerate(rows())]
    assert together == apart


def test_draw_keeps_to_the_nucleus_and_the_top_k():
    scores = torch.tensor([5.0, 4.0, 0.0, -1.0, -50.0])
    picks = {draw(scores, 1.0, 0.5, None, torch.Generator().manual_seed(s)) for s in range(50)}
    assert picks == {0}                     # token 0 alone holds 73% > top_p
    picks = {draw(scores, 1.0, 0.99, 2, torch.Generator().manual_seed(s)) for s in range(200)}
    assert picks == {0, 1}                  # top-k 2 cuts the rest whatever top_p says


def test_the_whole_distribution_is_drawn_in_proportion_and_never_a_forbidden_token():
    """Top-p 1 without top-k: frequencies follow the softmax, and −inf (a constraint's) is never drawn."""
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    scores = probs.log()                    # the last one −inf
    gen = torch.Generator().manual_seed(0)
    counts = torch.bincount(torch.tensor([draw(scores, 1.0, 1.0, None, gen) for _ in range(4000)]), minlength=5)
    assert counts[4] == 0
    assert torch.allclose(counts[:4] / 4000, probs[:4], atol=0.03), counts


def test_models_the_decoder_cannot_drive_are_left_to_generate(tiny_llama_dir):
    model, _ = _load(tiny_llama_dir)
    model.config.sliding_window = 16
    assert continuous.supported(model, 16) and not continuous.supported(model, 17)
    model.config.sliding_window = None
    model.config.attn_logit_softcapping = 50.0
    assert not continuous.supported(model, 16)
