"""The VLM merge (JRadiEvo's model) on tiny config-built models: a LLaVA whose text tower is a tiny
Llama, two tiny Llamas of that shape and a base. Checked: the VLM alone is the VLM exactly; a
candidate's tower equals DARE + TIES computed by hand for fixed coefficients and seed (shared
vocabulary rows merged, the image token's row the VLM's); the saved VLM's vision tower and
projector are its input's byte for byte; the CLI run end to end (dev choice, test evaluations the
Reports view lists, card, registry, verdict); a kill mid-search resumes without re-scoring; wrong
inputs are refused before anything loads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from pipelines.core.errors import UserError
from pipelines.core.repo import ASSETS
from pipelines.merging import towers
from pipelines.merging.evolve import MergeConfig, main, run
from pipelines.merging.methods import tensor_generator
from pipelines.merging.search import SearchSpace, read_candidates
from pipelines.merging.tower_mixer import TowerMixer
from tests.pipelines.test_merge import kill_mid_search, perturbed_copy

REPO = Path(__file__).resolve().parents[2]
SAMPLES = ASSETS / "reports" / "sample_ja.jsonl"


@pytest.fixture(scope="module")
def lms(tmp_path_factory, tiny_llama_dir):
    """Two 'fine-tuned' Llamas of the tower's shape (base + noise), the base being tiny_llama_dir."""
    root = tmp_path_factory.mktemp("lms")
    return [perturbed_copy(tiny_llama_dir, root / "med", seed=11), perturbed_copy(tiny_llama_dir, root / "ja", seed=12)]


@pytest.fixture(scope="module")
def plan(tiny_vlm_dir, lms, tiny_llama_dir):
    return towers.check_compatible(tiny_vlm_dir, [str(p) for p in lms], str(tiny_llama_dir))


def tensors(path: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(f, "pt") as fh:
            out.update({k: fh.get_tensor(k) for k in fh.keys()})
    return out


def test_the_vlm_alone_is_the_vlm_exactly(plan):
    mixer = TowerMixer(plan, "jradievo", seed=3)
    before = {n: p.detach().clone() for n, p in mixer.generator.model.named_parameters()}
    mixer.apply({"weights": [[0.3, 0.5, 0.2]], "densities": [[0.4, 0.6, 0.9]], "drop": 0.2, "scale": 1.3})
    changed = [n for n, p in mixer.generator.model.named_parameters() if not torch.equal(p, before[n])]
    assert changed and all(n in set(plan.names.values()) for n in changed)      # the tower only
    mixer.apply(SearchSpace(3, with_density=True, scaled=True).anchor(0))
    for n, p in mixer.generator.model.named_parameters():
        assert torch.equal(p, before[n]), n


def test_a_candidate_is_dare_ties_by_hand_and_the_saved_vlm_keeps_its_vision_tower(plan, tiny_vlm_dir, lms,
                                                                                  tiny_llama_dir, tmp_path):
    params = {"weights": [[0.6, 0.3, 0.8]], "densities": [[0.7, 0.5, 0.9]], "drop": 0.25, "scale": 1.4}
    mixer = TowerMixer(plan, "jradievo", seed=5)
    mixer.apply(params)
    vlm, base = tensors(tiny_vlm_dir), tensors(tiny_llama_dir)
    lm = [tensors(p) for p in lms]
    shared = plan.shared_ids
    for name in ("model.layers.1.mlp.down_proj.weight", "model.embed_tokens.weight"):
        own = vlm[plan.vlm_disk_names[name]].float()
        rows = shared if name in plan.vocab_names else slice(None)
        b = base[plan.sources[str(Path(tiny_llama_dir))][name]].float()[rows]
        deltas = [own[rows] - b] + [t[plan.sources[str(Path(p))][name]].float()[rows] - b for t, p in zip(lm, lms)]
        gen = tensor_generator(5, name)
        kept = []
        for d, density in zip(deltas, params["densities"][0]):       # DARE (keep 0.75, ×1/0.75), then trim
            d = d * (torch.rand(d.shape, generator=gen) < 0.75) / 0.75
            k = int(density * d.numel())
            threshold = d.abs().flatten().kthvalue(d.numel() - k + 1).values
            kept.append(d * (d.abs() >= threshold))
        total = sum(kept)
        sign = torch.where(total > 0, 1.0, torch.where(total < 0, -1.0, 1.0 if total.sum() >= 0 else -1.0))
        agree = [(x != 0) & (x.sign() == sign) for x in kept]
        merged = sum(w * a * x for w, a, x in zip(params["weights"][0], agree, kept))
        expected = b + 1.4 * merged / sum(a.int() for a in agree).clamp(min=1)
        got = mixer.targets[name].detach()
        assert torch.allclose(got[rows], expected, atol=1e-5), name
        if name in plan.vocab_names:                                    # the <image> row stays the VLM's
            image_row = plan.vlm_rows - 1
            assert image_row not in set(shared.tolist()) and torch.equal(got[image_row], own[image_row])
    mixer.save(tmp_path / "merged", params)
    saved, tower_disk = tensors(tmp_path / "merged"), set(plan.vlm_disk_names.values())
    assert set(saved) == set(vlm)
    for name, t in vlm.items():
        if name not in tower_disk:                      # vision tower and projector: byte for byte
            assert saved[name].dtype == t.dtype and saved[name].numpy().tobytes() == t.numpy().tobytes(), name
    for lm_name, disk in plan.vlm_disk_names.items():
        assert torch.equal(saved[disk], mixer.targets[lm_name].detach()), lm_name
    assert {f.name for f in Path(tiny_vlm_dir).iterdir() if not f.name.endswith(".safetensors")} <= \
        {f.name for f in (tmp_path / "merged").iterdir()}


def merge_args(vlm, lms, base, out, ws, *extra) -> list[str]:
    return ["--task", "report", "--inputs", str(vlm), *map(str, lms), "--base", str(base), "--method", "jradievo",
            "--dev", str(SAMPLES), "--test-fraction", "0.5", "--max-new-tokens", "4", "--population", "4",
            "--batch-size", "4", "--out", str(out), "--workspace", str(ws.root), *extra]


@pytest.mark.slow
def test_cli_merge_end_to_end(workspace, tiny_vlm_dir, lms, tiny_llama_dir, tmp_path, capsys):
    out = tmp_path / "cxr"
    main(merge_args(tiny_vlm_dir, lms, tiny_llama_dir, out, workspace, "--budget", "4"))
    printed = capsys.readouterr().out
    assert "ROUGE-L" in printed and "merge − VLM" in printed and "VLM" in printed
    report = json.loads((out / "report.json").read_text())
    candidates = read_candidates(out / "candidates.jsonl")
    assert [c["kind"] for c in candidates] == ["input"] + ["search"] * 4
    assert all(set(c["params"]) == {"weights", "densities", "drop", "scale"} for c in candidates)
    card = json.loads((out / "model" / "merge_card.json").read_text())
    assert card["task"] == "report" and card["method"] == "jradievo" and card["inputs"][0]["role"] == "vlm"
    assert card["data"]["dev"] + card["data"]["test"] == 6 and card["data"]["dev_sha256"]
    assert report["verdict_code"] in ("better", "not_better", "no_merge_found") and report["verdict"]
    assert set(report["table"]) == {"vlm", "merge"} and "bleu4" in report["table"]["merge"]
    assert report["paired_vs_vlm"]["rouge_l"]["n"] == card["data"]["test"]
    listed = {Path(e["out_dir"]).name: e["model"] for e in workspace.evaluations(task="report")
              if e["status"] == "finished"}
    assert listed == {"vlm": str(tiny_vlm_dir), "merge": report["registered_as"]}   # the Reports view offers both
    registered = workspace.model(report["registered_as"])
    assert registered["path"] == str((out / "model").resolve())
    assert json.loads(registered["meta"])["task"] == "report"


def short_reports(folder: Path) -> Path:
    """Six studies with one-sentence findings: their log-likelihood fits the tiny VLM's 256-token context."""
    import shutil
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, line in enumerate(SAMPLES.read_text(encoding="utf-8").splitlines()):
        row = json.loads(line)
        shutil.copy(SAMPLES.parent / row["image"], folder / row["image"])
        rows.append({"id": row["id"], "image": row["image"], "findings_ja": row["findings_ja"].split("。")[0] + "。"})
    path = folder / "short.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.slow
def test_loglik_search_then_rouge_rescoring_chooses_by_rouge(workspace, tiny_vlm_dir, lms, tiny_llama_dir, tmp_path):
    out = tmp_path / "cxr"
    args = merge_args(tiny_vlm_dir, lms, tiny_llama_dir, out, workspace, "--budget", "4", "--objective", "loglik",
                      "--rescore-top", "2")
    args[args.index("--dev") + 1] = str(short_reports(tmp_path / "short"))
    events = []
    report = run(MergeConfig(**_config(args)), events.append)
    candidates = read_candidates(out / "candidates.jsonl")
    assert all(c["score"] < 0 for c in candidates)                         # log-likelihoods
    rescored = read_candidates(out / "rescored.jsonl")
    best_two = sorted((c for c in candidates if c["kind"] == "search"), key=lambda c: (-c["score"], c["i"]))[:2]
    assert [r["i"] for r in rescored] == [0] + [c["i"] for c in best_two]  # the VLM, then loglik's two best
    card = json.loads((out / "merge_card.json").read_text())
    assert card["dev_rouge_l"] == max(r["rouge_l"] for r in rescored) and card["chosen_candidate"] in \
        [r["i"] for r in rescored if r["rouge_l"] == card["dev_rouge_l"]]
    assert report["objective"] == "loglik" and [e["i"] for e in events if e["event"] == "rescore"] == \
        [r["i"] for r in rescored]
    with pytest.raises(UserError) as info:                                  # ROUGE-L search: nothing to re-score
        MergeConfig(**{**_config(args), "objective": "rouge_l"}).validate()
    assert info.value.code == "merge.rescore_needs_loglik"


@pytest.mark.slow
def test_a_kill_mid_search_resumes_without_rescoring(workspace, tiny_vlm_dir, lms, tiny_llama_dir, tmp_path):
    out = tmp_path / "cxr"
    args = merge_args(tiny_vlm_dir, lms, tiny_llama_dir, out, workspace, "--budget", "4")
    path = out / "candidates.jsonl"
    before = kill_mid_search(args, path, after=3)
    assert len(before) == 3
    events = []
    run(MergeConfig(resume=str(out), workspace=str(workspace.root)), events.append)
    scored = [e for e in events if e["event"] == "candidate"]
    assert [e["resumed"] for e in scored] == [True] * 3 + [False] * 2
    assert read_candidates(path)[:3] == before


def test_wrong_inputs_are_refused_before_anything_loads(workspace, tiny_vlm_dir, lms, tiny_llama_dir, tiny_neox_dir,
                                                        tmp_path, monkeypatch):
    import transformers
    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained",
                        lambda *a, **k: pytest.fail("a model was loaded"))
    cases = {
        "merge.report_vlm_first": merge_args(lms[0], [tiny_vlm_dir, lms[1]], tiny_llama_dir, tmp_path / "a", workspace),
        "towers.architecture": merge_args(tiny_vlm_dir, [lms[0], tiny_neox_dir], tiny_llama_dir, tmp_path / "b",
                                          workspace),
    }
    for code, args in cases.items():
        with pytest.raises(UserError) as info:
            run(MergeConfig(**_config(args)))
        assert info.value.code == code
    with pytest.raises(UserError) as info:
        run(MergeConfig(**{**_config(cases["towers.architecture"]), "inputs": (str(tiny_vlm_dir), str(lms[0])),
                           "base": None}))
    assert info.value.code == "merge.needs_base"


def _config(args: list[str]) -> dict:
    from pipelines.core import cli
    from pipelines.merging.evolve import build_parser
    return vars(cli.config_from_args(MergeConfig, build_parser().parse_args(args)))
