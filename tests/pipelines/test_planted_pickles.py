"""A planted pickle in any file the workbench reads is refused with a clear message, never executed
(pipelines/core/safe_load.py): the training state a resume reads (scheduler and optimizer), a checkpoint's
weights an evaluation reads, an adapter a merge reads. Each plant would create a marker file if its
code ran; every test checks the marker is absent and the message names the file."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.core import safe_load
from pipelines.training import launch as train
from pipelines.training import runs as train_runs
from tests.conftest import REPO, SAMPLE_QUESTIONS
from tests.pipelines.test_merge import small_questions
from tests.pipelines.test_train_runs import _long_config, _wait_end, alpaca, run_to_end
from tests.workbench.conftest import make_adapter


class _Planted:
    """Unpickling this runs ``touch MARKER`` (what an attacker's file would do, harmlessly)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def plant(path: Path, marker: Path) -> None:
    import torch
    path.unlink(missing_ok=True)
    torch.save({"state": _Planted(marker)}, path)


def test_the_plant_runs_code_when_unpickled_the_unsafe_way(tmp_path):
    import torch
    marker = tmp_path / "ran"
    plant(tmp_path / "x.pt", marker)
    torch.load(tmp_path / "x.pt", weights_only=False)           # the positive control: this is a real exploit
    assert marker.exists()


def test_the_safe_loader_refuses_the_plant(tmp_path):
    marker = tmp_path / "ran"
    plant(tmp_path / "x.pt", marker)
    with pytest.raises(safe_load.UserError) as err:
        safe_load.torch_state(tmp_path / "x.pt")
    assert err.value.code == "files.unsafe_pickle" and "x.pt" in err.value.problem and not marker.exists()


@pytest.mark.parametrize("name", ["scheduler.pt", "optimizer.bin"])
def test_a_planted_pickle_in_the_run_state_is_refused_on_resume(name, tiny_llama_dir, workspace, tmp_path):
    data = alpaca(tmp_path / "d.jsonl", 8)
    cfg = _long_config(tiny_llama_dir, data, tmp_path / "run", max_steps=2, save_steps=[], resume_every=2)
    run_to_end(cfg)
    step, point = train_runs.latest_resume_point(tmp_path / "run")
    assert (point / "state" / name).exists(), sorted(p.name for p in (point / "state").iterdir())
    marker = tmp_path / "ran"
    plant(point / "state" / name, marker)
    resumed = train.resume(str(tmp_path / "run"), max_steps=step + 2)
    st = _wait_end(resumed.run_dir)
    # The status carries the refusal (train.log gets the worker's output a moment later: not waited for).
    assert st["status"] == "failed", st
    assert name in st.get("message", "") and "could run code" in st["message"], st
    assert not marker.exists()


def _planted_model(src: Path, out: Path, marker: Path) -> Path:
    """A copy of ``src`` whose weights are a pytorch_model.bin holding the plant (no safetensors)."""
    shutil.copytree(src, out)
    for f in out.glob("*.safetensors*"):
        f.unlink()
    plant(out / "pytorch_model.bin", marker)
    return out


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_a_planted_pickle_as_checkpoint_weights_is_refused_by_evaluate(tiny_llama_dir, workspace, tmp_path):
    marker = tmp_path / "ran"
    model = _planted_model(tiny_llama_dir, tmp_path / "model", marker)
    proc = cli("pipelines.evaluation.evaluator", "--model", str(model), "--data", str(SAMPLE_QUESTIONS), "--limit", "1",
               "--out", str(tmp_path / "ev"), "--workspace", str(workspace.root))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out and "could run code" in out, out
    assert not marker.exists()


def test_a_planted_pickle_as_a_merge_input_is_refused(tiny_llama_dir, workspace, tmp_path):
    marker = tmp_path / "ran"
    good = make_adapter(tiny_llama_dir, tmp_path / "good")
    bad = make_adapter(tiny_llama_dir, tmp_path / "bad")
    (bad / "adapter_model.safetensors").unlink()
    plant(bad / "adapter_model.bin", marker)
    proc = cli("pipelines.merging.evolve", "--inputs", str(good), str(bad), "--dev", str(small_questions(tmp_path / "dev.jsonl", 4)),
               "--test-fraction", "0.5", "--budget", "4", "--population", "4", "--batch-size", "4",
               "--out", str(tmp_path / "m"), "--workspace", str(workspace.root))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out and "could run code" in out, out
    assert "adapter_model" in out or str(bad) in out, out
    assert not marker.exists()
