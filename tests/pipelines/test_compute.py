"""Accuracy against compute: checkpoints placed at their training hours and tokens (from the
registry and the run's metrics.jsonl), the paper's columns at their published hours, and
evaluations with no training record counted, not dropped."""
from __future__ import annotations

import json

import pytest

from pipelines.evaluation import compute, paper_table
from tests.workbench.fake_results import record, result_row


@pytest.fixture
def placed(workspace, tmp_path):
    run_dir = tmp_path / "runs" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "tokens_total": 100 * s}) + "\n" for s in (1, 5, 10, 15))
        + '{"step": 20, "tokens_total"\n', encoding="utf-8")        # a line cut by a kill
    workspace.register_model("tiny", "base", str(tmp_path / "tiny"), step=0)
    workspace.register_model("run@10", "adapter", str(run_dir / "ckpt"), base_model="tiny", step=10, train_hours=0.5,
                             run_id="r1", meta={"run_dir": str(run_dir)})
    workspace.register_model("openai:gpt@http://127.0.0.1:9/v1", "endpoint", "openai:gpt@http://127.0.0.1:9/v1")
    rows = lambda right: [result_row(f"q{i}", 0, ["a"] if i < right else ["b"]) for i in range(4)]  # noqa: E731
    record(workspace, tmp_path / "e0", "tiny", rows(1))
    record(workspace, tmp_path / "e1", "run@10", rows(3))
    record(workspace, tmp_path / "e2", "openai:gpt@http://127.0.0.1:9/v1", rows(4))
    return workspace


def test_tokens_at_takes_the_last_record_at_or_before_the_step(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 2, "tokens_total": 7}\n{"step": 4, "tokens_total": 9}\n')
    assert compute.tokens_at(tmp_path, 3) == 7 and compute.tokens_at(tmp_path, 4) == 9
    assert compute.tokens_at(tmp_path, 1) is None and compute.tokens_at(tmp_path / "none", 4) is None


def test_checkpoints_sit_at_their_hours_and_tokens_and_the_paper_at_its_hours(placed):
    entries = paper_table.entries_from_registry(placed.evaluations(), placed.models())
    points, unplaced = compute.compute_points(entries, placed.models(), "accuracy")
    ours = points[points["source"] == "yours"].set_index("label")
    assert ours.loc["tiny · 0", ["hours", "tokens", "mean"]].tolist() == [0.0, 0, 0.25]
    assert ours.loc["run · 10", ["hours", "tokens", "mean"]].tolist() == [0.5, 1000, 0.75]
    assert unplaced == ["openai:gpt@http://127.0.0.1:9/v1 · 0"]
    paper = points[(points["source"] == "paper") & (points["shots"] == 0)].set_index("label")
    assert paper.loc["paper: OpenCALM-7B · 1k", ["hours", "mean"]].tolist() == [4.6, 0.219]
    assert paper.loc["paper: OpenCALM-7B · 0", "hours"] == 0.0 and paper["tokens"].isna().all()
    assert "paper: ChatGPT · 0" in paper.index                       # step 0: placed at 0 h
    gain = compute.accuracy_per_hour(points)
    run = gain[gain["series"] == "run"]
    assert run[["gain", "gain_per_hour"]].values.tolist() == [[0.5, 1.0]]      # over its base 'tiny' at step 0
    opencalm = gain[(gain["series"] == "paper: OpenCALM-7B") & (gain["shots"] == 0) & (gain["step"] == 1000)]
    assert opencalm["gain_per_hour"].iloc[0] == pytest.approx((0.219 - 0.222) / 4.6)


def test_the_command_prints_points_and_json(placed, capsys):
    compute.main(["--workspace", str(placed.root), "--json", "--no-reference"])
    out = json.loads(capsys.readouterr().out)
    assert {p["label"] for p in out["points"]} == {"tiny · 0", "run · 10"} and len(out["unplaced"]) == 1
    with pytest.raises(SystemExit):
        compute.main(["--workspace", str(placed.root), "--metric", "nope"])
    assert "Unknown metric" in capsys.readouterr().err

