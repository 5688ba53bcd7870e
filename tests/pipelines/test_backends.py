"""The generation backend seam: both implementations satisfy the Protocol, the backend is
chosen from the model reference alone, and the free-form prompt works through any of them."""
import pytest

from pipelines.core.errors import UserError
from pipelines.evaluation import evaluator as evaluate
from pipelines.evaluation import freeform
from pipelines.evaluation.prompting import build_prompt
from pipelines.models import loglik
from pipelines.models.backends import Backend, BackendInfo, check_loglik, open_backend
from pipelines.models.generation import EndpointGenerator, GenerationSettings, LocalGenerator, Prompt
from pipelines.models.references import resolve_model
from pipelines.tasks.igakuqa import load_questions
from pipelines.tasks.prompts import load_template
from tests.conftest import SAMPLE_QUESTIONS
from tests.pipelines.fake_openai_server import FakeOpenAIServer


@pytest.fixture(scope="module")
def tiny_backend(tiny_llama_dir, tmp_path_factory):
    from pipelines.core.workspace import Workspace
    return open_backend(str(tiny_llama_dir), Workspace.resolve(tmp_path_factory.mktemp("backend_ws")))


@pytest.fixture
def fake_server():
    # Echo the last user message, so a test sees exactly what was sent.
    with FakeOpenAIServer(reply=lambda prompt: f"echo:{prompt}") as srv:
        yield srv


def test_a_local_directory_opens_the_local_engine(tiny_backend, tiny_llama_dir):
    assert isinstance(tiny_backend, LocalGenerator) and isinstance(tiny_backend, Backend)
    assert tiny_backend.supports_loglik
    assert tiny_backend.describe() == BackendInfo(kind="local", label=str(tiny_llama_dir), device="cpu", local=True)
    out = dict(tiny_backend.generate([Prompt(text="心不全とは"), Prompt(text="糖尿病")],
                                     GenerationSettings(max_new_tokens=3, temperature=0)))
    assert sorted(out) == [0, 1] and all(0 < c.n_tokens <= 3 for c in out.values())


def test_a_registered_name_opens_its_model_with_its_name(workspace, tiny_llama_dir):
    workspace.register_model("tiny-base", "base", str(tiny_llama_dir), step=0)
    backend = open_backend("tiny-base", workspace, batch_size=2)
    assert isinstance(backend, LocalGenerator) and backend.batch_size == 2
    assert backend.describe().label == "tiny-base"


def test_an_openai_reference_opens_the_endpoint(workspace, fake_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)   # a loopback endpoint needs no key
    backend = open_backend(f"openai:fake-model@{fake_server.base_url}", workspace, concurrency=2)
    assert isinstance(backend, EndpointGenerator) and isinstance(backend, Backend)
    assert not backend.supports_loglik and backend.concurrency == 2
    info = backend.describe()
    assert (info.kind, info.label, info.local) == ("endpoint", f"fake-model @ {fake_server.base_url}", True)
    assert info.where == fake_server.base_url.split("/")[2]
    out = dict(backend.generate([Prompt(text="a"), Prompt(messages=[{"role": "user", "content": "b"}])],
                                GenerationSettings()))
    assert {i: c.text for i, c in out.items()} == {0: "echo:a", 1: "echo:b"}


def test_a_remote_endpoint_says_where_it_runs(workspace, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    info = open_backend("openai:gpt-test@https://api.example.invalid/v1", workspace).describe()
    assert not info.local and info.where == "api.example.invalid"


def test_an_endpoint_refuses_log_likelihoods_and_says_why(workspace, fake_server):
    ref = resolve_model(f"openai:fake-model@{fake_server.base_url}", None, workspace)
    backend = open_backend(ref)
    q = load_questions(SAMPLE_QUESTIONS, limit=1).questions
    with pytest.raises(UserError, match="token probabilities") as err:
        backend.score_choices(q, [Prompt(text="x")])
    assert "--method generate" in err.value.fix
    with pytest.raises(UserError, match="token probabilities"):   # and before anything is opened
        check_loglik(ref)
    check_loglik(resolve_model("default", None, workspace, prepare=False))
    out = workspace.root / "ev"
    with pytest.raises(UserError, match="token probabilities"):   # an evaluation stops before its first file
        evaluate.run(evaluate.EvalConfig(model=ref.spec, method="both", out=str(out), workspace=str(workspace.root)))
    assert not out.exists() and fake_server.requests == 0


def test_local_log_likelihoods_are_the_loglik_module_s(tiny_backend):
    qs = [q for q in load_questions(SAMPLE_QUESTIONS, limit=4).questions if not q.is_numeric]
    prompts = [build_prompt(q, load_template("ja"), None) for q in qs]
    got = tiny_backend.score_choices(qs, prompts)
    want = loglik.score_questions(tiny_backend.model, tiny_backend.tokenizer, qs, [p.text for p in prompts])
    assert len(got) == len(qs) and set(got[0][0]) == set(qs[0].letters)
    for (g_sum, g_norm), (w_sum, w_norm) in zip(got, want, strict=True):
        assert g_sum == pytest.approx(w_sum) and g_norm == pytest.approx(w_norm)


def test_unknown_reference_is_a_user_error(workspace, tmp_path):
    with pytest.raises(UserError, match="not found"):
        open_backend(str(tmp_path / "nothing-here"), workspace)


def test_free_form_prompt_formats():
    assert freeform.build_prompt("説明して", "心不全", "raw") == Prompt(text="説明して\n心不全")
    assert freeform.build_prompt("説明して", "", "chat") == Prompt(messages=[{"role": "user", "content": "説明して"}])
    ja = freeform.build_prompt("説明して", "心不全", "ja")
    assert ja.text == load_template("ja").render("説明して", "心不全")
    with pytest.raises(UserError, match="empty"):
        freeform.build_prompt("  ", "x", "ja")
    with pytest.raises(UserError, match="not found"):
        freeform.build_prompt("x", "", "no-such-template")


def test_free_form_answer_on_a_tiny_model(tiny_backend):
    comp = freeform.answer(tiny_backend, "以下の疾患の治療を説明してください。", "深部静脈血栓症", "ja", 4)
    assert isinstance(comp.text, str) and 0 < comp.n_tokens <= 4
    with pytest.raises(UserError, match="at least 1"):
        freeform.answer(tiny_backend, "x", "", "ja", 0)


def test_free_form_answer_through_an_endpoint_sends_the_rendered_template(workspace, fake_server):
    backend = open_backend(f"openai:fake-model@{fake_server.base_url}", workspace)
    comp = freeform.answer(backend, "説明して", "心不全", "ja", 16)
    sent = load_template("ja").render("説明して", "心不全")
    assert list(fake_server.answered) == [sent]
    assert comp.text == "echo:" + sent.split("###")[0].strip()    # cut at the template's stop string
