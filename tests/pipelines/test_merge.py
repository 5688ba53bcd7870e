"""Merging tiny models end to end: exactness, the search, resume after SIGKILL, refusals."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pipelines.core.errors import UserError
from pipelines.merging.evolve import MergeConfig, run
from pipelines.merging.inputs import Mixer, plan_merge
from pipelines.merging.search import SearchSpace, best_so_far, read_candidates

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "assets" / "questions" / "sample_ja.jsonl"


def make_adapter(base_dir: Path, out: Path, *, seed: int = 1, targets=("q_proj", "v_proj"), **kw) -> Path:
    """A LoRA adapter with random (non-zero) weights, as tests/workbench/conftest.py makes them."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(targets),
                                                  init_lora_weights=False, **kw))
    peft_model.save_pretrained(out)
    return out


def perturbed_copy(src: Path, out: Path, *, seed: int, scale: float = 0.05) -> Path:
    """A 'fine-tuned' full model: the source's weights plus noise, same tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, tiny_llama_dir):
    root = tmp_path_factory.mktemp("adapters")
    return [make_adapter(tiny_llama_dir, root / "a1", seed=1), make_adapter(tiny_llama_dir, root / "a2", seed=2)]


@pytest.fixture(scope="module")
def full_models(tmp_path_factory, tiny_llama_dir):
    root = tmp_path_factory.mktemp("full")
    return [perturbed_copy(tiny_llama_dir, root / "m1", seed=1), perturbed_copy(tiny_llama_dir, root / "m2", seed=2)]


def _logits(model, text="心房細動について正しいのはどれか。"):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model.config._name_or_path or model.name_or_path)
    with torch.no_grad():
        return model(**tok(text, return_tensors="pt")).logits


def _load(path):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(path).eval()


def test_full_models_weights_one_zero_reproduce_the_first_input_exactly(workspace, full_models):
    mixer = Mixer(plan_merge([str(p) for p in full_models], None, "linear", workspace=workspace))
    mixer.apply(SearchSpace(2).anchor(0))
    reference = _load(full_models[0])
    for name, t in reference.state_dict().items():
        assert torch.equal(mixer.state[name], t), name
    assert torch.equal(_logits(mixer.model), _logits(reference))


def test_a_saved_candidate_equals_the_one_mixed_in_memory(workspace, full_models, tiny_llama_dir, tmp_path):
    plan = plan_merge([str(p) for p in full_models], str(tiny_llama_dir), "dare_ties", layer_groups=2,
                      workspace=workspace)
    mixer = Mixer(plan)
    params = {"weights": [[0.7, 0.4], [0.2, 0.9]], "densities": [[0.5, 0.8], [0.3, 1.0]]}
    mixer.apply(params)
    assert mixer.save(tmp_path / "out", params) == "merged"
    saved = _load(tmp_path / "out").state_dict()
    for name, t in mixer.model.state_dict().items():
        assert torch.equal(saved[name], t), name


def test_jradievo_space_decodes_to_its_ten_variables_and_anchors_one_input_alone(workspace, full_models,
                                                                               tiny_llama_dir, tmp_path):
    space = SearchSpace(4, with_density=True, scaled=True)
    assert space.dim == 10                                   # JRadiEvo's: p, 4 trims, 4 weights, λ
    x = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.25, 1.5]
    assert space.decode(x) == {"weights": [[0.1, 0.2, 0.3, 0.4]], "densities": [[0.5, 0.6, 0.7, 0.8]],
                               "drop": 0.25, "scale": 1.5}
    assert space.bounds()[-2:].tolist() == [[0.0, 0.95], [0.0, 2.0]] and space.bounds()[4].tolist() == [0.0, 1.0]
    plan = plan_merge([str(p) for p in full_models], str(tiny_llama_dir), "jradievo", workspace=workspace)
    mixer = Mixer(plan)
    mixer.apply(SearchSpace(2, with_density=True, scaled=True).anchor(1))
    for name, t in _load(full_models[1]).state_dict().items():
        assert torch.allclose(mixer.state[name], t, atol=1e-6), name       # θ_b + (θ_1 − θ_b), in float32
    params = {"weights": [[0.7, 0.4]], "densities": [[0.5, 0.8]], "drop": 0.3, "scale": 1.4}
    mixer.apply(params)
    mixer.save(tmp_path / "out", params)
    saved = _load(tmp_path / "out").state_dict()
    for name, t in mixer.model.state_dict().items():
        assert torch.equal(saved[name], t), name


def test_peft_cat_merge_is_the_weighted_sum_of_adapter_deltas(workspace, adapters):
    from peft.tuners.lora import LoraLayer
    for method, weights, expect in (("task_arithmetic", [0.3, 1.2], [0.3, 1.2]), ("linear", [1.0, 3.0], [0.25, 0.75])):
        mixer = Mixer(plan_merge([str(a) for a in adapters], None, method, workspace=workspace))
        assert mixer.plan.mode == "cat"
        mixer.apply({"weights": [weights], "densities": [[1.0, 1.0]]})
        layers = [m for m in mixer.model.modules() if isinstance(m, LoraLayer)]
        assert layers
        for layer in layers:
            want = expect[0] * layer.get_delta_weight("in0") + expect[1] * layer.get_delta_weight("in1")
            assert torch.allclose(layer.get_delta_weight("merged"), want, atol=1e-6)


def test_adapters_weights_one_zero_reproduce_the_first_adapter(workspace, adapters, tiny_llama_dir):
    from peft import PeftModel
    reference = PeftModel.from_pretrained(_load(tiny_llama_dir), str(adapters[0])).eval()
    want = _logits(reference)
    for method in ("linear", "ties"):       # PEFT cat, and folded into the base
        mixer = Mixer(plan_merge([str(a) for a in adapters], None, method, workspace=workspace))
        mixer.apply(SearchSpace(2, with_density=method == "ties").anchor(0))
        got = _logits(mixer.model)
        assert torch.allclose(got, want, atol=1e-5)
        assert torch.equal(got.argmax(-1), want.argmax(-1))


def small_questions(path: Path, n: int) -> Path:
    """The first n single-answer sample questions (log-likelihoods of a 49k-token vocabulary are
    the cost of each candidate, so tests keep the sets small)."""
    lines = [ln for ln in SAMPLE.read_text(encoding="utf-8").splitlines()
             if ln.strip() and len(json.loads(ln)["answer"]) == 1 and json.loads(ln).get("choices")]
    path.write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
    return path


def _dev_file_the_first_model_aces(model_dir: Path, path: Path, n: int = 8) -> Path:
    """Sample questions with each answer replaced by the model's log-likelihood choice:
    that input is clearly the best on these questions."""
    from pipelines.evaluation.prompting import build_prompt
    from pipelines.evaluation.scoring import score_choice_logprobs
    from pipelines.models.generation import LocalGenerator
    from pipelines.models.references import load_tokenizer
    from pipelines.tasks.igakuqa import load_questions
    from pipelines.tasks.prompts import load_template
    qs = load_questions(small_questions(path.with_name("src.jsonl"), n)).questions
    template = load_template("ja")
    backend = LocalGenerator(_load(model_dir), load_tokenizer(str(model_dir)), batch_size=4)
    results = backend.score_choices(qs, [build_prompt(q, template, None) for q in qs])
    with open(path, "w", encoding="utf-8") as fh:
        for q, r in zip(qs, results):
            fh.write(json.dumps({**q.to_dict(), "answer": score_choice_logprobs(q, *r)["ll_predicted"]},
                                ensure_ascii=False) + "\n")
    return path


def test_search_keeps_the_best_input_when_no_merge_beats_it_and_registers_it(workspace, full_models, tmp_path):
    dev = _dev_file_the_first_model_aces(full_models[1], tmp_path / "dev.jsonl")
    events = []
    config = MergeConfig(inputs=(str(full_models[0]), str(full_models[1])), method="linear", dev=str(dev),
                         test_fraction=0.25, budget=4, population=4, batch_size=4, out=str(tmp_path / "m"))
    report = run(config, events.append)
    cands = read_candidates(tmp_path / "m" / "candidates.jsonl")
    assert len(cands) == 2 + 4 and [c["i"] for c in cands] == list(range(6))
    inputs = [c["score"] for c in cands if c["kind"] == "input"]
    assert inputs[1] == 1.0 and inputs[0] < 1.0           # the constructed case: input 2 is clearly better
    card = json.loads((tmp_path / "m" / "model" / "merge_card.json").read_text())
    # Input 2 answers every dev question as the key has it (1.0): no merge can beat it, ties do not displace
    # an input (the earlier candidate wins a tie), so the saved model is input 2 and the verdict says so.
    assert card["dev_score"] == 1.0 and best_so_far(cands)[-1] == 1.0
    assert all(c["score"] <= 1.0 for c in cands if c["kind"] != "input")
    assert [r["role"] for r in report["rows"]] == ["input 1", "input 2", "merge"]
    assert report["best_input"] == str(full_models[1])
    assert report["verdict_code"] == "no_merge_found", report["verdict"]
    assert report["verdict"].startswith(f"The search found no merge better than {full_models[1]} on the dev set")
    from safetensors.torch import load_file
    saved, second = (load_file(next(Path(d).glob("*.safetensors"))) for d in (tmp_path / "m" / "model", full_models[1]))
    assert saved.keys() == second.keys() and all(torch.equal(saved[k], second[k]) for k in saved)
    assert {e["event"] for e in events} >= {"start", "candidate", "generation", "finish"}
    reg = workspace.model(report["registered_as"])
    assert reg["kind"] == "merged" and report["registered_as"] == "merge-1"
    from pipelines.models.references import resolve_model
    assert resolve_model("merge-1", None, workspace).path == str((tmp_path / "m" / "model").resolve())
    from pipelines.core import audit
    assert [e["detail"]["phase"] for e in audit.entries(workspace.root) if e["action"] == "merge"] == ["start", "finish"]


def start_held_merge(args: list[str], *, after: int) -> subprocess.Popen:
    """``jmedlora merge ARGS`` in a child that holds once ``after`` candidates are on disk, so a kill
    lands mid-search however fast the machine is (polling alone let a quiet machine finish first)."""
    hold = ("import threading, runpy, sys; import pipelines.merging.search as ms\n"
            "real, n = ms.append_candidate, [0]\n"
            "def held(path, record):\n"
            f"    real(path, record); n[0] += 1\n    if n[0] == {after}: threading.Event().wait()\n"
            "ms.append_candidate = held\n"
            "sys.argv = ['pipelines.merging.evolve'] + sys.argv[1:]\n"
            "runpy.run_module('pipelines.merging.evolve', run_name='__main__', alter_sys=True)\n")
    return subprocess.Popen([sys.executable, "-c", hold, *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def kill_mid_search(args: list[str], path: Path, *, after: int) -> list[dict]:
    """Run ``jmedlora merge ARGS``, SIGKILL it once ``after`` candidates are in ``path``; those candidates."""
    proc = start_held_merge(args, after=after)
    while proc.poll() is None and len(read_candidates(path)) < after:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return read_candidates(path)


def test_resume_after_sigkill_rescores_nothing(workspace, adapters, tmp_path):
    out = tmp_path / "m"
    cmd = [sys.executable, "-m", "pipelines.merging.evolve", "--inputs", str(adapters[0]), str(adapters[1]),
           "--dev", str(small_questions(tmp_path / "dev.jsonl", 4)), "--test-fraction", "0.5", "--budget", "4",
           "--population", "4", "--batch-size", "4", "--out", str(out),
           "--workspace", str(workspace.root)]
    path = out / "candidates.jsonl"
    before = kill_mid_search(cmd[3:], path, after=3)
    assert len(before) == 3, before
    events = []
    run(MergeConfig(resume=str(out), workspace=str(workspace.root)), events.append)
    after = read_candidates(path)
    assert [c["i"] for c in after] == list(range(6))
    assert after[:len(before)] == before
    scored = [e for e in events if e["event"] == "candidate"]
    assert [e["resumed"] for e in scored] == [True] * len(before) + [False] * (6 - len(before))


def test_a_torn_last_line_is_dropped_and_cut_off(tmp_path):
    path = tmp_path / "candidates.jsonl"
    path.write_text('{"i": 0, "score": 0.5}\n{"i": 1, "sc')
    assert read_candidates(path, repair=True) == [{"i": 0, "score": 0.5}]
    assert path.read_text() == '{"i": 0, "score": 0.5}\n'
    assert best_so_far([{"score": 0.2}, {"score": 0.5}, {"score": 0.4}]) == [0.2, 0.5, 0.5]


def test_bad_inputs_are_refused_with_clear_messages(workspace, tiny_llama_dir, tiny_neox_dir, adapters,
                                                    full_models, tmp_path):
    with pytest.raises(UserError, match="at least two inputs"):
        plan_merge([str(adapters[0])], None, "linear", workspace=workspace)
    neox_adapter = make_adapter(tiny_neox_dir, tmp_path / "neox", targets=("query_key_value",))
    with pytest.raises(UserError, match="different base models"):
        plan_merge([str(adapters[0]), str(neox_adapter)], None, "linear", workspace=workspace)
    other_targets = make_adapter(tiny_llama_dir, tmp_path / "k", targets=("k_proj",))
    with pytest.raises(UserError, match="adapt different modules"):
        plan_merge([str(adapters[0]), str(other_targets)], None, "linear", workspace=workspace)
    dora = make_adapter(tiny_llama_dir, tmp_path / "dora", use_dora=True)
    with pytest.raises(UserError, match="DoRA"):
        plan_merge([str(adapters[0]), str(dora)], None, "linear", workspace=workspace)
    with pytest.raises(UserError, match="architecture"):
        plan_merge([str(full_models[0]), str(tiny_neox_dir)], None, "linear", workspace=workspace)
    with pytest.raises(UserError, match="mix adapters and full models"):
        plan_merge([str(adapters[0]), str(full_models[0])], None, "linear", workspace=workspace)
    with pytest.raises(UserError, match="no --base"):
        plan_merge([str(p) for p in full_models], None, "ties", workspace=workspace)
    with pytest.raises(UserError, match="overlap"):
        run(MergeConfig(inputs=tuple(str(a) for a in adapters), dev=str(SAMPLE), test=str(SAMPLE),
                        out=str(tmp_path / "o")))


def test_overlap_by_text_under_another_id_is_refused(tmp_path):
    from pipelines.merging.data import check_disjoint
    from pipelines.tasks.igakuqa import load_questions
    qs = load_questions(SAMPLE).questions
    renamed = [type(q)(**{**q.__dict__, "problem_id": "X" + q.problem_id,
                          "problem_text": " " + q.problem_text.replace("。", "。 ")}) for q in qs[:1]]
    with pytest.raises(UserError, match="1 shared question text"):
        check_disjoint(qs[:5], renamed)
    # Its punctuation changed (。→. 、→, ？ added, 「」 around a word, full-width letters): still the same question.
    repunctuated = [type(q)(**{**q.__dict__, "problem_id": "Y" + q.problem_id,
                               "problem_text": q.problem_text.replace("。", ".").replace("、", ",") + "？"})
                    for q in qs[:1]]
    with pytest.raises(UserError, match="1 shared question text"):
        check_disjoint(qs[:5], repunctuated)
    check_disjoint(qs[:5], qs[5:])


def test_a_second_merge_into_the_same_folder_is_refused_while_the_first_runs(workspace, adapters, tmp_path):
    """Two merges with one --out scored every candidate twice and the second crashed: the folder is
    locked like an evaluation's (the first merge is stood in for by holding its lock)."""
    from pipelines.core import run_lock
    from pipelines.core.errors import UserError
    out = tmp_path / "m"
    out.mkdir()
    config = MergeConfig(inputs=(str(adapters[0]), str(adapters[1])), dev=str(small_questions(tmp_path / "dev.jsonl", 4)),
                         test_fraction=0.5, budget=4, population=4, batch_size=4, out=str(out))
    with run_lock.exclusive(out, "merge"):
        with pytest.raises(UserError) as err:
            run(config)
    assert err.value.code == "lock.busy" and str(out) in err.value.problem
    assert not (out / "candidates.jsonl").exists() and not (out / "config.json").exists()
