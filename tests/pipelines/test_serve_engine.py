"""The local server's engine on a tiny random model: batching, joining retries, structured output."""
from __future__ import annotations

import json

import pytest

from pipelines.models.server_engine import ApiError, ChatEngine


@pytest.fixture(scope="module")
def engine(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    return ChatEngine(model, AutoTokenizer.from_pretrained(tiny_llama_dir), model_id="tiny", max_tokens=8,
                      batch_size=8)


def req(text: str, **kw) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": text}], "temperature": 0, "max_tokens": 6, **kw}


def test_concurrent_requests_share_forward_passes(engine):
    calls = engine.generate_calls
    # Holding the engine's lock queues all five before the worker can take any: one batch.
    with engine._cond:
        jobs = [engine.submit(req(f"質問 {i} " * (i + 1))) for i in range(5)]
    results = [engine.result(j) for j in jobs]
    assert engine.generate_calls == calls + 1
    assert all(isinstance(text, str) and 1 <= n_new <= 6 for text, _, n_new, _ in results)
    assert len({n_prompt for _, n_prompt, _, _ in results}) == 5     # rows of different lengths, left-padded


def test_a_request_arriving_while_others_run_joins_them_at_the_next_step(engine):
    """Continuous batching: the second request does not wait for the first to end; it takes a free
    slot, shares the first's decoding steps, and (shorter) leaves before it."""
    import time
    calls = engine.generate_calls
    long = engine.submit(req("長い答えをください " * 2, max_tokens=60))
    while len(long.tokens) < 3 and not long.done.is_set():
        time.sleep(0.001)
    short = engine.submit(req("短く", max_tokens=2))
    engine.result(short)
    assert not long.done.is_set()           # the long one is still running: the short one did not wait for it
    engine.result(long)
    assert engine.generate_calls == calls + 1 and engine.widest >= 2


def test_a_request_longer_than_the_slots_widens_the_cache_instead_of_waiting(engine, monkeypatch):
    """The running row keeps decoding in a wider cache (fewer slots, same memory) and the long
    request joins it at once; when the wider cache could not hold the running rows, it waits."""
    import time

    from pipelines.models import server_engine
    monkeypatch.setattr(server_engine, "SERVE_WIDTH", 64)
    monkeypatch.setattr(engine, "kv_tokens", 1024)
    engine._decoder = None
    first = engine.submit(req("最初", max_tokens=60))
    while len(first.tokens) < 3 and not first.done.is_set():
        time.sleep(0.001)
    before = engine._decoder.cache.capacity
    long = engine.submit(req("長い質問です " * 25, max_tokens=6))
    assert len(long.ids) + 6 > before
    engine.result(long)
    assert not first.done.is_set()          # it joined the running row rather than waiting for it
    assert engine._decoder.cache.capacity >= len(long.ids) + 6 > before
    engine.result(first)
    with engine._cond:                      # at 768 positions a slot, 1,024 hold one row: one at a time
        jobs = [engine.submit(req(f"長い質問です {i} " * 25, max_tokens=6)) for i in range(2)]
        engine._decoder = None
        monkeypatch.setattr(server_engine, "SERVE_WIDTH", 768)
        widest, engine.widest = engine.widest, 0
    [engine.result(j) for j in jobs]
    assert engine.widest == 1
    engine.widest = max(widest, 1)
    assert engine._decoder.cache.slots == 1
    monkeypatch.undo()
    engine.result(engine.submit(req("短い")))       # idle again: as many slots as the budget holds at this width
    assert engine._decoder.cache.slots == engine.batch_size


def test_requests_with_other_sampling_settings_share_the_steps(engine):
    calls, engine.widest = engine.generate_calls, 0
    with engine._cond:
        jobs = [engine.submit(req("a")), engine.submit(req("b")), engine.submit(req("c", temperature=0.7, seed=1))]
    [engine.result(j) for j in jobs]
    assert engine.generate_calls == calls + 1 and engine.widest == 3


def test_a_seeded_request_answers_the_same_whatever_shares_its_batch(engine):
    seeded = req("同じ種で", temperature=1.0, seed=7, max_tokens=10)
    alone = engine.complete(seeded)[0]
    calls = engine.generate_calls
    with engine._cond:      # queued together: one batch of four rows, two longer than this one
        jobs = [engine.submit(req("ほかの質問です " * 3, temperature=1.0, seed=1, max_tokens=10)), engine.submit(seeded),
                engine.submit(req("別", temperature=1.0, max_tokens=10)),
                engine.submit(req("ほかの質問です " * 5, temperature=1.0, seed=2, max_tokens=10))]
    results = [engine.result(j)[0] for j in jobs]
    assert engine.generate_calls == calls + 1 and results[1] == alone
    # The seed matters: other seeds give other answers.
    assert len({engine.complete(dict(seeded, seed=s))[0] for s in range(4)}) > 1


def test_a_retry_of_a_running_request_joins_it_instead_of_generating_again(engine):
    calls = engine.generate_calls
    with engine._cond:
        first = engine.submit(req("同じ質問"))
        retry = engine.submit(dict(req("同じ質問"), stream=True))    # same body; streaming or not
    assert retry is first
    engine.result(first)
    assert engine.generate_calls == calls + 1


def test_streaming_follows_the_tokens_and_equals_the_whole_answer(engine):
    whole = engine.complete(req("Hello", max_tokens=8))[0]
    assert "".join(p for p in engine.follow(engine.submit(req("Hello", max_tokens=8))) if p) == whole


def test_json_schema_is_enforced_token_by_token(engine):
    schema = {"type": "object", "required": ["pairs"], "additionalProperties": False, "properties": {
        "pairs": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
            "type": "object", "required": ["instruction", "output"], "additionalProperties": False,
            "properties": {"instruction": {"type": "string", "minLength": 1, "maxLength": 4},
                           "output": {"type": "string", "minLength": 1, "maxLength": 4}}}}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "qa", "schema": schema}}
    text, _, _, reason = engine.complete(req("JSON please", max_tokens=120, response_format=fmt))
    data = json.loads(text)          # a random model, yet valid JSON of the schema
    assert reason == "stop" and len(data["pairs"]) == 1 and set(data["pairs"][0]) == {"instruction", "output"}
    # minLength/maxLength hold too (counted in UTF-8 bytes, leading spaces aside: see structured.py), also
    # when sampling at temperature 1 makes a random model wander.
    sampled = [json.loads(engine.complete(req("JSON please", max_tokens=120, temperature=1.0, seed=s,
                                              response_format=fmt))[0]) for s in range(4)]
    for doc in [data, *sampled]:
        for value in doc["pairs"][0].values():
            assert 1 <= len(value.lstrip().encode()) <= 4, doc
    # JSON mode means an object (not a bare string, number or boolean).
    answers = [engine.complete(req("any", max_tokens=60, temperature=1.0, seed=s,
                                   response_format={"type": "json_object"})) for s in range(6)]
    assert all(isinstance(json.loads(text), dict) for text, _, _, _ in answers), answers


@pytest.mark.parametrize("budget", [40, 60, 100])
def test_a_document_ends_within_the_token_budget(engine, budget):
    """A random model sampled at temperature 1 wanders inside an unbounded string until the limit;
    steered to close as the budget runs out, every answer is still a whole document of the schema."""
    schema = {"type": "object", "required": ["pairs"], "additionalProperties": False, "properties": {
        "pairs": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["instruction", "output"], "additionalProperties": False,
            "properties": {"instruction": {"type": "string", "minLength": 5},
                           "output": {"type": "string", "minLength": 1}}}}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "qa", "schema": schema}}
    for seed in range(4):
        text, _, n_new, reason = engine.complete(req("JSON", max_tokens=budget, temperature=1.0, seed=seed,
                                                     response_format=fmt))
        data = json.loads(text)
        assert reason == "stop" and n_new <= budget and data["pairs"][0]["output"], (budget, text)


def test_unknown_response_format_is_a_400(engine):
    with pytest.raises(ApiError) as err:
        engine.submit(req("x", response_format={"type": "yaml"}))
    assert err.value.status == 400 and "response_format" in err.value.message


def test_token_bytes_read_the_byte_level_vocabulary(engine):
    from pipelines.models import structured
    table = structured.token_bytes(engine.tokenizer)
    text = "2型糖尿病 HbA1c≥6.5% と心不全\n"
    ids = engine.tokenizer.encode(text, add_special_tokens=False)
    assert b"".join(table[i] for i in ids) == text.encode()
    # SmolLM2 writes most Japanese characters as pieces of their UTF-8 bytes.
    assert any(structured._unfinished(table[i]) for i in ids)
    assert structured._owed("糖".encode()[:1]) == 2 and structured._owed("糖".encode()) == 0


@pytest.mark.parametrize("seed", range(12))
def test_json_strings_take_japanese_whole_and_never_cut_a_character(engine, seed):
    """Sampling at temperature 1 from a random model picks byte pieces of characters often: every
    answer is still JSON of the schema, valid UTF-8 (no U+FFFD), within maxLength counted in bytes."""
    schema = {"type": "object", "required": ["a"], "additionalProperties": False,
              "properties": {"a": {"type": "string", "minLength": 3, "maxLength": 10}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    text, _, _, _ = engine.complete(req("日本語で", max_tokens=40, temperature=1.0, seed=seed, response_format=fmt))
    assert "\ufffd" not in text
    value = json.loads(text)["a"]
    assert 3 <= len(value.lstrip()) <= 10              # lm-format-enforcer does not count leading spaces
    if "\\u" not in text:     # written out, maxLength holds in bytes too; a \uXXXX escape counts as one
        assert len(value.lstrip().encode()) <= 10


def test_japanese_text_can_be_written_token_by_token_inside_a_string(engine):
    """Every token of a Japanese answer (most are pieces of a character's UTF-8 bytes) is allowed
    at its step, and the document may end after it: Japanese is not excluded by the grammar."""
    import torch

    from pipelines.models import structured
    schema = {"type": "object", "required": ["a"], "properties": {"a": {"type": "string", "minLength": 30}}}
    fn = structured.constraint(engine.tokenizer, {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    ids = engine.tokenizer.encode("日本語で")
    answer = engine.tokenizer.encode('{"a": "2型糖尿病の治療目標はHbA1c 7.0%未満です。"}', add_special_tokens=False)
    assert any(structured._unfinished(structured.token_bytes(engine.tokenizer)[t]) for t in answer)
    for token in answer:
        allowed = fn(0, torch.tensor(ids))
        assert token in set(torch.as_tensor(allowed).tolist()), engine.tokenizer.decode(ids[-5:])
        ids = ids + [token]
    assert engine.tokenizer.eos_token_id in set(torch.as_tensor(fn(0, torch.tensor(ids))).tolist())