"""The OpenAI-compatible server on a tiny random model, through the real ``openai`` client."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest

from pipelines.data import generate as datagen
from pipelines.data import store as datastore
from pipelines.models.server import ServeConfig, start_server


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


@pytest.mark.smoke
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


@pytest.mark.smoke
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


# -- the server beyond loopback needs a token, and then every request carries it -----------------

TOKEN = "t0ken-for-tests-0123456789"


def test_an_open_bind_without_a_token_is_refused_before_any_model_loads(monkeypatch):
    from pipelines.core.errors import UserError
    from pipelines.models.server import TOKEN_ENV
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    for host in ("0.0.0.0", "::", "192.0.2.7", "myhost.example"):
        with pytest.raises(UserError) as err:
            start_server(ServeConfig(model="/no/such/model", host=host, port=0))
        assert err.value.code == "serve.no_token" and TOKEN_ENV in err.value.fix
    monkeypatch.setenv(TOKEN_ENV, "short")
    with pytest.raises(UserError) as err:
        start_server(ServeConfig(model="/no/such/model", host="0.0.0.0", port=0))
    assert err.value.code == "serve.short_token"


def test_the_cli_refuses_an_open_bind_without_a_token(tmp_path):
    import os
    import subprocess
    import sys

    from pipelines.models.server import TOKEN_ENV
    from tests.conftest import REPO
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    proc = subprocess.run([sys.executable, "-m", "pipelines.models.server", "--host", "0.0.0.0", "--port", "0",
                           "--workspace", str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out and TOKEN_ENV in out, out


@pytest.fixture(scope="module")
def guarded(tiny_llama_dir):
    """A server bound to every interface, with a token (reached over loopback)."""
    import os

    from pipelines.models.server import TOKEN_ENV
    os.environ[TOKEN_ENV] = TOKEN
    try:
        handle = start_server(ServeConfig(model=str(tiny_llama_dir), host="0.0.0.0", port=0, max_tokens=8))
    finally:
        del os.environ[TOKEN_ENV]
    yield f"http://127.0.0.1:{handle.port}/v1", handle
    handle.stop()


def test_with_a_token_every_request_needs_it_loopback_included(guarded):
    url, handle = guarded
    for path, data in (("/models", None), ("/chat/completions", b'{"model": "x", "messages": []}'),
                       ("/completions", b'{"model": "x", "prompt": "a"}')):
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
            req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json", **headers})
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=30)
            assert err.value.code == 401, (path, headers)
            assert json.loads(err.value.read())["error"]["code"] == "invalid_api_key"
    good = openai.OpenAI(base_url=url, api_key=TOKEN, max_retries=0)
    assert [m.id for m in good.models.list().data] == [handle.model_id]
    answer = good.chat.completions.create(model=handle.model_id, messages=[{"role": "user", "content": "hi"}],
                                          max_tokens=4)
    assert answer.choices[0].message.content is not None
    assert good.completions.create(model=handle.model_id, prompt="hi", max_tokens=2).choices[0].text is not None
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url, api_key="wrong-token-0123456789", max_retries=0).models.list()
