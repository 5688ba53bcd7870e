"""The local server's engine on a tiny random model: batching, joining retries, structured output."""
from __future__ import annotations

import json

import pytest

from pipelines.serve_engine import ApiError, ChatEngine


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


def test_requests_with_other_sampling_settings_go_in_their_own_batch(engine):
    calls = engine.generate_calls
    with engine._cond:
        jobs = [engine.submit(req("a")), engine.submit(req("b")), engine.submit(req("c", temperature=0.7, seed=1))]
    [engine.result(j) for j in jobs]
    assert engine.generate_calls == calls + 2


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
    assert json.loads(engine.complete(req("any", max_tokens=60, response_format={"type": "json_object"}))[0]) \
        is not None


def test_unknown_response_format_is_a_400(engine):
    with pytest.raises(ApiError) as err:
        engine.submit(req("x", response_format={"type": "yaml"}))
    assert err.value.status == 400 and "response_format" in err.value.message
