"""Log-likelihoods through a server (``openai-completions:MODEL@URL``): the same numbers as local
scoring of the same model, an evaluation through it, and clear refusals where it cannot work."""
from __future__ import annotations

import json

import pytest

from pipelines.core.errors import UserError
from pipelines.core.privacy import PrivacyBlocked
from pipelines.evaluation import evaluator as evaluate
from pipelines.evaluation.prompting import build_prompt
from pipelines.models import loglik
from pipelines.models.backends import Backend, check_loglik, open_backend
from pipelines.models.completions_endpoint import CompletionsEndpoint, split_pair
from pipelines.models.generation import GenerationSettings, Prompt
from pipelines.models.references import load_model, resolve_model
from pipelines.models.server import ServeConfig, start_server
from pipelines.tasks.igakuqa import load_questions
from pipelines.tasks.prompts import load_template
from tests.conftest import SAMPLE_QUESTIONS
from tests.pipelines.fake_openai_server import FakeOpenAIServer


@pytest.fixture(scope="module")
def server(tiny_llama_dir, tmp_path_factory):
    handle = start_server(ServeConfig(model=str(tiny_llama_dir), port=0, max_tokens=16,
                                      workspace=str(tmp_path_factory.mktemp("completions_ws"))))
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def questions_and_prompts():
    qs = load_questions(SAMPLE_QUESTIONS, limit=6).questions
    template = load_template("ja")
    return qs, [build_prompt(q, template, None) for q in qs]


def test_the_reference_opens_the_completions_backend_and_allows_loglik(workspace, server):
    ref = resolve_model(f"openai-completions:{server.model_id}@{server.base_url}", None, workspace)
    assert ref.kind == "endpoint" and ref.api == "completions" and ref.model_name == server.model_id
    check_loglik(ref)                       # no refusal: this backend scores choices
    backend = open_backend(ref)
    assert isinstance(backend, CompletionsEndpoint) and isinstance(backend, Backend)
    assert backend.describe().local and backend.supports_loglik
    assert "api" not in resolve_model(f"openai:{server.model_id}@{server.base_url}", None, workspace).to_dict()


def test_split_pair_moves_the_context_s_trailing_space_like_encode_pair():
    assert split_pair("答え: ", " a") == ("答え:", "  a")
    assert split_pair("Q", " a") == ("Q", " a")


def test_per_question_log_probs_agree_with_local_scoring(workspace, server, tiny_llama_dir, questions_and_prompts):
    qs, prompts = questions_and_prompts
    remote = open_backend(f"openai-completions:{server.model_id}@{server.base_url}", workspace, concurrency=3)
    got = remote.score_choices(qs, prompts)
    model, tok = load_model(resolve_model(str(tiny_llama_dir), None, workspace), device="cpu")
    want = loglik.score_questions(model, tok, qs, [p.text for p in prompts])
    assert len(got) == len(want) == len(qs)
    for (g_sum, g_norm), (w_sum, w_norm), q in zip(got, want, qs):
        assert set(g_sum) == set(q.letters)
        for letter in q.letters:
            assert g_sum[letter] == pytest.approx(w_sum[letter], abs=1e-3)
            assert g_norm[letter] == pytest.approx(w_norm[letter], abs=1e-3)


def test_an_evaluation_through_the_server_scores_as_the_local_one(workspace, server, tiny_llama_dir, tmp_path):
    common = dict(method="loglik", limit=4, shots=(0, 1), workspace=str(workspace.root))
    local = evaluate.run(evaluate.EvalConfig(model=str(tiny_llama_dir), out=str(tmp_path / "local"), **common))
    remote = evaluate.run(evaluate.EvalConfig(model=f"openai-completions:{server.model_id}@{server.base_url}",
                                              out=str(tmp_path / "remote"), **common))

    def picks(out):
        rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        return {(r["problem_id"], r["shots"]): (r["ll_predicted"], r["ll_predicted_norm"]) for r in rows}
    assert len(picks(tmp_path / "local")) == 8
    assert picks(tmp_path / "remote") == picks(tmp_path / "local")
    assert remote["label"] != local["label"] and "@ http://127.0.0.1" in remote["label"]


def test_generation_sends_the_raw_prompt_to_completions(workspace, server):
    backend = open_backend(f"openai-completions:{server.model_id}@{server.base_url}", workspace)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=6, stop=())
    answers = dict(backend.generate([Prompt(text="心不全の治療は"), Prompt(messages=[{"role": "user", "content": "Hi"}])],
                                    settings))
    assert set(answers) == {0, 1} and all(a.n_tokens <= 6 for a in answers.values())
    again = dict(backend.generate([Prompt(text="心不全の治療は")], settings))
    assert again[0].text == answers[0].text          # greedy: the same text


def test_a_chat_only_server_is_refused_with_the_reason(workspace, questions_and_prompts):
    qs, prompts = questions_and_prompts
    with FakeOpenAIServer(reply="x") as chat_only:
        backend = open_backend(f"openai-completions:fake-model@{chat_only.base_url}", workspace)
        with pytest.raises(UserError) as err:
            backend.score_choices(qs[:1], prompts[:1])
    assert err.value.code == "loglik.endpoint_no_logprobs" and "404" in str(err.value)
    assert "--method generate" in err.value.fix


def test_chat_prompts_are_refused_for_log_likelihoods(workspace, server, questions_and_prompts):
    qs, _ = questions_and_prompts
    backend = open_backend(f"openai-completions:{server.model_id}@{server.base_url}", workspace)
    with pytest.raises(UserError) as err:
        backend.score_choices(qs[:1], [Prompt(messages=[{"role": "user", "content": "Q"}])])
    assert err.value.code == "loglik.endpoint_chat"


def test_a_remote_host_gets_the_privacy_guard_before_anything_is_sent(workspace, monkeypatch, questions_and_prompts):
    qs, _ = questions_and_prompts
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    backend = open_backend("openai-completions:m@https://api.example.invalid/v1", workspace)
    sent = []
    monkeypatch.setattr(backend.client.completions, "create", lambda **kw: sent.append(kw))
    leaking = Prompt(text="患者氏名：山田太郎様　電話 090-1234-5678\n答え：")
    with pytest.raises(PrivacyBlocked) as err:
        backend.score_choices(qs[:1], [leaking])
    assert err.value.code == "privacy.blocked_prompts" and qs[0].problem_id in str(err.value) and not sent
    with pytest.raises(PrivacyBlocked):     # and for generation through the chat endpoint too
        list(open_backend("openai:m@https://api.example.invalid/v1", workspace).generate(
            [leaking], GenerationSettings()))
