"""The server's legacy completions API on a tiny random model: through the real ``openai`` client,
and as lm-evaluation-harness's ``local-completions`` model sends and reads it."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest

from pipelines.models import loglik
from pipelines.models.server import ServeConfig, start_server
from pipelines.models.server_engine import ChatEngine

PAIRS = [("問題: 心不全の治療に用いるのはどれか。\n答え:", " 利尿薬"), ("問題: 心不全の治療に用いるのはどれか。\n答え:", " 抗菌薬"),
         ("Q: 2+2=?\nA:", " 4"), ("短い", "文")]


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    return AutoModelForCausalLM.from_pretrained(tiny_llama_dir), AutoTokenizer.from_pretrained(tiny_llama_dir)


@pytest.fixture(scope="module")
def served(model_and_tokenizer, tmp_path_factory):
    model, tok = model_and_tokenizer
    engine = ChatEngine(model, tok, model_id="tiny", max_tokens=16, batch_size=8)
    handle = start_server(ServeConfig(model="tiny", port=0, workspace=str(tmp_path_factory.mktemp("ws"))), engine)
    yield handle, engine
    handle.stop()


@pytest.fixture
def client(served):
    return openai.OpenAI(base_url=served[0].base_url, api_key="not-needed", max_retries=0)


def complete(client, **kw):
    return client.completions.create(model="tiny", **{"temperature": 0, **kw})


def test_echo_with_logprobs_gives_the_prompt_then_the_completion(client):
    prompt = "心不全の治療はbeta blocker"
    r = complete(client, prompt=prompt, max_tokens=4, echo=True, logprobs=2)
    alone = complete(client, prompt=prompt, max_tokens=4)
    assert r.object == "text_completion" and r.id.startswith("cmpl-") and len(r.choices) == 1
    ch, lp = r.choices[0], r.choices[0].logprobs
    assert ch.text == prompt + alone.choices[0].text and ch.finish_reason in ("stop", "length")
    n = r.usage.prompt_tokens
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) \
        == n + r.usage.completion_tokens
    assert "".join(lp.tokens) == ch.text                              # the tokens' texts make up the text
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    assert [o < len(prompt) for o in lp.text_offset] == [True] * n + [False] * r.usage.completion_tokens
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None  # nothing predicts the first token
    for value, top in zip(lp.token_logprobs[1:], lp.top_logprobs[1:]):
        assert value < 0 and len(top) in (2, 3) and max(top.values()) >= value
    # Without echo: the completion's tokens only, offsets from the completion's start.
    r = complete(client, prompt=prompt, max_tokens=4, logprobs=0)
    assert r.choices[0].text == alone.choices[0].text and r.choices[0].logprobs.text_offset[0] == 0
    assert r.choices[0].logprobs.token_logprobs == pytest.approx(lp.token_logprobs[n:], abs=1e-4)
    assert all(len(top) == 1 for top in r.choices[0].logprobs.top_logprobs)   # k = 0: the token itself


def test_prompt_logprobs_equal_loglik_choice_logprobs(client, model_and_tokenizer):
    """What lm-eval's local-completions model sends (token ids, echo, max_tokens 1, logprobs 1) and how it
    reads it (``token_logprobs[ctxlen:-1]``) gives the same sums as our own scorer."""
    model, tok = model_and_tokenizer
    encoded = [loglik.encode_pair(tok, c, x) for c, x in PAIRS]
    r = complete(client, prompt=[ctx + cont for ctx, cont in encoded], max_tokens=1, logprobs=1, echo=True, seed=1234)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    sums = [sum(c.logprobs.token_logprobs[len(ctx):-1]) for c, (ctx, _) in zip(r.choices, encoded)]
    assert sums == pytest.approx(loglik.choice_logprobs(model, tok, PAIRS), abs=1e-4)
    for c, (ctx, cont) in zip(r.choices, encoded):     # lm-eval's is_greedy reads every top dict it slices
        assert len(c.logprobs.token_logprobs) == len(ctx) + len(cont) + 1
        assert all(top is not None for top in c.logprobs.top_logprobs[len(ctx):-1])
    # max_tokens 0: the prompt alone, the same numbers.
    r0 = complete(client, prompt=[ctx + cont for ctx, cont in encoded], max_tokens=0, logprobs=1, echo=True)
    assert [sum(c.logprobs.token_logprobs[len(ctx):]) for c, (ctx, _) in zip(r0.choices, encoded)] == pytest.approx(sums)
    assert r0.usage.completion_tokens == 0 and all(c.finish_reason == "length" for c in r0.choices)


def test_prompt_forms_give_one_choice_per_prompt_in_order(client, model_and_tokenizer):
    _, tok = model_and_tokenizer
    texts = ["胸痛の鑑別", "The heart", "腎"]
    one_by_one = [complete(client, prompt=t, max_tokens=3).choices[0].text for t in texts]
    listed = complete(client, prompt=texts, max_tokens=3)
    assert [c.text for c in listed.choices] == one_by_one
    ids = [tok(t)["input_ids"] for t in texts]
    assert [c.text for c in complete(client, prompt=ids, max_tokens=3).choices] == one_by_one
    single = complete(client, prompt=ids[1], max_tokens=3, echo=True)
    assert single.choices[0].text == texts[1] + one_by_one[1]
    assert listed.usage.prompt_tokens == sum(len(i) for i in ids)


def test_seeded_sampling_repeats_whatever_shares_the_request(client):
    kw = dict(max_tokens=6, temperature=1.0, seed=7)
    alone = complete(client, prompt="同じ種で", **kw).choices[0].text
    mixed = complete(client, prompt=["ほかの質問です " * 3, "同じ種で", "別"], **kw).choices
    assert mixed[1].text == alone
    assert len({complete(client, prompt="同じ種で", **dict(kw, seed=s)).choices[0].text for s in range(4)}) > 1
    # One token with log-probs comes from the scoring pass: the same draw as generate's.
    for seed in range(3):
        drawn = complete(client, prompt="同じ種で", max_tokens=1, temperature=1.0, seed=seed)
        scored = complete(client, prompt="同じ種で", max_tokens=1, temperature=1.0, seed=seed, logprobs=0)
        assert scored.choices[0].text == drawn.choices[0].text


def test_a_stop_string_ends_the_text_and_its_logprobs(client):
    kw = dict(prompt="Q: 2+2=?\nA:", max_tokens=12, logprobs=0, temperature=1.0, seed=3)  # greedy repeats itself
    full = complete(client, **kw).choices[0]
    pieces = full.logprobs.tokens
    # a piece from the middle that does not occur earlier in the text
    k = next(i for i in range(2, len(pieces)) if pieces[i].strip() and pieces[i] not in "".join(pieces[:i]))
    cut = complete(client, **kw, stop=["#never#", pieces[k]]).choices[0]
    assert cut.text == "".join(pieces[:k]) and cut.finish_reason == "stop" and full.finish_reason == "length"
    assert cut.logprobs.tokens == pieces[:k]


def test_streaming_gives_the_same_text_and_usage(client):
    full = complete(client, prompt=["The heart", "腎"], max_tokens=6)
    chunks = list(complete(client, prompt=["The heart", "腎"], max_tokens=6, stream=True,
                           stream_options={"include_usage": True}))
    texts = ["", ""]
    for c in chunks:
        for ch in c.choices:
            texts[ch.index] += ch.text
    assert texts == [c.text for c in full.choices] and chunks[-1].usage.total_tokens == full.usage.total_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == \
        [c.finish_reason for c in full.choices]
    # with log-probs a choice comes whole, with them
    echoed = complete(client, prompt="The heart", max_tokens=3, echo=True, logprobs=1)
    streamed = [c for c in complete(client, prompt="The heart", max_tokens=3, echo=True, logprobs=1, stream=True)]
    assert len(streamed) == 1 and streamed[0].choices[0].text == echoed.choices[0].text
    assert streamed[0].choices[0].logprobs.token_logprobs == echoed.choices[0].logprobs.token_logprobs


def test_completions_and_chat_requests_share_a_batch(served):
    from pipelines.models import server_completions as completions
    _, engine = served
    calls = engine.generate_calls
    chat = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 4}
    with engine._cond:
        job = engine.submit(chat)
        sub = completions.submit(engine, {"model": "tiny", "prompt": ["a", "b"], "temperature": 0, "max_tokens": 4})
    engine.result(job)
    assert len(completions.response(engine, sub)["choices"]) == 2 and engine.generate_calls == calls + 1


def post(served, path: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(served[0].base_url + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.parametrize("body, status, says", [
    ({"n": 2}, 400, "n=1"),
    ({"best_of": 3}, 400, "best_of"),
    ({"suffix": " end"}, 400, "suffix"),
    ({"logit_bias": {"5": 100}}, 400, "logit_bias"),
    ({"max_tokens": 0}, 400, "echo"),
    ({"logprobs": 21}, 400, "20"),
    ({"logprobs": True}, 400, "logprobs"),
    ({"prompt": []}, 400, "prompt"),
    ({"prompt": [[1, -3]]}, 400, "prompt 0"),
    ({"prompt": ["a", [10 ** 9]]}, 400, "prompt 1"),
    ({"prompt": ""}, 400, "no tokens"),
    ({"temperature": -1}, 400, "temperature"),
    ({"stop": 3}, 400, "stop"),
    ({"prompt": [7] * 2040, "max_tokens": 9}, 400, "context is 2048"),
    ({"model": "gpt-3.5-turbo-instruct"}, 404, "does not exist"),
])
def test_bad_requests_are_refused_with_what_to_change(served, body, status, says):
    code, answer = post(served, "/completions", {"model": "tiny", "prompt": "a", **body})
    assert code == status and says in answer["error"]["message"], answer
    if "context" in says:
        assert answer["error"]["code"] == "context_length_exceeded"


def test_bad_json_and_unknown_routes(served):
    code, answer = post(served, "/completions", b"{not json")
    assert code == 400 and "not valid JSON" in answer["error"]["message"]
    code, answer = post(served, "/edits", {"model": "tiny"})
    assert code == 404 and "/v1/completions" in answer["error"]["message"]
    # the route without /v1, as some clients send it
    req = urllib.request.Request(f"http://127.0.0.1:{served[0].port}/completions", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"model": "tiny", "prompt": "a", "max_tokens": 2}).encode())
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert json.loads(resp.read())["object"] == "text_completion"
