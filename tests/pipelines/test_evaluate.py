"""The evaluation engine end to end on tiny random models (and once on the real embedded model)."""
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines.core.errors import UserError
from pipelines.evaluation.evaluator import EvalConfig, run
from pipelines.evaluation.prompting import build_prompt, shuffled
from pipelines.evaluation.results import read_results
from pipelines.tasks.igakuqa import load_questions
from pipelines.tasks.prompts import load_template
from tests.conftest import REPO, SAMPLE_QUESTIONS

SHOTS = str(REPO / "assets/questions/shots_ja.jsonl")


def config(model, out, **kw):
    base = dict(model=str(model), data=str(SAMPLE_QUESTIONS), out=str(out), limit=3, max_new_tokens=6,
                batch_size=4, shots=(0, 1))
    base.update(kw)
    return EvalConfig(**base)


@pytest.mark.smoke
def test_zero_and_one_shot_results_and_summary(workspace, tiny_llama_dir, tmp_path):
    events = []
    summary = run(config(tiny_llama_dir, tmp_path / "ev"), events.append)
    rows = read_results(tmp_path / "ev")
    assert len(rows) == 6 and {r["shots"] for r in rows} == {0, 1}
    for r in rows:
        assert {"problem_id", "shots", "response", "predicted", "answer", "accuracy", "exact_match",
                "gestalt"} <= set(r)
        assert 0 <= r["gestalt"] <= 1 and r["accuracy"] in (0.0, 1.0)
    one = [r for r in rows if r["shots"] == 1]
    for r in one:
        assert r["example_id"] and r["example_id"] != r["problem_id"]
        assert r["prompt"].count("### 応答:") == 2  # the solved example, then the question
    for shots in ("0", "1"):
        s = summary["by_shots"][shots]
        assert s["n"] == 3
        for m in ("accuracy", "exact_match", "gestalt"):
            assert s[m]["ci_low"] <= s[m]["mean"] <= s[m]["ci_high"]
    saved = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert saved["by_shots"] == summary["by_shots"]
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "finish"
    assert [e["done"] for e in events if e["event"] == "progress" and "tokens" not in e] == [1, 2, 3, 4, 5, 6]
    (ev,) = workspace.evaluations()
    assert ev["status"] == "finished" and ev["summary"]["by_shots"]["0"]["n"] == 3


def test_interrupted_run_resumes_without_redoing(workspace, tiny_llama_dir, tmp_path):
    out = tmp_path / "ev"

    def stop_after_two(e):
        if e["event"] == "progress" and e["done"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config(tiny_llama_dir, out, limit=4, shots=(0,)), stop_after_two)
    first = read_results(out)
    assert len(first) == 2
    assert workspace.evaluations()[0]["status"] == "failed"
    events = []
    run(config(tiny_llama_dir, out, limit=4, shots=(0,)), events.append)
    rows = read_results(out)
    assert rows[:2] == first  # finished questions are kept, not redone
    assert len(rows) == 4 and len({r["problem_id"] for r in rows}) == 4
    assert events[0]["done"] == 2 and len([e for e in events if e["event"] == "progress" and "tokens" not in e]) == 2


def test_a_rerun_after_a_questions_answer_changed_rescores_it_and_keeps_the_others(workspace, tiny_llama_dir,
                                                                                    tmp_path):
    """The key of question 2 is corrected between runs: its saved row (and score) is stale, so it is
    answered and scored again; the unchanged question is not redone."""
    import json as _json
    data = tmp_path / "q.jsonl"
    lines = [_json.loads(l) for l in SAMPLE_QUESTIONS.read_text(encoding="utf-8").splitlines()
             if _json.loads(l).get("text_only", True) and len(_json.loads(l)["answer"]) == 1][:2]
    data.write_text("".join(_json.dumps(q, ensure_ascii=False) + "\n" for q in lines), encoding="utf-8")
    out = tmp_path / "ev"
    run(config(tiny_llama_dir, out, data=str(data), limit=None, shots=(0,), temperature=0.0))
    before = {r["problem_id"]: r for r in read_results(out)}
    changed = lines[1]["problem_id"]
    letters = [c for c in "abcde" if c not in lines[1]["answer"]]
    lines[1]["answer"] = [letters[0]]
    data.write_text("".join(_json.dumps(q, ensure_ascii=False) + "\n" for q in lines), encoding="utf-8")
    events = []
    summary = run(config(tiny_llama_dir, out, data=str(data), limit=None, shots=(0,), temperature=0.0), events.append)
    after = {r["problem_id"]: r for r in read_results(out)}
    assert after[changed]["answer"] == [letters[0]] and after[changed]["question_hash"] != before[changed]["question_hash"]
    assert after[lines[0]["problem_id"]] == before[lines[0]["problem_id"]]          # not redone
    assert [e["stale"] for e in events if e.get("stale")] == [1]
    right = sum(r["accuracy"] for r in after.values()) / 2
    assert summary["by_shots"]["0"]["accuracy"]["mean"] == pytest.approx(right)


def test_graceful_stop_keeps_the_answers_and_resumes(workspace, tiny_llama_dir, tmp_path):
    import threading
    out, stop, events = tmp_path / "ev", threading.Event(), []

    def stop_at_two(e):
        events.append(e)
        if e["event"] == "progress" and e["done"] == 2:
            stop.set()

    result = run(config(tiny_llama_dir, out, limit=4, shots=(0,)), stop_at_two, stop=stop)
    assert result["stopped"] and result["done"] == 2 and events[-1]["event"] == "stop"
    assert len(read_results(out)) == 2 and not (out / "summary.json").exists()
    assert workspace.evaluations()[0]["status"] == "stopped"
    summary = run(config(tiny_llama_dir, out, limit=4, shots=(0,)))
    assert summary["by_shots"]["0"]["n"] == 4


def test_resume_with_other_settings_is_refused(workspace, tiny_llama_dir, tmp_path):
    run(config(tiny_llama_dir, tmp_path / "ev", limit=1, shots=(0,)))
    with pytest.raises(UserError, match="different evaluation"):
        run(config(tiny_llama_dir, tmp_path / "ev", limit=1, shots=(0,), template="en"))


def test_loglik_batched_equals_one_by_one(workspace, tiny_neox_dir, tmp_path):
    """GPT-NeoX (OpenCALM's architecture), log-likelihood scoring: padding must not change scores."""
    from pipelines.models import loglik
    from pipelines.models.references import load_model, resolve_model

    model, tok = load_model(resolve_model(str(tiny_neox_dir), None, workspace))
    reqs = [("### 応答:\n", "ACE阻害薬"), ("短い", "インスリンとβ刺激薬"), ("問題文がもっと長い場合の文脈", "甘草")]
    batched = loglik.choice_logprobs(model, tok, reqs, batch_size=3)
    single = [loglik.choice_logprobs(model, tok, [r], batch_size=1)[0] for r in reqs]
    assert batched == pytest.approx(single, abs=1e-3)
    summary = run(config(tiny_neox_dir, tmp_path / "ev", method="both", shots=(0,)))
    rows = read_results(tmp_path / "ev")
    assert all(set(r["ll_logprobs"]) == set("abcde") for r in rows if r["choice_order"] is None and r["answer_text"])
    assert "ll_accuracy" in summary["by_shots"]["0"] and "accuracy" in summary["by_shots"]["0"]


def test_batched_greedy_generation_matches_single(workspace, tiny_llama_dir):
    from pipelines.models.generation import GenerationSettings, LocalGenerator
    from pipelines.models.references import load_model, resolve_model

    model, tok = load_model(resolve_model(str(tiny_llama_dir), None, workspace))
    qs = load_questions(SAMPLE_QUESTIONS, limit=4).questions
    prompts = [build_prompt(q, load_template("ja"), None) for q in qs]
    greedy = GenerationSettings(temperature=0, max_new_tokens=5, stop=())
    batched = dict(LocalGenerator(model, tok, batch_size=4).generate(prompts, greedy))
    single = dict(LocalGenerator(model, tok, batch_size=1).generate(prompts, greedy))
    assert [batched[i].text for i in range(4)] == [single[i].text for i in range(4)]


def test_chat_template_prompting_recorded(workspace, tiny_llama_dir, tmp_path):
    summary = run(config(tiny_llama_dir, tmp_path / "ev", template="chat", shots=(1,), limit=1))
    (row,) = read_results(tmp_path / "ev")
    assert [m["role"] for m in row["prompt"]] == ["user", "assistant", "user"]
    assert summary["chat_template"] is True


def test_shuffle_keeps_the_right_answer_text():
    for q in load_questions(SAMPLE_QUESTIONS).questions[:10]:
        s, order = shuffled(q, seed=3)
        assert sorted(s.answer_texts) == sorted(q.answer_texts)
        assert sorted(s.choices) == sorted(q.choices)
        assert sorted(s.choice_text(k) for k in s.kinki) == sorted(q.choice_text(k) for k in q.kinki)
        assert order and sorted(order) == q.letters


def test_missing_model_is_a_clear_error(workspace, tmp_path):
    with pytest.raises(UserError, match="not found"):
        run(config(tmp_path / "no-such-model", tmp_path / "ev"))
    proc = subprocess.run([sys.executable, "-m", "pipelines.evaluation.evaluator", "--model", str(tmp_path / "nope"),
                           "--data", str(SAMPLE_QUESTIONS), "--out", str(tmp_path / "ev2"),
                           "--workspace", str(workspace.root)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert "not found" in proc.stderr and "Traceback" not in proc.stderr


class _Canned(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.headers.get("Authorization"), body))
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": "インスリン"}}],
                 "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
        data = json.dumps(reply, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def test_endpoint_model_evaluated_the_same_way(workspace, tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-123")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        summary = run(config(f"openai:gpt-test@{url}", tmp_path / "ev", shots=(0,), limit=3))
    finally:
        server.shutdown()
    rows = read_results(tmp_path / "ev")
    assert [r["response"] for r in rows] == ["インスリン"] * 3
    assert summary["by_shots"]["0"]["n"] == 3
    assert _Canned.seen[0][0] == "Bearer sk-test-secret-123"
    assert _Canned.seen[0][1]["temperature"] == 0.1 and _Canned.seen[0][1]["top_p"] == 0.9
    for f in (tmp_path / "ev").iterdir():
        assert "sk-test-secret-123" not in f.read_text()
    assert "sk-test-secret-123" not in workspace.db_path.read_bytes().decode("utf-8", "ignore")


def test_remote_endpoint_without_key_is_refused(workspace, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        run(config("openai:gpt-3.5-turbo@https://api.example.invalid/v1", tmp_path / "ev", shots=(0,)))


@pytest.mark.slow
def test_real_embedded_model_end_to_end(workspace_with_default, tmp_path):
    summary = run(config("default", tmp_path / "ev", limit=3, max_new_tokens=24, shots=(0, 1), batch_size=8))
    rows = read_results(tmp_path / "ev")
    assert len(rows) == 6 and all(isinstance(r["response"], str) for r in rows)
    assert any(r["response"] for r in rows)  # a real instruct model says something
    assert summary["label"] == "default"


def test_batches_respect_row_and_token_budgets():
    from pipelines.models.generation import LocalGenerator

    gen = LocalGenerator.__new__(LocalGenerator)
    gen.batch_size, gen.max_batch_tokens, gen.first_batch = 3, 1000, 3
    lengths = [700, 400, 380, 100, 90, 80, 70]
    batches = list(gen._batches(list(range(7)), lengths, max_new_tokens=100))
    # 700+100 = 800 per row: one row; 400+100 = 500: two rows; 100+100: three rows (row cap)
    assert batches == [[0], [1, 2], [3, 4, 5], [6]]


def test_the_first_batch_is_small_so_first_answers_come_quickly():
    from pipelines.models.generation import LocalGenerator

    gen = LocalGenerator.__new__(LocalGenerator)
    gen.batch_size, gen.max_batch_tokens, gen.first_batch = 4, 10_000, 1
    assert list(gen._batches(list(range(7)), [50] * 7, max_new_tokens=10)) == [[0], [1, 2, 3, 4], [5, 6]]


def test_progress_is_reported_before_the_first_batch_finishes(workspace, tiny_llama_dir, tmp_path):
    events = []
    run(config(tiny_llama_dir, tmp_path / "ev", limit=4, shots=(0,), max_new_tokens=8), events.append)
    progress = [e for e in events if e["event"] == "progress"]
    first_answer = next(i for i, e in enumerate(progress) if "tokens" not in e)
    early = progress[:first_answer]
    assert early and early[0]["tokens"] > 0 and early[0]["done"] == 0 and early[0]["total"] == 4
    assert early[0]["tokens_per_s"] > 0 and early[0]["eta_s"] is not None
    rows = read_results(tmp_path / "ev")
    assert all("raw_response" in r and r["response"] in r["raw_response"] for r in rows)


def test_loglik_reports_and_saves_in_chunks_the_first_small(workspace, tiny_llama_dir, tmp_path):
    """A whole exam scored by likelihood used to report (and save) nothing until its end."""
    out, stop, events = tmp_path / "ev", threading.Event(), []

    def stop_after_first_chunk(e):
        events.append(e)
        if e["event"] == "progress" and e["done"] == 2:
            stop.set()

    result = run(config(tiny_llama_dir, out, limit=12, shots=(0,), method="loglik", batch_size=4),
                 stop_after_first_chunk, stop=stop)
    assert [e["done"] for e in events if e["event"] == "progress"] == [1, 2]     # the first chunk: 2 questions
    assert result["stopped"] and len(read_results(out)) == 2
    events.clear()
    summary = run(config(tiny_llama_dir, out, limit=12, shots=(0,), method="loglik", batch_size=4), events.append)
    done = [e["done"] for e in events if e["event"] == "progress"]
    assert done[0] == 3 and done[-1] == summary["by_shots"]["0"]["n"]


def test_both_reports_the_likelihood_phase_before_generating(workspace, tiny_llama_dir, tmp_path):
    events = []
    run(config(tiny_llama_dir, tmp_path / "ev", limit=4, shots=(0,), method="both"), events.append)
    progress = [e for e in events if e["event"] == "progress"]
    phase = [e for e in progress if e.get("phase") == "loglik"]
    assert phase and phase[0]["scored"] == 2 and phase[-1]["scored"] == phase[-1]["to_score"]
    assert progress.index(phase[-1]) < next(i for i, e in enumerate(progress) if "phase" not in e)


def test_batches_fit_the_key_value_cache_budget(tiny_llama_dir, monkeypatch):
    """The fixed token bound is also capped by what the model's KV cache costs per token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipelines.models import generation
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    gen = generation.LocalGenerator(model, AutoTokenizer.from_pretrained(tiny_llama_dir), max_batch_tokens=16384)
    c = model.config
    per_token = c.num_hidden_layers * 2 * c.num_key_value_heads * (c.hidden_size // c.num_attention_heads) * 4
    assert gen.token_budget() == 16384                      # 384 MB holds far more of this tiny model
    monkeypatch.setattr(generation, "KV_CACHE_MB", 1)
    assert gen.token_budget() == 2 ** 20 // per_token < 16384
    gen.first_batch = 16
    budget = gen.token_budget()
    batches = list(gen._batches(list(range(40)), [budget // 8 - 10] * 40, max_new_tokens=10))
    assert all(len(b) * (budget // 8) <= budget for b in batches) and max(map(len, batches)) == 8
