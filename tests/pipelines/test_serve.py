"""The OpenAI-compatible server on a tiny random model, through the real ``openai`` client."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest

from pipelines import datagen, datastore
from pipelines.serve import ServeConfig, start_server


@pytest.fixture(scope="module")
def server(tiny_llama_dir, tmp_path_factory):
    handle = start_server(ServeConfig(model=str(tiny_llama_dir), port=0, max_tokens=16,
                                      workspace=str(tmp_path_factory.mktemp("serve_ws"))))
    yield handle
    handle.stop()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="not-needed", max_retries=0)


def test_models_list(client, server, tiny_llama_dir):
    ids = [m.id for m in client.models.list()]
    assert ids == [server.model_id] == [tiny_llama_dir.name]
    assert server.port > 0


def test_chat_completion(client, server):
    resp = client.chat.completions.create(
        model=server.model_id, max_tokens=8, temperature=0, seed=0,
        messages=[{"role": "system", "content": "You are a doctor."}, {"role": "user", "content": "心不全とは？"}])
    choice = resp.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert resp.usage.completion_tokens <= 8 and resp.usage.prompt_tokens > 5
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    again = client.chat.completions.create(model=server.model_id, max_tokens=8, temperature=0,
                                           messages=[{"role": "user", "content": "心不全とは？"}])
    greedy = client.chat.completions.create(model=server.model_id, max_tokens=8, temperature=0,
                                            messages=[{"role": "user", "content": "心不全とは？"}])
    assert again.choices[0].message.content == greedy.choices[0].message.content   # greedy is deterministic


def test_streaming_gives_the_same_text(client, server):
    msgs = [{"role": "user", "content": "Hello"}]
    full = client.chat.completions.create(model=server.model_id, max_tokens=10, temperature=0, messages=msgs)
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=server.model_id, max_tokens=10, temperature=0, messages=msgs, stream=True) if c.choices]
    assert "".join(pieces) == full.choices[0].message.content


def test_errors_are_openai_shaped(client, server):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model=server.model_id, messages=[])
    req = urllib.request.Request(server.base_url + "/chat/completions", data=b"{not json", method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 400 and "not valid JSON" in json.loads(err.value.read())["error"]["message"]


def test_datagen_against_the_served_tiny_model(server, workspace, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("心不全は心臓のポンプ機能が低下した状態である。\n利尿薬でうっ血を改善する。", encoding="utf-8")
    summary = datagen.run(datagen.DatagenConfig(
        docs=str(docs), dataset="tiny", model=server.model_id, base_url=server.base_url, pairs=2, max_tokens=12,
        concurrency=2, workspace=str(workspace.root)))
    # A random model writes garbage: nothing parses, and all of it is kept and counted.
    assert summary["done"] == 1 and summary["errors"] == 0 and summary["total_tokens"] > 0
    raw = datastore.list_raw(workspace, "tiny")
    assert len(raw) == 1 and raw[0]["n_pairs"] == summary["records"]
    assert summary["unparseable"] == raw[0]["n_leftovers"]
    assert summary["records"] + summary["unparseable"] + summary["empty_responses"] >= 1


def test_datagen_without_base_url_serves_the_model_itself(tiny_llama_dir, workspace, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("深部静脈血栓症には抗凝固療法を行う。", encoding="utf-8")
    events = []
    summary = datagen.run(datagen.DatagenConfig(docs=str(docs), dataset="offline", model=str(tiny_llama_dir),
                                                base_url=None, pairs=1, max_tokens=8, workspace=str(workspace.root)),
                          events.append)
    start = events[0]
    assert start["event"] == "start" and start["local"] and start["base_url"].startswith("http://127.0.0.1:")
    assert summary["done"] == 1 and summary["errors"] == 0
